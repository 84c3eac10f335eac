"""Challenge vs control images (Kar et al. 2019): do recurrent nets take longer on what feedforward nets miss?

Kar et al. called *challenge* images those a deep feedforward net gets wrong (but primates get right) and *control*
images those it gets right, matched on primate performance, and showed that a recurrent net's (and the monkeys')
object solution times are longer on challenge images. Here, on one shared test set:

* **challenge** = images the feedforward *baseline* run gets wrong at its last readout;
* **control** = images it gets right. With a *reference* run (the stand-in for primates) the control set is a
  random subset of those, drawn (deterministically, given ``seed``) so that the reference run's accuracy on control
  equals its accuracy on challenge as closely as whole images allow (the largest such subset; where no subset can
  come near, because the reference is right on every baseline-correct image or wrong on every one, all of them,
  and the stats' ``reference_accuracy_challenge`` / ``_control`` show the mismatch). Without a reference every
  baseline-correct image is control (no matching).

The *recurrent* run's solution times (:mod:`recbench.analysis.solution_time`) are compared on the two sets. An
image the recurrent net never solves (wrong at its last step) has no finite solution time: it is **left out of the
means** and counted apart (``never_challenge``, ``never_control``), so the difference of means is over images the
recurrent net solves. The difference (challenge − control) gets a bootstrap 95 % CI, the two sets resampled
independently. The runs must share one test set: their saved labels must be equal, else a one-line ConfigError.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recbench.analysis.solution_time import load_predictions, solution_times
from recbench.analysis.stats import Interval, bootstrap_ci
from recbench.config import ConfigError


def check_same_test_set(labels: dict[str, np.ndarray]) -> np.ndarray:
    """The common labels of several runs (name -> labels); one-line ConfigError when they differ."""
    (first, ref), *rest = labels.items()
    for name, lab in rest:
        if lab.shape != ref.shape or not np.array_equal(lab, ref):
            raise ConfigError(f"runs {first} and {name} were evaluated on different test sets (labels differ: "
                              f"{ref.shape[0]} vs {lab.shape[0]} images); compare runs of the same dataset config")
    return ref


def split_challenge_control(baseline_correct: np.ndarray, reference_correct: np.ndarray | None = None,
                            seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Indices of challenge images (baseline wrong) and control images (baseline right; matched so that the
    reference's accuracy on control equals its accuracy on challenge, when a reference is given)."""
    base = np.asarray(baseline_correct, dtype=bool)
    challenge = np.flatnonzero(~base)
    pool = np.flatnonzero(base)
    if reference_correct is None:
        return challenge, pool
    ref = np.asarray(reference_correct, dtype=bool)
    if ref.shape != base.shape:
        raise ValueError(f"reference has {ref.shape} images, baseline {base.shape}")
    if challenge.size == 0:
        return challenge, pool
    target = ref[challenge].mean()
    right, wrong = pool[ref[pool]], pool[~ref[pool]]
    size = len(pool)
    if target > 0:
        size = min(size, int(np.floor(len(right) / target + 1e-9)))
    if target < 1:
        size = min(size, int(np.floor(len(wrong) / (1 - target) + 1e-9)))
    if size == 0:  # the target cannot be reached (reference right on every candidate, or wrong on every one)
        return challenge, pool  # the nearest accuracy whole images allow: all of them
    k = min(len(right), int(round(target * size)))
    k = max(k, size - len(wrong))
    rng = np.random.default_rng(seed)
    control = np.concatenate([rng.choice(right, k, replace=False), rng.choice(wrong, size - k, replace=False)])
    return challenge, np.sort(control)


@dataclass
class ChallengeResult:
    """Per-image solution times of the recurrent run on both sets, and their comparison."""

    challenge: np.ndarray  # image indices
    control: np.ndarray
    times: np.ndarray  # recurrent solution time per image (inf: never solved)
    labels: np.ndarray
    baseline_correct: np.ndarray
    reference_correct: np.ndarray | None
    difference: Interval  # mean(challenge) - mean(control) over solved images, bootstrap CI

    def solved(self, which: str) -> np.ndarray:
        t = self.times[getattr(self, which)]
        return t[np.isfinite(t)]

    def stats(self) -> dict:
        """Counts, means over solved images and the CI of the difference (JSON-ready)."""
        out = {}
        for which in ("challenge", "control"):
            solved = self.solved(which)
            out |= {f"n_{which}": int(getattr(self, which).size), f"solved_{which}": int(solved.size),
                    f"never_{which}": int(getattr(self, which).size - solved.size),
                    f"mean_time_{which}": float(solved.mean()) if solved.size else float("nan")}
        if self.reference_correct is not None:
            for which in ("challenge", "control"):
                idx = getattr(self, which)
                out[f"reference_accuracy_{which}"] = float(self.reference_correct[idx].mean()) if idx.size else None
        return out | {"difference": self.difference.mean, "difference_lo": self.difference.lo,
                      "difference_hi": self.difference.hi}

    def per_image(self) -> list[dict]:
        """One row per challenge or control image: index, label, set, solution time, baseline/reference right."""
        rows = []
        for which in ("challenge", "control"):
            for i in getattr(self, which):
                rows.append({"image": int(i), "label": _label(self.labels[i]), "set": which,
                             "solution_time": float(self.times[i]), "baseline_correct": bool(self.baseline_correct[i]),
                             "reference_correct": None if self.reference_correct is None
                             else bool(self.reference_correct[i])})
        return rows


def _label(label: np.ndarray) -> int | str:
    label = np.asarray(label)
    return int(label) if label.ndim == 0 else "".join(map(str, label.astype(int)))  # multi-hot: as a bit string


def compare(baseline_correct: np.ndarray, recurrent_correct: np.ndarray, labels: np.ndarray,
            reference_correct: np.ndarray | None = None, *, seed: int = 0, n_boot: int = 10_000) -> ChallengeResult:
    """Challenge/control split from last-step correctness (``[N]`` bools) and the recurrent run's ``correct
    [T, N]``; the difference of mean solution times gets a bootstrap CI."""
    challenge, control = split_challenge_control(baseline_correct, reference_correct, seed)
    times = solution_times(recurrent_correct)
    a, b = times[challenge], times[control]
    diff = bootstrap_ci(a[np.isfinite(a)], b[np.isfinite(b)], n_boot=n_boot, seed=seed)
    return ChallengeResult(challenge, control, times, labels, np.asarray(baseline_correct, bool),
                           None if reference_correct is None else np.asarray(reference_correct, bool), diff)


def compare_runs(baseline: str | Path, recurrent: str | Path, reference: str | Path | None = None, *,
                 seed: int = 0, n_boot: int = 10_000) -> ChallengeResult:
    """:func:`compare` on run directories (their ``predictions.npz``), after checking they share a test set."""
    runs = {"baseline": baseline, "recurrent": recurrent} | ({"reference": reference} if reference else {})
    preds = {role: load_predictions(d) for role, d in runs.items()}
    labels = check_same_test_set({str(runs[r]): p["labels"] for r, p in preds.items()})
    ref = preds["reference"]["correct"][-1] if reference else None
    return compare(preds["baseline"]["correct"][-1], preds["recurrent"]["correct"], labels, ref,
                   seed=seed, n_boot=n_boot)
