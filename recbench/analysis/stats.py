"""The statistics every recbench figure uses: mean and 95 % confidence interval over seeds, and the bootstrap.

* :func:`mean_ci` — the mean of independent repeats (seeds) with a Student-t interval,
  ``mean ± t_{0.975, n-1} · s / √n``. With one repeat there is no spread to estimate, so the bounds are NaN
  (figures then draw the point without an error bar and print ``n=1``) rather than a misleading zero-width bar.
* :func:`bootstrap_ci` — a percentile bootstrap interval of a statistic of one sample, or of the difference of a
  statistic between two independent samples (each resampled with replacement on its own), deterministic given a
  seed. Used where the quantity is not a mean over seeds: per-image solution times (Kar et al. 2019).
* :func:`difference_ci` — the difference of two conditions' means over seeds with Welch's t interval and its
  standard error (the "differ by less than 3 standard errors" test of the reproductions, ``results/*/README.md``).
* :func:`summarise` — group table rows by some columns and give :func:`mean_ci` of a value column per group:
  the one aggregation behind every error bar and band in :mod:`recbench.analysis.figures`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

_CHUNK = 500  # bootstrap draws resampled at once


@dataclass(frozen=True)
class Interval:
    """An estimate with the bounds of its confidence interval and the number of values behind it."""

    mean: float
    lo: float
    hi: float
    n: int

    @property
    def half_width(self) -> float:
        """``hi - mean`` (NaN without an interval): the error bar of a symmetric t interval."""
        return self.hi - self.mean


def mean_ci(values: Iterable[float], confidence: float = 0.95) -> Interval:
    """Mean with a two-sided Student-t confidence interval; NaN values are dropped. ``n=1`` gives NaN bounds,
    ``n=0`` a NaN mean."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    x = x[~np.isnan(x)]
    n = len(x)
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), 0)
    mean = float(x.mean())
    if n == 1:
        return Interval(mean, float("nan"), float("nan"), 1)
    half = float(sps.t.ppf(0.5 + confidence / 2, n - 1) * x.std(ddof=1) / np.sqrt(n))
    return Interval(mean, mean - half, mean + half, n)


def bootstrap_ci(a: Sequence[float], b: Sequence[float] | None = None, *, statistic: Callable = np.mean,
                 n_boot: int = 10_000, confidence: float = 0.95, seed: int = 0) -> Interval:
    """Percentile bootstrap interval of ``statistic(a)``, or of ``statistic(a) - statistic(b)`` when ``b`` is
    given (two independent samples, resampled separately). ``statistic(x, axis=1)`` reduces each row of
    resamples (``np.mean``, ``np.median``). ``n`` is ``len(a)`` (``len(a) + len(b)`` for a
    difference). An empty sample gives NaN throughout."""
    a = np.asarray(a, dtype=float)
    b = None if b is None else np.asarray(b, dtype=float)
    n = len(a) + (0 if b is None else len(b))
    if len(a) == 0 or (b is not None and len(b) == 0):
        return Interval(float("nan"), float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)

    def resampled(x: np.ndarray) -> np.ndarray:  # in chunks, so 10k draws of thousands of images stay small
        sizes = [min(_CHUNK, n_boot - i) for i in range(0, n_boot, _CHUNK)]
        return np.concatenate([statistic(x[rng.integers(0, len(x), size=(k, len(x)))], axis=1) for k in sizes])

    point = float(statistic(a)) - (0.0 if b is None else float(statistic(b)))
    draws = resampled(a) - (0.0 if b is None else resampled(b))
    lo, hi = np.quantile(draws, [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(point, float(lo), float(hi), n)


def difference_ci(a: Iterable[float], b: Iterable[float], confidence: float = 0.95) -> tuple[Interval, float]:
    """``mean(a) - mean(b)`` of two independent samples (seeds of two conditions) with Welch's t interval, and its
    standard error. NaN bounds (and SE) unless both samples have two values or more."""
    x, y = (np.asarray([v for v in s if v is not None and not np.isnan(v)], dtype=float) for s in (a, b))
    n = len(x) + len(y)
    if len(x) == 0 or len(y) == 0:
        return Interval(float("nan"), float("nan"), float("nan"), n), float("nan")
    diff = float(x.mean() - y.mean())
    if len(x) < 2 or len(y) < 2:
        return Interval(diff, float("nan"), float("nan"), n), float("nan")
    va, vb = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    se = float(np.sqrt(va + vb))
    if se == 0:
        return Interval(diff, diff, diff, n), 0.0
    dof = (va + vb) ** 2 / (va**2 / (len(x) - 1) + vb**2 / (len(y) - 1))
    half = float(sps.t.ppf(0.5 + confidence / 2, dof) * se)
    return Interval(diff, diff - half, diff + half, n), se


def summarise(rows: Iterable[dict], by: Sequence[str], value: str, confidence: float = 0.95) -> list[dict]:
    """One row per distinct combination of the ``by`` columns (in order of first appearance), with ``mean``,
    ``lo``, ``hi`` and ``n`` of ``value`` over the rows of that group (seeds, usually)."""
    groups: dict[tuple, list[float]] = {}
    for r in rows:
        v = r.get(value)
        groups.setdefault(tuple(r.get(k) for k in by), []).append(np.nan if v is None else float(v))
    out = []
    for key, values in groups.items():
        ci = mean_ci(values, confidence)
        out.append({**dict(zip(by, key, strict=True)), "mean": ci.mean, "lo": ci.lo, "hi": ci.hi, "n": ci.n})
    return out
