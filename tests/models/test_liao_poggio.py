"""Liao & Poggio 2016 as the presets build it: one function per transition, feedback that reaches every pixel, a stem
computed once, the shared ResNet as three weight-shared stages, depth-matched presets and the shared-BN ablation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.config import ConfigError
from recbench.models.accounting import count_params, effective_depth
from recbench.models.cells import output_of
from recbench.models.liao_poggio import IDENTITY_KIND
from recbench.models.norms import NormContext, StepNorm
from recbench.models.registry import build_model, preset

PRESETS = ("liao_poggio_1state", "liao_poggio_2state", "liao_poggio_3state", "liao_poggio_4state")
MULTI = PRESETS[1:]


def _x(b=2, size=16, seed=1):
    return jax.random.normal(jax.random.key(seed), (b, size, size, 3))


def _built(name, seed=0, **overrides):
    """The preset's model with its variables drawn here (He-normal kernels, zero biases, fresh norms): no JAX random
    init, which dominates a test's time for the big graphs."""
    model = nnx.eval_shape(lambda: build_model(name, **overrides))
    rng = np.random.default_rng(seed)
    for path, var in nnx.to_flat_state(nnx.state(model)):
        shape, leaf = var.get_value().shape, path[-1]
        if leaf == "kernel":
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[:-1]))
        else:
            value = np.ones(shape) if leaf in ("scale", "var") else np.zeros(shape)
        var.set_value(jnp.asarray(value, jnp.float32))
    return model


def _randomise_norms(model, seed=0):
    """Distinct affine and running statistics in every norm row, so that a wrong row cannot hide."""
    rng = np.random.default_rng(seed)
    for _, node in nnx.iter_graph(model):
        if isinstance(node, StepNorm) and node.kind in ("bn", "bn_step"):
            for name, lo, hi in (("scale", 0.7, 1.3), ("bias", -0.2, 0.2), ("mean", -0.2, 0.2), ("var", 0.5, 1.5)):
                var = getattr(node, name)
                var.set_value(jnp.asarray(rng.uniform(lo, hi, var[...].shape), jnp.float32))


@pytest.mark.parametrize("name", MULTI)
def test_every_transition_is_its_own_function(name):
    """Each feedforward, feedback and lateral transition is a conv-BN-ReLU-conv-BN of its own (time-specific BN);
    the states add them (the ``sum`` cell) and each lateral keeps the identity too."""
    m = nnx.eval_shape(lambda: build_model(name, steps=3))
    spec = m.spec
    states = [i for i, a in enumerate(spec.areas) if a.name != "stem"]
    assert all(spec.areas[i].cell == "sum" for i in states)
    functions = [e for e in spec.edges if e.src in states]
    kinds = {e.kind for e in functions}
    assert kinds == {"bottom_up", "topdown", "lateral", IDENTITY_KIND}
    for e in functions:
        edge = m.edges[spec.edge_name(e)]
        if e.kind == IDENTITY_KIND and e.kernel == 0:  # the identity half of the lateral transition
            assert e.src == e.dst and e.kernel == 0 and edge.conv is None
            continue
        assert e.block, e
        assert edge.conv2 is not None and edge.norm.rows == edge.norm2.rows == 3  # one BN row per step
    for i in states:  # every state: identity + its own lateral function
        into = [e.kind for e in spec.edges if e.src == i and e.dst == i]
        assert sorted(into) == sorted(["lateral", IDENTITY_KIND])
    names = [spec.edge_name(e) for e in spec.edges]
    assert len(names) == len(set(names))  # no two transitions share weights


