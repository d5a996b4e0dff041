"""Measure lab profiles on labs the model never saw, and write the numbers into the model card.

    python -m training.lab_profiles --data-dir ../shared/data/blood-cells \
        --kaggle-only training/cache/v3-kaggle/model.keras \
        --pbc-only training/cache/v3-pbc/model.keras [--draws 5] [--card models/model-card.json]

Three unseen-lab settings, each with the model that never saw that lab:

* LISC with the shipped model (LISC is never trained or tuned on);
* PBC's test split with the Kaggle-only model;
* Kaggle TEST with the PBC-only model (its ~35 images per cell are near-copies, so cells
  are drawn, and cells are reported beside images).

For each: no profile; an unlabelled profile built from a seeded half of the cells and
judged on the other half, without and with its option of re-estimating the last batch norm,
and with that option from a differential's mix of that half (``DIFFERENTIAL``: mostly
neutrophils, as a lab's batch would be); few-shot profiles from 5 and 10 labelled cells per class (one
image per cell; one cell fewer where a class has no more, so every class is judged) judged
on every image of the cells not drawn. Each is repeated over
``--draws`` seeds; the card gets the mean and a Student-t 95% interval over draws, with
the shipped model's score on the very same images beside it, and the ceiling: macro recall
with every other cell labelled (10-fold cross-validation by cell). The profiles are built by
``hematovision.model.lab_profile``'s own functions from the shipped network's features (and
crops, for an unlabelled profile's batch-norm option), and judged by the adapted classifier's
own forward passes, as a user's predictions with the profile run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.explanation.compare import mean_ci
from hematovision.model.classifier import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    PROJECT_ROOT,
    ModelOutputs,
    load_classifier,
)
from hematovision.model.lab_profile import (
    CellFeatures,
    LabProfileError,
    blood_cell_features,
    build_unlabelled,
    few_shot_from_features,
    refit_head,
    unlabelled_from_features,
)
from hematovision.model.metrics import accuracy_summary, macro_recall, majority_vote
from hematovision.model.model_card import load_model_card
from hematovision.model.trust import NOT_BLOOD_CELL, UNFAMILIAR_SOURCE
from training import data

SHOTS = (5, 10)
UNLABELLED_BATCH_NORM = "unlabelled, last batch norm re-estimated"
BATCH_NORM_FROM_DIFFERENTIAL = "unlabelled, last batch norm re-estimated from a differential's mix"
# A typical adult differential's shares of the four types: what a lab's own batch holds.
DIFFERENTIAL = {"NEUTROPHIL": 0.60, "LYMPHOCYTE": 0.30, "MONOCYTE": 0.06, "EOSINOPHIL": 0.04}
DIFFERENTIAL_IMAGES = 50


@dataclass
class LabImages:
    """One unseen lab as the shipped network sees it: outputs, labels and cells per image."""

    outputs: ModelOutputs
    found: np.ndarray
    labels: np.ndarray
    cells: np.ndarray
    crops: np.ndarray  # what the network sees of each image (the batch-norm option needs them)

    def rows(self, mask: np.ndarray) -> LabImages:
        o = self.outputs
        return LabImages(ModelOutputs(o.ood_features[mask], o.type_features[mask], o.probabilities[mask]),
                         self.found[mask], self.labels[mask], self.cells[mask], self.crops[mask])


def read_lab(classifier, records: list[data.Record]) -> LabImages:
    """Each image framed once; its crop kept, and the shipped network's outputs for it."""
    prepared = [classifier.prepare(r.path) for r in records]
    crops = np.stack([crop for crop, _ in prepared])
    return LabImages(classifier.outputs(crops), np.asarray([bool(box.found) for _, box in prepared]),
                     np.asarray([r.label for r in records]), np.asarray([r.cell for r in records]), crops)


def scores(classifier, lab: LabImages, profile=None) -> dict[str, float]:
    """The shipped model's scores on ``lab``, or the adapted classifier's with ``profile``
    (its own forward passes, as a user's predictions with the profile would run)."""
    outputs = lab.outputs if profile is None else classifier.with_lab_profile(profile).outputs(lab.crops)
    statuses = [a.status for a in classifier.trust.assess(outputs.probabilities, outputs.ood_features,
                                                            outputs.type_features, list(lab.found))]
    predicted = outputs.probabilities.argmax(axis=1)
    summary = accuracy_summary(lab.labels.tolist(), predicted.tolist(), CLASS_NAMES)
    return {"macro_recall": macro_recall(summary), "accuracy": summary["accuracy"],
            "not_blood_cell": statuses.count(NOT_BLOOD_CELL) / len(statuses),
            "unfamiliar_source": statuses.count(UNFAMILIAR_SOURCE) / len(statuses),
            "cell_accuracy": _cell_accuracy(lab, outputs.probabilities)}


