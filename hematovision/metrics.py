"""Classification metrics with no dependencies beyond numpy.

Small and explicit on purpose: the model card, the CLI and the tests all rely on
exactly these definitions (rows of a confusion matrix are true classes, columns are
predicted classes; an undefined ratio such as precision of a never-predicted class is 0).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes): rows = true class, columns = predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for truth, guess in zip(y_true, y_pred):
        matrix[int(truth), int(guess)] += 1
    return matrix


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def per_class_report(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support for each class, from a confusion matrix."""
    matrix = np.asarray(matrix)
    report = {}
    for index, name in enumerate(class_names):
        hits = matrix[index, index]
        precision = _ratio(hits, matrix[:, index].sum())
        recall = _ratio(hits, matrix[index, :].sum())
        f1 = _ratio(2 * precision * recall, precision + recall)
        report[name] = {
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "support": int(matrix[index, :].sum()),
        }
    return report


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] even at 0 or n hits."""
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def accuracy_summary(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    class_names: Sequence[str],
    description: str = "",
) -> dict:
    """The model card's per-split block: n, correct, accuracy with 95% CI, per class, matrix."""
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    n = int(matrix.sum())
    correct = int(np.trace(matrix))
    low, high = wilson_interval(correct, n)
    return {
        "description": description,
        "n": n,
        "correct": correct,
        "accuracy": round(_ratio(correct, n), 6),
        "accuracy_ci95": [round(low, 6), round(high, 6)],
        "per_class": per_class_report(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }


def majority_vote(groups: Sequence[str], probabilities: np.ndarray) -> dict[str, int]:
    """Predicted class per group: the most common per-image argmax.

    Ties go to the tied class with the highest mean probability over the group's
    images (then the lower class index), so the result never depends on image order.
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    n_classes = probabilities.shape[1]
    members: dict[str, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    votes = {}
    for group, indices in members.items():
        probs = probabilities[indices]
        counts = np.bincount(probs.argmax(axis=1), minlength=n_classes)
        tied = np.flatnonzero(counts == counts.max())
        means = probs.mean(axis=0)
        votes[group] = int(tied[np.argmax(means[tied])])
    return votes


def rate(count: int, n: int) -> dict:
    """A share with its Wilson 95% interval, as the model card stores it."""
    low, high = wilson_interval(count, n)
    return {"count": int(count), "n": int(n), "rate": round(_ratio(count, n), 6),
            "ci95": [round(low, 6), round(high, 6)]}


def macro_recall(summary: dict) -> float:
    """Mean recall over the classes present in an ``accuracy_summary`` block."""
    recalls = [c["recall"] for c in summary["per_class"].values() if c["support"]]
    return round(float(np.mean(recalls)), 6) if recalls else 0.0


def status_mix(statuses: Sequence[str], names: Sequence[str]) -> dict:
    """How many predictions got each status, each with its Wilson interval."""
    return {name: rate(sum(s == name for s in statuses), len(statuses)) for name in names}