def test_state_update_is_relu_of_identity_plus_each_transition():
    """s_i(t) = ReLU(s_i(t-1) + f_ii(s_i(t-1)) + sum_j f_ji(s_j(t-1))) (+ the stem into the first state)."""
    m = _built("liao_poggio_2state", steps=4, width=0.5, input_shape=(16, 16, 3))
    _randomise_norms(m)
    x, ctx = _x(), NormContext(train=False)
    states = (None, None, None)
    for t in range(3):
        states = m._global_step(states, t, x, ctx, ())
    stem, s1, s2 = (output_of(s) for s in states)
    new = m._global_step(states, 3, x, ctx, ())
    f = lambda src, dst, s: m.edges[f"{src}_to_{dst}"](s, 3, ctx)
    want_s1 = jax.nn.relu(stem + s1 + f("S1", "S1", s1) + f("S2", "S1", s2))
    want_s2 = jax.nn.relu(f("S1", "S2", s1) + s2 + f("S2", "S2", s2))
    np.testing.assert_allclose(new[1], want_s1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(new[2], want_s2, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(new[0], stem)  # the stem is held


@pytest.fixture(scope="module")
def four_state():
    return _built("liao_poggio_4state", width=0.25, steps=2, input_shape=(32, 32, 3))


@pytest.mark.parametrize("source, stride", [("V2", 2), ("V4", 4), ("IT", 8)])
def test_full_connectivity_feedback_reaches_every_destination_pixel(four_state, source, stride):
    """The feedback into V1 from 2, 4 and 8 times coarser states: a change of the source changes the first conv of
    the transition at *every* V1 pixel (a 3x3 transposed conv of stride 4 or 8 reaches only 9/16 or 9/64 of them)."""
    m = four_state
    edge = m.edges[f"{source}_to_V1"]
    # Make the rest of the transition transparent: BN1 far into ReLU's linear range, conv2 a centred identity.
    edge.norm.bias.set_value(jnp.full(edge.norm.bias[...].shape, 100.0))
    c = edge.conv2.kernel[...].shape[-1]
    edge.conv2.kernel.set_value(jnp.zeros((3, 3, c, c)).at[1, 1].set(jnp.eye(c)))
    side = 32 // stride
    c_src = m.spec.areas[m.spec.names.index(source)].channels
    s = jax.random.normal(jax.random.key(0), (1, side, side, c_src))
    ds = jax.random.normal(jax.random.key(1), s.shape)
    ctx = NormContext(train=False)
    change = jnp.abs(edge(s + ds, 0, ctx) - edge(s, 0, ctx)).sum(-1)[0]
    assert change.shape == (32, 32)
    assert bool(jnp.all(change > 1e-4)), f"{int(jnp.sum(change <= 1e-4))} of 1024 V1 pixels get no feedback"


def test_the_stem_is_computed_once():
    """Computed at the first step and held: its batch statistics are folded into the running average once."""
    m = _built("liao_poggio_3state", steps=4, width=0.25, input_shape=(16, 16, 3))
    assert m.spec.areas[0].once
    x = _x(4)
    m(x, train=True)
    stem_conv = m.edges["input_to_stem"].conv
    batch_mean = jnp.mean(stem_conv(x), axis=(0, 1, 2))
    # once: 0.9 * 0 + 0.1 * mean; folded at each of 4 steps it would be (1 - 0.9**4) * mean
    np.testing.assert_allclose(m.areas["stem"].cells[0].norm.mean[...][0], 0.1 * batch_mean, rtol=1e-4, atol=1e-6)


def test_shared_resnet_is_three_weight_shared_stages():
    """states=1: stem, then stages of 16/32/64 maps at 32/16/8 px, each one residual block stepped ``steps`` times
    (one conv set, time-specific BN), a linear 3x3/2 conv into the next; a readout after each step of the last."""
    steps = 3
    m = _built("liao_poggio_1state", num_classes=5, input_shape=(32, 32, 3))
    spec = m.spec
    assert spec.schedule == "stagewise" and spec.names == ("stem", "S1", "S2", "S3")
    assert [a.channels for a in spec.areas] == [16, 16, 32, 64] and [spec.scale(i) for i in range(4)] == [1, 1, 2, 4]
    assert m.trained_steps == steps
    for name in ("S1", "S2", "S3"):
        (cell,) = m.areas[name].cells  # weight-shared over the steps
        assert cell.norm1.rows == cell.norm2.rows == steps
    _randomise_norms(m)
    x = _x(3, 32)
    out = m(x)
    assert out.shape == (steps, 3, 5)

    # The same network written out: stem; per stage [3x3/2 conv]; n x relu(h + F_t(h)); GAP, linear at each step.
    ctx = NormContext(train=False)
    h = jax.nn.relu(m.areas["stem"].cells[0].norm(m.edges["input_to_stem"].conv(x), 0, ctx))
    for s, name in enumerate(("S1", "S2", "S3")):
        if s:
            h = m.edges[f"S{s}_to_{name}"].conv(h)
        cell = m.areas[name].cells[0]
        for t in range(steps):
            y = jax.nn.relu(cell.norm1(cell.conv1(h), t, ctx))
            h = jax.nn.relu(h + cell.norm2(cell.conv2(y), t, ctx))
            if name == "S3":
                np.testing.assert_allclose(out[t], m.readout(h), rtol=1e-4, atol=1e-5)
    # weight-shared CIFAR ResNet's parameters: stem, one block's convs per stage, two transition convs
    convs = 9 * (3 * 16 + 2 * (16 * 16 + 32 * 32 + 64 * 64) + 16 * 32 + 32 * 64)
    norms = 2 * 16 + 2 * 2 * steps * (16 + 32 + 64)
    assert count_params(m) == convs + norms + 64 * 5 + 5


def test_one_stage_shared_resnet_unrolls_further_at_test_time():
    m = build_model("liao_poggio_1state", stages=1, steps=2, input_shape=(16, 16, 3))
    assert m(_x(), steps=5).shape == (5, 2, 10)


def test_presets_are_matched_in_unrolled_depth_and_read_out_at_the_end():
    """The effective depth of the last readout is about equal across 1, 2, 3 and 4 states (the 1-state net: 19, as
    ResNet-20; the multi-state nets: 2 per step after the first, 18 at 10 steps); the family trains on the last."""
    depths = {}
    for name in PRESETS:
        assert preset(name).objective == "last"
        cfg = dict(width=0.25) if name != "liao_poggio_1state" else {}
        m = nnx.eval_shape(lambda name=name, cfg=cfg: build_model(name, **cfg))
        depths[name] = effective_depth(m, (32, 32, 3))[-1]
    assert depths == {"liao_poggio_1state": 19, "liao_poggio_2state": 18, "liao_poggio_3state": 18,
                      "liao_poggio_4state": 18}


def _norm_rows(model) -> list[tuple[int, int]]:
    return [(node.rows, node.scale.get_value().shape[-1]) for _, node in nnx.iter_graph(model)
            if isinstance(node, StepNorm) and node.kind in ("bn", "bn_step")]


@pytest.mark.parametrize("name", PRESETS)
def test_shared_bn_ablation_builds_for_every_preset(name):
    """``norm=bn`` (one BN for all steps) vs ``bn_step`` (time-specific BN): same norms, one row instead of one per
    step, i.e. (rows - 1) * 2 * channels fewer parameters for each time-specific norm."""
    per_step = nnx.eval_shape(lambda: build_model(name, norm="bn_step", num_classes=7, input_shape=(16, 16, 3)))
    shared = nnx.eval_shape(lambda: build_model(name, norm="bn", num_classes=7, input_shape=(16, 16, 3)))
    rows = _norm_rows(per_step)
    assert max(r for r, _ in rows) == preset(name).steps
    assert all(r == 1 for r, _ in _norm_rows(shared)) and len(_norm_rows(shared)) == len(rows)
    fewer = sum((r - 1) * 2 * c for r, c in rows)
    assert fewer > 0 and count_params(per_step) - count_params(shared) == fewer
    for norm in ("bn_step", "bn"):
        out = jax.eval_shape(lambda norm=norm: build_model(name, norm=norm, num_classes=7, input_shape=(16, 16, 3))(
            jnp.zeros((2, 16, 16, 3)), train=True))
        assert out.shape == (per_step.trained_steps, 2, 7)


def test_width_multiplies_every_state():
    m = nnx.eval_shape(lambda: build_model("liao_poggio_4state", width=0.5))
    assert [a.channels for a in m.spec.areas] == [8, 8, 16, 32, 64]


@pytest.mark.parametrize("overrides, message", [
    ({"stages": 3}, "stages=3 is the shared ResNet's"),
    ({"states": 5}, "needs 5 channels entries"),
    ({"states": 1, "stages": 5}, "needs 5 channels entries"),
])
def test_bad_configs_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        build_model("liao_poggio_4state", **overrides)


def test_rolled_scan_equals_the_loop():
    """Accelerators roll the steps into lax.scan: the held stem and the transition functions' per-step BN rows give
    the same logits and running statistics as the Python loop."""
    m = _built("liao_poggio_3state", steps=5, width=0.25, input_shape=(16, 16, 3))
    _randomise_norms(m)
    graphdef, state = nnx.split(m)

    def run(state, x, strategy):
        model = nnx.merge(graphdef, state, copy=True)
        return jnp.stack(model.unroll(x, train=True, strategy=strategy)), nnx.state(model, nnx.BatchStat)

    x = _x()
    (a, stats_a), (b, stats_b) = (jax.jit(run, static_argnums=2)(state, x, s) for s in ("loop", "scan"))
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    for p, q in zip(jax.tree.leaves(stats_a), jax.tree.leaves(stats_b), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)
