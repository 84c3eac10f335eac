"""Linsley et al. 2018's hGRU against serre-lab/hgru-pytorch (hgru.py, main.py): the readout, the Gabor stem squared,
gates with BN and chronos biases, trained on the last step."""

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from recbench.models.accounting import count_params
from recbench.models.engine import gabor_init
from recbench.models.norms import NormContext
from recbench.models.registry import build_model, preset

SMALL = dict(input_shape=(24, 24, 1), kernel=5)


def test_readout_is_norm_conv1x1_max_norm_linear():
    """hConvGRU.forward: bn(25) → conv6 1×1 to the classes → max-pool over the map → bn2 → fc (classes → classes)."""
    m = nnx.eval_shape(lambda: build_model("hgru"))
    head = m.readout
    assert set(nnx.to_pure_dict(nnx.state(head, nnx.Param))) == {"norm_in", "conv", "norm_out", "linear"}
    assert head.conv.kernel.shape == (1, 1, 25, 2) and head.conv.bias.shape == (2,)
    assert head.norm_in.scale.shape[-1] == 25 and head.norm_out.scale.shape[-1] == 2
    assert head.linear.kernel.shape == (2, 2)
    assert m.spec.readout == "hgru"


def test_readout_takes_the_global_max_of_the_class_maps():
    m = build_model("hgru", **SMALL)
    top = jax.random.normal(jax.random.key(0), (2, 24, 24, 25))
    head = m.readout
    ctx = NormContext(train=False)
    maps = head.conv(head.norm_in(top, 0, ctx))
    want = head.linear(head.norm_out(jnp.max(maps, axis=(1, 2), keepdims=True), 0, ctx)[:, 0, 0])
    np.testing.assert_allclose(head(top, 0, ctx), want, rtol=1e-6)


def test_gate_biases_are_chronos_initialised():
    cell = build_model("hgru", **SMALL).areas["hgru"].cells[0]
    gain = np.asarray(cell.gain.bias[...])
    assert gain.shape == (25,) and np.all(gain >= np.log(1)) and np.all(gain <= np.log(8 - 1))  # log U(1, T-1), T = 8
    np.testing.assert_array_equal(np.asarray(cell.mix.bias[...]), -gain)
    assert cell.norm_gain.rows == cell.norm_mix.rows == 8  # BN on the gates, per step


def test_stem_is_a_gabor_bank_squared_not_kaiming_noise():
    """conv0 (7×7, 1 → 25, bias) starts as oriented Gabor filters (zero mean, unit norm, the same for every seed) and
    its output is squared (an energy, never negative); it is a trainable parameter."""
    a, b = build_model("hgru", seed=0, **SMALL), build_model("hgru", seed=1, **SMALL)
    edge = a.spec.edges[0]
    assert (edge.kernel, edge.init, edge.act, edge.bias) == (7, "gabor", "square", True)
    k = np.asarray(a.edges["input_to_hgru"].conv.kernel[...])
    assert k.shape == (7, 7, 1, 25)
    np.testing.assert_array_equal(k, np.asarray(b.edges["input_to_hgru"].conv.kernel[...]))  # not random
    np.testing.assert_allclose(k, gabor_init(None, k.shape), rtol=1e-6)
    np.testing.assert_allclose(k.sum(axis=(0, 1, 2)), 0, atol=1e-5)  # zero mean: a flat image gives no response
    np.testing.assert_allclose(np.sqrt((k ** 2).sum(axis=(0, 1, 2))), 1, rtol=1e-4)
    # oriented: filter 0 (theta 0) varies along x only at the centre row, not a rotation-symmetric blob
    assert not np.allclose(k[:, :, 0, 0], k[:, :, 0, 0].T, atol=1e-3)
    assert isinstance(a.edges["input_to_hgru"].conv.kernel, nnx.Param)
    x = jax.random.normal(jax.random.key(0), (1, 24, 24, 1))
    assert float(jnp.min(a.edges["input_to_hgru"](x, 0, None))) >= 0.0


def test_hgru_trains_on_the_last_step_and_takes_the_width_knob():
    assert preset("hgru").objective == "last"
    assert build_model("hgru", width=0.4, **SMALL).spec.areas[0].channels == 10


def test_hgru_parameter_count():
    """Stem 25·49 + 25; cell: two 1×1 gates 2·(625 + 25), two 15×15 kernels 2·25²·225, five per-channel scalars
    (α, μ, γ, κ, ω) 5·25, four BNs per step 4·8·2·25; head: BN(25) and BN(2) per readout (8 rows), conv 25·2 + 2,
    linear 2·2 + 2. The reference's count is 285,637 (its head's BNs have one row, not 8)."""
    m = nnx.eval_shape(lambda: build_model("hgru"))
    cell = 2 * (625 + 25) + 2 * 625 * 225 + 5 * 25 + 4 * 8 * 2 * 25
    head = 8 * 2 * 25 + 8 * 2 * 2 + 52 + 6
    assert count_params(m) == 1250 + cell + head == 286_015


def test_rolled_scan_equals_the_python_loop():
    loop, scan = build_model("hgru", unroll="loop", **SMALL), build_model("hgru", unroll="scan", **SMALL)
    x = jax.random.uniform(jax.random.key(0), (2, 24, 24, 1))
    # train-mode BN over a batch of two amplifies float reordering: a looser tolerance than the eval pass
    np.testing.assert_allclose(loop(x, train=True), scan(x, train=True), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(loop(x), scan(x), rtol=1e-4, atol=1e-5)