def _cell_accuracy(lab: LabImages, probabilities: np.ndarray) -> float:
    """Each cell's majority vote over its images (as for Kaggle TEST cells elsewhere), against its class."""
    votes = majority_vote(list(lab.cells), probabilities)
    truth = dict(zip(lab.cells, lab.labels))
    return float(np.mean([votes[cell] == truth[cell] for cell in votes]))


def features_of(classifier, lab: LabImages) -> CellFeatures:
    return blood_cell_features(classifier, lab.crops, lab.outputs, lab.found)


def one_image_per_cell(image_cells: np.ndarray, cells: set) -> np.ndarray:
    """The rows of the first image of each of ``cells`` (``image_cells``: each image's cell)."""
    seen, rows = set(), []
    for row, cell in enumerate(image_cells):
        if cell in cells and cell not in seen:
            seen.add(cell)
            rows.append(row)
    return np.asarray(rows, int)


def differential_rows(labels: np.ndarray, rows: np.ndarray, rng: np.random.Generator,
                      limit: int = DIFFERENTIAL_IMAGES) -> np.ndarray:
    """As many of ``rows`` (at most ``limit``) as ``DIFFERENTIAL``'s mix allows, at least one of each type."""
    available = {name: rows[labels[rows] == CLASS_NAMES.index(name)] for name in DIFFERENTIAL}
    total = min([limit] + [int(len(available[name]) / share) for name, share in DIFFERENTIAL.items()])
    return np.concatenate([rng.choice(available[name], max(1, round(total * share)), replace=False)
                           for name, share in DIFFERENTIAL.items()])


def macro_recall_of(labels: np.ndarray, predicted: np.ndarray) -> float:
    return macro_recall(accuracy_summary(np.asarray(labels).tolist(), np.asarray(predicted).tolist(), CLASS_NAMES))


def draw_cells(labels: np.ndarray, cells: np.ndarray, k: int, rng: np.random.Generator) -> set:
    """k cells of each class to label; at least one of each class is left to judge (Kaggle
    TEST has 4 monocytes)."""
    drawn: set = set()
    for index in range(len(CLASS_NAMES)):
        class_cells = np.unique(cells[labels == index])
        drawn |= set(rng.choice(class_cells, min(k, len(class_cells) - 1), replace=False))
    return drawn


CEILING_FOLDS = 10


def ceiling_splits(labels: np.ndarray, cells: np.ndarray) -> list | None:
    """The cross-validation folds, grouped by cell, behind every ceiling figure; None where a
    class has fewer cells than folds (Kaggle TEST's 4 monocytes would make lopsided folds)."""
    from sklearn.model_selection import StratifiedGroupKFold

    if min(len(np.unique(cells[labels == c])) for c in np.unique(labels)) < CEILING_FOLDS:
        return None
    return list(StratifiedGroupKFold(CEILING_FOLDS, shuffle=True, random_state=0).split(labels, labels, cells))


def ceiling(features: np.ndarray, labels: np.ndarray, cells: np.ndarray, weights: np.ndarray,
            bias: np.ndarray) -> dict:
    """Macro recall with every other cell of the lab labelled (``ceiling_splits``): what the
    profile's own refit (``refit_head``) and a plain logistic regression reach on the same
    features with far more than k cells per class. A few-shot profile cannot be expected to
    beat it."""
    from sklearn.linear_model import LogisticRegression

    splits = ceiling_splits(labels, cells)
    if splits is None:
        fewest = min(len(np.unique(cells[labels == c])) for c in np.unique(labels))
        return {"note": f"not measured: a class has only {fewest} cells"}
    predicted = {"refit": np.empty_like(labels), "logistic_regression": np.empty_like(labels)}
    for train, test in splits:
        w, b = refit_head(features[train], labels[train], weights, bias)
        predicted["refit"][test] = (features[test] @ w + b).argmax(axis=1)
        model = LogisticRegression(C=1.0, max_iter=3000).fit(features[train], labels[train])
        predicted["logistic_regression"][test] = model.predict(features[test])
    recall = {name: round(macro_recall_of(labels, p), 4) for name, p in predicted.items()}
    labelled = len(np.unique(cells)) * (CEILING_FOLDS - 1) // CEILING_FOLDS
    return {"folds": CEILING_FOLDS, "labelled_cells_per_fold": labelled, **recall}


