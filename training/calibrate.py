"""Fit what tells users when not to trust a prediction, on held-out validation images.

    python -m training.calibrate --data-dir ../shared/data/blood-cells

For a trained model (default: the shipped one) this fits, and stores beside the model:

* the temperature that calibrates its confidence (minimum NLL on validation images),
* the abstain threshold: the lowest calibrated confidence at which the kept validation
  predictions are right at least ``--target-accuracy`` of the time,
* the out-of-distribution detector on pooled features of training images, with its
  near threshold (status ``unfamiliar_source``) set to flag ``--ood-flag-rate`` of
  validation images, and its far threshold (``not_blood_cell``) set to flag
  ``--ood-far-flag-rate`` of validation images seen through strong lab-to-lab changes
  (``training.train.unseen_lab_augment`` at ``--shift-strength``, two copies of each), or
  lower if it must be to flag ``--non-blood-target`` of a validation set of non-blood
  images (``training.nonblood.validation_non_blood_images``; the measurement set that
  ``training.evaluate`` reports is a different one).

The other-cell-type detector is fitted after this, by ``training.other_types``.

``--precision int8`` fits the same checks to the int8 network (``training.quantize_int8``)
on its own features, into the card's ``trust_int8`` section and ``ood-reference.int8.npz``:
quantisation moves the features enough that f32's distances flag three times as many
cells.

Validation images are exactly those the training run held out: Kaggle TRAIN's
validation cells (``data.split_cells``) and PBC's validation split (``data.split_pbc``),
for whichever sources the model was trained on. Test splits are never read here.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model.calibration import (
    apply_temperature,
    choose_abstain_threshold,
    coverage_accuracy_curve,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
)
from hematovision.model.classifier import (
    DEFAULT_MODEL_PATH,
    FEATURE_LAYER,
    card_beside,
    load_classifier,
)
from hematovision.model.evaluation import predict_files
from hematovision.model.model_card import file_sha256, load_model_card
from hematovision.model.ood import OODDetector
from training import data
from training.nonblood import validation_non_blood_images

OOD_FILE = "ood-reference.npz"
# Each precision with its own trust checks: (card section, file-name infix).
TRUST_PRECISIONS = {"f32": ("trust", ""), "int8": ("trust_int8", ".int8")}
# Kaggle TRAIN holds ~36 near-identical augmented images per cell; a few per cell
# describe the training distribution as well and keep fitting fast.
OOD_IMAGES_PER_KAGGLE_CELL = 8


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pbc-dir", type=Path, default=None)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--precision", choices=sorted(TRUST_PRECISIONS), default="f32",
                        help="the OpenVINO network to fit the checks to")
    parser.add_argument("--target-accuracy", type=float, default=0.98)
    parser.add_argument("--ood-flag-rate", type=float, default=0.015)
    parser.add_argument("--ood-far-flag-rate", type=float, default=0.02)
    parser.add_argument("--non-blood-target", type=float, default=0.95,
                        help="share of the validation non-blood images the far threshold must flag")
    parser.add_argument("--shift-strength", type=float, default=0.45,
                        help="strength of the lab-to-lab changes the far threshold is set on")
    args = parser.parse_args(argv)
    if args.pbc_dir is None:
        args.pbc_dir = args.data_dir.parent / "pbc"
    return args


def trust_file(name: str, precision: str) -> str:
    """``ood-reference.npz`` -> ``ood-reference.int8.npz`` for the int8 network's checks."""
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}{TRUST_PRECISIONS[precision][1]}.{suffix}"


def script_command(script: str, args) -> str:
    """The command line that refits this, as the card records it."""
    return (f"python -m training.{script} --data-dir ../shared/data/blood-cells"
            + ("" if args.model == DEFAULT_MODEL_PATH else f" --model {args.model}")
            + ("" if args.precision == "f32" else f" --precision {args.precision}"))


