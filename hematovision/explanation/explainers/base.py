"""Common ground for every explanation method: the Explanation record, the Explainer base
class and the registry of methods by name. How images are hidden (the blurred baseline,
superpixels, masked batches) lives in maskers.py.

A method is one small module that subclasses ``Explainer`` and decorates it with
``@register``; adding one means adding its file and its import in ``__init__.py``.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from hematovision.model.classifier import CLASS_NAMES, Classifier, class_index

Target = int | str | None


@dataclass(frozen=True)
class Explanation:
    """One attribution map and everything needed to show or reproduce it."""

    attribution: np.ndarray  # (H, W) float32 at the model input's resolution
    method: str  # registered name, e.g. "gradcam++"
    label: str  # human name, e.g. "Grad-CAM++"
    target: str  # class explained, e.g. "NEUTROPHIL"
    target_index: int
    signed: bool  # True when negative values are evidence against the target
    params: dict[str, Any]  # the exact parameters used, seed included
    seconds: float  # wall time of the whole explain() call
    evaluations: int  # images pushed through the model (forward passes)
    target_probability: float  # the model's probability for the target on this image
    details: dict[str, Any] = field(default_factory=dict)  # method diagnostics (fit R², ...)

    def metadata(self) -> dict[str, Any]:
        """Everything but the map itself, ready for JSON."""
        return {
            "method": self.method,
            "label": self.label,
            "target": self.target,
            "target_probability": round(self.target_probability, 6),
            "signed": self.signed,
            "params": self.params,
            "seconds": round(self.seconds, 4),
            "evaluations": self.evaluations,
            "details": self.details,
        }


@dataclass
class Attribution:
    """What a method hands back to the base class."""

    attribution: np.ndarray
    evaluations: int  # model evaluations beyond the one forward() pass
    details: dict[str, Any] = field(default_factory=dict)


class Explainer(ABC):
    """Base class: built once per classifier (see ``get_explainer``) and reused.

    Subclasses set the class attributes and implement ``attribute``; this class validates
    the image and target, fills defaults, times the call and assembles the Explanation.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    signed: ClassVar[bool]
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, classifier: Classifier) -> None:
        self.classifier = classifier
        # Methods keep per-call state on shared objects (a masker's background, a counter);
        # Streamlit serves sessions from threads, so one explanation at a time per explainer.
        self._lock = threading.Lock()

    def forward(self, image: np.ndarray) -> np.ndarray:
        """Class probabilities for the image as a prediction gives them (the crop and the crop
        turned 180°, see ``Classifier.outputs``): they pick the target and report its
        probability as the user was shown it. Counted as one evaluation by the base class.

        Runs just before ``attribute`` under the same lock; a method that needs its own
        forward pass as well (Grad-CAM's conv features) overrides this and keeps what it computed.
        """
        return self.classifier.outputs(image[None], features=False).probabilities[0]

    @abstractmethod
    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        """Attribution map for ``target_index`` on a validated float32 (H, W, 3) image."""

    def __call__(self, image: np.ndarray, target: Target = None, seed: int = 0,
                 **params: Any) -> Explanation:
        pixels = self._validate_image(image)
        settings = self._settings(params)
        with self._lock:
            started = time.perf_counter()  # after the lock: time spent explaining, not queueing
            probabilities = self.forward(pixels)
            index = resolve_target(target, probabilities)
            result = self.attribute(pixels, index, int(seed), settings)
        attribution = np.asarray(result.attribution, dtype=np.float32)
        if attribution.shape != pixels.shape[:2] or not np.all(np.isfinite(attribution)):
            raise RuntimeError(f"{self.name} produced an invalid map of shape {attribution.shape}.")
        return Explanation(
            attribution=attribution,
            method=self.name,
            label=self.label,
            target=CLASS_NAMES[index],
            target_index=index,
            signed=self.signed,
            params={**settings, "seed": int(seed)},
            seconds=time.perf_counter() - started,
            evaluations=result.evaluations + 1,  # +1: forward(), which picked the target
            target_probability=float(probabilities[index]),
            details=result.details,
        )

    def _settings(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - set(self.defaults))
        if unknown:
            accepted = ", ".join(sorted(self.defaults)) or "none"
            raise ValueError(
                f"{self.label} does not take {', '.join(unknown)}; accepted: {accepted}.")
        return {**self.defaults, **params}

    def _validate_image(self, image: np.ndarray) -> np.ndarray:
        array = np.asarray(image)
        size = self.classifier.input_size
        if array.shape != (size, size, 3):
            raise ValueError(
                f"Explainers take the model input ({size}x{size}x3, e.g. Prediction.model_input); "
                f"got shape {array.shape}."
            )
        return array.astype(np.float32)