def measure(classifier, lab: LabImages, draws: int) -> dict:
    """Every setting over ``draws`` seeds: the profile's scores and the shipped model's on the same images."""
    runs: dict[str, list[tuple[dict, dict, int]]] = {"unlabelled": [], UNLABELLED_BATCH_NORM: [],
                                                     BATCH_NORM_FROM_DIFFERENTIAL: [],
                                                     **{f"{k}-shot": [] for k in SHOTS}}
    notes: dict[str, str] = {}
    cells = np.unique(lab.cells)
    for seed in range(draws):
        rng = np.random.default_rng(seed)
        half = set(rng.choice(cells, len(cells) // 2, replace=False))
        build = np.isin(lab.cells, list(half))
        judged = lab.rows(~build)
        mixed = np.isin(np.arange(len(lab.labels)), differential_rows(lab.labels, np.flatnonzero(build),
                                                                      np.random.default_rng([seed, 1])))
        for setting, built_from, batch_norm in (("unlabelled", build, False), (UNLABELLED_BATCH_NORM, build, True),
                                                (BATCH_NORM_FROM_DIFFERENTIAL, mixed, True)):
            try:
                profile = unlabelled_from_features(classifier, features_of(classifier, lab.rows(built_from)),
                                                   batch_norm=batch_norm)
                runs[setting].append((scores(classifier, judged, profile), scores(classifier, judged),
                                      len(judged.labels)))
            except LabProfileError as exc:
                notes[setting] = str(exc)
        for k in SHOTS:
            drawn = draw_cells(lab.labels, lab.cells, k, rng)
            labelled = lab.rows(np.isin(np.arange(len(lab.cells)), one_image_per_cell(lab.cells, drawn)))
            per_class = {name: features_of(classifier, labelled.rows(labelled.labels == index))
                         for index, name in enumerate(CLASS_NAMES)}
            try:
                profile = few_shot_from_features(classifier, per_class, {"per_class": k, "seed": seed})
            except LabProfileError as exc:  # every drawn cell of a class left out as not blood-like
                notes[f"{k}-shot"] = str(exc)
                continue
            judged = lab.rows(~np.isin(lab.cells, list(drawn)))
            runs[f"{k}-shot"].append((scores(classifier, judged, profile), scores(classifier, judged), len(judged.labels)))
    results = {"none": {key: round(value, 4) for key, value in scores(classifier, lab).items()}
               | {"images": len(lab.labels), "cells": len(cells)}}
    for setting, entries in runs.items():
        if not entries:
            results[setting] = {"note": notes.get(setting, "not measured")}
            continue
        results[setting] = {
            "draws": len(entries),
            **{key: mean_ci([with_profile[key] for with_profile, _, _ in entries]) for key in entries[0][0]},
            "shipped_on_same_images": {key: mean_ci([shipped[key] for _, shipped, _ in entries])
                                       for key in ("macro_recall", "not_blood_cell", "unfamiliar_source")},
            "images_judged": int(np.mean([n for _, _, n in entries])),
        }
        if setting in notes:
            results[setting]["note"] = notes[setting]
    results["ceiling"] = ceiling(lab.outputs.type_features.astype(np.float64), lab.labels, lab.cells,
                                 *classifier.head_weights())
    if classifier.trust.ood is None:
        results["unlabelled"]["note"] = ("this model has no out-of-distribution reference, so an unlabelled "
                                         "profile without its batch-norm option changes nothing")
    return results


def build_seconds(classifier, records: list[data.Record], n: int = 100) -> float:
    """Wall-clock of building an unlabelled profile from ``n`` image files, as a user would."""
    started = time.perf_counter()
    build_unlabelled(classifier, [r.path for r in records[:n]])
    return round(time.perf_counter() - started, 2)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--kaggle-only", type=Path, required=True, help="a model trained on Kaggle alone")
    parser.add_argument("--pbc-only", type=Path, required=True, help="a model trained on PBC alone")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--card", type=Path, default=None, help="write the results into this model card")
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    lisc = data.read_lisc(root / "lisc")
    pbc = data.read_pbc(root / "pbc")
    pbc_test = [r for r, part in zip(pbc, data.split_pbc(pbc)) if part == "test"]
    kaggle_test = data.read_sources(args.data_dir, "TEST")
    settings = [("LISC, shipped model", DEFAULT_MODEL_PATH, lisc),
                ("PBC test, Kaggle-only model", args.kaggle_only, pbc_test),
                ("Kaggle TEST, PBC-only model", args.pbc_only, kaggle_test)]
    sources = {}
    seconds = None
    for name, model_path, records in settings:
        classifier = load_classifier(model_path)
        if seconds is None:
            seconds = build_seconds(classifier, lisc)
        started = time.perf_counter()
        shown = model_path.resolve().relative_to(PROJECT_ROOT) if model_path.resolve().is_relative_to(PROJECT_ROOT) \
            else model_path
        sources[name] = {"model": str(shown), **measure(classifier, read_lab(classifier, records), args.draws)}
        print(json.dumps({name: sources[name]}), flush=True)
        print(f"# {name}: {time.perf_counter() - started:.0f} s", flush=True)
    section = {
        "date": date.today().isoformat(),
        "command": "python -m training.lab_profiles --data-dir ../shared/data/blood-cells --kaggle-only "
                   f"{args.kaggle_only} --pbc-only {args.pbc_only} --draws {args.draws}"
                   + (f" --card {args.card}" if args.card else ""),
        "how": __doc__.split("\n\n", 2)[2].strip().replace("\n", " "),
        "unlabelled_build_seconds_100_images": seconds,
        "sources": sources,
    }
    if args.card:
        load_model_card(args.card).with_lab_profiles(section).save(args.card)
        print(f"wrote the lab_profiles section of {args.card}")


if __name__ == "__main__":
    main()
