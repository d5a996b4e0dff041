"""Do cropping around the cell and stain normalisation make the two sources look alike?

    python -m training.stain_probe --data-dir ../shared/data/blood-cells --pbc-dir ../shared/data/pbc

A cheap proxy for a fine-tune per option: frozen ImageNet MobileNetV2 features of the
frame_cell crops (or, for ``whole_image``, of the whole photo resized to 224x224), a
logistic regression trained on one source and scored on the other (validation parts
only: Kaggle TRAIN's validation cells and PBC's validation split). An option that helps
must raise cross-source accuracy without hurting in-source.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model import stain
from training import data


def white_balance(crop: np.ndarray) -> np.ndarray:
    """Scale each channel so the bright background (its 97th percentile) becomes 240."""
    pixels = crop.astype(np.float32)
    background = np.percentile(pixels.reshape(-1, 3), 97, axis=0)
    return np.clip(pixels * (240.0 / np.maximum(background, 1.0)), 0, 255).astype(np.uint8)


OPTIONS = {"none": lambda crop: crop, "white_balance": white_balance, "reinhard": stain.normalise_stain,
           "whole_image": lambda whole: whole}


def views(records: list[data.Record]) -> tuple[np.ndarray, np.ndarray]:
    """(frame_cell crops, whole images resized to 224x224) of ``records``."""
    from PIL import Image

    from hematovision.model.cells import frame_cell
    from hematovision.model.imaging import load_image

    crops, wholes = [], []
    for record in records:
        rgb = load_image(record.path)
        crops.append(frame_cell(rgb)[0])
        wholes.append(np.asarray(Image.fromarray(rgb).resize((224, 224), Image.Resampling.BILINEAR)))
    return np.stack(crops), np.stack(wholes)


def features(base, crops: np.ndarray, option: str) -> np.ndarray:
    normalise = OPTIONS[option]
    images = np.stack([normalise(c) for c in crops]).astype(np.float32)
    images = images / 127.5 - 1.0
    return base.predict(images, batch_size=64, verbose=0)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pbc-dir", type=Path, required=True)
    parser.add_argument("--per-cell", type=int, default=4, help="Kaggle images per training cell")
    parser.add_argument("--options", default=",".join(OPTIONS))
    args = parser.parse_args(argv)

    import keras
    from sklearn.linear_model import LogisticRegression

    from training.model import mobilenet_base

    base, _ = mobilenet_base("auto")
    pooled = keras.Sequential([base, keras.layers.GlobalAveragePooling2D()])

    kaggle = data.read_sources(args.data_dir, "TRAIN")
    train_cells, val_cells = data.split_cells(kaggle)
    rng = np.random.default_rng(0)
    by_cell: dict[str, list[int]] = {}
    for index, record in enumerate(kaggle):
        by_cell.setdefault(record.cell, []).append(index)
    kaggle_train = [i for c in sorted(train_cells) for i in rng.choice(by_cell[c], args.per_cell, replace=False)]
    kaggle_val = [i for c in sorted(val_cells) for i in rng.choice(by_cell[c], args.per_cell, replace=False)]

    pbc = data.read_pbc(args.pbc_dir)
    pbc_split = data.split_pbc(pbc)
    pbc_train = np.flatnonzero(pbc_split == "train")
    pbc_val = np.flatnonzero(pbc_split == "val")
    kaggle_labels = np.array([r.label for r in kaggle])
    pbc_labels = np.array([r.label for r in pbc])
    # The 400 + 400 training crops that hematovision.model.stain.REFERENCE_MEAN/STD average over.
    pick = np.random.default_rng(0)
    kaggle_train_cells = np.flatnonzero(np.isin([r.cell for r in kaggle], sorted(train_cells)))
    kaggle_reference = pick.choice(kaggle_train_cells, 400, replace=False)
    pbc_reference = pick.choice(pbc_train, 400, replace=False)
    # Only the images used here are loaded; each keeps its index.
    kaggle_crops = np.zeros((len(kaggle), 224, 224, 3), np.uint8)
    used = sorted(set(kaggle_train) | set(kaggle_val) | set(kaggle_reference))
    crops, wholes = views([kaggle[i] for i in used])
    kaggle_crops[used] = crops
    kaggle_wholes = np.zeros_like(kaggle_crops)
    kaggle_wholes[used] = wholes
    pbc_crops = np.zeros((len(pbc), 224, 224, 3), np.uint8)
    used = sorted(set(pbc_train) | set(pbc_val))
    crops, wholes = views([pbc[i] for i in used])
    pbc_crops[used] = crops
    pbc_wholes = np.zeros_like(pbc_crops)
    pbc_wholes[used] = wholes

    stats = [stain.lab_statistics(crop) for crop in
             list(kaggle_crops[kaggle_reference]) + list(pbc_crops[pbc_reference])]
    print("reference L*a*b* mean", np.round(np.mean([m for m, _ in stats], axis=0), 1).tolist(),
          "std", np.round(np.mean([s for _, s in stats], axis=0), 1).tolist(), flush=True)
    results = {}
    for option in args.options.split(","):
        kaggle_images, pbc_images = ((kaggle_wholes, pbc_wholes) if option == "whole_image"
                                     else (kaggle_crops, pbc_crops))
        fk_train = features(pooled, kaggle_images[kaggle_train], option)
        fk_val = features(pooled, kaggle_images[kaggle_val], option)
        fp_train = features(pooled, pbc_images[pbc_train], option)
        fp_val = features(pooled, pbc_images[pbc_val], option)
        scores = {}
        for name, (x, y) in {"kaggle": (fk_train, kaggle_labels[kaggle_train]),
                             "pbc": (fp_train, pbc_labels[pbc_train])}.items():
            fit = LogisticRegression(max_iter=2000, C=0.5).fit(x, y)
            scores[f"{name}->kaggle_val"] = round(float(fit.score(fk_val, kaggle_labels[kaggle_val])), 4)
            scores[f"{name}->pbc_val"] = round(float(fit.score(fp_val, pbc_labels[pbc_val])), 4)
        results[option] = scores
        print(option, json.dumps(scores), flush=True)


if __name__ == "__main__":
    main()
