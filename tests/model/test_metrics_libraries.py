"""The statistics now taken from scipy, scikit-learn and numpy give the numbers we gave before.

Each ``_old_*`` function is the hand-written version these replaced, copied unchanged so
that it stays the reference the library-backed versions are held to.
"""

import math
from fractions import Fraction

import numpy as np
import pytest

from hematovision.explanation.compare import mean_ci
from hematovision.explanation.faithfulness import _auc
from hematovision.model.metrics import confusion_matrix, per_class_report, wilson_interval

# scikit-learn warns about any 1x1 confusion matrix, even when labels= names the one class.
pytestmark = pytest.mark.filterwarnings("ignore:A single label was found:UserWarning")


def _old_confusion_matrix(y_true, y_pred, n_classes):
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    for truth, guess in zip(y_true, y_pred):
        matrix[int(truth), int(guess)] += 1
    return matrix


def _old_ratio(numerator, denominator):
    return float(numerator) / float(denominator) if denominator else 0.0


def _old_per_class_report(matrix, class_names):
    matrix = np.asarray(matrix)
    report = {}
    for index, name in enumerate(class_names):
        hits = matrix[index, index]
        precision = _old_ratio(hits, matrix[:, index].sum())
        recall = _old_ratio(hits, matrix[index, :].sum())
        f1 = _old_ratio(2 * precision * recall, precision + recall)
        report[name] = {
            "precision": round(precision, 6),
            "recall": round(recall, 6),
            "f1": round(f1, 6),
            "support": int(matrix[index, :].sum()),
        }
    return report


def _old_wilson(correct, n, z=1.959964):
    if n <= 0:
        return (0.0, 1.0)
    p = correct / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def _old_mean_ci(values):
    from scipy.stats import t

    if not values:
        return {"mean": None, "ci95": [None, None], "n": 0}
    array = np.asarray(values, float)
    mean = float(array.mean())
    n = len(array)
    half = float(t.ppf(0.975, n - 1)) * float(array.std(ddof=1)) / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": round(mean, 6), "ci95": [round(mean - half, 6), round(mean + half, 6)], "n": len(array)}


def _old_auc(fractions, scores):
    return float(np.sum((scores[1:] + scores[:-1]) / 2 * np.diff(fractions)))


def _labels(seed):
    """Random true and predicted labels; some seeds leave a class out or predict it never."""
    rng = np.random.default_rng(seed)
    n_classes = int(rng.integers(1, 7))
    size = int(rng.integers(1, 80))
    used = rng.choice(n_classes, size=int(rng.integers(1, n_classes + 1)), replace=False)
    y_true = rng.choice(used, size)
    right = rng.random(size) < rng.random()
    y_pred = np.where(right, y_true, rng.integers(0, n_classes, size))
    return y_true.tolist(), y_pred.tolist(), n_classes


EDGE_LABELS = {
    "all correct": ([0, 1, 2, 2], [0, 1, 2, 2], 3),
    "all wrong": ([0, 1, 2, 2], [1, 2, 0, 1], 3),
    "one class never true": ([0, 0, 2], [0, 1, 2], 3),
    "one class never predicted": ([0, 1, 2], [0, 0, 2], 3),
    "one class absent": ([0, 0, 1], [0, 1, 1], 3),
    "one image": ([3], [1], 4),
    "one class": ([0, 0], [0, 0], 1),
    "no images": ([], [], 4),
}


@pytest.mark.parametrize("name", EDGE_LABELS)
def test_confusion_matrix_same_as_before_on_edge_cases(name):
    y_true, y_pred, n_classes = EDGE_LABELS[name]
    new = confusion_matrix(y_true, y_pred, n_classes)
    assert new.dtype == np.int64
    assert np.array_equal(new, _old_confusion_matrix(y_true, y_pred, n_classes))


def test_confusion_matrix_same_as_before_on_random_labels():
    for seed in range(200):
        y_true, y_pred, n_classes = _labels(seed)
        assert np.array_equal(confusion_matrix(np.array(y_true), y_pred, n_classes),
                              _old_confusion_matrix(y_true, y_pred, n_classes)), seed


def _exact_f1_is_a_rounding_tie(matrix, index):
    """Whether F1 = 2 tp / (true + predicted) lies exactly halfway between two 6-decimal values."""
    denominator = int(matrix[index, :].sum() + matrix[:, index].sum())
    if not denominator:
        return False
    return (Fraction(2 * int(matrix[index, index]), denominator) * 10**6).denominator == 2


