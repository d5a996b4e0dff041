"""The white-cell classifier: the committed Keras model behind a small, fast interface.

The model takes raw RGB pixels (0-255) at 224x224; scaling to MobileNetV2's -1..1 range
is a layer inside it, so every caller feeds the same thing. What callers add here is
framing: each image is cropped around its white cell first (see ``cells.py``), exactly
as the training script did.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np

from hematovision.cells import CellBox, frame_cell
from hematovision.imaging import ImageSource, load_image

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI

CLASS_NAMES: tuple[str, ...] = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
PROJECT_ROOT = Path(__file__).resolve().parent.parent
MODELS_DIR = PROJECT_ROOT / "models"
DEFAULT_MODEL_PATH = MODELS_DIR / "hematovision-mobilenetv2.keras"
MODEL_CARD_PATH = MODELS_DIR / "model-card.json"
# Name of the last convolutional layer, the one Grad-CAM looks at.
LAST_CONV_LAYER = "Conv_1"
# Batch size for forward passes: big enough to keep both cores busy, small enough
# that a LIME or SHAP batch never needs much memory.
FORWARD_BATCH = 32


def display_name(class_name: str) -> str:
    """'NEUTROPHIL' -> 'Neutrophil'."""
    return class_name.capitalize()


@dataclass
class Prediction:
    """What the classifier says about one image."""

    label: str
    confidence: float
    probabilities: dict[str, float]
    box: CellBox
    model_input: np.ndarray = field(repr=False)  # the 224x224 crop the model saw

    @property
    def class_index(self) -> int:
        return CLASS_NAMES.index(self.label)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "cell_box": self.box.as_dict(),
        }


class Classifier:
    """Wraps a loaded Keras model; build it with ``load_classifier()``."""

    def __init__(self, model, model_path: Path | None = None) -> None:
        import tensorflow as tf

        self.model = model
        self.model_path = model_path
        self.input_size = int(model.input_shape[1])
        # One traced graph for every batch size: perturbation explainers call this
        # thousands of times, and model.predict() per call costs ~10x more.
        self._forward = tf.function(
            lambda batch: model(batch, training=False),
            input_signature=[tf.TensorSpec([None, self.input_size, self.input_size, 3], tf.float32)],
            reduce_retracing=True,
        )

    # -- framing -------------------------------------------------------------
    def prepare(self, image: ImageSource) -> tuple[np.ndarray, CellBox]:
        """Load any supported input and return (model-size crop of the cell, its box)."""
        return frame_cell(load_image(image), self.input_size)

    # -- raw forward passes ---------------------------------------------------
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Class probabilities for model-size RGB images, shape (N, 224, 224, 3), 0-255."""
        batch = np.asarray(batch, dtype=np.float32)
        if batch.ndim == 3:
            batch = batch[None]
        outputs = [
            self._forward(batch[start : start + FORWARD_BATCH]).numpy()
            for start in range(0, len(batch), FORWARD_BATCH)
        ]
        if not outputs:
            return np.zeros((0, len(CLASS_NAMES)), np.float32)
        return np.concatenate(outputs, axis=0)

    # -- user-facing predictions ----------------------------------------------
    def predict(self, image: ImageSource) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Iterable[ImageSource]) -> list[Prediction]:
        prepared = [self.prepare(image) for image in images]
        if not prepared:
            return []
        crops = np.stack([crop for crop, _ in prepared])
        probabilities = self.predict_proba(crops)
        return [
            _to_prediction(probs, box, crop)
            for probs, (crop, box) in zip(probabilities, prepared)
        ]


def _to_prediction(probs: np.ndarray, box: CellBox, crop: np.ndarray) -> Prediction:
    best = int(np.argmax(probs))
    return Prediction(
        label=CLASS_NAMES[best],
        confidence=float(probs[best]),
        probabilities={name: float(p) for name, p in zip(CLASS_NAMES, probs)},
        box=box,
        model_input=crop,
    )


@functools.lru_cache(maxsize=4)
def load_classifier(model_path: str | Path | None = None) -> Classifier:
    """Load the committed model (or another ``.keras`` file) once per process."""
    import keras

    path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"Model file not found: {path}. Train one with `python -m training.train`."
        )
    model = keras.saving.load_model(path, compile=False)
    return Classifier(model, path)


def class_index(name: str) -> int:
    """Accept 'neutrophil', 'Neutrophils', 'NEUTROPHIL'... and return its index."""
    key = name.strip().upper().rstrip("S")
    for index, class_name in enumerate(CLASS_NAMES):
        if class_name == key:
            return index
    raise ValueError(f"Unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}.")


