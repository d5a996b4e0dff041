"""Which NNCF settings give an int8 network closest to f32? Validation data only.

    python -m training.quantize_probe --data-dir ../shared/data/blood-cells

Each variant quantises the f32 network from the same 600 training crops as
``training.quantize_int8`` (as they are, or as seeded copies through the training run's
``unseen_lab`` augmentation, the variants named "calibration: ...") and is scored on the
validation images the training run held out (Kaggle validation cells, PBC validation split;
never test or unseen-lab images):

* how many labels differ from f32's, and the mean |Δp|;
* validation accuracy;
* the same two on one seeded ``unseen_lab`` copy of every validation image, a stand-in for
  labs the model never saw (another seed than the calibration copies');
* how often a photo rescaled 0.5x, 2x and 3x keeps the label it has at 1x (one image per
  Kaggle validation cell and the PBC validation split), against f32's own rate;
* batched milliseconds per image.

The crops are framed once (framing does not depend on the network), so only the forward
passes differ. Prints one JSON line per variant. Results and what came of them:
training/EXPERIMENTS.md, "Quantisation settings".
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from hematovision.model.backends import OpenVinoBackend, openvino_beside
from hematovision.model.classifier import DEFAULT_MODEL_PATH, card_beside, load_classifier
from hematovision.model.imaging import load_image
from hematovision.model.model_card import load_model_card
from hematovision.model.stain import normalise_colour
from training import data
from training.calibrate import framed_crops, held_out_and_training
from training.quantize_int8 import calibration_records
from training.train import AUGMENT_STRENGTH, model_inputs

RESCALE = (0.5, 2.0, 3.0)
CALIBRATION_COPY_SEED = 11  # the augmented calibration copies
SHIFTED_VALIDATION_SEED = 23  # the augmented validation copies


def variants(network) -> dict[str, dict]:
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    # The converter names layers after their weights' transposes, so find them by position:
    # the first convolution, the last one (Conv_1, Grad-CAM's layer) and the dense head.
    layers = [op.get_friendly_name() for op in network.get_ordered_ops()
              if op.get_type_name() in ("Convolution", "MatMul")]
    ends = nncf.IgnoredScope(names=[layers[0], layers[-2], layers[-1]])
    return {
        "default (shipped)": {},
        # Ranges set on what the network meets beyond the training labs, not only on their crops
        "calibration: augmented copies": {"calibration": "augmented"},
        "calibration: as they are and augmented": {"calibration": "both"},
        "full bias correction": {"fast_bias_correction": False},
        "mixed preset": {"preset": nncf.QuantizationPreset.MIXED},
        "mixed preset, full bias correction": {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False},
        "first conv, last conv and head kept f32": {"ignored_scope": ends},
        "no overflow fix": {"advanced_parameters": AdvancedQuantizationParameters(
            overflow_fix=nncf.OverflowFix.DISABLE)},
        "no bias correction": {"advanced_parameters": AdvancedQuantizationParameters(disable_bias_correction=True)},
        # How each activation's range is set (NNCF's default: the mean over crops of each crop's min and max)
        **{f"activation ranges: {name}": {"advanced_parameters": AdvancedQuantizationParameters(
            activations_range_estimator_params=estimator)}
           for name, estimator in (("histogram", RangeEstimatorParametersSet.HISTOGRAM),
                                   ("global min and max", RangeEstimatorParametersSet.MINMAX),
                                   ("mean quantile", RangeEstimatorParametersSet.MEAN_QUANTILE))},
    }


def probabilities(backend, crops: np.ndarray) -> np.ndarray:
    return np.concatenate([backend.forward(crops[i:i + 64])[2] for i in range(0, len(crops), 64)])


def unseen_lab_copies(classifier, framed: np.ndarray, seed: int) -> np.ndarray:
    """One seeded ``unseen_lab`` copy of each framed cell, colour-normalised as the app does."""
    return model_inputs(framed, 1, seed, AUGMENT_STRENGTH["unseen_lab"], "unseen_lab",
                        classifier.colour_normalisation)


def rescaled(rgb: np.ndarray, factor: float) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(
        (max(8, round(rgb.shape[1] * factor)), max(8, round(rgb.shape[0] * factor))), Image.Resampling.BILINEAR))


def main(argv=None) -> None:
    import nncf
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--only", action="append", default=[], help="run just these variants (by name)")
    args = parser.parse_args(argv)
    args.pbc_dir = args.data_dir.parent / "pbc"
    reference = load_classifier(precision="f32")
    card = load_model_card(card_beside(DEFAULT_MODEL_PATH))
    settings = card.training.settings
    validation, _ = held_out_and_training(args, card.training.sources, settings["seed"], settings["val_fraction"])
    labels = np.array([label for _, label, _ in validation])
    crops = np.stack([reference.prepare(path)[0] for path, _, _ in validation]).astype(np.float32)
    kaggle_validation = {path for path, _, source in validation if source == "kaggle"}
    per_cell = data.images_per_cell([r for r in data.read_sources(args.data_dir, "TRAIN")
                                     if r.path in kaggle_validation], 1, 0)
    steady = [r.path for r in per_cell] + [p for p, _, s in validation if s == "pbc"]
    originals = [load_image(path) for path in steady]
    views = {1.0: np.stack([reference.prepare(rgb)[0] for rgb in originals]).astype(np.float32)}
    for factor in RESCALE:
        views[factor] = np.stack([reference.prepare(rescaled(rgb, factor))[0] for rgb in originals]).astype(np.float32)
    # Framed once; the plain crops are normalised exactly as Classifier.prepare normalises them.
    framed = framed_crops(reference, [r.path for r in calibration_records(args.data_dir, 600, (settings["seed"], settings["val_fraction"]))])
    plain = np.stack([normalise_colour(crop, reference.colour_normalisation) for crop in framed]).astype(np.float32)
    augmented = unseen_lab_copies(reference, framed, CALIBRATION_COPY_SEED)
    calibrations = {"plain": plain, "augmented": augmented, "both": np.concatenate([plain, augmented])}
    shifted = unseen_lab_copies(reference, framed_crops(reference, [path for path, _, _ in validation]),
                                SHIFTED_VALIDATION_SEED)

    def score(name: str, backend) -> dict:
        p = probabilities(backend, crops)
        p_shifted = probabilities(backend, shifted)
        base = probabilities(backend, views[1.0]).argmax(1)
        kept = {f"{f:g}x": round(float(np.mean(probabilities(backend, views[f]).argmax(1) == base)), 4)
                for f in RESCALE}
        batch = crops[:64]
        backend.forward(batch)
        started = time.perf_counter()
        for _ in range(3):
            backend.forward(batch)
        return {"variant": name, "validation_accuracy": round(float(np.mean(p.argmax(1) == labels)), 4),
                "labels_changed_vs_f32": int((p.argmax(1) != f32_p.argmax(1)).sum()), "images": len(labels),
                "mean_abs_dp": round(float(np.abs(p - f32_p).mean()), 5),
                "unseen_lab_copies": {
                    "accuracy": round(float(np.mean(p_shifted.argmax(1) == labels)), 4),
                    "labels_changed_vs_f32": int((p_shifted.argmax(1) != f32_shifted.argmax(1)).sum()),
                    "mean_abs_dp": round(float(np.abs(p_shifted - f32_shifted).mean()), 5)},
                "rescaled_label_kept": kept,
                "rescale_images": len(steady),
                "batched_ms_per_image": round(1000 * (time.perf_counter() - started) / (3 * len(batch)), 2)}

    f32_p = probabilities(reference.backend, crops)
    f32_shifted = probabilities(reference.backend, shifted)
    print(json.dumps(score("f32", reference.backend)), flush=True)
    names = variants(ov.Core().read_model(str(openvino_beside(DEFAULT_MODEL_PATH))))
    for name, options in names.items():
        if args.only and name not in args.only:
            continue
        network = ov.Core().read_model(str(openvino_beside(DEFAULT_MODEL_PATH)))
        calibration = calibrations[options.pop("calibration", "plain")]
        quantised = nncf.quantize(network, nncf.Dataset(list(calibration), lambda c: c[None]),
                                  subset_size=len(calibration), **options)
        with tempfile.TemporaryDirectory() as folder:
            xml = Path(folder) / "probe.xml"
            ov.save_model(quantised, str(xml), compress_to_fp16=False)
            print(json.dumps(score(name, OpenVinoBackend(xml, "int8"))), flush=True)


if __name__ == "__main__":
    main()
