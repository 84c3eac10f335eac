"""The areas-graph engine: shapes, schedules, rolled vs unrolled, ablation, test-time steps."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.models.engine import AreaGraph, chain_graph


def _model(lateral=True, topdown=True, schedule="sequential", steps=4, norm="bn_step", unroll="loop"):
    spec = chain_graph((8, 8), lateral=lateral, topdown=topdown, steps=steps, schedule=schedule, norm=norm,
                       unroll=unroll, in_channels=1, num_classes=5)
    return AreaGraph(spec, rngs=nnx.Rngs(0))


def _x(b=3, size=16):
    return jax.random.normal(jax.random.key(1), (b, size, size, 1))


@pytest.mark.parametrize("schedule", ["sequential", "synchronous"])
@pytest.mark.parametrize("lateral,topdown", [(False, False), (True, False), (False, True), (True, True)])
def test_readout_at_every_step(schedule, lateral, topdown):
    m = _model(lateral, topdown, schedule)
    # A sequential graph without recurrent edges computes the same thing at every step: it runs (and is charged)
    # once, T = 1, whatever ``steps`` asks (Spoerer's B controls)
    steps = 1 if (schedule == "sequential" and not (lateral or topdown)) else None
    assert m(_x()).shape == (steps or 4, 3, 5)
    assert m.trained_steps == (steps or 4)
    assert m(_x(), steps=7).shape == (steps or 7, 3, 5)  # test-time unroll beyond the trained 4 steps


def _pure(model, strategy, train):
    graphdef, state = nnx.split(model)

    def f(state, x):
        m = nnx.merge(graphdef, state, copy=True)
        out = jnp.stack(m.unroll(x, train=train, strategy=strategy))
        return out, nnx.state(m, nnx.BatchStat)

    return jax.jit(f), state


@pytest.mark.parametrize("schedule", ["sequential", "synchronous"])
@pytest.mark.parametrize("train", [False, True])
def test_rolled_scan_equals_python_loop(schedule, train):
    m = _model(schedule=schedule, steps=5)
    x = _x()
    f_loop, state = _pure(m, "loop", train)
    f_scan, _ = _pure(m, "scan", train)
    (a, stats_a), (b, stats_b) = f_loop(state, x), f_scan(state, x)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)
    for p, q in zip(jax.tree.leaves(stats_a), jax.tree.leaves(stats_b), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-5, atol=1e-6)
    if train:  # the running statistics really moved, one row per step
        mean = stats_a["areas"]["area1"]["cells"][0]["norm"]["mean"][...]
        assert mean.shape == (5, 8) and np.all(np.abs(np.asarray(mean)) > 0)


def test_rolled_scan_gradients_equal_loop():
    m = _model(steps=4)
    graphdef, params, rest = nnx.split(m, nnx.Param, ...)
    x = _x()

    def loss(params, strategy):
        mm = nnx.merge(graphdef, params, rest, copy=True)
        return jnp.mean(jnp.stack(mm.unroll(x, train=True, strategy=strategy)) ** 2)

    g_loop = jax.grad(loss)(params, "loop")
    g_scan = jax.grad(loss)(params, "scan")
    for p, q in zip(jax.tree.leaves(g_loop), jax.tree.leaves(g_scan), strict=True):
        np.testing.assert_allclose(p, q, rtol=1e-4, atol=1e-6)


def test_ablation_silences_connections():
    m = _model()
    x = _x()
    full, no_lat, no_td, neither = (m(x, ablate=a) for a in ((), ("lateral",), ("topdown",),
                                                                ("lateral", "topdown")))
    b_model = _model(lateral=False, topdown=False)
    # Step 0 reads only bottom-up edges, so ablation cannot change it; later steps must change.
    np.testing.assert_allclose(full[0], no_lat[0], rtol=1e-6)
    assert not np.allclose(full[-1], no_lat[-1]) and not np.allclose(full[-1], no_td[-1])
    # With both silenced the BLT computes exactly what B computes with the same bottom-up weights.
    b_model.edges = m.edges  # share every edge; B only uses the bottom-up ones
    b_model.areas, b_model.readout = m.areas, m.readout
    b_out = b_model(x)
    assert b_out.shape[0] == 1  # B is feedforward: one step, one readout
    np.testing.assert_allclose(neither, jnp.broadcast_to(b_out, neither.shape), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="ablate"):
        m(x, ablate=("feedback",))


def test_synchronous_signal_needs_a_step_per_area():
    m = _model(lateral=False, topdown=False, schedule="synchronous")
    out = m(_x())
    # At t=0 the top area has no state: the readout sees nothing and every image gets the same logits.
    assert np.allclose(out[0], out[0][:1])
    assert not np.allclose(out[1], out[1][:1])


def test_norm_rows_reused_beyond_trained_steps():
    m = _model(steps=2)
    x = _x()
    out = m(x, steps=4)
    # B-like dynamics are not at a fixed point, but the norm of step 3 must be row 1 (the last trained).
    assert out.shape == (4, 3, 5)
    assert np.all(np.isfinite(np.asarray(out)))


@pytest.mark.parametrize("norm", ["bn_step", "bn", "group", "none"])
def test_norm_kinds_train(norm):
    m = _model(norm=norm)
    assert m(_x(), train=True).shape == (4, 3, 5)


def test_bad_specs_raise_one_line_errors():
    with pytest.raises(ValueError, match="schedule must be one of"):
        chain_graph((8,), schedule="weird")
    with pytest.raises(ValueError, match="steps must be an integer"):
        chain_graph((8,), steps=0)


def test_skip_in_time_reads_the_state_from_delay_steps_back():
    from recbench.models.accounting import effective_depth
    from recbench.models.engine import EdgeSpec

    base = chain_graph((8,), steps=5, in_channels=1, num_classes=5, lateral=True)
    spec = dataclasses.replace(base, edges=base.edges + (EdgeSpec("skip", 0, 0, 0, delay=3),))
    m = AreaGraph(spec, rngs=nnx.Rngs(0))
    plain = AreaGraph(base, rngs=nnx.Rngs(0))
    x = _x()
    a, b = m(x), plain(x)
    # Identical until the skip edge first has a source (t = 3), different from then on.
    np.testing.assert_allclose(a[:3], b[:3], rtol=1e-6)
    assert not np.allclose(a[3], b[3])
    np.testing.assert_allclose(m(x, ablate=("skip",)), b, rtol=1e-6)
    assert effective_depth(m, (16, 16, 1)) == [1, 2, 3, 4, 5]  # the skip path is shorter, never longer


def test_stagewise_trained_steps_are_the_last_areas():
    """A stagewise net reads out after each step of its last area, whatever the graph's own ``steps``."""
    from recbench.models.engine import AreaSpec, EdgeSpec, GraphSpec

    spec = GraphSpec((AreaSpec("a", 4, steps=2), AreaSpec("b", 4, pool=2, steps=3)),
                     (EdgeSpec("bottom_up", -1, 0), EdgeSpec("bottom_up", 0, 1), EdgeSpec("lateral", 1, 1)),
                     steps=5, schedule="stagewise", num_classes=5)
    m = AreaGraph(spec, rngs=nnx.Rngs(0))
    assert m.trained_steps == spec.readouts() == 3 == len(m.unroll(_x()))
    assert m(_x(), steps=6).shape == (6, 3, 5)