def _assert_report_same_as_before(matrix, names):
    new, old = per_class_report(matrix, names), _old_per_class_report(matrix, names)
    assert list(new) == list(old)
    for index, name in enumerate(names):
        for key in ("precision", "recall", "support"):
            assert new[name][key] == old[name][key], (matrix.tolist(), name, key)
        assert type(new[name]["support"]) is int and type(new[name]["precision"]) is float
        # scikit-learn divides the counts once; the old harmonic mean of P and R carried a few
        # ulps of error, which tips round() only when the exact F1 sits on a tie.
        if new[name]["f1"] != old[name]["f1"]:
            assert _exact_f1_is_a_rounding_tie(matrix, index), (matrix.tolist(), name)
            assert abs(new[name]["f1"] - old[name]["f1"]) == pytest.approx(1e-6)


@pytest.mark.parametrize("name", EDGE_LABELS)
def test_per_class_report_same_as_before_on_edge_cases(name):
    y_true, y_pred, n_classes = EDGE_LABELS[name]
    matrix = _old_confusion_matrix(y_true, y_pred, n_classes)
    _assert_report_same_as_before(matrix, [f"class {i}" for i in range(n_classes)])


def test_per_class_report_same_as_before_on_random_matrices():
    for seed in range(200):
        y_true, y_pred, n_classes = _labels(seed)
        matrix = _old_confusion_matrix(y_true, y_pred, n_classes)
        _assert_report_same_as_before(matrix, [f"class {i}" for i in range(n_classes)])


def test_f1_on_a_rounding_tie_is_the_correctly_rounded_value():
    # tp 1, fp 9, fn 245: F1 = 2/256 = 0.0078125 exactly; round-half-even gives 0.007812,
    # where the old arithmetic landed a hair above the tie and gave 0.007813.
    matrix = np.array([[1, 245], [9, 0]])
    assert _old_per_class_report(matrix, ["a", "b"])["a"]["f1"] == 0.007813
    assert per_class_report(matrix, ["a", "b"])["a"]["f1"] == 0.007812
    _assert_report_same_as_before(matrix, ["a", "b"])


def test_wilson_same_as_before_for_every_count_up_to_60():
    for n in range(61):
        for correct in range(n + 1):
            new, old = wilson_interval(correct, n), _old_wilson(correct, n)
            assert all(type(bound) is float for bound in new)
            assert new == pytest.approx(old, abs=1e-12), (correct, n)
            assert [round(b, 6) for b in new] == [round(b, 6) for b in old], (correct, n)


@pytest.mark.parametrize("correct, n",
                         [(0, 0), (0, 1), (1, 1), (0, 5000), (5000, 5000), (4321, 5000)])
def test_wilson_same_as_before_at_the_edges(correct, n):
    new, old = wilson_interval(correct, n), _old_wilson(correct, n)
    assert new == pytest.approx(old, abs=1e-12)
    assert [round(b, 6) for b in new] == [round(b, 6) for b in old]


def test_wilson_still_takes_another_z():
    old = _old_wilson(30, 50, z=2.575829)
    assert wilson_interval(30, 50, z=2.575829) == pytest.approx(old, abs=1e-12)


def _same_dict(new, old):
    """Equal, with NaN equal to NaN and float type kept (the summaries are written as JSON)."""
    assert new.keys() == old.keys() and new["n"] == old["n"]
    assert type(new["mean"]) is type(old["mean"])
    for a, b in zip([new["mean"], *new["ci95"]], [old["mean"], *old["ci95"]]):
        assert type(a) is type(b)
        assert a == b or (a != a and b != b), (new, old)


MEAN_CASES = {
    "no values": [],
    "one value": [0.42],
    "two values": [0.1, 0.9],
    "identical values": [0.3] * 5,
    "identical ones": [1.0, 1.0],
    "zeros and ones": [0.0, 1.0, 1.0, 0.0, 1.0],
    "a NaN": [0.2, float("nan"), 0.4],
}


@pytest.mark.parametrize("name", MEAN_CASES)
def test_mean_ci_same_as_before_on_edge_cases(name):
    _same_dict(mean_ci(MEAN_CASES[name]), _old_mean_ci(MEAN_CASES[name]))


def test_mean_ci_same_as_before_on_random_values():
    for seed in range(300):
        rng = np.random.default_rng(seed)
        values = rng.random(int(rng.integers(2, 40))).round(int(rng.integers(1, 7))).tolist()
        _same_dict(mean_ci(values), _old_mean_ci(values))


def test_auc_same_as_before():
    for steps in (1, 2, 10, 20, 50):
        fractions = np.linspace(0, 1, steps + 1)
        for seed in range(40):
            scores = np.random.default_rng(seed).random(steps + 1)
            assert _auc(fractions, scores) == pytest.approx(_old_auc(fractions, scores), abs=1e-15)
            assert round(_auc(fractions, scores), 6) == round(_old_auc(fractions, scores), 6)
