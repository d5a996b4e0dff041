"""Would a lab profile gain from re-estimating batch-norm statistics (AdaBN)? A probe (issue 14).

    python -m training.adabn_probe --data-dir ../shared/data/blood-cells [--target training|imagenet]

Training never unfreezes a batch norm (``train.set_stage``), so every moving statistic in
the network is still ImageNet's. Plain AdaBN, which swaps them for the lab's, therefore aims
the lab's activations at ImageNet's spread rather than at what the head learned from. This
probe aligns the layers from a given block upward, one after another, so that on the lab's
cells each batch norm's output has the per-channel mean and spread it has on the model's
training images (``--target training``, the default; 300 training crops: Kaggle TRAIN one
per cell and/or the PBC training split); ``--target imagenet`` re-estimates the moving
statistics instead (plain AdaBN). The lab's statistics come from 128 of its own crops
(unlabelled, seeded; ``--images`` sets how many), with the layers below in inference mode.

Three unseen-lab settings, as ``training.few_shot_probe``: LISC with the shipped model, the
PBC validation split with the Kaggle-only model, Kaggle validation cells with the PBC-only
model. For each depth it prints macro recall with no labels, and with the head refitted on
k = 5 and 10 labelled cells per class (``lab_profile.refit_head`` on the adapted features; 5
seeded draws, judged on the cells not drawn). Keras f32 forward passes, a few minutes.
Results: training/EXPERIMENTS.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from hematovision.model.classifier import OTHER_TYPE_LAYER, load_classifier
from hematovision.model.lab_profile import refit_head
from training import data
from training.cross_lab import validation_jobs
from training.few_shot_probe import draw
from training.lab_profiles import macro_recall_of

# None: the network as trained; n: batch norms of block n upward (17: only Conv_1's).
DEPTHS = (None, 17, 16, 13)
STATISTICS_IMAGES = 128
TRAINING_IMAGES = 300


def block_of(layer_name: str) -> int:
    """MobileNetV2's block number of a layer: 0 for the stem, 17 for Conv_1 at the top."""
    if layer_name.startswith("block_"):
        return int(layer_name.split("_")[1])
    return 17 if layer_name.startswith("Conv_1") else 0


def training_paths(data_dir: Path, sources: tuple[str, ...], count: int = TRAINING_IMAGES) -> list[Path]:
    """A seeded sample of the images a model with these ``sources`` trained on."""
    rng = np.random.default_rng(0)
    paths = []
    for source in sources:
        if source == "kaggle":
            records = data.read_sources(data_dir, "TRAIN")
            train_cells, _ = data.split_cells(records, 0.2, 0)
            pool = [r.path for r in data.images_per_cell(records, 1, 0) if r.cell in train_cells]
        else:
            records = data.read_pbc(data_dir.parent / "pbc")
            pool = [r.path for r, part in zip(records, data.split_pbc(records)) if part == "train"]
        take = min(count // len(sources), len(pool))
        paths += [pool[i] for i in sorted(rng.choice(len(pool), take, replace=False))]
    return paths


def output_moments(model, layer_name: str, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and standard deviation of a layer's output (inference mode)."""
    import keras

    values = keras.Model(model.input, model.get_layer(layer_name).output).predict(crops, batch_size=64, verbose=0)
    values = values.reshape(-1, values.shape[-1]).astype(np.float64)
    return values.mean(axis=0), values.std(axis=0)


def align_batch_norms(model, lab_crops: np.ndarray, training_crops: np.ndarray, from_block: int) -> None:
    """Give each batch norm from ``from_block`` upward, on the lab's crops, its output's mean and
    spread on the training crops, layer after layer (in place: gamma and beta rescaled)."""
    import keras

    norms = [layer for layer in model.layers
             if isinstance(layer, keras.layers.BatchNormalization) and block_of(layer.name) >= from_block]
    targets = {layer.name: output_moments(model, layer.name, training_crops) for layer in norms}
    for layer in norms:
        lab_mean, lab_spread = output_moments(model, layer.name, lab_crops)
        target_mean, target_spread = targets[layer.name]
        ratio = np.where(lab_spread > 1e-6, target_spread / np.maximum(lab_spread, 1e-6), 1.0)
        gamma, beta, mean, variance = layer.get_weights()
        layer.set_weights([gamma * ratio, (beta - lab_mean) * ratio + target_mean, mean, variance])


def reestimate_batch_norms(model, lab_crops: np.ndarray, from_block: int) -> None:
    """Plain AdaBN: the moving statistics from ``from_block`` upward become the lab's. A batch
    norm that is not trainable runs in inference mode even in a training-mode pass, so the
    layers below keep theirs while each one above is re-estimated on the ones before it."""
    import keras

    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    for layer in norms:
        layer.trainable, layer.momentum = block_of(layer.name) >= from_block, 0.0
    model(lab_crops, training=True)
    for layer in norms:
        layer.trainable, layer.momentum = True, 0.99


def main(argv=None) -> None:
    import keras

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--shipped", type=Path, default=Path("models/hematovision-mobilenetv2.keras"))
    parser.add_argument("--kaggle-only", type=Path, default=Path("training/cache/v3-kaggle/model.keras"))
    parser.add_argument("--pbc-only", type=Path, default=Path("training/cache/v3-pbc/model.keras"))
    parser.add_argument("--target", choices=("training", "imagenet"), default="training")
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--images", type=int, default=STATISTICS_IMAGES, help="lab crops the statistics come from")
    parser.add_argument("--depths", type=lambda text: tuple(None if d == "none" else int(d) for d in text.split(",")),
                        default=DEPTHS, help="e.g. none,17,16")
    args = parser.parse_args(argv)
    root = args.data_dir.parent
    jobs = validation_jobs(args.data_dir, root / "pbc", root / "lisc")
    settings = {"LISC, shipped": (args.shipped, ("kaggle", "pbc"), jobs["lisc"]),
                "PBC validation, Kaggle-only": (args.kaggle_only, ("kaggle",), jobs["pbc_val"]),
                "Kaggle validation, PBC-only": (args.pbc_only, ("pbc",), jobs["kaggle_val"])}
    for name, (path, sources, rows) in settings.items():
        framing = load_classifier(path, backend="tensorflow")  # its card's colour normalisation
        crops = np.stack([framing.prepare(image)[0] for image, _, _ in rows]).astype(np.float32)
        training = np.stack([framing.prepare(p)[0] for p in training_paths(args.data_dir, sources)]).astype(np.float32)
        labels = np.array([label for _, label, _ in rows])
        cells = np.array([str(cell) for _, _, cell in rows])
        sample = crops[np.random.default_rng(0).choice(len(crops), min(args.images, len(crops)), replace=False)]
        for depth in args.depths:
            model = keras.saving.load_model(path, compile=False)
            if depth is not None and args.target == "training":
                align_batch_norms(model, sample, training, depth)
            elif depth is not None:
                reestimate_batch_norms(model, sample, depth)
            weights, bias = model.layers[-1].get_weights()
            features, softmax = keras.Model(model.input, [model.get_layer(OTHER_TYPE_LAYER).output, model.output]
                                            ).predict(crops, batch_size=64, verbose=0)
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
            print(f"{name}, batch norms {args.target}-aligned: {where}: "
                  + ", ".join(f"{key} {value:.3f}" for key, value in found.items()), flush=True)


if __name__ == "__main__":
    main()
