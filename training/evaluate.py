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
exactly as in the app, on the network the app runs by default (OpenVINO int8 where the
model has one with its own trust checks; ``HEMATOVISION_PRECISION=f32`` measures f32), which
the card records. Nothing here feeds back into training.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model.calibration import (
    apply_temperature,
    coverage_accuracy_curve,
    expected_calibration_error,
    reliability_bins,
)
from hematovision.model.cell_types import OTHER_TYPES
from hematovision.model.cells import CellBox, crop_to_box, locate_white_cell
from hematovision.model.classifier import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    card_beside,
    class_index,
    load_classifier,
)
from hematovision.model.evaluation import predict_files
from hematovision.model.imaging import load_image
from hematovision.model.metrics import (
    accuracy_summary,
    macro_recall,
    majority_vote,
    rate,
    status_mix,
)
from hematovision.model.model_card import ModelCard, file_sha256, load_model_card
from hematovision.model.trust import CONFIDENT, NOT_BLOOD_CELL, OTHER_CELL_TYPE, STATUSES
from training import data
from training.nonblood import non_blood_images

COMMAND = "python -m training.evaluate --data-dir ../shared/data/blood-cells"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pbc-dir", type=Path, default=None)
    parser.add_argument("--lisc-dir", type=Path, default=None, help="default: lisc beside --data-dir")
    parser.add_argument("--other-dir", type=Path, default=None, help="default: pbc-other beside --data-dir")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--compare", action="append", default=[], metavar="NAME=PATH",
                        help="another model to evaluate side by side (repeatable)")
    args = parser.parse_args(argv)
    if args.pbc_dir is None:
        args.pbc_dir = args.data_dir.parent / "pbc"
    args.lisc_dir = args.lisc_dir or args.data_dir.parent / "lisc"
    args.other_dir = args.other_dir or args.data_dir.parent / "pbc-other"
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
    if args.lisc_dir.is_dir():
        splits["lisc"] = [(r.path, r.label) for r in data.read_lisc(args.lisc_dir)]
    return splits


