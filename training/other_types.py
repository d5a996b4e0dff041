"""Fit the other-cell-type detector (``hematovision.model.cell_types``) for a trained model.

    python -m training.other_types --data-dir ../shared/data/blood-cells [--model PATH]

Run after ``training.calibrate`` (it adds to the card's ``trust`` section; with
``--precision int8``, to ``trust_int8``, fitted on the int8 network's features). Data:

* the other types, ``pbc-other/`` beside ``--data-dir``: split 60/20/20 by type, seeded
  (``data.split_other``); the test part is never read here;
* the four types: PBC training images and 4 images per Kaggle training cell to fit; the
  validation images that training held out (PBC validation split, Kaggle validation
  cells) to set the threshold.

Every image is used as it is and once more through lab-to-lab augmentation, so that a
stain or camera the detector never saw does not read as "another cell type".

Threshold rule, fixed before any number was seen: the highest p(other) threshold that
flags at least ``--target-recall`` (95%) of the validation cells of other types, unless
that flags more than ``--max-false-rate`` (5%) of the four-type validation images; then
the threshold that flags exactly that many. Validation images count as they are and once
through a stronger augmentation.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model.cell_types import OTHER_TYPES, OtherTypeDetector
from hematovision.model.classifier import (
    CLASS_NAMES,
    DEFAULT_MODEL_PATH,
    OTHER_TYPE_LAYER,
    card_beside,
    load_classifier,
)
from hematovision.model.evaluation import predict_files
from hematovision.model.model_card import file_sha256, load_model_card
from training import data
from training.calibrate import (
    TRUST_PRECISIONS,
    held_out_and_training,
    script_command,
    shifted_outputs,
    trust_file,
)

OTHER_TYPES_FILE = "other-types.npz"
KAGGLE_PER_CELL = 4
# Inverse regularisation strength of the logistic regression on standardised features.
C = 0.05
# Augmentation strength for the fitting copies (as in training) and the validation copies.
FIT_SHIFT = 0.3
VALIDATION_SHIFT = 0.45


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pbc-dir", type=Path, default=None)
    parser.add_argument("--other-dir", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--precision", choices=sorted(TRUST_PRECISIONS), default="f32",
                        help="the OpenVINO network to fit the detector to")
    parser.add_argument("--target-recall", type=float, default=0.95)
    parser.add_argument("--max-false-rate", type=float, default=0.05)
    args = parser.parse_args(argv)
    args.pbc_dir = args.pbc_dir or args.data_dir.parent / "pbc"
    args.other_dir = args.other_dir or args.data_dir.parent / "pbc-other"
    return args


def choose_threshold(other_scores: np.ndarray, four_scores: np.ndarray, target_recall: float,
                     max_false_rate: float) -> float:
    """The rule in the module docstring; scores are p(other type)."""
    by_recall = float(np.quantile(other_scores, 1.0 - target_recall))
    by_false_rate = float(np.quantile(four_scores, 1.0 - max_false_rate))
    return max(by_recall, by_false_rate)


def fit(args) -> dict:
    from sklearn.linear_model import LogisticRegression

    card_path = card_beside(args.model)
    card = load_model_card(card_path)
    settings = card.training.settings
    validation_jobs, fitting_jobs = held_out_and_training(args, card.training.sources, settings["seed"],
                                                          settings["val_fraction"],
                                                          kaggle_per_cell=KAGGLE_PER_CELL)
    others = data.read_pbc_other(args.other_dir)
    split = data.split_other(others)
    n_four = len(CLASS_NAMES)
    other_fit = [(r.path, n_four + r.label) for r, part in zip(others, split) if part == "train"]
    other_val = [(r.path, n_four + r.label) for r, part in zip(others, split) if part == "val"]

    classifier = load_classifier(args.model, backend="openvino", precision=args.precision)
    print(f"Features of {len(fitting_jobs) + len(other_fit)} fitting and "
          f"{len(validation_jobs) + len(other_val)} validation images ...", flush=True)
    fit_four = predict_files(classifier, [(p, label) for p, label, _ in fitting_jobs])
    fit_other = predict_files(classifier, other_fit)
    val_four = predict_files(classifier, [(p, label) for p, label, _ in validation_jobs])
    val_other = predict_files(classifier, other_val)

    # Each fitting image also once through the training's lab-to-lab augmentation, and each
    # validation image once through a stronger one: the detector must hold on labs it never
    # saw, and nothing but the cell itself tells the eight types apart across those changes.
    fit_shifted = shifted_outputs(classifier, fit_four.paths + fit_other.paths, FIT_SHIFT, copies=1, seed=11)
    val_shifted = shifted_outputs(classifier, val_four.paths + val_other.paths, VALIDATION_SHIFT, copies=1, seed=13)
    x = np.concatenate([fit_four.type_features, fit_other.type_features, fit_shifted.type_features])
    y = np.concatenate([fit_four.labels, fit_other.labels, fit_four.labels, fit_other.labels])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    model = LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit((x - mean) / scale, y)
    detector = OtherTypeDetector(mean.astype(np.float32), scale.astype(np.float32),
                                 model.coef_.T.astype(np.float32), model.intercept_.astype(np.float32))
    shifted_scores = detector.other_probability(val_shifted.type_features)
    four_scores = np.concatenate([detector.other_probability(val_four.type_features),
                                  shifted_scores[: len(val_four.paths)]])
    other_scores = np.concatenate([detector.other_probability(val_other.type_features),
                                   shifted_scores[len(val_four.paths):]])
    detector.threshold = choose_threshold(other_scores, four_scores, args.target_recall, args.max_false_rate)
    path = card_path.parent / trust_file(OTHER_TYPES_FILE, args.precision)
    detector.save(path)

    flagged_other = other_scores > detector.threshold
    other_features = np.concatenate([val_other.type_features, val_shifted.type_features[len(val_four.paths):]])
    named = np.array([OTHER_TYPES[i] for i in detector.probabilities(other_features)[:, n_four:].argmax(1)])
    truth = np.array([OTHER_TYPES[label - n_four] for label in val_other.labels] * 2)
    summary = {
        "command": script_command("other_types", args),
        "method": f"multinomial logistic regression (C {C}, balanced class weights) on the standardised "
                  f"{OTHER_TYPE_LAYER} features over the four types and {', '.join(OTHER_TYPES)}; "
                  f"p(other) = the summed probability of the other types",
        "fitted_on": {"other_types": len(other_fit), "four_types": len(fitting_jobs),
                      "augmentation": f"each image as it is and once through training.train.unseen_lab_augment "
                                      f"(strength {FIT_SHIFT})",
                      "split": "pbc-other: seeded (2026) 60% fit / 20% validation / 20% test per type "
                               "(training.data.split_other); four types: the training images of the model"},
        "threshold_rule": f"highest threshold flagging >= {args.target_recall:.0%} of validation other-type cells, "
                          f"unless that flags > {args.max_false_rate:.0%} of four-type validation images; each "
                          f"validation image counted as it is and once through strong lab-to-lab changes "
                          f"(strength {VALIDATION_SHIFT})",
        "threshold": round(detector.threshold, 6),
        "validation": {
            "other_type_cells": len(other_scores), "other_type_flagged": int(flagged_other.sum()),
            "four_type_images": len(four_scores), "four_type_flagged": int((four_scores > detector.threshold).sum()),
            "type_named_right_when_flagged": int((named == truth)[flagged_other].sum()),
        },
    }
    # Read again: the card on disk may have changed while the detector was fitted.
    load_model_card(card_path).with_other_type_detector(summary, path.name, file_sha256(path),
                                                        TRUST_PRECISIONS[args.precision][0]).save()
    return summary


def main(argv=None) -> None:
    summary = fit(parse_args(argv))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
