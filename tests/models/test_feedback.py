"""Zamir et al. 2017 Feedback48 against StanfordVL/feedback-networks (models/feedback_48.lua, lib/ConvLSTM_bn3res.lua):
module sizes derived by hand from the Lua, the stem computed once, no conv in front of a module that keeps its shape."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.models.accounting import count_params, effective_depth
from recbench.models.registry import build_model, preset

T = 4  # iterations; bn_step gives every BN T rows of scale and shift


def _module_params(c_in: int, c: int, *, k: int = 3, rows: int = T, own_first_conv: bool = True) -> int:
    """ConvLSTM_bn3res(c_in, c) counted from the Lua. Four gates (input, forget, output: buildGate; the cell
    candidate: buildcellGate), each ``input2gate + output2gate``:

    * input2gate: core = conv(c_in→c, k, stride) BN ReLU conv(c→c) BN, + shortcut (parameter-free), ReLU,
      conv(c→c) BN: convs k²·(c_in·c + 2c²), 3 BNs;
    * output2gate: the same on h (c→c, ``noBias``): convs 3·k²·c², 3 BNs.

    No conv biases (feedback_48.lua's ConvInit sets ``v.bias = nil`` for cudnn >= 4); a BN has scale and shift, here
    ``rows`` of them (time-specific BN). ``own_first_conv=False``: the first input conv is the engine edge's, one
    for all four gates (counted once, c_in·c·k²).
    """
    first = k * k * c_in * c
    per_gate = (first if own_first_conv else 0) + k * k * 2 * c * c + 3 * k * k * c * c + 6 * 2 * c * rows
    return 4 * per_gate + (0 if own_first_conv else first)


def test_one_convlstm_module_has_the_reference_parameter_count():
    m = nnx.eval_shape(lambda: build_model("feedback48"))
    # module1 (16 -> 16, stride 1) and module4 (64 -> 64): identity edges, the reference's module exactly
    assert count_params(m.areas["module1"]) == _module_params(16, 16) == 4 * (9 * (16 * 16 + 5 * 16 * 16) + 12 * 16 * T)
    assert count_params(m.areas["module4"]) == _module_params(64, 64) == 897_024
    # module2 (16 -> 32 /2): its edge is the input paths' (shared) first conv
    assert count_params(m.areas["module2"]) + count_params(m.edges["module1_to_module2"]) == _module_params(
        16, 32, own_first_conv=False)
    assert "module1_to_module4" not in m.edges


def test_feedback48_parameter_count():
    """Stem 3·16·9 + BN(16); modules; linear 64·100 + 100. 1,925,428 (the old one-conv-per-gate modules: 751,956);
    the Lua's own count is 1,969,204 with BN affine shared over iterations (see recbench.models.feedback)."""
    m = nnx.eval_shape(lambda: build_model("feedback48"))
    modules = (_module_params(16, 16) + _module_params(16, 32, own_first_conv=False)
               + _module_params(32, 64, own_first_conv=False) + _module_params(64, 64))
    assert count_params(m) == 432 + 2 * 16 + modules + 6500 == 1_925_428


def test_no_conv_edge_in_front_of_a_module_and_a_relu_before_the_readout():
    spec = build_model("feedback48").spec
    edges = {spec.edge_name(e): e for e in spec.edges}
    assert edges["stem_to_module1"].kernel == 0 and edges["module3_to_module4"].kernel == 0  # identity
    for name in ("module1_to_module2", "module2_to_module3"):  # the strided first conv of the input path
        assert edges[name].kernel == 3 and edges[name].stride == 2 and not edges[name].block
    assert [a.cell for a in spec.areas] == ["plain", "lstm_res", "lstm_res_proj", "lstm_res_proj", "lstm_res", "sum"]
    assert edges["module4_to_relu"].kernel == 0 and spec.readout == "gap"
    assert spec.areas[0].once and spec.area_steps(0) == 1  # the stem: computed once, one row of BN


def test_stem_statistics_are_folded_once_per_forward():
    """The reference replicates the stem's output over the iterations (nn.Replicate): one BN pass per forward. A
    stem recomputed at every iteration would fold its batch statistics T times (1 - 0.9**T of the mean, not 0.1)."""
    m = build_model("feedback48", input_shape=(8, 8, 3), channels=[4, 4, 8, 8], stem_channels=4)
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 3))
    stem_norm = m.areas["stem"].cells[0].norm
    assert stem_norm.mean.shape == (1, 4)
    m(x, train=True)
    batch_mean = jnp.mean(m.edges["input_to_stem"].conv(x), axis=(0, 1, 2))
    np.testing.assert_allclose(stem_norm.mean[...][0], 0.1 * batch_mean, rtol=1e-4, atol=1e-6)


def test_feedback48_trains_every_iteration_and_takes_the_width_knob():
    cfg = preset("feedback48")
    assert cfg.objective == "mean" and cfg.cell == "lstm_res"
    half = build_model("feedback48", width=0.5).spec
    assert [a.channels for a in half.areas] == [8, 8, 16, 32, 32, 32]


def test_effective_depth_per_iteration_is_deeper_than_one_conv_per_gate():
    """Each module's input path holds three convs with two ReLUs (and a gate nonlinearity), where a plain ConvLSTM
    has one conv: a deeper chain per iteration."""
    kw = dict(input_shape=(8, 8, 3), num_classes=5, channels=[4, 4, 4, 4], stem_channels=4)
    deep = effective_depth(build_model("feedback48", **kw), (8, 8, 3))
    plain = effective_depth(build_model("feedback48", cell="lstm", **kw), (8, 8, 3))
    assert len(deep) == T and deep[0] >= plain[0] + 4 * 2
    assert all(b > a for a, b in zip(deep, deep[1:], strict=False))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_plain_gated_modules_remain_available(cell):
    m = build_model("feedback48", cell=cell, input_shape=(8, 8, 3), num_classes=5, channels=[4, 4, 4, 4],
                    stem_channels=4)
    assert m(jnp.zeros((2, 8, 8, 3))).shape == (T, 2, 5)


def test_rolled_scan_equals_the_python_loop():
    """On accelerators the iterations roll into lax.scan (the held stem rides in the carry): the same logits."""
    kw = dict(input_shape=(8, 8, 3), num_classes=5, channels=[4, 4, 4, 4], stem_channels=4)
    loop, scan = build_model("feedback48", unroll="loop", **kw), build_model("feedback48", unroll="scan", **kw)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 3))
    np.testing.assert_allclose(loop(x, train=True), scan(x, train=True), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loop(x), scan(x), rtol=1e-4, atol=1e-5)  # the running statistics agree too
