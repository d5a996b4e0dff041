"""Calibrated confidence: temperature scaling, ECE, reliability bins, abstention.

A softmax of 0.97 only means "97% of such calls are right" if the model is calibrated;
fine-tuned networks are usually over-confident. Temperature scaling (Guo et al. 2017)
divides the logits by one number T fitted on held-out data: it changes confidence,
never the predicted class. Our model outputs probabilities, and log-probabilities are
the logits up to a per-image constant that softmax ignores, so T applies to them.
"""

from __future__ import annotations

import numpy as np

ECE_BINS = 15


def _log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(np.asarray(probabilities, np.float64), 1e-12, 1.0))


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T); T > 1 softens over-confident probabilities."""
    scaled = _log_probabilities(probabilities) / float(temperature)
    scaled -= scaled.max(axis=-1, keepdims=True)
    exp = np.exp(scaled)
    return exp / exp.sum(axis=-1, keepdims=True)


def negative_log_likelihood(probabilities: np.ndarray, labels: np.ndarray) -> float:
    labels = np.asarray(labels)
    picked = np.asarray(probabilities)[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(picked, 1e-12, 1.0))))


def fit_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The T in [0.05, 20] that minimises the negative log-likelihood of ``labels``."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise ValueError("Cannot fit a temperature on no data.")
    result = minimize_scalar(
        lambda log_t: negative_log_likelihood(apply_temperature(probabilities, np.exp(log_t)), labels),
        bounds=(np.log(0.05), np.log(20.0)), method="bounded",
    )
    return float(np.exp(result.x))


def reliability_bins(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> list[dict]:
    """Equal-width confidence bins: how many predictions, their mean confidence and accuracy."""
    probabilities = np.asarray(probabilities)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # Bin i holds confidence in (edge_i, edge_i+1]; confidence is never below 1/classes.
    which = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, bins - 1)
    table = []
    for i in range(bins):
        members = which == i
        count = int(members.sum())
        table.append({
            "lower": round(float(edges[i]), 4), "upper": round(float(edges[i + 1]), 4), "count": count,
            "confidence": round(float(confidence[members].mean()), 6) if count else None,
            "accuracy": round(float(correct[members].mean()), 6) if count else None,
        })
    return table


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = ECE_BINS) -> float:
    """Sum over bins of |accuracy - confidence|, weighted by the share of predictions in the bin."""
    table = reliability_bins(probabilities, labels, bins)
    total = sum(row["count"] for row in table)
    if total == 0:
        raise ValueError("Cannot compute a calibration error on no data.")
    return float(sum(row["count"] / total * abs(row["accuracy"] - row["confidence"])
                     for row in table if row["count"]))


def coverage_accuracy_curve(confidence: np.ndarray, correct: np.ndarray, points: int = 41) -> list[dict]:
    """Accuracy on the predictions kept when those below a confidence threshold are set aside.

    One row per threshold (evenly spaced in coverage), from keeping everything down to
    keeping the most confident ~2.5%.
    """
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    order = np.argsort(-confidence, kind="stable")
    cumulative = np.cumsum(correct[order])
    n = len(order)
    rows = []
    for keep in np.unique(np.linspace(n, max(1, n // 40), points).round().astype(int)):
        rows.append({"threshold": round(float(confidence[order[keep - 1]]), 6),
                     "coverage": round(keep / n, 6), "accuracy": round(float(cumulative[keep - 1] / keep), 6)})
    return sorted(rows, key=lambda row: -row["coverage"])


def choose_abstain_threshold(confidence: np.ndarray, correct: np.ndarray, target_accuracy: float) -> dict:
    """The lowest confidence threshold whose kept predictions reach ``target_accuracy``.

    Returns the threshold with the coverage and accuracy it gives on these data; if no
    threshold reaches the target, the one with the best accuracy is returned and
    ``reached`` is False.
    """
    confidence = np.asarray(confidence, float)
    correct = np.asarray(correct, bool)
    order = np.argsort(-confidence, kind="stable")
    kept_accuracy = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    # Only cut between distinct confidence values: ties are all kept or all set aside.
    sorted_conf = confidence[order]
    cut_ok = np.append(sorted_conf[1:] < sorted_conf[:-1], True)
    good = np.flatnonzero((kept_accuracy >= target_accuracy) & cut_ok)
    reached = good.size > 0
    keep = int(good.max()) if reached else int(np.flatnonzero(cut_ok)[np.argmax(kept_accuracy[cut_ok])])
    return {"threshold": round(float(sorted_conf[keep]), 6), "target_accuracy": target_accuracy,
            "coverage": round((keep + 1) / len(order), 6), "accuracy": round(float(kept_accuracy[keep]), 6),
            "reached": bool(reached)}
