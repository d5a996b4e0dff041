"""The white-cell classifier: the committed Keras model behind a small, fast interface.

The model takes raw RGB pixels (0-255) at 224x224; scaling to MobileNetV2's -1..1 range
is a layer inside it, so every caller feeds the same thing. What callers add here is
framing: each image is cropped around its white cell first (see ``cells.py``), exactly
as the training script did.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable

import numpy as np

from hematovision.model.backends import (
    Backend,
    OpenVinoBackend,
    TensorFlowBackend,
    chosen_backend,
    default_precision,
    openvino_network,
    requested_precision,
    shipped_f32_network,
)
from hematovision.model.cells import CellBox, crop_to_box, locate_white_cell, locate_white_cells
from hematovision.model.imaging import ImageSource, load_image
from hematovision.model.lab_profile import LabProfile
from hematovision.model.model_card import MODEL_CARD_PATH, MODELS_DIR, file_sha256, load_model_card
from hematovision.model.stain import normalise_colour
from hematovision.model.trust import TrustModel

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's start-up chatter out of the CLI

CLASS_NAMES: tuple[str, ...] = ("EOSINOPHIL", "LYMPHOCYTE", "MONOCYTE", "NEUTROPHIL")
PROJECT_ROOT = MODELS_DIR.parent
DEFAULT_MODEL_PATH = MODELS_DIR / "hematovision-mobilenetv2.keras"
# Name of the last convolutional layer, the one Grad-CAM looks at.
LAST_CONV_LAYER = "Conv_1"
# The out-of-distribution check reads this block's output, averaged over the image.
# The final pooled features are shaped to separate the four classes and place a cat photo
# among the cells; block 12's still describe what the image looks like (on validation and
# non-blood images they flagged 100% of non-blood images vs 44% for the final features).
FEATURE_LAYER = "block_12_add"
# The other-type detector (cell_types.py) reads the final pooled features: the ones the
# four-class decision is made from, which describe the cell itself.
OTHER_TYPE_LAYER = "avg_pool"
# Batch size for forward passes: big enough to keep both cores busy, small enough
# that a LIME or SHAP batch never needs much memory.
FORWARD_BATCH = 32


def display_name(class_name: str) -> str:
    """'NEUTROPHIL' -> 'Neutrophil'."""
    return class_name.capitalize()


@dataclass
class Prediction:
    """What the classifier says about one white cell.

    ``probabilities`` and ``confidence`` are calibrated (temperature-scaled); the raw
    softmax is kept beside them. ``status`` says whether to trust the call (see trust.py).
    """

    label: str
    confidence: float
    probabilities: dict[str, float]
    box: CellBox
    model_input: np.ndarray = field(repr=False)  # the 224x224 crop the model saw
    status: str = "confident"
    status_text: str = "Confident"
    raw_confidence: float = 0.0
    ood_score: float | None = None
    other_type: str | None = None  # with status other_cell_type: the type it looks most like
    other_type_probability: float | None = None  # p(none of the four types)

    @property
    def class_index(self) -> int:
        return CLASS_NAMES.index(self.label)

    def as_dict(self) -> dict:
        return {
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "probabilities": {k: round(v, 6) for k, v in self.probabilities.items()},
            "status": self.status,
            "status_text": self.status_text,
            "raw_confidence": round(self.raw_confidence, 6),
            "ood_score": None if self.ood_score is None else round(self.ood_score, 3),
            "other_type": self.other_type,
            "other_type_probability": (None if self.other_type_probability is None
                                       else round(self.other_type_probability, 6)),
            "cell_box": self.box.as_dict(),
        }


class Classifier:
    """The model with its framing, colour normalisation, trust checks and lab profile; build it
    with ``load_classifier()``.

    Forward-only passes run on ``backend`` (OpenVINO by default, see ``backends.py``). The
    Keras network, which the gradient methods need, is loaded from ``model_path`` the first
    time ``model`` is asked for, so a prediction never imports TensorFlow.
    """

    def __init__(self, model=None, model_path: Path | None = None, colour_normalisation: str = "none",
                 trust: TrustModel | None = None, lab_profile: LabProfile | None = None,
                 model_sha256: str | None = None, backend: Backend | None = None) -> None:
        if model is None and (backend is None or model_path is None):
            raise ValueError("A Classifier needs a Keras model, or a backend and the model file to load one from.")
        self._keras_model = model
        self.model_path = model_path
        self.model_sha256 = model_sha256
        self.shipped_backend = backend or TensorFlowBackend(model, FEATURE_LAYER, OTHER_TYPE_LAYER)
        self.backend = self.shipped_backend
        self.input_size = self.backend.input_size
        self.colour_normalisation = colour_normalisation
        self.trust = trust or TrustModel()
        self.lab_profile = lab_profile
        if lab_profile is not None:
            lab_profile.check_model(model_sha256, self.backend.precision)
            lab_profile.check_shapes(*self.backend.widths)
            if lab_profile.batch_norm is not None:  # its re-estimated batch norm: a network of its own
                self.backend = self.shipped_backend.with_batch_norm(*lab_profile.batch_norm)
        self._built: dict[Hashable, Any] = {}
        self._built_lock = threading.RLock()  # re-entrant: an explainer may build the CAM network

    def with_lab_profile(self, lab_profile: LabProfile | None) -> Classifier:
        """This classifier adapted by ``lab_profile`` (None: as shipped), sharing its backend
        and any Keras network already loaded, so nothing is read or compiled again (except the
        adapted network of a profile that re-estimates the last batch norm)."""
        return Classifier(self._keras_model, self.model_path, self.colour_normalisation, self.trust, lab_profile,
                          self.model_sha256, self.shipped_backend)

    @property
    def shipped_model(self):
        """The Keras network as trained (loaded on first use: it imports TensorFlow)."""
        if self._keras_model is None:
            with self._built_lock:
                if self._keras_model is None:
                    import keras

                    self._keras_model = keras.saving.load_model(self.model_path, compile=False)
        return self._keras_model

    @property
    def model(self):
        """The Keras network the gradient methods explain: the shipped one, with the lab
        profile's re-estimated batch norm and refitted head when one is in use."""
        if self.lab_profile is None or (self.lab_profile.head_weights is None and self.lab_profile.batch_norm is None):
            return self.shipped_model
        return self.built_once(("adapted_network",), self._adapted_keras)

    def _adapted_keras(self):
        from hematovision.model.last_batch_norm import keras_with

        batch_norm = self.lab_profile.batch_norm
        model = self.shipped_model if batch_norm is None else keras_with(self.shipped_model, *batch_norm)
        return model if self.lab_profile.head_weights is None else _with_refitted_head(model, self.lab_profile)

    def built_once(self, key: Hashable, build: Callable[[], Any]) -> Any:
        """What ``build()`` returns, built on the first call for ``key`` and kept with this classifier.

        For things derived from the model that are slow to make and safe to share, such as
        explainers and the Grad-CAM network: they live exactly as long as the classifier,
        so whoever keeps the classifier (the app's cache, a CLI run) keeps them too.
        """
        with self._built_lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def head_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The shipped network's final dense layer: weights (features, classes) and biases,
        from the backend's network when it can tell (no TensorFlow needed), else from Keras."""
        from_backend = self.backend.head_weights()
        if from_backend is not None:
            return from_backend
        weights, bias = self.shipped_model.layers[-1].get_weights()
        return weights, bias

    def built_count(self, kind: str) -> int:
        """How many things keyed ``(kind, ...)`` this classifier has built."""
        with self._built_lock:
            return sum(isinstance(key, tuple) and key[:1] == (kind,) for key in self._built)

    # -- framing -------------------------------------------------------------
    def _model_view(self, rgb: np.ndarray, box: CellBox) -> np.ndarray:
        crop = crop_to_box(rgb, box, self.input_size)
        return normalise_colour(crop, self.colour_normalisation)

    def prepare(self, image: ImageSource) -> tuple[np.ndarray, CellBox]:
        """Load any supported input and return (what the model sees of its main cell, the box)."""
        rgb = load_image(image)
        box = locate_white_cell(rgb)
        return self._model_view(rgb, box), box

    def prepare_cells(self, image: ImageSource) -> list[tuple[np.ndarray, CellBox]]:
        """Every white cell found in the image (a whole smear field may hold several)."""
        rgb = load_image(image)
        return [(self._model_view(rgb, box), box) for box in locate_white_cells(rgb)]

    # -- raw forward passes ---------------------------------------------------
    def predict_proba(self, batch: np.ndarray) -> np.ndarray:
        """Softmax (before calibration) for model-size RGB images, shape (N, 224, 224, 3), 0-255,
        from the images as they are: the function the explanation methods explain. (A
        prediction also reads each crop turned 180°, see ``outputs``; doing that for every
        perturbed image would double what LIME, SHAP and occlusion cost.)"""
        return self.outputs(batch, features=False, turned=False).probabilities

    def outputs(self, batch: np.ndarray, features: bool = True, turned: bool = True) -> ModelOutputs:
        """Raw softmax and the features the trust checks read.

        Unless ``turned`` is False, each output averages two forward passes, the crop as it is
        and the crop turned 180° (a cell on a slide has no up or down): the features, and the
        logits behind the softmax. It took the int8 network from 89.7% to 92.3% of the 2,513
        validation images (training/EXPERIMENTS.md, "Session 9: reading each cell twice").

        With a profile that re-estimates the last batch norm, the softmax comes from the
        adapted network and the features from the shipped one, in a second pass (skipped when
        ``features`` is False): the trust checks were fitted to the shipped network's features,
        and on the adapted ones more of LISC's own cells looked like other cell types (20 against 14 of
        76 held-out cells)."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        found = _forward(self.backend, batch, turned)
        if self.backend is not self.shipped_backend and features:
            shipped = _forward(self.shipped_backend, batch, turned)
            found = ModelOutputs(shipped.ood_features, shipped.type_features, found.probabilities)
        return found if self.lab_profile is None else self.lab_profile.apply(found)

    # -- user-facing predictions ----------------------------------------------
    def predict(self, image: ImageSource) -> Prediction:
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Iterable[ImageSource]) -> list[Prediction]:
        return self.predict_crops([self.prepare(image) for image in images])

    def predict_cells(self, image: ImageSource) -> list[Prediction]:
        """One prediction per white cell in the image, the most strongly stained nucleus first."""
        return self.predict_crops(self.prepare_cells(image))

    def predict_crops(self, prepared: list[tuple[np.ndarray, CellBox]]) -> list[Prediction]:
        if not prepared:
            return []
        crops = np.stack([crop for crop, _ in prepared])
        out = self.outputs(crops)
        assessments = self.trust.assess(out.probabilities, out.ood_features, out.type_features,
                                        [box.found for _, box in prepared])
        return [_to_prediction(probs, assessment, box, crop)
                for probs, assessment, (crop, box) in zip(out.probabilities, assessments, prepared)]


@dataclass
class ModelOutputs:
    """One forward pass: pooled FEATURE_LAYER features (OOD check), OTHER_TYPE_LAYER features
    (other-type detector) and the raw softmax, one row per image."""

    ood_features: np.ndarray
    type_features: np.ndarray
    probabilities: np.ndarray


def _to_prediction(raw: np.ndarray, assessment, box: CellBox, crop: np.ndarray) -> Prediction:
    best = int(np.argmax(raw))
    calibrated = assessment.calibrated_probabilities
    return Prediction(
        label=CLASS_NAMES[best],
        confidence=float(calibrated[best]),
        probabilities={name: float(p) for name, p in zip(CLASS_NAMES, calibrated)},
        box=box,
        model_input=crop,
        status=assessment.status,
        status_text=assessment.status_text,
        raw_confidence=float(raw[best]),
        ood_score=assessment.ood_score,
        other_type=assessment.other_type,
        other_type_probability=assessment.other_type_probability,
    )


def card_beside(model_path: Path) -> Path | None:
    """The model card that belongs to a model file: the shipped card, or one next to it."""
    if model_path.resolve() == DEFAULT_MODEL_PATH.resolve():
        return MODEL_CARD_PATH
    for name in ("model-card.json", "card.json"):
        if (model_path.parent / name).is_file():
            return model_path.parent / name
    return None


def load_classifier(model_path: str | Path | None = None,
                    lab_profile: str | Path | LabProfile | None = None,
                    backend: str | None = None, precision: str | None = None) -> Classifier:
    """Load the committed model (or another ``.keras`` file), with its card's colour
    normalisation and trust checks, adapted to a lab when ``lab_profile`` (a path or a
    ``LabProfile``) is given. ``backend`` is "openvino" (the default; see ``backends.py``)
    or "tensorflow"; ``$HEMATOVISION_BACKEND`` sets the default; ``precision`` ("f32", "bf16" or "int8",
    see ``backends.py``; ``$HEMATOVISION_PRECISION`` sets the default) applies to OpenVINO; unset, it
    is int8 where the model has a quantised network and trust checks fitted to it, else f32. Each call loads afresh:
    keep the result (the app caches it with ``st.cache_resource``). Raises
    ``LabProfileError`` for a profile that cannot be used."""
    path = Path(model_path) if model_path else DEFAULT_MODEL_PATH
    if not path.is_file():
        raise FileNotFoundError(
            f"Model file not found: {path}. Train one with `python -m training.train`."
        )
    if lab_profile is not None and not isinstance(lab_profile, LabProfile):
        lab_profile = LabProfile.load(lab_profile)
    sha = file_sha256(path)
    card_path = card_beside(path)
    card = load_model_card(card_path) if card_path is not None else None
    model, engine = None, None
    if chosen_backend(backend) == "openvino":
        precision = requested_precision(precision) or default_precision(
            path, sha, card is not None and card.trust_int8 is not None)
        network = openvino_network(path, sha, lambda: _load_keras(path), FEATURE_LAYER, OTHER_TYPE_LAYER, precision)
        engine = OpenVinoBackend(network, precision, f32_network=shipped_f32_network(path, sha))
    else:
        model = _load_keras(path)
    if card is None:  # nothing says how it was trained or calibrated: plain colours, no trust checks
        return Classifier(model, path, lab_profile=lab_profile, model_sha256=sha, backend=engine)
    trust = card.trust_for(engine.precision if engine is not None else "f32")
    return Classifier(model, path, colour_normalisation=card.training.colour_normalisation,
                      trust=TrustModel.from_card(trust, card_path.parent), lab_profile=lab_profile,
                      model_sha256=sha, backend=engine)


def _forward(backend, batch: np.ndarray, turned: bool = True) -> ModelOutputs:
    """``backend.forward`` a chunk at a time, each chunk made float32 on its own: a whole uint8
    test set as float32 (Kaggle TEST's 2,487 crops) would take 1.5 GB. With ``turned``, each
    output is averaged with the same chunk's turned 180° (both views in one call)."""
    chunks = [_forward_chunk(backend, np.asarray(batch[start : start + FORWARD_BATCH], np.float32), turned)
              for start in range(0, len(batch), FORWARD_BATCH)]
    if not chunks:
        ood_width, final_width, classes = backend.widths
        return ModelOutputs(np.zeros((0, ood_width), np.float32), np.zeros((0, final_width), np.float32),
                            np.zeros((0, classes), np.float32))
    return ModelOutputs(*(np.concatenate([chunk[i] for chunk in chunks]) for i in range(3)))


def _forward_chunk(backend, chunk: np.ndarray, turned: bool) -> tuple[np.ndarray, ...]:
    if not turned:
        return backend.forward(chunk)
    n = len(chunk)

    def mean_of_views(both: np.ndarray) -> np.ndarray:
        return (both[:n] + both[n:]) / 2

    ood_features, type_features, probabilities = backend.forward(np.concatenate([chunk, chunk[:, ::-1, ::-1]]))
    # The two views' logits are averaged (a geometric mean of the probabilities), as a lab
    # profile's refitted head does with the averaged features; temperature scaling then fits
    # better than on averaged probabilities (validation ECE 1.6% against 1.8%).
    mean_logits = mean_of_views(np.log(np.clip(probabilities, 1e-30, None)))
    averaged = np.exp(mean_logits - mean_logits.max(axis=1, keepdims=True))
    return (mean_of_views(ood_features), mean_of_views(type_features),
            (averaged / averaged.sum(axis=1, keepdims=True)).astype(np.float32))


def _load_keras(path: Path):
    import keras

    return keras.saving.load_model(path, compile=False)


def _with_refitted_head(model, profile: LabProfile):
    """The network with its final dense layer replaced by the profile's refitted one."""
    import keras

    head = keras.layers.Dense(profile.head_bias.shape[0], activation="softmax", name="lab_predictions")
    outputs = head(model.get_layer(OTHER_TYPE_LAYER).output)
    head.set_weights([profile.head_weights, profile.head_bias])
    return keras.Model(model.input, outputs, name=f"{model.name}_lab")


def class_index(name: str) -> int:
    """Accept 'neutrophil', 'Neutrophils', 'NEUTROPHIL'... and return its index."""
    key = name.strip().upper().rstrip("S")
    for index, class_name in enumerate(CLASS_NAMES):
        if class_name == key:
            return index
    raise ValueError(f"Unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}.")


def image_answer(cells: list[Prediction]) -> dict:
    """One image's answer as JSON: its first cell's prediction at the top, every cell in ``cells``.

    Shared by ``predict --json`` and the HTTP API so both describe an image the same way.
    """
    return {
        **cells[0].as_dict(),
        "cell_count": sum(cell.box.found for cell in cells),
        "cells": [cell.as_dict() for cell in cells],
    }
