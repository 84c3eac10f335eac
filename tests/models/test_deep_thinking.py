"""Deep thinking (Schwarzschild et al. 2021, Bansal et al. 2022) as the dt_net family builds it: a readout at every
step, more steps at test time, the projection as the initial state, recall as a conv on [state, image], and a
parameter count derived from the structure."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from recbench.config import ConfigError
from recbench.models.accounting import count_params, effective_depth, flops_per_image
from recbench.models.engine import AreaGraph
from recbench.models.norms import NormContext
from recbench.models.registry import build_model, natural_input, preset


def _x(b=2, size=12, seed=0):
    return jax.random.normal(jax.random.key(seed), (b, size, size, 1))


def _params_by_hand(width: int, in_channels: int, classes: int, recall: bool, blocks: int = 2) -> int:
    conv = lambda a, b: 9 * a * b  # 3x3, no bias, as deep-thinking's
    projection = conv(in_channels, width)
    recur = (conv(width, width) + conv(in_channels, width)) if recall else 0  # conv on [state, image]
    # blocks x 2 convs; the engine's residual cell gives its convs a bias when there is no norm (+ width each)
    recur += blocks * 2 * (conv(width, width) + width)
    head = conv(width, 32) + conv(32, 8) + conv(8, classes)
    return projection + recur + head


@pytest.mark.parametrize("name, recall", [("dt_net_recall", True), ("dt_net", False)])
def test_param_count_follows_from_the_structure(name, recall):
    m = nnx.eval_shape(lambda: build_model(name))
    assert natural_input(preset(name)) == ((32, 32, 1), 2)  # Pathfinder 32 px, same path or not
    assert count_params(m) == _params_by_hand(32, 1, 2, recall) == (58_448 if recall else 48_944)
    wide = nnx.eval_shape(lambda: build_model(name, channels=128, input_shape=(32, 32, 3)))  # the paper's width
    assert count_params(wide) == _params_by_hand(128, 3, 2, recall)


def test_recall_false_has_no_recall_edge_and_fewer_params():
    with_recall, without = (nnx.eval_shape(lambda r=r: build_model("dt_net_recall", recall=r)) for r in (True, False))
    assert {e.kind for e in with_recall.spec.edges} == {"bottom_up", "lateral", "recall"}
    assert "recall" not in {e.kind for e in without.spec.edges}
    lateral = next(e for e in without.spec.edges if e.kind == "lateral")
    assert lateral.kernel == 0  # without recall the blocks act on the state itself (deep-thinking's dt_net_2d)
    assert count_params(with_recall) - count_params(without) == 9 * 32 * 32 + 9 * 1 * 32


def test_logits_at_every_step_and_more_steps_at_test_time():
    m = build_model("dt_net_recall", steps=3, channels=8, input_shape=(12, 12, 1))
    assert m.trained_steps == 3
    x = _x()
    out = m(x)
    assert out.shape == (3, 2, 2) and len(m.unroll(x)) == 3
    longer = m(x, steps=6)  # thinking longer: further steps of the same block
    assert longer.shape == (6, 2, 2)
    np.testing.assert_allclose(longer[:3], out, rtol=1e-5, atol=1e-6)
    assert not np.allclose(longer[5], longer[2])
    np.testing.assert_allclose(m(x, detach=1), out, rtol=1e-6)  # the progressive loss's cut changes no value
    assert preset("dt_net_recall").objective == preset("dt_net").objective == "progressive"


def test_the_projection_is_the_initial_state_and_recall_convolves_state_and_image():
    """Step 1 = head(blocks(W_s * projection(x) + W_x * x)): the projection is the state *before* the first step
    (not a drive added to it), and the recall conv on [state, image] is the lateral conv plus the image conv."""
    m = build_model("dt_net_recall", steps=2, channels=8, input_shape=(12, 12, 1))
    assert isinstance(m, AreaGraph) and m.spec.areas[0].once
    x, ctx = _x(), NormContext(train=False)
    state = jax.nn.relu(m.edges["input_to_projection"].conv(x))
    out = m(x)
    for t in range(2):
        h = m.edges["recur_to_recur"].conv(state) + m.edges["input_to_recur_recall"].conv(x)
        for block in m.areas["recur"].cells[0].blocks:
            h = block(h, t, ctx)
        state = h
        np.testing.assert_allclose(out[t], m.readout(state, t, ctx), rtol=1e-4, atol=1e-5)


def test_no_recall_applies_the_blocks_to_the_state_alone():
    m = build_model("dt_net", steps=2, channels=8, input_shape=(12, 12, 1))
    x, ctx = _x(), NormContext(train=False)
    state = jax.nn.relu(m.edges["input_to_projection"].conv(x))
    for block in m.areas["recur"].cells[0].blocks:
        state = block(state, 0, ctx)
    np.testing.assert_allclose(m(x)[0], m.readout(state, 0, ctx), rtol=1e-4, atol=1e-5)


def test_stride_runs_the_recurrence_at_a_coarser_resolution_with_the_same_weights():
    """model.stride=2: the projection and recall convs stride by 2, so the state (and the per-pixel head) is at
    half resolution; the weights are the same, the recurrence costs about a quarter."""
    full = build_model("dt_net_recall", steps=2, channels=8, input_shape=(12, 12, 1))
    half = build_model("dt_net_recall", steps=2, channels=8, stride=2, input_shape=(12, 12, 1))
    assert count_params(half) == count_params(full)
    x = _x()
    assert jax.nn.relu(half.edges["input_to_projection"].conv(x)).shape == (2, 6, 6, 8)
    assert half.edges["input_to_recur_recall"].conv(x).shape == (2, 6, 6, 8)
    assert half(x).shape == (2, 2, 2)
    ratio = flops_per_image(half, (12, 12, 1))[-1] / flops_per_image(full, (12, 12, 1))[-1]
    assert 0.2 < ratio < 0.35


@pytest.mark.parametrize("readout", ["pixel_max", "gmp", "gap"])
def test_readouts_and_width_multiplier(readout):
    m = nnx.eval_shape(lambda: build_model("dt_net_recall", readout=readout, channels=32, width=0.5))
    assert m.spec.readout == readout and all(a.channels == 16 for a in m.spec.areas)
    out = jax.eval_shape(lambda: build_model("dt_net_recall", readout=readout, steps=2, channels=8)(
        jnp.zeros((2, 32, 32, 1)), train=True))
    assert out.shape == (2, 2, 2)


def test_effective_depth_grows_by_the_two_blocks_per_step():
    m = nnx.eval_shape(lambda: build_model("dt_net_recall", steps=3, channels=8))
    # projection ReLU, 2 ReLUs per basic block x 2 blocks per step, the head's 2 ReLUs
    assert effective_depth(m, (12, 12, 1)) == [1 + 4 + 2, 1 + 8 + 2, 1 + 12 + 2]


def test_starts_at_chance_and_stays_bounded_when_it_thinks_longer():
    """The preset's init is PyTorch's (``init: torch``), as deep-thinking's nets start: the loss at initialisation is
    ln 2 at every readout, and with recall the state stays bounded over 8× the trained iterations (without recall
    the blocks alone grow it about 1.25× an iteration, even at this scale). At He scale the norm-free recurrent block
    grows the logits about 2.5× an iteration (a loss in the hundreds at 6 steps: docs/science.md §6)."""
    x = jax.random.uniform(jax.random.key(0), (8, 32, 32, 1))  # Pathfinder-like: a [0, 1] image
    labels = jnp.arange(8) % 2
    for recall in (True, False):
        m = build_model("dt_net_recall", recall=recall, steps=6, width=0.5)
        assert m.spec.init == "torch"
        loss = [float(optax.softmax_cross_entropy_with_integer_labels(lg, labels).mean()) for lg in m(x)]
        assert loss == pytest.approx([np.log(2)] * 6, abs=0.02)
        if recall:
            assert float(jnp.max(jnp.abs(m(x, steps=48)))) < 1.0
        he = build_model("dt_net_recall", recall=recall, steps=6, width=0.5, init="kaiming")
        assert float(jnp.max(jnp.abs(he(x)[-1]))) > 20.0  # what the preset's init avoids


def test_bad_values_are_one_line_errors():
    with pytest.raises(ConfigError, match="model.readout='flatten' is not valid"):
        build_model("dt_net", readout="flatten")
    with pytest.raises(ConfigError, match="model.blocks"):
        build_model("dt_net", blocks=0)


def test_rolled_scan_equals_the_loop():
    """Accelerators roll the recurrent steps into lax.scan; the initial state and recall are the same there."""
    m = build_model("dt_net_recall", steps=4, channels=8, input_shape=(12, 12, 1))
    x = _x()
    np.testing.assert_allclose(jnp.stack(m.unroll(x, strategy="scan")), jnp.stack(m.unroll(x, strategy="loop")),
                               rtol=1e-5, atol=1e-6)