def held_out_and_training(args, sources: tuple[str, ...], seed: int, val_fraction: float,
                          kaggle_per_cell: int = OOD_IMAGES_PER_KAGGLE_CELL):
    """(validation jobs, fitting jobs), each a list of (path, label, source)."""
    validation, fitting = [], []
    rng = np.random.default_rng(seed)
    if "kaggle" in sources:
        records = data.read_sources(args.data_dir, "TRAIN")
        train_cells, val_cells = data.split_cells(records, val_fraction, seed)
        by_cell: dict[str, list] = {}
        for record in records:
            by_cell.setdefault(record.cell, []).append(record)
        validation += [(r.path, r.label, "kaggle") for r in records if r.cell in val_cells]
        for cell in sorted(train_cells):
            members = by_cell[cell]
            for index in rng.choice(len(members), min(kaggle_per_cell, len(members)), replace=False):
                fitting.append((members[index].path, members[index].label, "kaggle"))
    if "pbc" in sources:
        records = data.read_pbc(args.pbc_dir)
        split = data.split_pbc(records)
        validation += [(r.path, r.label, "pbc") for r, part in zip(records, split) if part == "val"]
        fitting += [(r.path, r.label, "pbc") for r, part in zip(records, split) if part == "train"]
    return validation, fitting


def framed_crops(classifier, paths: list[Path]) -> np.ndarray:
    """Each image's main cell framed as the classifier frames it, before colour normalisation
    (what the training augmentation starts from)."""
    from hematovision.model.cells import crop_to_box, locate_white_cell
    from hematovision.model.imaging import load_image

    crops = []
    for path in paths:
        rgb = load_image(path)
        crops.append(crop_to_box(rgb, locate_white_cell(rgb), classifier.input_size))
    return np.stack(crops)


def shifted_outputs(classifier, paths: list[Path], strength: float, copies: int = 2, seed: int = 7):
    """Model outputs for these images' cells after lab-to-lab changes (seeded), copies stacked."""
    from hematovision.model.classifier import ModelOutputs
    from training.train import model_inputs

    crops = framed_crops(classifier, paths)
    outputs = []
    for copy in range(1, copies + 1):
        outputs.append(classifier.outputs(model_inputs(crops, copy, seed, strength, "unseen_lab",
                                                       classifier.colour_normalisation)))
    return ModelOutputs(*(np.concatenate([getattr(o, f) for o in outputs])
                          for f in ("ood_features", "type_features", "probabilities")))