def _kernels(m) -> dict[str, jax.Array]:
    return {"/".join(map(str, p)): v[...] for p, v in nnx.iter_graph(m)
            if isinstance(v, nnx.Param) and p[-1] == "kernel"}


def test_init_torch_gives_every_kernel_pytorchs_default_scale():
    """``model.init=torch``: every conv and the readout of an engine family drawn from U(±1/√fan-in), PyTorch's
    default; the default stays He normal (variance 2/fan-in); an edge's own init (the hGRU's Gabor stem) is kept."""
    from recbench.models.registry import build_model

    torch, kaiming = _kernels(build_model("blt", init="torch")), _kernels(build_model("blt"))
    assert torch.keys() == kaiming.keys() and len(torch) >= 6  # convs on the edges and the readout
    for name, w in torch.items():
        fan_in = int(np.prod(w.shape[:-1]))
        assert float(jnp.max(jnp.abs(w))) * np.sqrt(fan_in) <= 1.0 + 1e-6, name  # uniform within ±1/√fan-in
        if w.size > 500:  # enough draws for the variance
            assert float(jnp.var(w)) * fan_in == pytest.approx(1 / 3, rel=0.2), name
            if "readout" not in name:  # the linear readout keeps Flax's LeCun normal by default
                assert float(jnp.var(kaiming[name])) * fan_in == pytest.approx(2.0, rel=0.2), name
    stem = "edges/input_to_hgru/conv/kernel"
    np.testing.assert_array_equal(_kernels(build_model("hgru_small", init="torch"))[stem],
                                  _kernels(build_model("hgru_small"))[stem])


def test_bad_init_is_a_one_line_error():
    from recbench.config import ConfigError
    from recbench.models.registry import build_model

    with pytest.raises(ConfigError, match="init must be one of kaiming, torch, got 'xavier'"):
        build_model("blt", init="xavier")
