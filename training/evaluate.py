"""Evaluate a model on every held-out split and record it in its model card.

    python -m training.evaluate --data-dir ../shared/data/blood-cells \
        --compare "previous (Kaggle only)=training/cache/v1/model.keras" ...

For the shipped model (or ``--model``) it measures, on held-out data only:

* accuracy with Wilson 95% intervals, per-class scores and confusion matrices on Kaggle
  TEST (per image and per cell), TEST_SIMPLE and the PBC test split;
* calibration per split: ECE (15 bins) and reliability bins, before and after the
  temperature fitted by ``training.calibrate``;
* abstention per split: coverage and accuracy at the validation-chosen threshold, and
  the coverage-accuracy curve;
* how often the OOD check flags each split and the non-blood set (training.nonblood);
* whole smear fields: the BCCD originals whose labels.csv row names the cell type(s).

Every ``--compare NAME=PATH`` model gets the accuracy numbers (and, if it has been
calibrated, its flag rates) in the card's ``comparison`` section, side by side.
Every image goes through load_image -> frame_cell (-> stain normalisation) -> model,
exactly as in the app. Nothing here feeds back into training.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.calibration import (apply_temperature, coverage_accuracy_curve, expected_calibration_error,
                                      reliability_bins)
from hematovision.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH, card_beside, class_index, load_classifier
from hematovision.evaluation import predict_files
from hematovision.metrics import accuracy_summary, majority_vote
from hematovision.model_card import file_sha256
from hematovision.trust import NOT_BLOOD_CELL
from training import data
from training.nonblood import non_blood_images

COMMAND = "python -m training.evaluate --data-dir ../shared/data/blood-cells"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pbc-dir", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                        help="another model to evaluate side by side (repeatable)")
    args = parser.parse_args(argv)
    if args.pbc_dir is None:
        args.pbc_dir = args.data_dir.parent / "pbc"
    return args


# -- the held-out splits ----------------------------------------------------------

def test_splits(args) -> dict[str, list[tuple[Path, int]]]:
    """name -> (path, label) jobs, for every held-out split this machine has."""
    splits = {}
    for name, folder in (("test_image", "TEST"), ("test_simple", "TEST_SIMPLE")):
        records = []
        for class_folder in sorted((args.data_dir / folder).iterdir()):
            if class_folder.is_dir():
                label = class_index(class_folder.name)
                records += [(p, label) for p in sorted(class_folder.iterdir()) if p.is_file()]
        splits[name] = records
    if args.pbc_dir.is_dir():
        pbc = data.read_pbc(args.pbc_dir)
        splits["pbc_test"] = [(r.path, r.label) for r, part in zip(pbc, data.split_pbc(pbc)) if part == "test"]
    return splits


SPLIT_NOTES = {
    "test_image": "Kaggle TEST images (augmented copies of 71 held-out cells), each counted once",
    "test_simple": "Kaggle TEST_SIMPLE: the held-out cells' un-augmented images (69 distinct cells, 71 files)",
    "pbc_test": "PBC test split: 20% of each class, seeded (training.data.split_pbc); never trained or tuned on",
}


def cell_level(result, data_dir: Path) -> dict:
    """One vote per original cell: majority of its images' predictions (ties: mean probability)."""
    cell_of = {f"{r.path.parent.name}/{r.path.name}": r.cell for r in data.read_sources(data_dir, "TEST")}
    cells = [cell_of[f"{p.parent.name.upper()}/{p.name}"] for p in result.paths]
    votes = majority_vote(cells, result.probabilities)
    truth = dict(zip(cells, result.labels))
    order = sorted(votes)
    return accuracy_summary(
        [truth[c] for c in order], [votes[c] for c in order], CLASS_NAMES,
        "Kaggle TEST grouped by original cell (TEST_SOURCES.csv); a cell's prediction is the majority "
        "of its augmented copies' predictions, ties broken by the highest mean probability")


