"""Write the OpenVINO network next to a Keras model, and its identity into the model card.

    python -m training.export_openvino [--model models/hematovision-mobilenetv2.keras]

The network has the three outputs every forward pass reads (pooled block-12 features, final
pooled features, softmax), in f32. Predictions use it by default (``hematovision/model/
backends.py``); the app, CLI and API convert one into the cache themselves when it is
missing or was made from another model file, so this step only saves them that time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hematovision.model.backends import export_openvino, openvino_beside
from hematovision.model.classifier import (
    DEFAULT_MODEL_PATH,
    FEATURE_LAYER,
    OTHER_TYPE_LAYER,
    _load_keras,
    card_beside,
)
from hematovision.model.model_card import file_sha256, load_model_card


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args(argv)
    sha = file_sha256(args.model)
    xml = export_openvino(_load_keras(args.model), openvino_beside(args.model), sha, FEATURE_LAYER, OTHER_TYPE_LAYER)
    card_path = card_beside(args.model)
    if card_path is not None:
        load_model_card(card_path).with_sections(openvino={
            "file": xml.name, "weights_file": xml.with_suffix(".bin").name,
            "weights_sha256": file_sha256(xml.with_suffix(".bin")), "model_sha256": sha, "precision": "f32",
            "command": "python -m training.export_openvino" + ("" if args.model == DEFAULT_MODEL_PATH
                                                               else f" --model {args.model}"),
        }).save(card_path)
    print(f"wrote {xml} and {xml.with_suffix('.bin').name}" + (f"; card {card_path}" if card_path else ""))


if __name__ == "__main__":
    main()
