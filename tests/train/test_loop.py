"""End to end: the real trainer on tiny stimuli, into tmp_path; and exact resumption from a checkpoint."""

import json

import jax
import numpy as np
import pytest

from recbench.train import run
from recbench.train.loop import train_and_evaluate
from recbench.train.objectives import per_step_correct


def test_tiny_run_writes_metrics_and_summary_above_chance(tmp_path, tiny_cfg):
    cfg = tiny_cfg("trainer.total_steps=60", "trainer.eval_every=30", "trainer.checkpoint_every=60")
    summary = train_and_evaluate(cfg, tmp_path)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    for key in ("accuracy_per_step", "final_accuracy", "params", "flops_per_image", "effective_depth",
                "wall_time_s", "images_per_s", "device"):
        assert key in summary
    assert len(summary["accuracy_per_step"]) == len(summary["flops_per_image"]) == 2
    assert summary["effective_depth"] == [2, 3]  # BL: the lateral loop adds a ReLU per step
    assert summary["final_accuracy"] > 0.3  # chance is 0.1
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "start" and kinds.count("eval") == 2 and "train" in kinds
    assert events[-1]["step"] == 60 and len(events[-1]["accuracy_per_step"]) == 2
    preds = np.load(tmp_path / "predictions.npz")
    assert preds["logits"].shape == (2, 256, 10) and preds["correct"].shape == (2, 256)
    assert np.isclose(preds["correct"][-1].mean(), summary["final_accuracy"])
    assert (tmp_path / "config.yaml").exists() and (tmp_path / "checkpoints").is_dir()


class Preempted(Exception):
    pass


def _killed_after(steps: int, monkeypatch, cfg, workdir) -> None:
    """Train ``cfg`` in ``workdir`` as a job killed after ``steps`` train steps, then restore the real step."""
    real = run.make_train_step

    def dies(*args, **kwargs):
        step, calls = real(*args, **kwargs), []

        def wrapped(*a):
            calls.append(1)
            if len(calls) > steps:
                raise Preempted
            return step(*a)
        return wrapped

    monkeypatch.setattr(run, "make_train_step", dies)
    with pytest.raises(Preempted):
        train_and_evaluate(cfg, workdir)
    monkeypatch.setattr(run, "make_train_step", real)


def test_resumed_run_continues_exactly(tmp_path, tiny_cfg, monkeypatch):
    cfg = tiny_cfg("trainer.total_steps=12", "trainer.checkpoint_every=6")
    straight = train_and_evaluate(cfg, tmp_path / "straight")
    _killed_after(7, monkeypatch, cfg, tmp_path / "resumed")  # after its step-6 checkpoint
    resumed = train_and_evaluate(cfg, tmp_path / "resumed")
    assert straight["resumed_from"] == 0 and resumed["resumed_from"] == 6
    np.testing.assert_allclose(resumed["loss_per_step"], straight["loss_per_step"], rtol=1e-5)
    events = [json.loads(x) for x in (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("resume") == 1
    # the clock runs on over the restart, and the wall time counts both processes
    times = [e["time_s"] for e in events]
    first = times[: [e["event"] for e in events].index("resume")]
    assert times == sorted(times) and first[-1] > 0
    assert resumed["wall_time_s"] > first[-1]


def test_a_run_killed_before_its_first_checkpoint_starts_again_with_a_log_of_its_own(tmp_path, tiny_cfg,
                                                                                    monkeypatch):
    cfg = tiny_cfg("trainer.total_steps=12", "trainer.checkpoint_every=6", "trainer.eval_every=6")
    _killed_after(3, monkeypatch, cfg, tmp_path)
    killed = (tmp_path / "metrics.jsonl").read_text()
    summary = train_and_evaluate(cfg, tmp_path)
    assert summary["resumed_from"] == 0
    events = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events].count("start") == 1 and "resume" not in [e["event"] for e in events]
    assert [e["step"] for e in events if e["event"] == "eval"] == [6, 12]
    # the killed process's log is kept beside it, and its time is not counted in this run's
    (aside,) = tmp_path.glob("metrics.jsonl.old-*")
    assert aside.read_text() == killed and "start" in killed
    assert summary["wall_time_s"] >= events[-1]["time_s"] and events[0]["time_s"] < 1.0


def test_earlier_seconds_sums_the_processes_of_a_resumed_run(tmp_path):
    from recbench.train.runlog import earlier_seconds

    log = tmp_path / "metrics.jsonl"
    assert earlier_seconds(log) == 0.0
    # an older log whose clock restarted at each resume (30 s, then 20 s, then 5 s), and a line cut short by a kill
    lines = [{"event": "start", "time_s": 0.0}, {"event": "train", "time_s": 30.0},
             {"event": "resume", "time_s": 0.0}, {"event": "train", "time_s": 20.0},
             {"event": "resume", "time_s": 0.0}, {"event": "eval", "time_s": 5.0}]
    log.write_text("\n".join(json.dumps(x) for x in lines) + '\n{"event": "tr')
    assert earlier_seconds(log) == 55.0
    # a log whose clock runs on over a resume
    log.write_text("\n".join(json.dumps({"event": "train", "time_s": t}) for t in (0.0, 30.0, 30.0, 42.0)))
    assert earlier_seconds(log) == 42.0


def test_resume_refuses_a_different_experiment(tmp_path, tiny_cfg):
    from recbench.config import ConfigError

    train_and_evaluate(tiny_cfg(), tmp_path)
    with pytest.raises(ConfigError, match="different config"):
        train_and_evaluate(tiny_cfg("trainer.total_steps=4", "model.steps=3"), tmp_path)


def test_multilabel_accuracy_is_all_digits_right():
    labels = jax.numpy.array([[1, 1, 0, 0], [1, 0, 1, 0]])
    logits = jax.numpy.array([[[3.0, 2.0, 1.0, 0.0], [3.0, 2.0, 1.0, 0.0]]])  # [T=1, B=2, C=4]
    assert per_step_correct(logits, labels, multilabel=True).tolist() == [[True, False]]


def test_skip_mode_leaves_the_whole_state_as_it_was_on_a_non_finite_step(tiny_cfg):
    """trainer.on_nonfinite=skip: a step whose loss is NaN changes no parameter, statistic or optimizer count."""
    r = run.build_run(tiny_cfg("trainer.on_nonfinite=skip"), progress=False)
    shape = (32, *r.dataset.image_shape)
    y = np.zeros(32, np.int32)
    before = jax.tree.map(np.array, r.state.tree())
    state, metrics = r.train_step_on_batch(r.state, np.full(shape, np.nan, np.float32), y)
    assert not bool(metrics["finite"])
    jax.tree.map(np.testing.assert_array_equal, jax.tree.map(np.array, state.tree()), before)
    state, metrics = r.train_step_on_batch(state, np.ones(shape, np.float32), y)
    assert bool(metrics["finite"])
    after = jax.tree.map(np.array, state.tree())
    assert not all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before), strict=True))
