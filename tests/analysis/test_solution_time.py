"""Solution time: the first step from which an image stays correct through the last step (inf if never)."""

import numpy as np
import pytest

from recbench.analysis.solution_time import (
    load_predictions,
    run_solution_times,
    solution_time_histogram,
    solution_times,
)
from recbench.config import ConfigError


def test_edge_cases_always_never_late_and_transient():
    correct = np.array([
        # always, never, from 2, right-wrong-right, right then wrong at the end, only the last step
        [1, 0, 0, 1, 1, 0],
        [1, 0, 0, 0, 1, 0],
        [1, 0, 1, 1, 1, 0],
        [1, 0, 1, 1, 0, 1],
    ], bool)
    np.testing.assert_array_equal(solution_times(correct), [0, np.inf, 2, 2, np.inf, 3])


def test_one_step_and_bad_shapes():
    np.testing.assert_array_equal(solution_times(np.array([[True, False]])), [0, np.inf])
    with pytest.raises(ValueError, match=r"\[T, N\]"):
        solution_times(np.array([True, False]))


def test_histogram_counts_every_step_and_never():
    hist = solution_time_histogram(np.array([0, 2, 2, np.inf, 3, np.inf, np.inf]), steps=4)
    assert hist == {"counts_per_step": [1, 0, 2, 1], "never": 3}
    assert solution_time_histogram(np.array([np.inf]), steps=2) == {"counts_per_step": [0, 0], "never": 1}
    with pytest.raises(ValueError, match="0..1"):
        solution_time_histogram(np.array([0, 5]), steps=2)


def test_from_a_run_directory(tmp_path, fake_run):
    correct = np.array([[0, 1, 1], [1, 1, 0]], bool)
    fake_run(tmp_path / "r", correct=correct, labels=[3, 4, 5])
    times, labels = run_solution_times(tmp_path / "r")
    np.testing.assert_array_equal(times, [1, 0, np.inf])
    assert labels.tolist() == [3, 4, 5]
    assert set(load_predictions(tmp_path / "r")) == {"correct", "labels"}
    with pytest.raises(ConfigError, match="does not exist"):
        load_predictions(tmp_path / "nowhere")
