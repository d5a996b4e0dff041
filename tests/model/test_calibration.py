"""Temperature scaling, ECE and the abstain rule on cases whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from hematovision.model.calibration import (
    apply_temperature,
    choose_abstain_threshold,
    coverage_accuracy_curve,
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)


def overconfident_model(n: int, seed: int, sharpen: float = 3.0):
    """Labels drawn from softmax(z); the 'model' reports softmax(sharpen * z): too sure of itself."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.2, size=(n, 4))
    truth = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    labels = np.array([rng.choice(4, p=p) for p in truth])
    reported = np.exp(sharpen * logits)
    return reported / reported.sum(axis=1, keepdims=True), labels


def test_temperature_undoes_overconfidence_and_lowers_ece_on_held_out_data():
    fit_probs, fit_labels = overconfident_model(4000, seed=0)
    test_probs, test_labels = overconfident_model(4000, seed=1)
    temperature = fit_temperature(fit_probs, fit_labels)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = expected_calibration_error(test_probs, test_labels)
    after = expected_calibration_error(apply_temperature(test_probs, temperature), test_labels)
    assert before > 0.15
    assert after < 0.03


def test_temperature_never_changes_the_predicted_class():
    probs, _ = overconfident_model(500, seed=2)
    for temperature in (0.3, 1.0, 4.0):
        scaled = apply_temperature(probs, temperature)
        assert np.array_equal(scaled.argmax(axis=1), probs.argmax(axis=1))
        assert np.allclose(scaled.sum(axis=1), 1.0)


def test_ece_of_confident_wrong_answers_is_their_confidence():
    probs = np.tile([0.9, 0.05, 0.03, 0.02], (10, 1))
    assert expected_calibration_error(probs, np.ones(10, int)) == pytest.approx(0.9)
    assert expected_calibration_error(probs, np.zeros(10, int)) == pytest.approx(0.1)


def test_reliability_bins_count_every_prediction_once():
    probs, labels = overconfident_model(300, seed=3)
    bins = reliability_bins(probs, labels)
    assert len(bins) == 15
    assert sum(b["count"] for b in bins) == 300
    for b in bins:
        if b["count"]:
            assert b["lower"] <= b["confidence"] <= b["upper"]


def test_abstain_threshold_reaches_the_target_on_its_data():
    confidence = np.array([0.99, 0.97, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5])
    correct = np.array([1, 1, 1, 1, 0, 1, 0, 0], bool)
    choice = choose_abstain_threshold(confidence, correct, target_accuracy=1.0)
    assert choice == {"threshold": 0.9, "target_accuracy": 1.0, "coverage": 0.5, "accuracy": 1.0, "reached": True}
    relaxed = choose_abstain_threshold(confidence, correct, target_accuracy=0.8)
    assert relaxed["threshold"] == 0.7 and relaxed["accuracy"] == pytest.approx(5 / 6)


def test_abstain_says_when_the_target_cannot_be_reached():
    choice = choose_abstain_threshold(np.array([0.9, 0.8]), np.array([False, True]), target_accuracy=0.99)
    assert choice["reached"] is False


def test_coverage_curve_starts_at_overall_accuracy_and_gains_from_abstaining():
    probs, labels = overconfident_model(2000, seed=4)
    confidence = probs.max(axis=1)
    correct = probs.argmax(axis=1) == labels
    curve = coverage_accuracy_curve(confidence, correct)
    assert curve[0]["coverage"] == 1.0
    assert curve[0]["accuracy"] == pytest.approx(correct.mean())
    assert curve[-1]["accuracy"] > curve[0]["accuracy"] + 0.1
    assert [row["coverage"] for row in curve] == sorted((row["coverage"] for row in curve), reverse=True)
