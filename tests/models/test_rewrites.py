"""The phase rewrites compute the same function as the XLA ops they replace, gradients included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import lax

from recbench.models.rewrites import (
    Conv,
    ConvTranspose,
    conv_patches,
    conv_strided,
    conv_transpose_same,
    max_pool_blocks,
    reference_ops,
    strided_conv,
)

DN = ("NHWC", "HWIO", "NHWC")


def _rand(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize("k,s", [(3, 2), (3, 4), (3, 8), (5, 2), (4, 2), (2, 2), (1, 2), (3, 3)])
@pytest.mark.parametrize("hw", [(5, 6), (4, 4), (1, 3)])
def test_transposed_conv_matches_lax_and_flax(k, s, hw):
    x, kernel = _rand(2, *hw, 3), _rand(k, k, 3, 4, seed=1)
    ref = lax.conv_transpose(x, kernel, (s, s), "SAME", dimension_numbers=DN)
    np.testing.assert_allclose(conv_transpose_same(x, kernel, s), ref, atol=1e-4)
    layer = nnx.ConvTranspose(3, 4, (k, k), strides=(s, s), padding="SAME", use_bias=False, rngs=nnx.Rngs(0))
    layer.kernel.set_value(kernel)
    np.testing.assert_allclose(conv_transpose_same(x, kernel, s), layer(x), atol=1e-4)


def test_transposed_conv_gradients_match():
    x, kernel = _rand(2, 8, 8, 5), _rand(3, 3, 5, 6, seed=1)
    w = _rand(2, 16, 16, 6, seed=2)

    def loss(f):
        return lambda x, k: jnp.sum(w * f(x, k))

    ref = jax.grad(loss(lambda x, k: lax.conv_transpose(x, k, (2, 2), "SAME", dimension_numbers=DN)), (0, 1))(x, kernel)
    got = jax.grad(loss(lambda x, k: conv_transpose_same(x, k, 2)), (0, 1))(x, kernel)
    for r, g in zip(ref, got, strict=True):
        np.testing.assert_allclose(g, r, atol=1e-3)


@pytest.mark.parametrize("k,s,pad", [(3, 2, (1, 1)), (7, 2, (3, 3)), (1, 2, (0, 0)), (3, 2, (0, 1)), (5, 3, (2, 2)),
                                     (4, 2, (1, 2)), (7, 4, (3, 3))])
@pytest.mark.parametrize("hw", [(8, 8), (7, 9), (5, 5)])
def test_strided_conv_and_its_phase_gradients_match_lax(k, s, pad, hw):
    x, kernel = _rand(2, *hw, 3), _rand(k, k, 3, 4, seed=1)

    def ref(x, kern):
        return lax.conv_general_dilated(x, kern, (s, s), (pad, pad), dimension_numbers=DN)

    np.testing.assert_allclose(conv_strided(x, kernel, s, pad), ref(x, kernel), atol=1e-4)
    np.testing.assert_array_equal(strided_conv(x, kernel, s, pad), ref(x, kernel))  # forward: XLA's own
    w = _rand(*ref(x, kernel).shape, seed=2)
    g_ref = jax.grad(lambda x, k: jnp.sum(w * ref(x, k)), (0, 1))(x, kernel)
    g = jax.grad(lambda x, k: jnp.sum(w * strided_conv(x, k, s, pad)), (0, 1))(x, kernel)
    for a, b in zip(g, g_ref, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-3)


@pytest.mark.parametrize("hw", [(8, 8), (7, 6)])
def test_block_max_pool_matches_flax_and_routes_the_gradient_to_the_maximum(hw):
    x = _rand(2, *hw, 3)
    ref = nnx.max_pool(x, (2, 2), strides=(2, 2), padding="SAME")
    np.testing.assert_array_equal(max_pool_blocks(x, 2), ref)
    g_ref = jax.grad(lambda x: jnp.sum(nnx.max_pool(x, (2, 2), strides=(2, 2), padding="SAME") ** 2))(x)
    g = jax.grad(lambda x: jnp.sum(max_pool_blocks(x, 2) ** 2))(x)
    np.testing.assert_allclose(g, g_ref, atol=1e-6)  # no ties in random data


def test_block_max_pool_splits_the_gradient_of_a_tie():
    x = jnp.zeros((1, 2, 2, 1)).at[0, 0, 0, 0].set(-1.0)  # three tied maxima (0) and one smaller value
    g = jax.grad(lambda x: jnp.sum(max_pool_blocks(x, 2)))(x)
    np.testing.assert_allclose(g[0, :, :, 0], [[0, 1 / 3], [1 / 3, 1 / 3]], atol=1e-7)


@pytest.mark.parametrize("hw", [(2, 2), (1, 1), (2, 5)])
def test_patch_conv_matches_lax_on_maps_smaller_than_the_kernel(hw):
    x, kernel = _rand(2, *hw, 6), _rand(3, 3, 6, 5, seed=1)
    ref = lax.conv_general_dilated(x, kernel, (1, 1), ((1, 1), (1, 1)), dimension_numbers=DN)
    np.testing.assert_allclose(conv_patches(x, kernel, ((1, 1), (1, 1))), ref, atol=1e-4)


@pytest.mark.parametrize("stride,hw", [(1, (2, 2)), (1, (1, 5)), (1, (8, 8)), (2, (8, 8)), (2, (7, 7))])
@pytest.mark.parametrize("bias", [False, True])
def test_rewriting_layers_equal_the_flax_layers_they_extend(stride, hw, bias):
    x = _rand(2, *hw, 4)
    for k in (1, 3, 7):
        pad = k // 2
        ours = Conv(4, 5, (k, k), strides=stride, padding=((pad, pad), (pad, pad)), use_bias=bias, rngs=nnx.Rngs(0))
        ref = nnx.Conv(4, 5, (k, k), strides=stride, padding=((pad, pad), (pad, pad)), use_bias=bias,
                       rngs=nnx.Rngs(0))
        if bias:
            ours.bias.set_value(_rand(5, seed=3))
            ref.bias.set_value(ours.bias[...])
        np.testing.assert_allclose(ours(x), ref(x), atol=1e-4)
        with reference_ops():
            np.testing.assert_array_equal(ours(x), ref(x))
    up = ConvTranspose(4, 5, (3, 3), strides=(2, 2), padding="SAME", use_bias=bias, rngs=nnx.Rngs(0))
    up_ref = nnx.ConvTranspose(4, 5, (3, 3), strides=(2, 2), padding="SAME", use_bias=bias, rngs=nnx.Rngs(0))
    np.testing.assert_allclose(up(x), up_ref(x), atol=1e-4)
