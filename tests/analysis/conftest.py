"""Fake run directories for the analysis tests: the files a run leaves (summary.json, config.yaml, optionally
.hydra/overrides.yaml, predictions.npz, eval_*.json), written from small arrays, without training anything."""

import json

import numpy as np
import pytest
import yaml


def write_run(run_dir, model="bl", accuracy=(0.5, 0.6), *, dataset="digit_debris", seed=0, overrides=None,
              config=None, correct=None, labels=None, params=1000, depth=None, evals=()):
    """A run directory; ``config`` adds flattened keys (``{"dataset.level": "heavy"}``) to the minimal config."""
    run_dir.mkdir(parents=True, exist_ok=True)
    t = len(accuracy)
    summary = {"model": model, "dataset": dataset, "time_steps": t, "params": params,
               "flops_per_image": [1e6 * (i + 1) for i in range(t)],
               "effective_depth": list(depth or range(2, 2 + t)), "accuracy_per_step": list(accuracy),
               "final_accuracy": accuracy[-1], "train_steps": 10, "wall_time_s": 1.5, "images_per_s": 100.0,
               "device": "cpu:cpu x1"}
    (run_dir / "summary.json").write_text(json.dumps(summary))
    cfg = {"name": "test", "seed": seed, "model": {"name": model}, "dataset": {"name": dataset}}
    for key, value in (config or {}).items():
        node = cfg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(cfg))
    if overrides is not None:
        (run_dir / ".hydra").mkdir(exist_ok=True)
        (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    if correct is not None:
        correct = np.asarray(correct, bool)
        labels = np.arange(correct.shape[1]) % 10 if labels is None else np.asarray(labels)
        np.savez_compressed(run_dir / "predictions.npz", correct=correct, labels=labels)
    for i, ev in enumerate(evals):
        stem = f"eval_{i}"
        full = {"trained_steps": t, "steps": len(ev["accuracy_per_step"]), "ablate": [], "dataset": dataset,
                "dataset_overrides": {}, **ev}
        (run_dir / f"{stem}.json").write_text(json.dumps(full))
    return run_dir


@pytest.fixture
def fake_run():
    return write_run
