"""Challenge (baseline wrong) vs control (baseline right, matched on a reference run's accuracy) images."""

import numpy as np
import pytest

from recbench.analysis.challenge import check_same_test_set, compare, compare_runs, split_challenge_control
from recbench.config import ConfigError


def _random(n, p, seed):
    return np.random.default_rng(seed).random(n) < p


def test_control_is_matched_on_the_reference_accuracy():
    baseline, reference = _random(1000, 0.7, 0), _random(1000, 0.8, 1)
    challenge, control = split_challenge_control(baseline, reference, seed=0)
    assert not baseline[challenge].any() and baseline[control].all()
    assert set(challenge) | set(np.flatnonzero(baseline)) == set(range(1000))
    assert abs(reference[control].mean() - reference[challenge].mean()) < 1 / len(control) + 1e-9
    assert len(control) > 0.8 * baseline.sum()  # the largest matched subset, not a token one
    again = split_challenge_control(baseline, reference, seed=0)
    np.testing.assert_array_equal(again[1], control)  # deterministic given the seed
    other = split_challenge_control(baseline, reference, seed=1)[1]
    assert len(other) == len(control) and not np.array_equal(other, control)


def test_exact_matching_on_a_small_case_and_without_reference():
    baseline = np.array([0, 0, 1, 1, 1, 1, 1, 1], bool)
    reference = np.array([1, 0, 1, 1, 1, 1, 0, 1], bool)  # 0.5 on challenge; control pool: 5 right, 1 wrong
    challenge, control = split_challenge_control(baseline, reference)
    assert challenge.tolist() == [0, 1]
    assert len(control) == 2 and reference[control].mean() == 0.5 and 6 in control
    assert split_challenge_control(baseline)[1].tolist() == [2, 3, 4, 5, 6, 7]
    # a reference right on every control candidate cannot be matched to 0.0 on challenge: all candidates
    assert split_challenge_control(baseline, baseline)[1].tolist() == [2, 3, 4, 5, 6, 7]
    assert split_challenge_control(np.zeros(4, bool), np.ones(4, bool))[1].tolist() == []  # no candidates


def test_solution_times_compared_on_solved_images():
    # 4 challenge images (baseline wrong), 4 control; the recurrent net solves challenge late and one never
    baseline = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    recurrent = np.array([[0, 0, 0, 0, 1, 1, 1, 0],
                          [0, 0, 1, 0, 1, 1, 1, 1],
                          [1, 1, 1, 0, 1, 1, 1, 1]], bool)
    res = compare(baseline, recurrent, np.arange(8), n_boot=500)
    stats = res.stats()
    assert (stats["n_challenge"], stats["solved_challenge"], stats["never_challenge"]) == (4, 3, 1)
    assert (stats["n_control"], stats["solved_control"], stats["never_control"]) == (4, 4, 0)
    assert stats["mean_time_challenge"] == pytest.approx(5 / 3) and stats["mean_time_control"] == 0.25
    assert stats["difference"] == pytest.approx(5 / 3 - 0.25)
    assert stats["difference_lo"] <= stats["difference"] <= stats["difference_hi"]
    rows = res.per_image()
    assert len(rows) == 8 and rows[3] == {"image": 3, "label": 3, "set": "challenge", "solution_time": np.inf,
                                          "baseline_correct": False, "reference_correct": None}


def test_runs_must_share_the_test_set(tmp_path, fake_run):
    correct = np.ones((2, 6), bool)
    fake_run(tmp_path / "ff", "resnet20", (0.5,), correct=correct[:1] & [1, 0, 1, 0, 1, 1], labels=[0, 1, 2, 3, 4, 5])
    fake_run(tmp_path / "rec", "blt", (0.5, 1.0), correct=correct, labels=[0, 1, 2, 3, 4, 5])
    fake_run(tmp_path / "other", "blt", (0.5, 1.0), correct=correct, labels=[5, 1, 2, 3, 4, 0])
    res = compare_runs(tmp_path / "ff", tmp_path / "rec", n_boot=100)
    assert res.challenge.tolist() == [1, 3] and res.control.tolist() == [0, 2, 4, 5]
    with pytest.raises(ConfigError, match="different test sets"):
        compare_runs(tmp_path / "ff", tmp_path / "other")
    with pytest.raises(ConfigError, match="different test sets"):
        check_same_test_set({"a": np.arange(3), "b": np.arange(4)})
