"""Cells and norms checked against what they are written from: LRN as TensorFlow defines it, the grouped layout of
Zamir et al.'s ConvLSTM paths against four separate gates, hgru-pytorch's gate initialisation and gradient hook."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.models.cells import LSTM_GATES, GatePaths, HGRUCell, PlainCell, ResLSTMCell, symmetric_grad
from recbench.models.norms import NORM_KINDS, NormContext, StepNorm, local_response_norm


def _lrn_by_hand(x: np.ndarray, size=5, alpha=1e-4, beta=0.5, k=1.0) -> np.ndarray:
    """tf.nn.local_response_normalization(depth_radius=size // 2): sum over the channels within the radius."""
    out = np.empty_like(x)
    c, r = x.shape[-1], size // 2
    for i in range(c):
        window = x[..., max(0, i - r): min(c, i + r + 1)]
        out[..., i] = x[..., i] / (k + alpha * np.sum(window**2, axis=-1)) ** beta
    return out


def test_lrn_is_tensorflows_local_response_normalisation_with_spoerers_constants():
    x = np.random.default_rng(0).normal(0, 30, (2, 4, 4, 7)).astype(np.float32)  # large: the norm bites
    np.testing.assert_allclose(local_response_norm(jnp.asarray(x)), _lrn_by_hand(x), rtol=1e-5)
    np.testing.assert_allclose(local_response_norm(jnp.asarray(x), beta=0.75), _lrn_by_hand(x, beta=0.75), rtol=1e-5)
    norm = StepNorm(7, kind="lrn", steps=4)
    assert "lrn" in NORM_KINDS and norm.post_act
    assert not jax.tree.leaves(nnx.state(norm))  # no parameters, no statistics: the same at every step
    np.testing.assert_allclose(norm(jnp.asarray(x), 3, NormContext(train=True)), _lrn_by_hand(x), rtol=1e-5)


def test_plain_cell_applies_lrn_after_the_relu():
    """Spoerer et al.'s layers are conv -> ReLU -> LRN; before the ReLU the negative neighbours would count."""
    x = np.random.default_rng(1).normal(0, 40, (2, 3, 3, 8)).astype(np.float32)
    cell = PlainCell(8, norm="lrn", steps=4, rngs=nnx.Rngs(0))
    out = np.asarray(cell(jnp.asarray(x), None, 0, NormContext(train=False)))
    np.testing.assert_allclose(out, _lrn_by_hand(np.maximum(x, 0)), rtol=1e-5)
    assert not np.allclose(out, np.maximum(_lrn_by_hand(x), 0), rtol=1e-3)
    bn = PlainCell(8, norm="bn_step", steps=4, rngs=nnx.Rngs(0))
    assert not bn.norm.post_act  # BatchNorm stays before the ReLU


def _conv(x, kernel):
    k = kernel.shape[0]
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), ((k // 2, k // 2),) * 2,
                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))


@pytest.mark.parametrize("first", [True, False])
def test_gate_paths_are_four_separate_residual_paths(first):
    """The stacked first conv and per-gate convs of :class:`GatePaths` compute, for each gate g on channel block g,
    the reference's ``BN(conv3(ReLU(x + BN(conv2(ReLU(BN(conv1(x))))))))`` with that gate's own kernels."""
    c, k = 3, 3
    paths = GatePaths(c, first=first, norm="none", steps=1, kernel=k, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, c))
    out = paths(x, 0, NormContext(train=False))
    assert out.shape == (2, 6, 6, len(LSTM_GATES) * c)
    for g in range(len(LSTM_GATES)):
        block = slice(g * c, (g + 1) * c)
        y = x if paths.conv1 is None else _conv(x, paths.conv1.kernel[...][..., block]) + paths.conv1.bias[...][block]
        y = jax.nn.relu(y)
        y = jax.nn.relu(x + _conv(y, paths.conv2[g].kernel[...]) + paths.conv2[g].bias[...])
        y = _conv(y, paths.conv3[g].kernel[...]) + paths.conv3[g].bias[...]
        np.testing.assert_allclose(out[..., block], y, rtol=1e-5, atol=1e-5)


