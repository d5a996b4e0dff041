"""Measure OpenVINO at reduced precision against f32 before trusting it (issue 15).

    python -m training.precision --data-dir ../shared/data/blood-cells [--precision bf16|int8] [--maps 12] [--save]

On Kaggle TEST, the PBC test split and LISC: accuracy with its Wilson interval, ECE of the
calibrated probabilities, the status mix, and how far each probability moves from f32 (max
and mean |Δp|); the trust checks on the non-blood set and the held-out cells of other
types; then the top-20% IoU between f32's and the reduced precision's LIME and SHAP maps
on the sample cells, and the speed of both in the same run. int8 needs the quantised
network first (``python -m training.quantize_int8``) and its own trust checks
(``training.calibrate --precision int8``, ``training.other_types --precision int8``).
``--save`` (int8 only) stores the report in the card's ``openvino_int8`` section as
``against_f32``: the Model page shows it, since int8 is the network the app runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import numpy as np

from hematovision.explanation.explainers import explain
from hematovision.explanation.faithfulness import top_iou
from hematovision.interfaces.bench import sample_images
from hematovision.model.calibration import apply_temperature, expected_calibration_error
from hematovision.model.classifier import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    card_beside,
    load_classifier,
)
from hematovision.model.evaluation import predict_files
from hematovision.model.metrics import accuracy_summary, status_mix
from hematovision.model.model_card import load_model_card
from hematovision.model.trust import STATUSES
from training import data
from training.evaluate import cell_level, evaluate_non_blood, evaluate_other_types, statuses_of


def speed(classifier, crops: list[np.ndarray]) -> dict:
    batch = np.stack([crops[i % len(crops)] for i in range(64)]).astype(np.float32)
    classifier.outputs(batch[:32])
    started = time.perf_counter()
    for _ in range(3):
        classifier.outputs(batch)
    per_image = (time.perf_counter() - started) / (3 * 64)
    single = []
    for crop in crops * 6:
        started = time.perf_counter()
        classifier.outputs(crop[None])
        single.append(time.perf_counter() - started)
    return {"batched_ms_per_image": round(1000 * per_image, 3), "one_image_ms": round(1000 * float(np.median(single)), 3)}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--precision", default="bf16")
    parser.add_argument("--maps", type=int, default=12, help="cells for the LIME/SHAP map agreement")
    parser.add_argument("--save", action="store_true", help="store the report in the card (int8 only)")
    args = parser.parse_args(argv)
    if args.save and args.precision != "int8":
        parser.error("--save stores the int8 network's measurement; the card has no section for "
                     f"{args.precision}")
    root = args.data_dir.parent
    pbc = data.read_pbc(root / "pbc")
    sets = {"kaggle_test": data.read_sources(args.data_dir, "TEST"),
            "pbc_test": [r for r, part in zip(pbc, data.split_pbc(pbc)) if part == "test"],
            "lisc": data.read_lisc(root / "lisc")}
    reference = load_classifier(backend="openvino", precision="f32")
    reduced = load_classifier(backend="openvino", precision=args.precision)
    report: dict = {"precision": args.precision, "sets": {}}
    for name, records in sets.items():
        jobs = [(r.path, r.label) for r in records]
        full, low = predict_files(reference, jobs), predict_files(reduced, jobs)
        labels = np.asarray(full.labels)
        entry = {}
        for tag, classifier, result in (("f32", reference, full), (args.precision, reduced, low)):
            summary = accuracy_summary(labels.tolist(), result.predicted.tolist(), CLASS_NAMES)
            entry[tag] = {"accuracy": summary["accuracy"], "ci95": summary["accuracy_ci95"], "n": summary["n"],
                          "ece": round(expected_calibration_error(
                              apply_temperature(result.probabilities, classifier.trust.temperature), labels), 4),
                          "statuses": status_mix(statuses_of(classifier, result), STATUSES)}
            if name == "kaggle_test":
                cells = cell_level(result, args.data_dir)
                entry[tag]["cells_correct"] = f"{cells['correct']}/{cells['n']}"
        delta = np.abs(full.probabilities - low.probabilities)
        entry["max_abs_dp"] = round(float(delta.max()), 5)
        entry["mean_abs_dp"] = round(float(delta.mean()), 6)
        entry["labels_changed"] = int((full.predicted != low.predicted).sum())
        report["sets"][name] = entry
        print(json.dumps({name: entry}), flush=True)
    report["trust_checks"] = {}
    for tag, classifier in (("f32", reference), (args.precision, reduced)):
        other = evaluate_other_types(classifier, root / "pbc-other")["all"]
        report["trust_checks"][tag] = {"non_blood_flagged": evaluate_non_blood(classifier)["flag_rate"],
                                       "other_types_no_confident_answer": other["no_confident_four_type_answer"]}
    print(json.dumps({"trust_checks": report["trust_checks"]}), flush=True)
    crops = sample_images(args.maps)
    report["map_iou_top20"] = {}
    for method in ("lime", "shap"):
        ious = [top_iou(explain(reference, crop, method).attribution, explain(reduced, crop, method).attribution, 0.2)
                for crop in crops]
        report["map_iou_top20"][method] = {"mean": round(float(np.mean(ious)), 4), "min": round(float(np.min(ious)), 4),
                                           "cells": len(ious)}
    report["speed"] = {"f32": speed(reference, crops), args.precision: speed(reduced, crops)}
    print(json.dumps(report, indent=2))
    if args.save:
        report["command"] = f"python -m training.precision --data-dir ../shared/data/blood-cells " \
                            f"--precision int8 --maps {args.maps} --save"
        report["date"] = datetime.date.today().isoformat()
        card = load_model_card(card_beside(DEFAULT_MODEL_PATH))
        card.with_sections(openvino_int8={**card.raw["openvino_int8"], "against_f32": report}).save()


if __name__ == "__main__":
    main()
