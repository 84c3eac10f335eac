"""Mean with a t interval over seeds (none for one seed), the bootstrap, and grouping rows."""

import math

import numpy as np
import pytest

from recbench.analysis.stats import bootstrap_ci, mean_ci, summarise


def test_mean_ci_is_students_t():
    ci = mean_ci([1.0, 2.0, 3.0])
    # t_{0.975, 2} = 4.302653; s = 1; half-width = 4.302653 / sqrt(3)
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.hi - ci.mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert ci.mean - ci.lo == pytest.approx(ci.half_width)
    assert mean_ci([0.5, 0.5]).lo == 0.5  # no spread, no width


def test_one_value_has_no_interval_and_none_has_no_mean():
    one = mean_ci([0.7])
    assert one.mean == 0.7 and one.n == 1 and math.isnan(one.lo) and math.isnan(one.hi)
    assert mean_ci([]).n == 0 and math.isnan(mean_ci([]).mean)
    assert mean_ci([float("nan"), 1.0, None]).n == 1  # missing values are dropped


def test_bootstrap_is_deterministic_and_covers_the_difference():
    rng = np.random.default_rng(1)
    a, b = rng.normal(2.0, 1.0, 400), rng.normal(1.0, 1.0, 300)
    d = bootstrap_ci(a, b, n_boot=2000, seed=3)
    assert d == bootstrap_ci(a, b, n_boot=2000, seed=3)
    assert d.mean == pytest.approx(a.mean() - b.mean())
    assert d.lo < 1.0 < d.hi and d.hi - d.lo < 0.5 and d.n == 700
    one = bootstrap_ci(a, n_boot=1000)
    assert one.lo < a.mean() < one.hi
    med = bootstrap_ci(a, statistic=np.median, n_boot=500)
    assert med.mean == pytest.approx(np.median(a))
    assert math.isnan(bootstrap_ci([], [1.0]).mean)


def test_summarise_groups_rows_in_order():
    rows = [{"model": "b", "t": 0, "acc": 0.2}, {"model": "b", "t": 0, "acc": 0.4},
            {"model": "bl", "t": 0, "acc": 0.5}, {"model": "b", "t": 1, "acc": None}]
    out = summarise(rows, ["model", "t"], "acc")
    assert [(r["model"], r["t"], r["n"]) for r in out] == [("b", 0, 2), ("bl", 0, 1), ("b", 1, 0)]
    assert out[0]["mean"] == pytest.approx(0.3) and out[0]["lo"] < 0.3 < out[0]["hi"]
    assert math.isnan(out[1]["lo"])