def calibrate(args) -> dict:
    card_path = card_beside(args.model)
    card = load_model_card(card_path) if card_path is not None else None
    if card is None:
        raise SystemExit(f"No model card beside {args.model}; train it with training.train first.")
    settings = card.training.settings
    validation_jobs, fitting_jobs = held_out_and_training(args, card.training.sources, settings["seed"],
                                                          settings["val_fraction"])

    classifier = load_classifier(args.model, backend="openvino", precision=args.precision)
    print(f"Predicting {len(validation_jobs)} validation and {len(fitting_jobs)} training images ...", flush=True)
    val = predict_files(classifier, [(p, label) for p, label, _ in validation_jobs])
    fit = predict_files(classifier, [(p, label) for p, label, _ in fitting_jobs])
    labels = np.asarray(val.labels)

    temperature = fit_temperature(val.probabilities, labels)
    calibrated = apply_temperature(val.probabilities, temperature)
    correct = calibrated.argmax(axis=1) == labels
    abstain = choose_abstain_threshold(calibrated.max(axis=1), correct, args.target_accuracy)

    detector = OODDetector.fit(fit.features, np.asarray(fit.labels))
    detector.set_threshold(val.features, args.ood_flag_rate)
    shifted = shifted_outputs(classifier, [path for path, _, _ in validation_jobs], args.shift_strength).ood_features
    # Images without a nucleus are marked not_blood_cell whatever their score (trust.py), so
    # the line only has to catch enough of the rest to reach the target over the whole set.
    non_blood_images = validation_non_blood_images()
    prepared = [classifier.prepare(image.rgb) for image in non_blood_images]
    with_nucleus = [crop for crop, box in prepared if box.found]
    non_blood = classifier.outputs(np.stack(with_nucleus)).ood_features
    target_with_nucleus = 1.0 - (1.0 - args.non_blood_target) * len(prepared) / max(len(with_nucleus), 1)
    detector.set_far_threshold(shifted, args.ood_far_flag_rate, non_blood, max(target_with_nucleus, 0.0))
    ood_path = card_path.parent / trust_file(OOD_FILE, args.precision)
    detector.save(ood_path)

    val_sources = np.array([source for _, _, source in validation_jobs])
    per_source = {}
    for source in sorted(set(val_sources)):
        rows = val_sources == source
        per_source[source] = {
            "images": int(rows.sum()),
            "ece_before": round(expected_calibration_error(val.probabilities[rows], labels[rows]), 6),
            "ece_after": round(expected_calibration_error(calibrated[rows], labels[rows]), 6),
        }
    trust = {
        "command": script_command("calibrate", args),
        "network": f"OpenVINO {args.precision}",
        "fitted_on": "validation images held out by training (Kaggle TRAIN validation cells, PBC validation "
                     "split), never test images",
        "validation_images": int(len(labels)),
        "temperature": round(temperature, 6),
        "validation_nll_before": round(negative_log_likelihood(val.probabilities, labels), 6),
        "validation_nll_after": round(negative_log_likelihood(calibrated, labels), 6),
        "validation_ece_before": round(expected_calibration_error(val.probabilities, labels), 6),
        "validation_ece_after": round(expected_calibration_error(calibrated, labels), 6),
        "validation_by_source": per_source,
        "abstain": {**abstain, "rule": "status 'check this cell' when the calibrated confidence is below the "
                                        "threshold; the threshold is the lowest at which the kept validation "
                                        "predictions reach the target accuracy"},
        "validation_coverage_curve": coverage_accuracy_curve(calibrated.max(axis=1), correct),
        "ood": {
            "method": f"Mahalanobis distance to the nearest class mean on the top principal components of the "
                      f"image-averaged {FEATURE_LAYER} features (shared covariance), plus the distance off that "
                      f"subspace",
            "components": int(detector.components.shape[0]),
            "fitted_on_images": int(len(fit.labels)),
            "threshold": round(detector.threshold, 4),
            "target_validation_flag_rate": args.ood_flag_rate,
            "far_threshold": round(detector.far_threshold, 4),
            "far_threshold_rule": f"the lower of two lines: one flagging {args.ood_far_flag_rate:.1%} of "
                                  f"{len(shifted)} validation images put through strong lab-to-lab changes "
                                  f"(training.train.unseen_lab_augment, strength {args.shift_strength}, 2 copies "
                                  f"each), one that, with the {len(prepared) - len(with_nucleus)} images where no "
                                  f"nucleus is found, marks {args.non_blood_target:.0%} of {len(prepared)} validation "
                                  f"non-blood images (training.nonblood.validation_non_blood_images, none of them "
                                  f"in the measurement set)",
            "far_threshold_flags": {
                "shifted_validation_cells": round(float(np.mean(detector.score(shifted) > detector.far_threshold)), 6),
                "validation_non_blood_images_with_a_nucleus": round(
                    float(np.mean(detector.score(non_blood) > detector.far_threshold)), 6),
                "validation_non_blood_images_without_a_nucleus": len(prepared) - len(with_nucleus),
            },
            "statuses": "score above far_threshold: not_blood_cell; between threshold and far_threshold: "
                        "unfamiliar_source",
        },
        "ood_file": ood_path.name,
        "ood_file_sha256": file_sha256(ood_path),
    }
    card.with_calibration(trust, TRUST_PRECISIONS[args.precision][0]).save()
    return trust


def main(argv=None) -> None:
    trust = calibrate(parse_args(argv))
    print(f"temperature {trust['temperature']:.3f}; validation ECE {trust['validation_ece_before']:.4f} -> "
          f"{trust['validation_ece_after']:.4f}; abstain below {trust['abstain']['threshold']:.3f} "
          f"keeps {trust['abstain']['coverage']:.1%} at {trust['abstain']['accuracy']:.1%}; "
          f"OOD threshold {trust['ood']['threshold']:.1f}")


if __name__ == "__main__":
    main()
