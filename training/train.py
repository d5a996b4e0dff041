"""Fine-tune MobileNetV2 on Kaggle TRAIN and PBC and write the model and its model card.

    python -m training.train --data-dir ../shared/data/blood-cells [--sources kaggle,pbc]

Why it is shaped like this (2 CPU cores, about half an hour):
* Every image is framed with ``frame_cell`` once and cached, exactly as the app frames it,
  and every crop the network sees is stain-normalised as in the app (``--stain-normalise``).
* Blocks 0-9 of MobileNetV2 stay frozen in both stages, so their output (14x14x64 at
  ``block_9_add``, see ``--cut-layer``) is computed once per augmented copy and cached.
  Both stages then train only the part above it (blocks 10-16, Conv_1 and the head),
  several times cheaper per image than the whole network. Because that part is the same
  layer objects as the flat model, the trained weights land in the flat model directly.
* Augmentation is applied before caching (``lab``: flip/rotation, zoom and shift, blur,
  stain and colour change); each epoch draws one copy per image.
* Validation: Kaggle TRAIN split by original cell (``data.split_cells``) and PBC's
  validation split (``data.split_pbc``); PBC's test split is never loaded. The validation
  images stay held out of the final model: ``training.calibrate`` fits on them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from hematovision.model.cells import CellBox, crop_to_box
from hematovision.model.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH
from hematovision.model.metrics import majority_vote
from hematovision.model.model_card import MODEL_CARD_PATH, ModelCard, file_sha256, load_model_card
from hematovision.model.stain import NORMALISATIONS, background_colour, normalise_colour
from training import data

# The frozen part ends at this layer's output (cached); stage 2 trains blocks N+1 to 16
# and Conv_1, with their batch-norm layers frozen (small batches of one cell's copies
# would give poor statistics). Cutting at block 9 rather than 12 raised validation
# accuracy from 0.80 to 0.92 (training/EXPERIMENTS.md, runs 2 and 7).
CUT_LAYER = "block_9_add"
CUT_CHOICES = ("block_12_add", "block_11_add", "block_10_project_BN", "block_9_add", "block_5_add")


def cut_block(cut_layer: str) -> int:
    return int(cut_layer.split("_")[1])


def stage2_prefixes(cut_layer: str) -> tuple[str, ...]:
    return tuple(f"block_{i}_" for i in range(cut_block(cut_layer) + 1, 17)) + ("Conv_1",)


def stage2_blocks(cut_layer: str) -> str:
    return f"blocks {cut_block(cut_layer) + 1}-16"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--pbc-dir", type=Path, default=None, help="PBC folder (default: pbc beside --data-dir)")
    parser.add_argument("--sources", type=lambda text: tuple(text.split(",")), default=("kaggle", "pbc"),
                        help="comma-separated: kaggle, pbc (default both)")
    parser.add_argument("--kaggle-augment", choices=sorted(AUGMENTATIONS), default="unseen_lab")
    parser.add_argument("--pbc-augment", choices=sorted(AUGMENTATIONS), default="unseen_lab")
    parser.add_argument("--output", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--card", type=Path, default=MODEL_CARD_PATH)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--colour-normalisation", choices=NORMALISATIONS, default="background",
                        help="what every crop goes through before the network, as in the app (hematovision.model.stain)")
    parser.add_argument("--copies", type=int, default=5, help="augmented copies cached per image (first is unaugmented)")
    parser.add_argument("--kaggle-per-cell", type=int, default=12,
                        help="Kaggle TRAIN images used per cell (TRAIN holds ~36 near-copies of each)")
    parser.add_argument("--balance", action=argparse.BooleanOptionalAction, default=True,
                        help="weight images so each source and each class within it counts equally")
    parser.add_argument("--dropout", type=float, default=0.4)
    parser.add_argument("--l2", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--stage1-lr", type=float, default=1e-3)
    parser.add_argument("--stage1-epochs", type=int, default=8)
    parser.add_argument("--stage2-lr", type=float, default=1e-4)
    parser.add_argument("--stage2-epochs", type=int, default=20)
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--no-save", action="store_true", help="experiment only: do not write model or card")
    parser.add_argument("--weights", default="auto")
    parser.add_argument("--cut-layer", choices=CUT_CHOICES, default=CUT_LAYER,
                        help="last frozen layer, whose output is cached (an earlier cut trains "
                             "more blocks in stage 2 and needs its own cache)")
    args = parser.parse_args(argv)
    if args.pbc_dir is None:
        args.pbc_dir = args.data_dir.parent / "pbc"
    unknown = set(args.sources) - {"kaggle", "pbc"}
    if unknown or not args.sources:
        parser.error(f"--sources takes kaggle and/or pbc, not {','.join(sorted(unknown)) or 'nothing'}")
    return args


# -- augmentation -------------------------------------------------------------------

def dihedral(image: np.ndarray, code: int) -> np.ndarray:
    """One of the 8 flips/rotations of a square image (code 0 = unchanged)."""
    out = np.rot90(image, code % 4)
    return np.ascontiguousarray(out[:, ::-1] if code >= 4 else out)


def colour_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Small brightness, contrast and per-channel (stain) changes, as between smears."""
    pixels = image.astype(np.float32)
    gain = 1 + rng.uniform(-strength, strength, size=3) * 0.5
    brightness = rng.uniform(-strength, strength) * 255
    contrast = 1 + rng.uniform(-strength, strength)
    mean = pixels.mean()
    pixels = (pixels - mean) * contrast + mean + brightness
    return np.clip(pixels * gain, 0, 255).astype(np.uint8)