SPLIT_NOTES = {
    "test_image": "Kaggle TEST images (augmented copies of 71 held-out cells), each counted once",
    "test_simple": "Kaggle TEST_SIMPLE: the held-out cells' un-augmented images (69 distinct cells, 71 files)",
    "pbc_test": "PBC test split: 20% of each class, seeded (training.data.split_pbc); never trained or tuned on",
    "lisc": "LISC (Tehran, Giemsa-Wright, 100x): a lab never trained on, one crop per LISC image; "
            "validation only, no epoch, threshold or recipe was picked on it alone",
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
    return report


def statuses_of(classifier, result) -> list[str]:
    """The status each image of ``result`` gets, exactly as in the app."""
    return [a.status for a in result.assessments(classifier.trust)]


def evaluate_splits(classifier, args, with_trust: bool) -> dict:
    splits = {}
    for name, jobs in test_splits(args).items():
        started = time.time()
        result = predict_files(classifier, jobs)
        summary = accuracy_summary(result.labels, result.predicted, CLASS_NAMES, SPLIT_NOTES[name])
        if result.unreadable:
            summary["unreadable"] = result.unreadable
        summary["macro_recall"] = macro_recall(summary)
        if with_trust:
            summary.update(trust_report(classifier, result))
        if classifier.trust.ood is not None:
            summary["statuses"] = status_mix(statuses_of(classifier, result), STATUSES)
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
    mix = status_mix([p.status for p in predictions], STATUSES)
    kinds = {}
    for kind in sorted({image.kind for image in images}):
        rows = np.array([image.kind == kind for image in images])
        kinds[kind] = {"n": int(rows.sum()), "flagged": int(flagged[rows].sum())}
    missed = [image.name for image, hit in zip(images, flagged) if not hit]
    return {"n": len(images), "flagged": int(flagged.sum()), "flag_rate": round(float(flagged.mean()), 6),
            "by_kind": kinds, "not_flagged": missed, "statuses": mix,
            "source": "training.nonblood: scikit-image's bundled photos and microscopy images (whole and 3 "
                      "seeded crops each), plain colours, noise and patterns"}


# -- cells that are none of the four types ------------------------------------------

def evaluate_other_types(classifier, other_dir: Path) -> dict:
    """Statuses of the held-out other-type cells (the pbc-other test split, by type)."""
    records = data.read_pbc_other(other_dir)
    jobs = [(r.path, r.label) for r, part in zip(records, data.split_other(records)) if part == "test"]
    result = predict_files(classifier, jobs)
    assessments = result.assessments(classifier.trust)
    labels = np.asarray(result.labels)
    summary = {"description": "pbc-other test split (training.data.split_other: seeded 20% of each type), "
                              "never fitted or tuned on"}
    statuses = np.array([a.status for a in assessments])
    named = np.array([a.other_type == OTHER_TYPES[label] for a, label in zip(assessments, labels)])
    predicted = np.array([CLASS_NAMES[p] for p in result.predicted])
    for name, rows in [("all", np.ones(len(labels), bool))] + [(t, labels == i) for i, t in enumerate(OTHER_TYPES)]:
        flagged = rows & (statuses == OTHER_CELL_TYPE)
        answered = rows & (statuses != OTHER_CELL_TYPE)
        summary[name] = {
            "statuses": status_mix(list(statuses[rows]), STATUSES),
            "no_confident_four_type_answer": rate(int(np.sum(rows & (statuses != CONFIDENT))), int(rows.sum())),
            "type_named_right_when_flagged": rate(int(np.sum(named & flagged)), int(flagged.sum())),
            "four_type_labels_given": {c: int(np.sum(answered & (predicted == c))) for c in CLASS_NAMES},
        }
    return summary


# -- the same cell at another magnification -----------------------------------------

RESCALE_FACTORS = (0.5, 0.75, 1.5, 2.0, 3.0)
# A tight crop as some analysers export it: the cell fills the frame, ~110 px square.
TIGHT_SIDE = 110


def tight_crop(rgb: np.ndarray) -> np.ndarray:
    """The cell alone, filling a TIGHT_SIDE-pixel square (half the usual crop's side)."""
    box = locate_white_cell(rgb)
    inner = box.side // 2
    inner_box = CellBox(box.x + (box.side - inner) // 2, box.y + (box.side - inner) // 2, inner, True)
    return crop_to_box(rgb, inner_box, TIGHT_SIDE)


def evaluate_rescaling(classifier, jobs: list[tuple[Path, int, str]]) -> dict:
    """Does the label survive rescaling the photo 0.5x-3x, or a tight ~110 px crop?"""
    from PIL import Image

    images = [load_image(path) for path, _, _ in jobs]
    base = [p.label for p in classifier.predict_batch(images)]
    truth = [CLASS_NAMES[label] for _, label, _ in jobs]
    sources = sorted({source for _, _, source in jobs})
    summary = {"images": {s: sum(1 for *_, src in jobs if src == s) for s in sources},
               "at_1x_right": rate(sum(b == t for b, t in zip(base, truth)), len(jobs))}
    variants = {f"{f:g}x": (lambda rgb, f=f: np.asarray(Image.fromarray(rgb).resize(
        (max(8, round(rgb.shape[1] * f)), max(8, round(rgb.shape[0] * f))), Image.Resampling.BILINEAR)))
        for f in RESCALE_FACTORS}
    variants[f"tight {TIGHT_SIDE} px crop"] = tight_crop
    for name, change in variants.items():
        labels = [p.label for p in classifier.predict_batch([change(rgb) for rgb in images])]
        kept = [a == b for a, b in zip(labels, base)]
        summary[name] = {"label_kept": rate(sum(kept), len(kept)),
                         "right": rate(sum(a == t for a, t in zip(labels, truth)), len(labels)),
                         "label_kept_by_source": {s: rate(sum(k for k, (*_, src) in zip(kept, jobs) if src == s),
                                                          summary["images"][s]) for s in sources}}
    return summary


def rescaling_jobs(args) -> list[tuple[Path, int, str]]:
    """TEST_SIMPLE, LISC and 100 seeded PBC test images: every lab there is."""
    jobs = [(p, label, "kaggle TEST_SIMPLE") for p, label in test_splits(args)["test_simple"]]
    if args.lisc_dir.is_dir():
        jobs += [(r.path, r.label, "lisc") for r in data.read_lisc(args.lisc_dir)]
    if args.pbc_dir.is_dir():
        pbc = data.read_pbc(args.pbc_dir)
        test = [r for r, part in zip(pbc, data.split_pbc(pbc)) if part == "test"]
        picked = np.random.default_rng(0).choice(len(test), min(100, len(test)), replace=False)
        jobs += [(test[i].path, test[i].label, "pbc test") for i in sorted(picked)]
    return jobs


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
        from hematovision.model.metrics import wilson_interval

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
                      "hematovision.model.cells.locate_white_cells; 'classified right' matches the predicted classes "
                      "to the named ones as multisets. labels.csv has no boxes, so a right class on a wrong "
                      "object cannot be told apart. held_out = originals of Kaggle TEST cells.")
    return summary


# -- card ------------------------------------------------------------------------

def evaluate_model(path: Path, args, full: bool) -> dict:
    classifier = load_classifier(path)
    started = time.time()
    splits = evaluate_splits(classifier, args, with_trust=full and classifier.trust.is_fitted)
    result = {"model_sha256": file_sha256(path), "splits": splits,
              "colour_normalisation": classifier.colour_normalisation,
              "backend": classifier.backend.name, "precision": classifier.backend.precision}
    card_path = card_beside(path)
    card = load_model_card(card_path) if card_path is not None else None
    if card is not None:
        result["trained_on"] = list(card.training.sources)
        result["training_command"] = card.training.command
    if classifier.trust.is_fitted:
        result["non_blood"] = evaluate_non_blood(classifier)
    if classifier.trust.other_types is not None and args.other_dir.is_dir():
        result["other_types"] = evaluate_other_types(classifier, args.other_dir)
    if full:
        result["fields"] = evaluate_fields(classifier, args.data_dir)
        result["rescaling"] = evaluate_rescaling(classifier, rescaling_jobs(args))
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
    card = load_model_card(card_path) or ModelCard.blank(card_path)
    card.with_evaluation(model_file=args.model.name, model_sha256=file_sha256(args.model), evaluation=evaluation,
                         comparison=comparison).save()
    print(f"Wrote the evaluation into {card_path}")


if __name__ == "__main__":
    main()
