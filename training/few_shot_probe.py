"""How far can a few labelled cells carry a lab profile? A probe on the profile's features (issue 14).

    python -m training.few_shot_probe --data-dir ../shared/data/blood-cells

Three unseen-lab settings, each with the model that never saw the lab: LISC with the shipped
model, the PBC validation split with the Kaggle-only model, and Kaggle validation cells (8
images per cell) with the PBC-only model. For k = 5 and 10 labelled cells per class, drawn
with 5 seeds (one image per cell), macro recall on the cells not drawn, for:

* the shipped few-shot profile (head refit with an L2 pull, ``lab_profile.refit_head``);
* self-training: the refitted head labels the lab's other cells, those it gives at least a
  threshold join the labelled ones, and the head is refitted again (two rounds);
* label spreading over a 10-nearest-neighbour graph of all the lab's cells (cosine), started
  from the labelled cells (and, with weight ``beta``, the refitted head's probabilities).

The cells are drawn as ``training.lab_profiles`` draws them (``draw_cells``). The
unlabelled cells are the judged cells themselves: that is what a lab would have. Last, the
**ceiling** on LISC: ``training.lab_profiles``'s (every other cell labelled, 10-fold
cross-validation by cell; the refit and a logistic regression), and an RBF support-vector
machine on the same folds. A few-shot method cannot be expected to beat it. Another recipe's
three models can be given (``--both``, ``--kaggle-only``, ``--pbc-only``), to ask whether its
features carry a profile further. Prints one line per setting; about a minute.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.special import softmax

from hematovision.model.classifier import load_classifier
from hematovision.model.lab_profile import refit_head
from training.cross_lab import validation_jobs
from training.lab_profiles import (
    ceiling,
    ceiling_splits,
    draw_cells,
    macro_recall_of,
    one_image_per_cell,
)

THRESHOLDS = (0.8, 0.9)
SPREAD_NEIGHBOURS = 10


def features_and_labels(classifier, rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    crops = np.stack([classifier.prepare(path)[0] for path, _, _ in rows])
    features = classifier.outputs(crops).type_features.astype(np.float64)
    return features, np.array([label for _, label, _ in rows]), np.array([str(cell) for _, _, cell in rows])


def self_trained_head(features, labelled, labels, weights, bias, threshold: float, rounds: int = 2):
    w, b = refit_head(features[labelled], labels, weights, bias)
    for _ in range(rounds):
        probabilities = softmax(features @ w + b, axis=1)
        sure = probabilities.max(axis=1) >= threshold
        sure[labelled] = False
        w, b = refit_head(np.concatenate([features[labelled], features[sure]]),
                          np.concatenate([labels, probabilities[sure].argmax(axis=1)]), weights, bias)
    return w, b


def spread_labels(features, labelled, labels, prior, beta: float, alpha: float = 0.8, steps: int = 30) -> np.ndarray:
    """Label spreading (Zhou et al. 2004) on a symmetric k-nearest-neighbour cosine graph."""
    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    neighbours = np.argsort(-similarity, axis=1)[:, :SPREAD_NEIGHBOURS]
    rows = np.repeat(np.arange(len(unit)), SPREAD_NEIGHBOURS)
    graph = np.zeros_like(similarity)
    graph[rows, neighbours.ravel()] = np.maximum(similarity[rows, neighbours.ravel()], 0)
    graph = np.maximum(graph, graph.T)
    degree = np.maximum(graph.sum(axis=1), 1e-12)
    graph /= np.sqrt(degree[:, None] * degree[None, :])
    start = beta * prior
    start[labelled] = np.eye(prior.shape[1])[labels]
    scores = start.copy()
    for _ in range(steps):
        scores = alpha * graph @ scores + (1 - alpha) * start
    return scores


def draw(labels, cells, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(one row per drawn cell, rows of the cells not drawn)."""
    drawn = draw_cells(labels, cells, k, np.random.default_rng(seed))
    return one_image_per_cell(cells, drawn), ~np.isin(cells, list(drawn))


def svm_ceiling(features, labels, cells) -> float:
    from sklearn.svm import SVC

    unit = features / np.linalg.norm(features, axis=1, keepdims=True)
    predicted = np.empty_like(labels)
    for train, test in ceiling_splits(labels, cells):
        predicted[test] = SVC(C=10).fit(unit[train], labels[train]).predict(unit[test])
    return macro_recall_of(labels, predicted)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--both", type=Path, default=None, help="the model LISC is read with (default: the shipped one)")
    parser.add_argument("--kaggle-only", type=Path, default=Path("training/cache/v3-kaggle/model.keras"))
    parser.add_argument("--pbc-only", type=Path, default=Path("training/cache/v3-pbc/model.keras"))
    parser.add_argument("--draws", type=int, default=5)
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    jobs = validation_jobs(args.data_dir, root / "pbc", root / "lisc")
    settings = {"LISC, " + ("shipped" if args.both is None else "both labs"): (args.both, jobs["lisc"]),
                "PBC validation, Kaggle-only": (args.kaggle_only, jobs["pbc_val"]),
                "Kaggle validation, PBC-only": (args.pbc_only, jobs["kaggle_val"])}
    for name, (model, rows) in settings.items():
        classifier = load_classifier(model)
        features, labels, cells = features_and_labels(classifier, rows)
        weights, bias = classifier.head_weights()
        for k in (5, 10):
            scores: dict[str, list[float]] = {}
            for seed in range(args.draws):
                labelled, judged = draw(labels, cells, k, seed)
                refitted = refit_head(features[labelled], labels[labelled], weights, bias)
                heads = {"no profile": (weights, bias), "refit (shipped)": refitted}
                for threshold in THRESHOLDS:
                    heads[f"self-trained, threshold {threshold}"] = self_trained_head(
                        features, labelled, labels[labelled], weights, bias, threshold)
                for head, (w, b) in heads.items():
                    scores.setdefault(head, []).append(macro_recall_of(labels[judged],
                                                                       (features[judged] @ w + b).argmax(1)))
                prior = softmax(features @ refitted[0] + refitted[1], axis=1)
                for beta in (0.0, 1.0):
                    spread = spread_labels(features, labelled, labels[labelled], prior, beta)
                    scores.setdefault(f"label spreading, beta {beta}", []).append(
                        macro_recall_of(labels[judged], spread[judged].argmax(1)))
            for head, values in scores.items():
                print(f"{name}, k={k}: {head}: macro recall {np.mean(values):.3f}", flush=True)
        if name.startswith("LISC"):
            found = ceiling(features, labels, cells, weights, bias) | {"RBF SVM": svm_ceiling(features, labels, cells)}
            for method in ("refit", "logistic_regression", "RBF SVM"):
                print(f"{name}, ceiling ({found['labelled_cells_per_fold']} labelled cells): {method}: "
                      f"macro recall {found[method]:.3f}", flush=True)


if __name__ == "__main__":
    main()
