"""Would a lab profile gain from re-estimating batch-norm statistics (AdaBN)? A probe (issue 14).

    python -m training.adabn_probe --data-dir ../shared/data/blood-cells

The issue measured plain AdaBN (every batch-norm layer) making LISC worse on an older
model. This probe re-estimates only the layers from a given block upward, on 128 of the
lab's own crops (unlabelled, seeded; the momentum set to 0 for one forward pass in training
mode, so the moving statistics become that batch's; ``--images`` sets how many), in the three unseen-lab settings of
``training.few_shot_probe``: LISC with the shipped model, the PBC validation split with the
Kaggle-only model, Kaggle validation cells with the PBC-only model. For each depth it prints
macro recall with no labels, and with the head refitted on k = 5 and 10 labelled cells per
class (``lab_profile.refit_head`` on the adapted features; 5 seeded draws, judged on the
cells not drawn). Keras f32 forward passes, about 4 minutes. Results: training/EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hematovision.model.classifier import OTHER_TYPE_LAYER, load_classifier
from hematovision.model.lab_profile import refit_head
from training.cross_lab import validation_jobs
from training.few_shot_probe import draw
from training.lab_profiles import macro_recall_of

# None: the network as trained; n: batch norms of block n upward (17: only Conv_1's).
DEPTHS = (None, 17, 16, 13, 10, 0)
STATISTICS_IMAGES = 128


def block_of(layer_name: str) -> int:
    """MobileNetV2's block number of a layer: 0 for the stem, 17 for Conv_1 at the top."""
    if layer_name.startswith("block_"):
        return int(layer_name.split("_")[1])
    return 17 if layer_name.startswith("Conv_1") else 0


def adapt_batch_norms(model, crops: np.ndarray, from_block: int | None, stored: dict) -> None:
    """Put back the trained statistics, then re-estimate those of ``from_block`` upward on ``crops``."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.moving_mean.assign(stored[layer.name][0])
        layer.moving_variance.assign(stored[layer.name][1])
    if from_block is None:
        return
    for layer in norms:
        layer.momentum = 0.0 if block_of(layer.name) >= from_block else 1.0
    model(crops, training=True)
    for layer in norms:
        layer.momentum = 0.99


def main(argv=None) -> None:
    import keras

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--shipped", type=Path, default=Path("models/hematovision-mobilenetv2.keras"))
    parser.add_argument("--kaggle-only", type=Path, default=Path("training/cache/v3-kaggle/model.keras"))
    parser.add_argument("--pbc-only", type=Path, default=Path("training/cache/v3-pbc/model.keras"))
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--images", type=int, default=STATISTICS_IMAGES, help="crops the statistics are taken from")
    parser.add_argument("--depths", type=lambda text: tuple(None if d == "none" else int(d) for d in text.split(",")),
                        default=DEPTHS, help="e.g. none,16")
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    jobs = validation_jobs(args.data_dir, root / "pbc", root / "lisc")
    settings = {"LISC, shipped": (args.shipped, jobs["lisc"]),
                "PBC validation, Kaggle-only": (args.kaggle_only, jobs["pbc_val"]),
                "Kaggle validation, PBC-only": (args.pbc_only, jobs["kaggle_val"])}
    for name, (path, rows) in settings.items():
        framing = load_classifier(path, backend="tensorflow")  # its card's colour normalisation
        crops = np.stack([framing.prepare(image)[0] for image, _, _ in rows]).astype(np.float32)
        labels = np.array([label for _, label, _ in rows])
        cells = np.array([str(cell) for _, _, cell in rows])
        model = keras.saving.load_model(path, compile=False)
        features_and_softmax = keras.Model(model.input, [model.get_layer(OTHER_TYPE_LAYER).output, model.output])
        weights, bias = model.layers[-1].get_weights()
        stored = {layer.name: (layer.moving_mean.numpy(), layer.moving_variance.numpy())
                  for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)}
        sample = crops[np.random.default_rng(0).choice(len(crops), min(args.images, len(crops)), replace=False)]
        for depth in args.depths:
            adapt_batch_norms(model, sample, depth, stored)
            features, softmax = features_and_softmax.predict(crops, batch_size=64, verbose=0)
            features = features.astype(np.float64)
            found = {"no labels": macro_recall_of(labels, softmax.argmax(1))}
            for k in (5, 10):
                scores = []
                for seed in range(args.draws):
                    labelled, judged = draw(labels, cells, k, seed)
                    w, b = refit_head(features[labelled], labels[labelled], weights, bias)
                    scores.append(macro_recall_of(labels[judged], (features[judged] @ w + b).argmax(1)))
                found[f"{k}-shot refit"] = float(np.mean(scores))
            where = {None: "none (as trained)", 17: "Conv_1 only", 16: "block 16 and Conv_1"}.get(
                depth, f"blocks {depth}-16 and Conv_1")
            print(f"{name}, batch norms re-estimated: {where}: "
                  + ", ".join(f"{key} {value:.3f}" for key, value in found.items()), flush=True)


if __name__ == "__main__":
    main()
