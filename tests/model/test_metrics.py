"""Metrics on hand-made cases whose answers are known."""

import numpy as np
import pytest

from hematovision.model.metrics import (
    accuracy_summary,
    confusion_matrix,
    majority_vote,
    per_class_report,
    wilson_interval,
)


def test_wilson_matches_published_values():
    # 8/10: the textbook Wilson 95% interval is 0.4902 - 0.9433.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_stays_inside_unit_interval_at_the_extremes():
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(0.2775, abs=1e-4)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4)
    assert high == pytest.approx(1.0, abs=1e-12)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_confusion_matrix_rows_are_true_columns_predicted():
    matrix = confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0], 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 0], [1, 0, 2]]


def test_per_class_report_known_values():
    matrix = np.array([[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    report = per_class_report(matrix, ["a", "b", "c"])
    assert report["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert report["b"]["precision"] == 0.5 and report["b"]["recall"] == 1.0
    assert report["b"]["f1"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["c"]["precision"] == 1.0
    assert report["c"]["recall"] == pytest.approx(2 / 3, abs=1e-6)
    assert report["c"]["support"] == 3


def test_never_predicted_class_scores_zero_not_nan():
    report = per_class_report(np.array([[2, 0], [1, 0]]), ["a", "b"])
    assert report["b"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}


def test_accuracy_summary_block():
    summary = accuracy_summary([0, 1, 1, 1], [0, 1, 0, 1], ["a", "b"], "toy")
    assert summary["n"] == 4 and summary["correct"] == 3
    assert summary["accuracy"] == 0.75
    low, high = summary["accuracy_ci95"]
    assert low < 0.75 < high
    assert summary["confusion_matrix"] == [[1, 0], [1, 2]]
    assert set(summary["per_class"]) == {"a", "b"}


def test_majority_vote_and_tie_break_by_mean_probability():
    probs = np.array([
        [0.9, 0.1], [0.8, 0.2], [0.4, 0.6],   # cell x: two votes for class 0
        [0.45, 0.55], [0.9, 0.1],             # cell y: 1-1 tie, class 0 has the higher mean
    ])
    votes = majority_vote(["x", "x", "x", "y", "y"], probs)
    assert votes == {"x": 0, "y": 0}
    # Order of images must not matter.
    assert majority_vote(["y", "y"], probs[[4, 3]]) == {"y": 0}
