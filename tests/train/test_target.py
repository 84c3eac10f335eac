"""``trainer.target_accuracy``: stop at the first evaluation that reaches the target, and record the time to it."""

import json

import pytest

from recbench.config import ConfigError, TrainerConfig
from recbench.train.loop import train_and_evaluate
from recbench.train.run import validate_trainer


def test_run_stops_at_the_first_eval_that_reaches_the_target_and_a_rerun_does_not_train_on(tmp_path, tiny_cfg):
    cfg = tiny_cfg("trainer.total_steps=200", "trainer.eval_every=20", "trainer.checkpoint_every=100",
                   "trainer.target_accuracy=0.3")
    summary = train_and_evaluate(cfg, tmp_path)
    assert summary["steps_to_target"] < 200 and summary["steps_to_target"] % 20 == 0
    assert summary["train_steps"] == summary["steps_to_target"]
    assert summary["final_accuracy"] >= 0.3
    assert summary["images_to_target"] == summary["steps_to_target"] * 32
    assert 0 < summary["time_to_target_s"] <= summary["wall_time_s"]
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in events if e["event"] == "eval"]
    assert evals[-1]["step"] == summary["steps_to_target"]
    assert all(e["accuracy_per_step"][-1] < 0.3 for e in evals[:-1])  # it stopped at the first one
    assert len({e["step"] for e in evals}) == len(evals)  # the last evaluation is logged once

    again = train_and_evaluate(cfg, tmp_path)
    assert again["resumed_from"] == summary["steps_to_target"]
    assert again["time_to_target_s"] == summary["time_to_target_s"]
    assert again["accuracy_per_step"] == summary["accuracy_per_step"]


def test_without_a_target_the_summary_has_no_target_fields(tmp_path, tiny_cfg):
    summary = train_and_evaluate(tiny_cfg(), tmp_path)
    assert "time_to_target_s" not in summary and summary["train_steps"] == 2


@pytest.mark.parametrize("bad", [-0.1, 1.5])
def test_a_target_that_is_not_an_accuracy_is_one_line(bad):
    with pytest.raises(ConfigError, match="trainer.target_accuracy"):
        validate_trainer(TrainerConfig(target_accuracy=bad))