# Haematoxylin / eosin / DAB optical-density basis (Ruifrok & Johnston 2001, as in
# skimage.color.rgb2hed); Giemsa-type stains separate along the same two axes well
# enough to vary "more blue" and "more pink" independently.
HED_FROM_RGB = np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]], np.float32)
HED_FROM_RGB[2] = np.cross(HED_FROM_RGB[0], HED_FROM_RGB[1])
HED_FROM_RGB /= np.linalg.norm(HED_FROM_RGB, axis=1, keepdims=True)
RGB_FROM_HED = np.linalg.inv(HED_FROM_RGB)


def stain_jitter(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Scale and shift each stain's optical density, as between labs' staining protocols."""
    optical_density = -np.log((image.astype(np.float32) + 1.0) / 256.0)
    stains = optical_density.reshape(-1, 3) @ RGB_FROM_HED
    stains = stains * (1 + rng.uniform(-strength, strength, 3)) + rng.uniform(-strength, strength, 3) * 0.05
    rgb = 256.0 * np.exp(-np.maximum(stains @ HED_FROM_RGB, 0)) - 1.0
    return np.clip(rgb, 0, 255).reshape(image.shape).astype(np.uint8)


def lab_augment(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Differences between labs: stain, white balance, focus/resolution and framing.

    PBC photos are sharp and warm, Kaggle/BCCD ones soft and cool, so each copy gets a
    stain change, a per-channel gain, blur half of the time, and a zoom of up to 25%
    with a random shift (the crop's scale depends on the nucleus found).
    """
    from PIL import Image, ImageFilter

    picture = Image.fromarray(rescale_view(image, rng, 1.0, 1.25))
    if rng.random() < 0.5:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 2.0)))
    pixels = stain_jitter(np.asarray(picture), rng, strength)
    return colour_jitter(pixels, rng, strength / 2)


def hue_saturation_jitter(image: np.ndarray, rng: np.random.Generator, hue: float, saturation: float) -> np.ndarray:
    """Turn the hue wheel by up to ``hue`` (fraction of a turn) and scale saturation."""
    from PIL import Image

    hsv = np.asarray(Image.fromarray(image).convert("HSV")).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + int(round(rng.uniform(-hue, hue) * 256))) % 256
    hsv[..., 1] = np.clip(hsv[..., 1] * rng.uniform(1 - saturation, 1 + saturation), 0, 255)
    return np.asarray(Image.fromarray(hsv.astype(np.uint8), "HSV").convert("RGB"))