def trust_report(classifier, result) -> dict:
    """Calibration, abstention and OOD flag rate of one split."""
    labels = np.asarray(result.labels)
    trust = classifier.trust
    calibrated = apply_temperature(result.probabilities, trust.temperature)
    confidence = calibrated.max(axis=1)
    correct = calibrated.argmax(axis=1) == labels
    kept = confidence >= trust.abstain_threshold
    report = {
        "ece_before": round(expected_calibration_error(result.probabilities, labels), 6),
        "ece_after": round(expected_calibration_error(calibrated, labels), 6),
        "reliability_before": reliability_bins(result.probabilities, labels),
        "reliability_after": reliability_bins(calibrated, labels),
        "abstain": {"threshold": trust.abstain_threshold, "coverage": round(float(kept.mean()), 6),
                    "kept": int(kept.sum()), "kept_correct": int(correct[kept].sum()),
                    "accuracy_kept": round(float(correct[kept].mean()), 6) if kept.any() else None},
        "coverage_curve": coverage_accuracy_curve(confidence, correct),
    }
    if trust.ood is not None:
        flagged = trust.ood.is_unfamiliar(result.features)
        report["ood_flagged"] = int(flagged.sum())
        report["ood_flag_rate"] = round(float(flagged.mean()), 6)
    return report


def evaluate_splits(classifier, args, with_trust: bool) -> dict:
    splits = {}
    for name, jobs in test_splits(args).items():
        started = time.time()
        result = predict_files(classifier, jobs)
        summary = accuracy_summary(result.labels, result.predicted, CLASS_NAMES, SPLIT_NOTES[name])
        if result.unreadable:
            summary["unreadable"] = result.unreadable
        if with_trust:
            summary.update(trust_report(classifier, result))
        elif classifier.trust.ood is not None:
            summary["ood_flag_rate"] = round(float(classifier.trust.ood.is_unfamiliar(result.features).mean()), 6)
        splits[name] = summary
        if name == "test_image":
            splits["test_cell"] = cell_level(result, args.data_dir)
        print(f"  {name}: {summary['correct']}/{summary['n']} = {summary['accuracy']:.4f} "
              f"({time.time() - started:.0f}s)", flush=True)
    return splits


# -- images that are not blood cells ----------------------------------------------

def evaluate_non_blood(classifier) -> dict:
    images = non_blood_images()
    predictions = classifier.predict_batch([image.rgb for image in images])
    flagged = np.array([p.status == NOT_BLOOD_CELL for p in predictions])
    kinds = {}
    for kind in sorted({image.kind for image in images}):
        rows = np.array([image.kind == kind for image in images])
        kinds[kind] = {"n": int(rows.sum()), "flagged": int(flagged[rows].sum())}
    missed = [image.name for image, hit in zip(images, flagged) if not hit]
    return {"n": len(images), "flagged": int(flagged.sum()), "flag_rate": round(float(flagged.mean()), 6),
            "by_kind": kinds, "not_flagged": missed,
            "source": "training.nonblood: scikit-image's bundled photos and microscopy images (whole and 3 "
                      "seeded crops each), plain colours, noise and patterns"}


# -- whole smear fields -----------------------------------------------------------

