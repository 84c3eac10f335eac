"""Object solution time per image (Kar et al. 2019): when does a recurrent network settle on the right answer?

Kar et al. defined an image's *object solution time* as the earliest time from which the network's readout stays
correct. A recbench run reads out at every time step, so from the per-image correctness of its final evaluation,
``correct [T, N]`` (``predictions.npz``), an image's solution time is the first **time step index** ``t`` (0-based,
as ``accuracy_per_step`` and ``summary.csv`` count steps) such that the prediction is correct at ``t`` and at every
later step through the last one. An image the net gets wrong at its last step was never solved: ``np.inf``. An image
right, then wrong, then right again is solved only from the last switch to right (a transient success does not
count), which is what distinguishes this from "first time correct".

:func:`solution_time_histogram` counts images per solution step plus the never-solved ones: the JSON-friendly
form logged to wandb and drawn by the ``kar2019`` figure.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recbench.config import ConfigError

PREDICTIONS = "predictions.npz"


def solution_times(correct: np.ndarray) -> np.ndarray:
    """Per-image solution time from ``correct [T, N]`` (bool): float ``[N]``, a 0-based step, ``inf`` if the image
    is wrong at the last step."""
    correct = np.asarray(correct, dtype=bool)
    if correct.ndim != 2 or correct.shape[0] == 0:
        raise ValueError(f"correct must be [T, N] with T >= 1, got shape {correct.shape}")
    # stays[t, i]: image i is correct at step t and at every later step
    stays = np.flip(np.logical_and.accumulate(np.flip(correct, 0), axis=0), 0)
    first = np.argmax(stays, axis=0).astype(float)
    first[~stays[-1]] = np.inf
    return first


def load_predictions(run_dir: str | Path, name: str = PREDICTIONS) -> dict[str, np.ndarray]:
    """``correct [T, N]``, ``labels`` (and ``logits`` when saved) of a run's final evaluation, or of a
    ``recbench-eval`` result (``name`` = its ``.npz``); one-line :class:`ConfigError` when missing."""
    path = Path(run_dir) / name
    if not path.is_file():
        raise ConfigError(f"{path} does not exist (a run writes predictions.npz when trainer.save_predictions=true)")
    with np.load(path) as f:
        return {k: f[k] for k in f.files}


def run_solution_times(run_dir: str | Path, name: str = PREDICTIONS) -> tuple[np.ndarray, np.ndarray]:
    """Solution time per test image of a run (its ``predictions.npz``) and the images' labels."""
    preds = load_predictions(run_dir, name)
    return solution_times(preds["correct"]), preds["labels"]


def solution_time_histogram(times: np.ndarray, steps: int) -> dict:
    """Images solved at each of ``steps`` time steps, and never: ``{"counts_per_step": [...], "never": k}``
    (JSON-ready; what a wandb bar chart or the kar2019 figure draws)."""
    times = np.asarray(times, dtype=float)
    finite = times[np.isfinite(times)].astype(int)
    if finite.size and (finite.min() < 0 or finite.max() >= steps):
        raise ValueError(f"solution times must lie in 0..{steps - 1}, got {finite.min()}..{finite.max()}")
    return {"counts_per_step": np.bincount(finite, minlength=steps).tolist(),
            "never": int(np.isinf(times).sum())}
