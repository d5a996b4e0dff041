"""Would self-training lift few-shot lab profiles? A probe on validation data (issue 14).

    python -m training.self_training_probe --data-dir ../shared/data/blood-cells

The few-shot profile refits the head on k labelled cells per class. Self-training then also
uses the lab's unlabelled cells: the refitted head labels them, the ones it is sure of
(probability >= a threshold) join the labelled ones, and the head is refitted again (two
rounds). Judged as the profile probe in EXPERIMENTS.md was: LISC with the shipped model and
the PBC validation split with the Kaggle-only model, k cells per class drawn with 5 seeds,
macro recall on the cells not drawn (the unlabelled cells are the same cells: that is what
a lab would have). Prints one line per setting.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import softmax

from hematovision.model.classifier import load_classifier
from hematovision.model.lab_profile import refit_head
from training import data

THRESHOLDS = (0.8, 0.9, 0.95)


def features_and_labels(classifier, records: list[data.Record]) -> tuple[np.ndarray, np.ndarray]:
    crops = np.stack([classifier.prepare(record.path)[0] for record in records])
    return classifier.outputs(crops).type_features.astype(np.float64), np.array([r.label for r in records])


def macro_recall(predicted: np.ndarray, labels: np.ndarray) -> float:
    return float(np.mean([np.mean(predicted[labels == c] == c) for c in np.unique(labels)]))


def self_trained_head(features, labelled, labels, weights, bias, threshold: float, rounds: int = 2):
    w, b = refit_head(features[labelled], labels, weights, bias)
    for _ in range(rounds):
        probabilities = softmax(features @ w + b, axis=1)
        sure = probabilities.max(axis=1) >= threshold
        sure[labelled] = False
        w, b = refit_head(np.concatenate([features[labelled], features[sure]]),
                          np.concatenate([labels, probabilities[sure].argmax(axis=1)]), weights, bias)
    return w, b


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--kaggle-only", type=Path, default=Path("training/cache/v3-kaggle/model.keras"))
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    shipped, kaggle_only = load_classifier(), load_classifier(args.kaggle_only)
    pbc = data.read_pbc(root / "pbc")
    settings = {
        "LISC, shipped": (shipped, data.read_lisc(root / "lisc")),
        "PBC validation, Kaggle-only": (kaggle_only, [r for r, part in zip(pbc, data.split_pbc(pbc)) if part == "val"]),
    }
    for name, (classifier, records) in settings.items():
        features, labels = features_and_labels(classifier, records)
        weights, bias = classifier.head_weights()
        for k in (5, 10):
            scores: dict[str, list[float]] = {}
            for draw in range(args.draws):
                rng = np.random.default_rng(draw)
                labelled = np.concatenate([rng.choice(np.flatnonzero(labels == c), k, replace=False)
                                           for c in range(len(bias))])
                judged = np.setdiff1d(np.arange(len(labels)), labelled)
                heads = {"no profile": (weights, bias),
                         "refit (shipped)": refit_head(features[labelled], labels[labelled], weights, bias)}
                for threshold in THRESHOLDS:
                    heads[f"self-trained, threshold {threshold}"] = self_trained_head(
                        features, labelled, labels[labelled], weights, bias, threshold)
                for head, (w, b) in heads.items():
                    scores.setdefault(head, []).append(macro_recall((features[judged] @ w + b).argmax(1),
                                                                    labels[judged]))
            for head, values in scores.items():
                print(f"{name}, k={k}: {head}: macro recall {np.mean(values):.3f}", flush=True)


if __name__ == "__main__":
    main()