def field_labels(data_dir: Path) -> dict[str, list[int]]:
    """BloodImage name -> the classes labels.csv names for it (rows with no or other labels dropped)."""
    fields = {}
    with open(data_dir / "ORIGINAL" / "labels.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            names = [n.strip() for n in (row.get("Category") or "").split(",") if n.strip()]
            if not names or any(n.upper() not in CLASS_NAMES for n in names):
                continue
            fields[f"BloodImage_{int(row['Image']):05d}"] = [CLASS_NAMES.index(n.upper()) for n in names]
    return fields


def evaluate_fields(classifier, data_dir: Path) -> dict:
    """Find, count and classify the white cells of each labelled original field.

    Held-out fields are the originals of Kaggle TEST cells; the others were the source
    of TRAIN images, so their numbers are reported apart and are optimistic.
    """
    labels = field_labels(data_dir)
    held_out = {r.cell for r in data.read_sources(data_dir, "TEST")}
    groups = {"held_out": {}, "training_fields": {}}
    for name, truth in sorted(labels.items()):
        path = data_dir / "ORIGINAL" / "JPEGImages" / f"{name}.jpg"
        if not path.is_file():
            continue
        cells = classifier.predict_cells(path)
        predicted = [CLASS_NAMES.index(c.label) for c in cells if c.box.found]
        matched = sum(min(predicted.count(k), truth.count(k)) for k in set(truth))
        groups["held_out" if name in held_out else "training_fields"][name] = {
            "expected": len(truth), "found": len(predicted), "matched": matched,
            "statuses": [c.status for c in cells]}
    summary = {}
    for group, fields in groups.items():
        expected = sum(f["expected"] for f in fields.values())
        matched = sum(f["matched"] for f in fields.values())
        from hematovision.metrics import wilson_interval

        summary[group] = {
            "fields": len(fields),
            "cells_expected": expected,
            "cells_found": sum(f["found"] for f in fields.values()),
            "fields_with_right_count": sum(f["found"] == f["expected"] for f in fields.values()),
            "cells_classified_right": matched,
            "classified_right_rate": round(matched / expected, 6) if expected else None,
            "classified_right_ci95": [round(v, 6) for v in wilson_interval(matched, expected)],
            "fields_with_two_cells": sum(f["expected"] == 2 for f in fields.values()),
            "two_cell_fields_both_found": sum(f["expected"] == 2 and f["found"] >= 2 for f in fields.values()),
        }
    summary["how"] = ("ORIGINAL/JPEGImages fields whose labels.csv row names one or two of the four classes "
                      "(empty and basophil rows dropped). 'found' counts the white cells located by "
                      "hematovision.cells.locate_white_cells; 'classified right' matches the predicted classes "
                      "to the named ones as multisets. labels.csv has no boxes, so a right class on a wrong "
                      "object cannot be told apart. held_out = originals of Kaggle TEST cells.")
    return summary


# -- card ------------------------------------------------------------------------

def evaluate_model(path: Path, args, full: bool) -> dict:
    classifier = load_classifier(path)
    started = time.time()
    splits = evaluate_splits(classifier, args, with_trust=full and classifier.trust.is_fitted)
    result = {"model_sha256": file_sha256(path), "splits": splits,
              "stain_normalisation": classifier.stain_normalise}
    card_path = card_beside(path)
    if card_path is not None:
        card = json.loads(card_path.read_text())
        result["trained_on"] = card.get("training", {}).get("sources", ["kaggle"])
        result["training_command"] = card.get("training", {}).get("command")
    if classifier.trust.is_fitted:
        result["non_blood"] = evaluate_non_blood(classifier)
    if full:
        result["fields"] = evaluate_fields(classifier, args.data_dir)
    result["seconds"] = round(time.time() - started, 1)
    return result


def main(argv=None) -> None:
    args = parse_args(argv)
    print(f"Evaluating {args.model} ...", flush=True)
    evaluation = evaluate_model(args.model, args, full=True)
    evaluation["command"] = COMMAND + "".join(f' --compare "{c}"' for c in args.compare)
    evaluation["date"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    comparison = {}
    for spec in args.compare:
        name, _, path = spec.partition("=")
        print(f"Evaluating {name}: {path} ...", flush=True)
        comparison[name] = evaluate_model(Path(path), args, full=False)
    card_path = card_beside(args.model)
    card = json.loads(card_path.read_text()) if card_path and card_path.is_file() else {}
    card["model_file"] = args.model.name
    card["model_sha256"] = file_sha256(args.model)
    card["evaluation"] = evaluation
    card["comparison"] = comparison
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"Wrote the evaluation into {card_path}")


if __name__ == "__main__":
    main()