def require_int(params: dict[str, Any], key: str, minimum: int) -> int:
    """``params[key]`` as an int >= minimum, or a ValueError naming the parameter."""
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{key} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def resolve_target(target: Target, probabilities: np.ndarray) -> int:
    """None -> the predicted class; otherwise a class index or (any-case) class name."""
    if target is None:
        return int(np.argmax(probabilities))
    if isinstance(target, str):
        return class_index(target)
    if isinstance(target, (int, np.integer)) and not isinstance(target, bool):
        if 0 <= int(target) < len(CLASS_NAMES):
            return int(target)
        raise ValueError(f"Class index {target} is out of range 0..{len(CLASS_NAMES) - 1}.")
    raise ValueError(f"A target is a class index, a class name or None; got {target!r}.")


# -- registry -------------------------------------------------------------------------
_METHODS: dict[str, type[Explainer]] = {}


def register(cls: type[Explainer]) -> type[Explainer]:
    """Class decorator: make an Explainer available under ``cls.name``."""
    if cls.name in _METHODS and _METHODS[cls.name] is not cls:
        raise ValueError(f"Two explainers claim the name {cls.name!r}.")
    _METHODS[cls.name] = cls
    return cls


def available_methods() -> list[str]:
    """Registered method names, e.g. ['gradcam', 'gradcam++', 'lime', 'shap']."""
    return sorted(_METHODS)


def method_label(method: str) -> str:
    """Human name of a registered method ('gradcam++' -> 'Grad-CAM++')."""
    return _METHODS[_canonical(method)].label


def default_params(method: str) -> dict[str, Any]:
    """The parameters a method uses when the caller sets none."""
    return dict(_METHODS[_canonical(method)].defaults)


def _squash(name: str) -> str:
    """'Grad-CAM++', 'gradcam_plusplus', 'Integrated Gradients' -> a spelling-free key."""
    key = str(name).strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return key.replace("plusplus", "++")


def _canonical(method: str) -> str:
    names = {_squash(name): name for name in _METHODS}
    key = _squash(method)
    if key not in names:
        raise ValueError(
            f"Unknown explanation method {method!r}; available: {', '.join(available_methods())}."
        )
    return names[key]


def build_explainer(classifier: Classifier, method: str = "gradcam") -> Explainer:
    """A new, uncached explainer: for short-lived classifiers such as randomised copies."""
    return _METHODS[_canonical(method)](classifier)


def get_explainer(classifier: Classifier, method: str = "gradcam") -> Explainer:
    """This classifier's explainer for ``method``, built on first use and kept with the classifier."""
    name = _canonical(method)
    return classifier.built_once(("explainer", name), lambda: _METHODS[name](classifier))


def built_explainers(classifier: Classifier) -> int:
    """How many explainers this classifier has built (each once, then reused)."""
    return classifier.built_count("explainer")


def explain(classifier: Classifier, image: np.ndarray, method: str = "gradcam",
            target: Target = None, seed: int = 0, **params: Any) -> Explanation:
    """Explain the classifier's decision on ``image`` (the 224x224x3 model input).

    ``target`` is None (the predicted class), a class index or a class name; ``params``
    override the method's defaults (see ``get_explainer(clf, method).defaults``).
    """
    return get_explainer(classifier, method)(image, target=target, seed=seed, **params)