def rescale_view(image: np.ndarray, rng: np.random.Generator, low: float, high: float) -> np.ndarray:
    """Zoom by a factor in [low, high] about a shifted centre; zooming out pads with background,
    exactly as the app frames a box that passes a photo's edge (``cells.crop_to_box``)."""
    size = image.shape[0]
    side = int(round(size / rng.uniform(low, high)))
    x, y = rng.integers(0, abs(size - side) + 1, size=2)
    box = CellBox(int(x), int(y), side, True) if side <= size else CellBox(-int(x), -int(y), side, True)
    return crop_to_box(image, box, size)


def unseen_lab_augment(image: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Everything that changes between labs, wide enough to cover ones never seen (issue 12).

    Framing (zoom in or out by up to 30%, a tight crop padded with background), optics
    (blur, a cell only ~55-120 px across scaled back up, JPEG artefacts, sensor noise),
    stain (haematoxylin/eosin optical density, hue, saturation) and light (per-channel
    tint such as a yellow or grey background, brightness, contrast, gamma).
    """
    from io import BytesIO

    from PIL import Image, ImageFilter

    size = image.shape[0]
    pixels = rescale_view(image, rng, 0.77, 1.3)
    if rng.random() < 0.15:  # a tight crop, as exported by some analysers, padded as cells.crop_to_box pads
        keep = int(size * rng.uniform(0.6, 0.85)) // 2
        centre = size // 2
        framed = np.empty_like(pixels)
        framed[:] = np.round(background_colour(pixels)).astype(np.uint8)
        framed[centre - keep : centre + keep, centre - keep : centre + keep] = \
            pixels[centre - keep : centre + keep, centre - keep : centre + keep]
        pixels = framed
    picture = Image.fromarray(pixels)
    if rng.random() < 0.35:
        low = int(rng.uniform(55, 120))
        picture = picture.resize((low, low), Image.Resampling.BILINEAR).resize((size, size), Image.Resampling.BICUBIC)
    if rng.random() < 0.35:
        picture = picture.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 1.6)))
    pixels = stain_jitter(np.asarray(picture), rng, strength)
    pixels = hue_saturation_jitter(pixels, rng, 0.05, 0.35)
    values = pixels.astype(np.float32) / 255.0
    values = values ** rng.uniform(0.75, 1.35)
    values = values * rng.uniform(0.82, 1.08, size=3)  # tint: yellow, grey, blue backgrounds
    mean = values.mean()
    values = (values - mean) * rng.uniform(0.75, 1.25) + mean + rng.uniform(-0.08, 0.08)
    if rng.random() < 0.3:
        values = values + rng.normal(0, rng.uniform(0.005, 0.025), values.shape)
    pixels = np.clip(values * 255, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        buffer = BytesIO()
        Image.fromarray(pixels).save(buffer, "JPEG", quality=int(rng.uniform(30, 90)))
        pixels = np.asarray(Image.open(buffer).convert("RGB"))
    return pixels


AUGMENTATIONS = {"basic": colour_jitter, "lab": lab_augment, "unseen_lab": unseen_lab_augment}
# "basic" at 0.08 is the recipe the Kaggle activation cache was built with.
AUGMENT_STRENGTH = {"basic": 0.08, "lab": 0.25, "unseen_lab": 0.3}


def augmented_copy(crops: np.ndarray, copy: int, seed: int, strength: float, kind: str = "basic") -> np.ndarray:
    """Copy 0 is the crops as they are; copy k>0 is a seeded random flip/rotation + ``kind`` change."""
    if copy == 0:
        return crops
    rng = np.random.default_rng([seed, copy])
    codes = rng.integers(1, 8, size=len(crops))  # never the identity: copy 0 has it
    change = AUGMENTATIONS[kind]
    return np.stack([change(dihedral(c, k), rng, strength) for c, k in zip(crops, codes)])


def model_inputs(crops: np.ndarray, copy: int, seed: int, strength: float, kind: str, normalisation: str) -> np.ndarray:
    """What the network is fed for one augmented copy: augmentation first, then the same
    colour normalisation the app applies to every crop."""
    images = augmented_copy(crops, copy, seed, strength, kind)
    return np.stack([normalise_colour(image, normalisation) for image in images]).astype(np.float32)


# -- model pieces --------------------------------------------------------------------

def split_model(model, cut_layer: str = CUT_LAYER):
    """(bottom: input -> cut layer, top: cut layer -> probabilities), sharing layers."""
    import keras

    cut = model.get_layer(cut_layer).output
    return keras.Model(model.input, cut), keras.Model(cut, model.output)


def cached_activations(bottom, crops, args, name: str, kind: str, strength: float) -> tuple[np.ndarray, dict]:
    """float16 (copies, N, height, width, channels) activations at the cut layer (14x14x64 at
    block_9_add), cached on disk.

    Also returns how long building the cache took (recorded beside it), so a run that
    reuses the cache can still report the full training cost.
    """
    key = f"acts-{name}-{data.framing_key()}-c{args.copies}-j{strength}-s{args.seed}-{len(crops)}"
    if args.cut_layer != "block_12_add":  # caches made before the cut was an option have no suffix
        key += f"-{args.cut_layer}"
    if kind != "basic":
        key += f"-{kind}"
    if args.colour_normalisation != "none":
        key += "-stain" if args.colour_normalisation == "reinhard" else f"-{args.colour_normalisation}"
    path = data.CACHE_DIR / f"{key}.npy"
    meta_path = data.CACHE_DIR / f"{key}.json"
    if path.is_file():
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {"seconds": None}
        return np.load(path, mmap_mode="r"), {**meta, "built_this_run": False}
    shape = (args.copies, len(crops)) + tuple(bottom.output.shape[1:])
    out = np.lib.format.open_memmap(str(path) + ".tmp.npy", mode="w+", dtype=np.float16, shape=shape)
    started = time.time()
    jobs = [(copy, start) for copy in range(args.copies) for start in range(0, len(crops), 512)]

    def submit(pool, job):
        copy, start = job
        return pool.submit(model_inputs, crops[start : start + 512], copy, args.seed * 1000 + start,
                           strength, kind, args.colour_normalisation)

    # One worker process augments and normalises the next chunk while TensorFlow runs
    # this one: the numpy work is about as long as the forward pass.
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool:
        pending = submit(pool, jobs[0])
        for number, (copy, start) in enumerate(jobs):
            images = pending.result()
            if number + 1 < len(jobs):
                pending = submit(pool, jobs[number + 1])
            out[copy, start : start + len(images)] = bottom.predict(images, batch_size=64, verbose=0).astype(np.float16)
            if start + 512 >= len(crops):
                print(f"  cached {name} copy {copy + 1}/{args.copies} after {time.time() - started:.0f}s", flush=True)
    out.flush()
    del out
    os.replace(str(path) + ".tmp.npy", path)
    meta = {"seconds": round(time.time() - started, 1)}
    meta_path.write_text(json.dumps(meta))
    return np.load(path, mmap_mode="r"), {**meta, "built_this_run": True}


def set_stage(model, stage: int, cut_layer: str = CUT_LAYER) -> None:
    """Stage 1: only the Dense head trains. Stage 2: also blocks 13-16 and Conv_1 (not BN)."""
    prefixes = stage2_prefixes(cut_layer)
    for layer in model.layers:
        if layer.name == "predictions":
            layer.trainable = True
        elif stage == 2 and layer.name.startswith(prefixes) and "BN" not in layer.name and not layer.name.endswith("_bn"):
            layer.trainable = True
        else:
            layer.trainable = False


def compile_top(top, lr: float, smoothing: float) -> None:
    import keras

    top.compile(
        optimizer=keras.optimizers.Adam(lr),
        loss=keras.losses.CategoricalCrossentropy(label_smoothing=smoothing),
        metrics=["accuracy"],
    )


def evaluate_top(top, acts, labels, cells) -> dict:
    """Image and cell accuracy and plain cross-entropy of ``top`` on unaugmented activations."""
    probs = top.predict(np.asarray(acts, dtype=np.float32), batch_size=128, verbose=0)
    hits = probs.argmax(axis=1) == labels
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1))))
    votes = majority_vote(cells, probs)
    truth = {cell: int(label) for cell, label in zip(cells, labels)}
    cell_hits = [votes[c] == truth[c] for c in votes]
    return {"accuracy": float(hits.mean()), "cell_accuracy": float(np.mean(cell_hits)),
            "loss": loss, "cells": len(votes), "images": int(len(labels))}


def balanced_weights(sources: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-image weights under which every source, and every class within a source, counts
    equally (mean weight 1): Kaggle would otherwise outweigh PBC and neutrophils the rest."""
    weights = np.empty(len(labels), np.float32)
    groups = {(s, l) for s, l in zip(sources, labels)}
    per_source = {s: sum(1 for g in groups if g[0] == s) for s, _ in groups}
    for source, label in groups:
        rows = (sources == source) & (labels == label)
        weights[rows] = 1.0 / (len(per_source) * per_source[source] * rows.sum())
    return weights * len(labels)


def run_stage(top, acts, labels, train_idx, val, epochs, args, rng, weights=None, fixed_epochs=None):
    """Train one stage, one random augmented copy per image per epoch.

    With validation data it keeps the weights of the epoch with the lowest validation
    loss and stops after ``patience`` epochs without improvement; with ``fixed_epochs``
    it simply runs that many.
    """
    onehot = np.eye(len(CLASS_NAMES), dtype=np.float32)
    best = {"loss": np.inf}
    best_weights, best_epoch, history = None, 0, []
    total = fixed_epochs or epochs
    for epoch in range(1, total + 1):
        started = time.time()
        order = rng.permutation(train_idx)
        copies = rng.integers(0, acts.shape[0], size=len(order))
        # Gather in sorted order per copy: reading a memmap sequentially is much faster.
        x = np.empty((len(order),) + acts.shape[2:], np.float32)
        for copy in range(acts.shape[0]):
            where = np.flatnonzero(copies == copy)
            rows = order[where]
            sort = np.argsort(rows)
            x[where[sort]] = acts[copy, rows[sort]]
        fit = top.fit(x, onehot[labels[order]], batch_size=args.batch_size, epochs=1, verbose=0, shuffle=False,
                      sample_weight=None if weights is None else weights[order])
        record = {"epoch": epoch, "train_loss": round(float(fit.history["loss"][0]), 4),
                  "train_accuracy": round(float(fit.history["accuracy"][0]), 4),
                  "seconds": round(time.time() - started, 1)}
        if val is not None:
            scores = evaluate_top(top, *val)
            record.update({f"val_{k}": round(v, 4) for k, v in scores.items() if k in ("loss", "accuracy", "cell_accuracy")})
            if scores["loss"] < best["loss"]:
                best, best_epoch, best_weights = scores, epoch, top.get_weights()
        history.append(record)
        print("   ", json.dumps(record), flush=True)
        if val is not None and epoch - best_epoch >= args.patience:
            break
    if best_weights is not None:
        top.set_weights(best_weights)
    return best_epoch or total, best if val is not None else None, history


# -- data from each source ----------------------------------------------------------

@dataclass
class SourceData:
    """One source's cached activations and where each image belongs."""

    name: str
    acts: np.ndarray  # (copies, N, height, width, channels) float16, at the cut layer
    labels: np.ndarray
    cells: np.ndarray
    is_val: np.ndarray  # bool; the rest trains
    cache: dict
    description: dict


def kaggle_source(args, bottom) -> SourceData:
    every_image = data.read_sources(args.data_dir, "TRAIN")
    train_cells, val_cells = data.split_cells(every_image, args.val_fraction, args.seed)
    records = data.images_per_cell(every_image, args.kaggle_per_cell, args.seed)
    cells = np.array([r.cell for r in records])
    crops = data.cached_crops(records, "TRAIN")
    acts, cache = cached_activations(bottom, crops, args, "TRAIN", args.kaggle_augment,
                                     AUGMENT_STRENGTH[args.kaggle_augment])
    return SourceData(
        "kaggle", acts, np.array([r.label for r in records]), cells,
        np.isin(cells, sorted(val_cells)), cache,
        {"name": "Kaggle Blood Cell Images (BCCD-derived), TRAIN folder", "license": "MIT",
         "manifest_sha256": file_sha256(Path(args.data_dir) / "MANIFEST"),
         "images": len(records), "images_in_folder": len(every_image),
         "images_per_cell": f"at most {args.kaggle_per_cell}, seeded",
         "cells": len(train_cells) + len(val_cells),
         "training_cells": len(train_cells), "validation_cells": len(val_cells),
         "augmentation": args.kaggle_augment,
         "url_note": "https://www.kaggle.com/datasets/paultimothymooney/blood-cells (dataset2-master), "
                     "made in github.com/dhruvp/wbc-classification from BCCD (github.com/Shenggan/BCCD_Dataset)"},
    )


def pbc_source(args, bottom) -> SourceData:
    records = data.read_pbc(args.pbc_dir)
    split = data.split_pbc(records)
    # The PBC test split is never loaded here: not cached, not trained on, not validated on.
    kept = [r for r, part in zip(records, split) if part != "test"]
    kept_split = split[split != "test"]
    crops = data.cached_crops(kept, "PBC-trainval")
    acts, cache = cached_activations(bottom, crops, args, "PBC", args.pbc_augment,
                                     AUGMENT_STRENGTH[args.pbc_augment])
    counts = {name: int(np.sum([r.label == i for r in records])) for i, name in enumerate(CLASS_NAMES)}
    return SourceData(
        "pbc", acts, np.array([r.label for r in kept]), np.array([r.cell for r in kept]),
        kept_split == "val", cache,
        {"name": "PBC dataset normal DIB (Acevedo et al. 2020, Data in Brief 30:105474), 4-class subset",
         "license": "CC BY 4.0", "manifest_sha256": file_sha256(Path(args.pbc_dir) / "MANIFEST"),
         "images": len(records), "images_per_class": counts,
         "training_images": int(np.sum(kept_split == "train")), "validation_images": int(np.sum(kept_split == "val")),
         "test_images": int(np.sum(split == "test")), "augmentation": args.pbc_augment,
         "split": "seeded (2026), stratified by class: 20% test, 16% validation, 64% training "
                  "(training.data.split_pbc); one photo per cell"},
    )


SOURCE_LOADERS = {"kaggle": kaggle_source, "pbc": pbc_source}


# -- main ----------------------------------------------------------------------------

def train(args) -> dict:
    import keras
    import tensorflow as tf

    from training.model import build_classifier, mobilenet_base

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    started = time.time()

    base, weight_source = mobilenet_base(args.weights)
    model = build_classifier(base, dropout=args.dropout, l2=args.l2)
    bottom, top = split_model(model, args.cut_layer)
    sources = []
    for name in args.sources:
        print(f"Source {name}: framing (cached) and {args.cut_layer} activations for {args.copies} copies ...", flush=True)
        source = SOURCE_LOADERS[name](args, bottom)
        print(f"  {len(source.labels)} images, {int((~source.is_val).sum())} training, "
              f"{int(source.is_val.sum())} validation", flush=True)
        sources.append(source)
    acts = sources[0].acts if len(sources) == 1 else np.concatenate([s.acts for s in sources], axis=1)
    labels = np.concatenate([s.labels for s in sources])
    cells = np.concatenate([s.cells for s in sources])
    is_val = np.concatenate([s.is_val for s in sources])
    train_idx, val_idx = np.flatnonzero(~is_val), np.flatnonzero(is_val)
    val = (acts[0, val_idx], labels[val_idx], cells[val_idx])
    rng = np.random.default_rng(args.seed)
    source_names = np.concatenate([[s.name] * len(s.labels) for s in sources])
    weights = balanced_weights(source_names[train_idx], labels[train_idx]) if args.balance else None
    sample_weights = None
    if weights is not None:
        sample_weights = np.zeros(len(labels), np.float32)
        sample_weights[train_idx] = weights

    print("Stage 1: head only", flush=True)
    set_stage(model, 1, args.cut_layer)
    compile_top(top, args.stage1_lr, args.label_smoothing)
    epochs1, val1, hist1 = run_stage(top, acts, labels, train_idx, val, args.stage1_epochs, args, rng, sample_weights)
    print(f"Stage 2: {stage2_blocks(args.cut_layer)} and Conv_1 at a low learning rate", flush=True)
    set_stage(model, 2, args.cut_layer)
    compile_top(top, args.stage2_lr, args.label_smoothing)
    epochs2, val2, hist2 = run_stage(top, acts, labels, train_idx, val, args.stage2_epochs, args, rng, sample_weights)
    validation = {"images": int(len(val_idx)), "accuracy": round(val2["accuracy"], 6),
                  "cell_accuracy": round(val2["cell_accuracy"], 6), "loss": round(val2["loss"], 6),
                  "stage1_best_epoch": epochs1, "stage2_best_epoch": epochs2,
                  "stage1_accuracy": round(val1["accuracy"], 6)}
    offset = 0
    for source in sources:
        rows = np.flatnonzero(source.is_val) + offset
        scores = evaluate_top(top, acts[0, rows], labels[rows], cells[rows])
        validation[source.name] = {k: round(v, 6) if isinstance(v, float) else v for k, v in scores.items()}
        offset += len(source.labels)
    print("Validation:", json.dumps(validation), flush=True)

    seconds = round(time.time() - started, 1)
    cache_seconds = sum(s.cache["seconds"] or 0 for s in sources)
    reused = [s.name for s in sources if not s.cache["built_this_run"]]
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                if k not in ("output", "card", "no_save", "data_dir", "pbc_dir")}
    settings.update({
        "architecture": "MobileNetV2 alpha 1.0, 224x224, GlobalAveragePooling, dropout, Dense softmax",
        "frozen": f"all layers up to {args.cut_layer}; all batch-norm layers",
        "stage1": "Dense head only", "stage2": f"{stage2_blocks(args.cut_layer)} + Conv_1 (not batch-norm) + head",
        "stage1_epochs_run": len(hist1), "stage2_epochs_run": len(hist2),
        "optimizer": "Adam", "loss": "categorical cross-entropy with label smoothing",
        "augmentation": {
            "basic": (f"{args.copies - 1} cached copies per image of a random flip/90-degree rotation and a "
                      f"colour change (brightness, contrast, per-channel gain, strength {AUGMENT_STRENGTH['basic']})"),
            "lab": (f"{args.copies - 1} cached copies per image of a random flip/90-degree rotation, a zoom of "
                    f"up to 25% with a random shift, Gaussian blur (sigma 0.5-2) half of the time, a stain change "
                    f"in haematoxylin/eosin optical-density space and a colour change (strength "
                    f"{AUGMENT_STRENGTH['lab']})"),
            "unseen_lab": (f"{args.copies - 1} cached copies per image of a random flip/90-degree rotation, a zoom "
                           f"in or out by up to 30% with a shift (padded with background), a tight crop padded with "
                           f"background (15%), a cell scaled down to 55-120 px and back (35%), Gaussian blur (35%), "
                           f"a stain change in haematoxylin/eosin optical-density space (strength "
                           f"{AUGMENT_STRENGTH['unseen_lab']}), hue +-5% and saturation +-35%, gamma 0.75-1.35, a "
                           f"per-channel tint 0.82-1.08, contrast +-25%, brightness +-8%, sensor noise (30%) and JPEG "
                           f"quality 30-90 (30%)"),
            "used": {s.name: s.description["augmentation"] for s in sources},
            "note": "plus the unaugmented image; one copy drawn per image per epoch",
        },
        "early_stopping": f"lowest validation loss (all sources' validation images together), patience {args.patience}",
        "final_model_trained_on": "training parts only: the validation cells/images are held out, because "
                                  "temperature scaling, the abstain threshold and the OOD threshold are fitted on them",
        "framing": "hematovision.model.cells.frame_cell, cached once",
    })
    summary = {
        "command": "python -m training.train " + " ".join(sys.argv[1:]) if sys.argv[1:] else "python -m training.train",
        "seconds": seconds,
        "seconds_note": ("wall-clock of this run, activation caches included" if not reused else
                         f"wall-clock of this run, which reused the activation cache of {', '.join(reused)}; "
                         f"building the caches took {cache_seconds:.0f} s in all"),
        "activation_cache_seconds": cache_seconds,
        "imagenet_weights": weight_source,
        "sources": list(args.sources),
        "settings": settings,
        "validation": validation,
        "history": {"stage1": hist1, "stage2": hist2},
    }
    if not args.no_save:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        for layer in model.layers:
            layer.trainable = True  # saved model: nothing frozen for whoever loads it
        model.save(args.output)
        write_card(args, summary, {s.name: s.description for s in sources})
        print(f"Saved {args.output} and {args.card}", flush=True)
    print(f"Training took {seconds:.0f}s", flush=True)
    return summary


