"""Test-time depth: accuracy against iterations when a trained run is unrolled further (and on harder variants).

``recbench-eval RUN --steps T' [--dataset contour_length=14]`` (or :func:`recbench.train.evaluate.evaluate_run`
with ``save=True``) leaves ``eval_*.json`` beside a run, each with accuracy at every step 1..T'. Schwarzschild et
al. 2021 asked whether a recurrent net trained at T iterations on easy problems gets *better* with more iterations
on harder ones (it does with "recall", the input fed again at every step). :func:`depth_table` reads those results
back as one row per run, evaluation and iteration; :func:`evaluate_missing` runs the evaluations a figure needs
where a run lacks them (T' = ``factor`` x the trained steps, optionally on a dataset variant).

Iterations count from 1 (``iterations = time step + 1``): after one iteration the net has read out once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from recbench.analysis.collect import PER_STEP

DEPTH_COLUMNS = ("trained_steps", "steps", "ablate", "eval_dataset", "iterations", "accuracy")


def eval_results(run_dir: str | Path) -> list[dict]:
    """The saved ``eval_*.json`` results of a run directory, sorted by file name."""
    return [json.loads(p.read_text()) for p in sorted(Path(run_dir).glob("eval_*.json"))]


def _overrides_label(overrides: Mapping) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))


def depth_table(table: list[dict]) -> list[dict]:
    """One row per (run of ``table``, saved evaluation, iteration): the run's columns (per-step lists and config
    dropped), ``trained_steps``, ``steps`` (T' of the evaluation), ``ablate`` (comma-joined), ``eval_dataset``
    (its dataset overrides, ``""`` on the trained test set), ``iterations`` (1..T') and ``accuracy``; the
    evaluated dataset node rides along as ``test_config`` (not written to CSV)."""
    out = []
    for row in table:
        base = {k: v for k, v in row.items() if k not in PER_STEP and k != "config"}
        trained_dataset = {k.removeprefix("dataset."): v for k, v in row.get("config", {}).items()
                           if k.startswith("dataset.")}
        for res in eval_results(row["run_dir"]):
            overrides = res.get("dataset_overrides") or {}
            info = {"trained_steps": res["trained_steps"], "steps": res["steps"], "ablate": ",".join(res["ablate"]),
                    "eval_dataset": _overrides_label(overrides),
                    "test_config": res.get("dataset_config") or trained_dataset | overrides}
            for t, acc in enumerate(res["accuracy_per_step"]):
                out.append(base | info | {"iterations": t + 1, "accuracy": acc})
    return out


def has_eval(run_dir: str | Path, steps: int, dataset: Mapping | None = None, ablate: tuple[str, ...] = ()) -> bool:
    """Whether a run holds a saved evaluation at ``steps`` on the ``dataset`` variant (with ``ablate``)."""
    want = dict(dataset or {})
    return any(r["steps"] == steps and (r.get("dataset_overrides") or {}) == want and tuple(r["ablate"]) == ablate
               for r in eval_results(run_dir))


def evaluate_missing(table: list[dict], *, factor: int = 8, dataset: Mapping | None = None,
                     data_dir: str | None = None) -> list[Path]:
    """Evaluate (and save) every run of ``table`` that lacks an evaluation at ``factor`` x its trained steps on
    the ``dataset`` variant (None: its own test set); returns the run directories evaluated. Runs with a single
    readout (feedforward, T = 1) are skipped: they have no iterations to add."""
    from recbench.train.evaluate import evaluate_run, parse_dataset_overrides

    dataset = parse_dataset_overrides(dataset) if not isinstance(dataset, Mapping) else dict(dataset)
    done = []
    for row in table:
        steps = factor * int(row["time_steps"])
        if steps > factor and not has_eval(row["run_dir"], steps, dataset):
            evaluate_run(row["run_dir"], steps=steps, dataset=dataset, data_dir=data_dir, save=True)
            done.append(Path(row["run_dir"]))
    return done
