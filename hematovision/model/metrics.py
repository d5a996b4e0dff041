"""Classification metrics for the model card, the CLI and the tests.

The counting and the intervals come from scikit-learn and scipy; this module pins the
conventions the model card relies on: rows of a confusion matrix are true classes,
columns are predicted classes, an undefined ratio such as precision of a
never-predicted class is 0, and an empty sample has the interval [0, 1]. Both libraries
are imported where they are used, so importing this module stays as cheap as numpy.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts, shape (n_classes, n_classes): rows = true class, columns = predicted class."""
    from sklearn import metrics as sk_metrics

    if len(y_true) == 0:  # scikit-learn refuses an empty sample; an empty split counts nothing
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return sk_metrics.confusion_matrix(y_true, y_pred, labels=range(n_classes))


def _ratio(numerator: float, denominator: float) -> float:
    return float(numerator) / float(denominator) if denominator else 0.0


def per_class_report(matrix: np.ndarray, class_names: Sequence[str]) -> dict[str, dict]:
    """Precision, recall, F1 and support for each class, from a confusion matrix.

    F1 is 2 tp / (2 tp + fp + fn), one division of counts, so a value that lies exactly
    halfway between two 6-decimal numbers rounds half to even.
    """
    from sklearn import metrics as sk_metrics

    matrix = np.asarray(matrix)
    n_classes = len(class_names)
    if matrix.sum() == 0:  # scikit-learn refuses an empty sample; every ratio is then undefined
        scores = np.zeros((4, n_classes))
    else:
        # One (true, predicted) pair per counted image, as scikit-learn takes them.
        truth, guess = np.repeat(np.indices(matrix.shape).reshape(2, -1), matrix.ravel(), axis=1)
        scores = sk_metrics.precision_recall_fscore_support(
            truth, guess, labels=range(n_classes), zero_division=0.0)
    return {
        name: {"precision": round(float(precision), 6), "recall": round(float(recall), 6),
               "f1": round(float(f1), 6), "support": int(support)}
        for name, precision, recall, f1, support in zip(class_names, *scores)
    }


def wilson_interval(correct: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval for a proportion; stays inside [0, 1] even at 0 or n hits."""
    from scipy import stats

    if n <= 0:  # binomtest needs n >= 1; nothing observed bounds nothing
        return (0.0, 1.0)
    # binomtest asks for a two-sided level rather than z; this level gives back our z.
    level = 1 - 2 * stats.norm.sf(z)
    interval = stats.binomtest(int(correct), int(n)).proportion_ci(level, method="wilson")
    return (float(interval.low), float(interval.high))


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