def test_res_lstm_cell_is_an_lstm_over_the_gate_paths():
    c = 4
    cell = ResLSTMCell(c, kernel=3, norm="bn_step", steps=2, rngs=nnx.Rngs(0))
    ctx = NormContext(train=False)
    x = jax.random.normal(jax.random.key(2), (2, 5, 5, c))
    h, cc = cell(x, None, 0, ctx)
    z = cell.x_path(x, 0, ctx) + cell.h_path(jnp.zeros_like(x), 0, ctx)  # the hidden paths run on the zero state
    i, f, o, g = jnp.split(z, 4, axis=-1)
    want_c = jax.nn.sigmoid(i) * jnp.tanh(g)  # no forget bias; c starts at 0
    np.testing.assert_allclose(cc, want_c, atol=1e-6)
    np.testing.assert_allclose(h, jax.nn.sigmoid(o) * jnp.tanh(want_c), atol=1e-6)
    del f
    h2, c2 = cell(x, (h, cc), 1, ctx)
    assert h2.shape == x.shape and not np.allclose(h2, h)


def test_hgru_gates_have_batchnorm_and_chronos_biases():
    """hgru-pytorch: u1_gate.bias ~ log U(1, T-1), u2_gate.bias = -u1_gate.bias; a BN (scale 0.1) per step on each
    gate's pre-activation and on each horizontal conv."""
    t, c = 8, 25
    cell = HGRUCell(c, kernel=5, norm="bn_step", steps=t, rngs=nnx.Rngs(3))
    gain, mix = np.asarray(cell.gain.bias[...]), np.asarray(cell.mix.bias[...])
    assert np.all(gain >= np.log(1.0)) and np.all(gain <= np.log(t - 1))
    assert np.ptp(gain) > 0.5  # drawn, not a constant
    np.testing.assert_array_equal(mix, -gain)
    for name in ("norm_gain", "norm_inh", "norm_mix", "norm_exc"):
        norm = getattr(cell, name)
        assert norm.kind == "bn_step" and norm.rows == t and norm.eps == 1e-3
        np.testing.assert_allclose(norm.scale[...], 0.1)
    np.testing.assert_allclose(cell.mu[...], 1.0)  # the reference's mu (and gamma, the excitation gain) start at 1
    np.testing.assert_allclose(cell.gamma[...], 1.0)
    # orthogonal kernels: the k*k*C filter vectors of distinct output channels are orthonormal
    w = np.asarray(cell.w_inh[...]).reshape(-1, c)
    np.testing.assert_allclose(w.T @ w, np.eye(c), atol=1e-5)


def test_hgru_gate_norm_sees_the_gate_preactivation():
    """Changing the gain gate's BN changes the output: the gates are normalised (an hGRU without them is not)."""
    cell = HGRUCell(4, kernel=3, norm="bn_step", steps=2, rngs=nnx.Rngs(0))
    ctx = NormContext(train=False)
    x = jax.random.uniform(jax.random.key(0), (1, 6, 6, 4))
    h = cell(x, None, 0, ctx)
    before = cell(x, h, 1, ctx)
    cell.norm_gain.bias.set_value(cell.norm_gain.bias[...] + 3.0)
    assert not np.allclose(before, cell(x, h, 1, ctx))


def test_symmetric_gradient_hook_on_the_horizontal_kernels():
    a = jax.random.normal(jax.random.key(0), (3, 3, 4, 4))
    w = jax.random.normal(jax.random.key(1), (3, 3, 4, 4))
    grad = jax.grad(lambda w: jnp.sum(symmetric_grad(w) * a))(w)
    np.testing.assert_allclose(grad, (a + jnp.swapaxes(a, 2, 3)) / 2, rtol=1e-6)
    np.testing.assert_array_equal(symmetric_grad(w), w)


def test_gate_path_kernels_start_as_the_references_conv_init():
    """feedback_48.lua's ConvInit: weight ~ N(0, sqrt(2 / (kW·kH·nOutputPlane))) per conv, i.e. per gate."""
    c = 32
    paths = GatePaths(c, first=True, norm="bn_step", steps=1, kernel=3, rngs=nnx.Rngs(0))
    want = np.sqrt(2 / (9 * c))
    for kernel in (paths.conv1.kernel, paths.conv2[0].kernel, paths.conv3[3].kernel):
        assert np.std(np.asarray(kernel[...])) == pytest.approx(want, rel=0.1)
