"""Training objectives: the family's own loss over readouts, deep-thinking's progressive loss, the coarse-to-fine
curriculum, and a learning-rate schedule that survives extending a run."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from recbench.config import ConfigError, compose_train
from recbench.models.engine import AreaGraph, chain_graph
from recbench.train.loop import train_and_evaluate
from recbench.train.objectives import Objective, build_objective, coarse_loss, resolve_mode
from recbench.train.run import check_objective


def _bl(steps=4):
    spec = chain_graph((4, 4), lateral=True, steps=steps, in_channels=1, num_classes=3)
    return AreaGraph(spec, rngs=nnx.Rngs(0))


def test_auto_takes_the_models_objective_and_explicit_modes_win():
    assert resolve_mode("auto", "last") == "last"
    assert resolve_mode("auto", "progressive") == "progressive"
    assert resolve_mode("mean", "last") == "mean"
    with pytest.raises(ConfigError, match="loss_over_steps"):
        resolve_mode("final", "mean")


def test_last_step_loss_gives_early_readouts_no_gradient():
    obj = build_objective("last", 4)
    logits = jnp.ones((4, 2, 3))
    g = jax.grad(lambda z: jnp.sum(obj.weights * obj.per_step(z, jnp.array([0, 1]), False)))(logits)
    assert np.all(np.asarray(g[:3]) == 0) and np.any(np.asarray(g[3]) != 0)
    mean = build_objective("mean", 4)
    np.testing.assert_allclose(mean.weights, [0.25] * 4)


def test_detach_cuts_the_gradient_of_the_prefix_only():
    model = _bl()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    x = jax.random.normal(jax.random.key(0), (2, 8, 8, 1))

    def readout(params, t, detach):
        m = nnx.merge(graphdef, params, rest, copy=True)
        return jnp.sum(m(x, detach=detach)[t] ** 2)

    def grads(t, detach):
        return jax.tree.leaves(jax.grad(readout)(params, t, detach))

    # the forward pass is the same whatever is detached
    m = nnx.merge(graphdef, params, rest, copy=True)
    np.testing.assert_allclose(m(x), m(x, detach=2), rtol=1e-6)
    # detaching at step 0 cuts nothing; detaching after a readout leaves its gradient alone
    for a, b in zip(grads(3, None), grads(3, 0), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    for a, b in zip(grads(1, None), grads(1, 3), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    # detaching before it changes the gradient (the prefix no longer learns from it), also when traced
    full, cut = grads(3, None), grads(3, jnp.asarray(2))
    assert any(not np.allclose(a, b) for a, b in zip(full, cut, strict=True))


def test_progressive_prefix_is_in_range_and_reproducible():
    obj = build_objective("progressive", 6, alpha=0.5, seed=1)
    assert obj.progressive_alpha == 0.5 and float(obj.weights[-1]) == 1.0
    draws = [tuple(int(v) for v in obj.prefix(i)) for i in range(200)]
    assert all(0 <= n < 6 and n <= scored < 6 for n, scored in draws)
    assert len({n for n, _ in draws}) == 6 and len({s for _, s in draws}) == 6  # every prefix and readout occurs
    assert draws == [tuple(int(v) for v in obj.prefix(i)) for i in range(200)]  # a resumed run draws the same
    assert build_objective("progressive", 1).progressive_alpha == 0.0  # one readout: nothing to cut


def test_coarse_loss_sums_the_fine_probabilities_of_a_superclass():
    coarse_of = np.array([0, 0, 1, 1])
    logits = jnp.log(jnp.array([[[0.1, 0.2, 0.3, 0.4]]]))  # [T=1, B=1, C=4], already probabilities
    np.testing.assert_allclose(coarse_loss(logits, jnp.array([2]), coarse_of), -np.log([[0.7]]), rtol=1e-5)
    np.testing.assert_allclose(coarse_loss(logits, jnp.array([1]), coarse_of), -np.log([[0.3]]), rtol=1e-5)
    obj = Objective(jnp.full(3, 1 / 3), coarse_of=(0, 0, 1, 1))
    np.testing.assert_allclose(obj.fine_weights(), [0.0, 0.5, 1.0])  # coarse first, fine last (Zamir et al.)


def test_bad_objectives_are_one_line_errors(data_dir):
    cfg = compose_train(["model=resnet20", "trainer.loss_over_steps=progressive"])
    cfg.paths.data_dir = data_dir
    with pytest.raises(ConfigError, match="coarse_to_fine"):
        check_objective(compose_train(["trainer.coarse_to_fine=true"]), _trainer(coarse_to_fine=True))
    with pytest.raises(ConfigError, match="progressive_alpha"):
        check_objective(compose_train([]), _trainer(progressive_alpha=1.5))
    from recbench.train.run import make_objective

    class FakeResNet:
        trained_steps = 1

    cfg.model.name = "resnet20"
    assert make_objective(cfg, _trainer(loss_over_steps="progressive"), FakeResNet()).progressive_alpha == 0
    with pytest.raises(ConfigError, match="progressive"):
        class FakeDeep(FakeResNet):
            trained_steps = 3
        make_objective(cfg, _trainer(loss_over_steps="progressive"), FakeDeep())


def _trainer(**kw):
    from recbench.config import TrainerConfig

    return TrainerConfig(**kw)


def test_extending_a_finished_run_does_not_restart_the_schedule(tmp_path, tiny_cfg):
    cfg = tiny_cfg("trainer.total_steps=8", "trainer.log_every=1", "trainer.checkpoint_every=8")
    train_and_evaluate(cfg, tmp_path)
    longer = tiny_cfg("trainer.total_steps=12", "trainer.log_every=1", "trainer.checkpoint_every=12")
    summary = train_and_evaluate(longer, tmp_path)
    assert summary["resumed_from"] == 8 and summary["train_steps"] == 12
    lrs = {e["step"]: e["lr"] for e in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines())
           if e["event"] == "train"}
    assert lrs[2] > lrs[8]  # cosine over the first 8 steps
    assert all(lrs[s] <= lrs[8] + 1e-12 for s in range(9, 13))  # no warm restart: it stays at the end value
    assert (tmp_path / "config.yaml").read_text().count("schedule_steps: 8") == 1


def test_progressive_train_step_mixes_a_partial_unroll():
    import optax

    from recbench.train.step import TrainState, make_train_step

    model = _bl(steps=3)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx = optax.sgd(0.0)  # no update: the loss of the same state under both objectives
    x, y = jax.random.normal(jax.random.key(0), (4, 8, 8, 1)), jnp.array([0, 1, 2, 0])

    def loss(objective, step_index):
        step = make_train_step(graphdef, tx, objective, multilabel=False)
        state = TrainState(params, rest, tx.init(params))
        _, metrics = step(jax.tree.map(jnp.copy, state), x, y, step_index)
        return float(metrics["loss"]), np.asarray(metrics["loss_per_step"])

    last, per_step = loss(build_objective("last", 3), 0)
    prog = build_objective("progressive", 3, alpha=0.5)
    for i in range(4):
        value, logged = loss(prog, i)
        scored = int(prog.prefix(i)[1])
        np.testing.assert_allclose(value, 0.5 * last + 0.5 * per_step[scored], rtol=1e-5)  # same forward values
        np.testing.assert_allclose(logged, per_step, rtol=1e-6)  # every readout is still logged
