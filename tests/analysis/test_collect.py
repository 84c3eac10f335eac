"""The collector: one row per run keyed by its overrides, a long per-step form, and recbench-collect."""

import csv
import json

import pytest

from recbench.analysis.collect import collect, key_columns, long_rows, main, read_overrides


def test_one_row_per_run_keyed_by_every_override(tmp_path, fake_run):
    sweep = tmp_path / "sweep"
    for model, level, seed, acc in (("b", "light", 0, (0.2,)), ("bl", "heavy", 1, (0.2, 0.3, 0.4))):
        fake_run(sweep / f"{model}-{seed}", model, acc, seed=seed,
                 config={"dataset.level": level, "model.channels": [8, 16], "paths.output_root": "/x"},
                 overrides=[f"model={model}", f"dataset.level={level}", f"seed={seed}", "debug=smoke",
                            "+model.channels=[8,16]", "paths.output_root=/x", "trainer.eval_every=5"])
    table = collect([sweep])
    assert len(table) == 2
    b, bl = table
    assert (b["model"], b["dataset.level"], b["seed"], b["debug"], b["model.channels"]) == (
        "b", "light", 0, "smoke", "[8, 16]")  # values from the resolved config, lists as JSON
    assert (bl["model"], bl["dataset.level"], bl["seed"]) == ("bl", "heavy", 1)
    assert "paths.output_root" not in b and "trainer.eval_every" not in b  # where output goes is no key
    assert bl["accuracy_per_step"] == [0.2, 0.3, 0.4] and bl["final_accuracy"] == 0.4 and bl["time_steps"] == 3
    assert bl["final_flops_per_image"] == 3e6 and bl["final_effective_depth"] == 4 and bl["params"] == 1000
    assert bl["config"]["dataset.level"] == "heavy"
    assert (b["task"], bl["task"]) == ("digit_debris light", "digit_debris heavy")  # one dataset, two tasks
    assert read_overrides(sweep / "b-0")["model.channels"] == "[8,16]"
    assert read_overrides(tmp_path) is None


def test_runs_without_overrides_are_keyed_by_what_differs(tmp_path, fake_run):
    for name, seed, steps in (("a", 0, 4), ("b", 1, 8)):
        fake_run(tmp_path / name, "blt", (0.1, 0.2), seed=seed,
                 config={"optim.lr": 0.01, "model.steps": steps, "model.lateral": True})
    table = collect([tmp_path])
    # model.steps differs from the blt preset (4) in one run; seed differs between the runs; optim.lr does not
    keys = key_columns([(None, r["config"], None) for r in table])
    assert "seed" in keys and "model.steps" in keys and "optim.lr" not in keys and "model.lateral" not in keys
    assert [r["model.steps"] for r in table] == [4, 8]


def test_long_rows_one_per_time_step(tmp_path, fake_run):
    fake_run(tmp_path / "r", "bl", (0.2, 0.5), depth=(2, 3))
    rows = long_rows(collect([tmp_path]))
    assert [(r["time_step"], r["accuracy"], r["depth"], r["flops"]) for r in rows] == [(0, 0.2, 2, 1e6),
                                                                                    (1, 0.5, 3, 2e6)]
    assert "accuracy_per_step" not in rows[0] and rows[0]["final_accuracy"] == 0.5


def test_recbench_collect_writes_both_tables_and_a_figure(tmp_path, fake_run, capsys):
    for model, acc, seed in (("b", (0.2,), 0), ("b", (0.4,), 1), ("blt", (0.2, 0.3, 0.4), 0)):
        fake_run(tmp_path / "sweep" / f"model={model},seed={seed}", model, acc, seed=seed,
                 overrides=[f"model={model}", f"seed={seed}"])
    out = tmp_path / "out"
    main([str(out), str(tmp_path / "sweep")])
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["model"], r["seed"], r["final_accuracy"]) for r in rows] == [("b", "0", "0.2"), ("b", "1", "0.4"),
                                                                           ("blt", "0", "0.4")]
    assert json.loads(rows[2]["accuracy_per_step"]) == [0.2, 0.3, 0.4]
    steps = list(csv.DictReader(open(out / "summary_per_step.csv")))
    assert [(r["model"], r["time_step"], r["accuracy"]) for r in steps][2:] == [
        ("blt", "0", "0.2"), ("blt", "1", "0.3"), ("blt", "2", "0.4")]
    assert (out / "accuracy_per_step.png").stat().st_size > 1000
    with pytest.raises(SystemExit) as exit_:
        main([str(out), str(tmp_path / "none")])
    assert exit_.value.code == 2 and capsys.readouterr().err.startswith("recbench: error: no summary.json")
