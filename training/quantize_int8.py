"""Quantise the OpenVINO network to int8 with NNCF, calibrated on training images only.

    python -m training.quantize_int8 --data-dir ../shared/data/blood-cells [--images 600]

Post-training quantisation: NNCF runs the f32 network on the calibration crops, picks a
scale for each layer's weights and activations, and writes ``<model>.openvino-int8.xml``
beside the model (with the model's SHA-256, so a stale file is never used). The crops are
what the classifier itself feeds the network (framed, colour-normalised), half from Kaggle
TRAIN (one image per cell of the training run's training split) and half from the PBC
training split; no validation, test or unseen-lab image is read. Then ``training.calibrate --precision int8`` and
``training.other_types --precision int8`` fit the trust checks to its features, and
``training.precision --precision int8 --save`` measures it against f32 into the card. NNCF is a training-time tool, not in requirements.txt:
``.venv/bin/pip install nncf==3.4.0``.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.model.backends import int8_beside, openvino_beside
from hematovision.model.classifier import DEFAULT_MODEL_PATH, card_beside, load_classifier
from hematovision.model.model_card import file_sha256, load_model_card
from training import data


def calibration_records(data_dir: Path, count: int, training_split: tuple[int, float], seed: int = 0,
                        sources: tuple[str, ...] = ("kaggle", "pbc")) -> list[data.Record]:
    """``count`` training images of ``sources``: one per Kaggle training cell and PBC training
    images, seeded (half each for both). ``training_split`` is the training run's (seed,
    validation fraction): the Kaggle cells it held out for validation are left out, so the
    validation figures that compare quantisation settings come from cells that set no range."""
    kaggle = []
    if "kaggle" in sources:
        records = data.read_sources(data_dir, "TRAIN")
        train_cells, _ = data.split_cells(records, training_split[1], training_split[0])
        kaggle = data.images_per_cell([r for r in records if r.cell in train_cells], 1, seed)
    pbc = data.read_pbc(data_dir.parent / "pbc") if "pbc" in sources else []
    pbc_train = [record for record, part in zip(pbc, data.split_pbc(pbc)) if part == "train"] if pbc else []
    rng = np.random.default_rng(seed)
    half = count // 2 if pbc_train else count
    kaggle = [kaggle[i] for i in sorted(rng.choice(len(kaggle), min(half, len(kaggle)), replace=False))]
    if not pbc_train:
        return kaggle
    pbc_train = [pbc_train[i] for i in sorted(rng.choice(len(pbc_train), count - len(kaggle), replace=False))]
    return kaggle + pbc_train


def main(argv=None) -> None:
    import nncf
    import openvino as ov

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="the Kaggle blood-cells folder")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--images", type=int, default=600, help="calibration images")
    parser.add_argument("--sources", type=lambda text: tuple(text.split(",")), default=("kaggle", "pbc"),
                        help="the labs the model trained on (a leave-one-lab-out model: kaggle or pbc)")
    args = parser.parse_args(argv)
    classifier = load_classifier(args.model)  # also makes sure the f32 network exists
    card_path = card_beside(args.model)
    if card_path is None:
        raise SystemExit(f"No model card beside {args.model}: its training split decides which cells may calibrate.")
    settings = load_model_card(card_path).training.settings
    records = calibration_records(args.data_dir, args.images, (settings["seed"], settings["val_fraction"]),
                                  sources=args.sources)
    crops = np.stack([classifier.prepare(record.path)[0] for record in records]).astype(np.float32)
    f32_xml = openvino_beside(args.model)
    if not f32_xml.is_file():
        raise SystemExit(f"No f32 network beside {args.model}; run `python -m training.export_openvino` first.")
    network = ov.Core().read_model(str(f32_xml))
    quantised = nncf.quantize(network, nncf.Dataset(list(crops), lambda crop: crop[None]),
                              subset_size=len(crops))
    out = int8_beside(args.model)
    ov.save_model(quantised, str(out), compress_to_fp16=False)
    identity = {
        "file": out.name, "weights_file": out.with_suffix(".bin").name,
        "weights_sha256": file_sha256(out.with_suffix(".bin")), "model_sha256": file_sha256(args.model),
        "precision": "int8",
        "calibration": f"{len(crops)} training images ("
                       + ", ".join({"kaggle": "Kaggle TRAIN one per training cell", "pbc": "PBC train split"}[source]
                                   for source in args.sources) + "), seed 0",
        "command": "python -m training.quantize_int8 --data-dir ../shared/data/blood-cells"
                   + ("" if args.model == DEFAULT_MODEL_PATH else f" --model {args.model}")
                   + ("" if args.images == 600 else f" --images {args.images}")
                   + ("" if args.sources == ("kaggle", "pbc") else f" --sources {','.join(args.sources)}"),
    }
    out.with_suffix(".json").write_text(json.dumps(identity, indent=2) + "\n")
    # A new network: the trust checks fitted to the old one's features no longer apply.
    load_model_card(card_path).without_sections("trust_int8").with_sections(openvino_int8=identity).save(card_path)
    print(f"wrote {out} ({out.with_suffix('.bin').stat().st_size / 1e6:.1f} MB) from {len(crops)} calibration crops; "
          f"card {card_path}")


if __name__ == "__main__":
    main()