LIMITS = [
    "It learned from 277 white cells of one lab (Kaggle/BCCD, each photographed once and augmented "
    "about 35 times) and about 2,300 cells of a second lab (PBC, Barcelona), and was measured on a third "
    "(LISC, Tehran); other stains, microscopes, magnifications or scanners may do worse. Cells from a new lab "
    "are often marked 'unfamiliar lab': check them.",
    "It names four classes. Basophils, immature granulocytes, erythroblasts and platelets are recognised "
    "as another cell type most of the time (learned from one lab's cells); blasts, smudged or broken cells "
    "were not in that training and may still be called one of the four. On LISC the check takes some "
    "lymphocytes for erythroblasts.",
    "Cells are found by their stained nucleus; touching or overlapping white cells may be counted as one.",
    "Its weakest distinctions are eosinophil versus neutrophil and lymphocyte versus erythroblast.",
    "The recipe trained on one lab only does poorly on the other (leave-one-lab-out): a user's lab unlike "
    "both may do worse than the LISC numbers.",
    "The Kaggle test set holds only 71 distinct cells (4 monocytes), so its accuracy is uncertain by "
    "several points; see the confidence intervals.",
    "The PBC test split comes from the same lab as PBC training images: it measures new cells, not a new lab.",
    "It is a teaching and research demo, not a medical device, and must not be used for diagnosis.",
]


def write_card(args, training_summary: dict, sources: dict) -> None:
    """Write the training and data sections; keep no stale evaluation of an older model."""
    card = load_model_card(args.card) or ModelCard.blank(args.card)
    card.with_training(
        model_file=args.output.name,
        model_sha256=file_sha256(args.output),
        class_names=list(CLASS_NAMES),
        input_size=224,
        framing="cropped around the white cell (hematovision.model.cells.frame_cell): a square 2.2 times the "
                "extent of the most strongly stained nucleus, centred on it, filled with the slide's background "
                "colour where it passes the photo's edge, resized to 224x224",
        training=training_summary,
        data=sources,
        limits=LIMITS,
    ).save()


def main(argv=None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
