"""The collector turns run directories into a tidy CSV (one row per run and time step) and a figure."""

import csv
import json
import subprocess
import sys


def _summary(model, acc):
    t = len(acc)
    return {"model": model, "dataset": "digit_debris", "accuracy_per_step": acc, "effective_depth": list(range(t)),
            "flops_per_image": [1e6 * (i + 1) for i in range(t)], "params": 100, "train_steps": 10,
            "wall_time_s": 1.0, "images_per_s": 5.0, "device": "cpu:cpu x1"}


def test_collect_writes_rows_per_step_and_a_figure(tmp_path):
    for model, acc in (("b", [0.2, 0.2]), ("blt", [0.2, 0.3, 0.4])):
        run = tmp_path / "sweep" / f"model={model}"
        run.mkdir(parents=True)
        (run / "summary.json").write_text(json.dumps(_summary(model, acc)))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "recbench.analysis.collect", str(out), str(tmp_path / "sweep")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert [(r["model"], r["time_step"], r["accuracy"]) for r in rows] == [
        ("b", "0", "0.2"), ("b", "1", "0.2"), ("blt", "0", "0.2"), ("blt", "1", "0.3"), ("blt", "2", "0.4")]
    assert (out / "accuracy_per_step.png").stat().st_size > 1000
    empty = subprocess.run([sys.executable, "-m", "recbench.analysis.collect", str(out), str(tmp_path / "none")],
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and empty.stderr.startswith("recbench: error: no summary.json")
