"""Lab profiles: fit the shipped model to one lab's stain, microscope and camera.

A profile is a small JSON file made from that lab's own images, in seconds on a CPU:

* **unlabelled** (at least ``MIN_UNLABELLED_IMAGES`` images, no labels): the lab's mean
  block-12 feature is moved onto the training labs' mean before the out-of-distribution
  check (``ood_shift``), so the lab's own cells stop being "unfamiliar" while non-blood
  images stay far. The four-class decision is left as it is, unless ``batch_norm`` is asked
  for: then the network's last batch norm (Conv_1's) is re-estimated on the lab's cells
  (``last_batch_norm.py``), in the f32 network. From a batch with the four types in similar
  numbers that helped every unseen lab measured (LISC 0.90 -> 0.93, a PBC-trained model on
  Kaggle 0.37 -> 0.53 macro recall); from a batch that is mostly one type, as a differential
  is, it cost LISC and PBC 3-4 points. So it is an option, off by default, and a profile built
  from a lopsided batch carries a ``caution``.
* **few-shot** (``k`` labelled cells per class, default 5): the same shift, and the final
  dense layer refitted on the labelled cells with an L2 pull toward the shipped weights
  (``HEAD_PULL``), so a few cells nudge the decision rather than replace it.

The measurements behind these choices are in ``training/EXPERIMENTS.md`` ("Lab
profiles"); ``training.lab_profiles`` measures them on unseen labs.

A profile names the SHA-256 of the model file it was made for and refuses to load on
any other. Its contents carry a checksum, so a damaged or hand-edited file is refused
with a clear message instead of giving quietly wrong answers.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hematovision.model.backends import network_of
from hematovision.model.imaging import ImageError, ImageSource, load_image

if TYPE_CHECKING:
    from hematovision.model.classifier import Classifier, ModelOutputs, Prediction

FORMAT = "hematovision-lab-profile/1"
UNLABELLED = "unlabelled"
FEW_SHOT = "few_shot"
KINDS = (UNLABELLED, FEW_SHOT)
MIN_UNLABELLED_IMAGES = 30
DEFAULT_PER_CLASS = 5
# Strength of the pull toward the shipped head weights when refitting on k cells per
# class. Chosen on PBC validation cells with the Kaggle-only model (a lab it never saw).
HEAD_PULL = 1e-3
MAX_PROFILE_BYTES = 1_000_000
# A batch-norm profile built from a batch where the shipped model calls more than this share
# of the cells one type gets a caution: from a differential's mix (60% neutrophils) the
# re-estimated batch norm lowered macro recall on LISC and PBC (training/EXPERIMENTS.md).
LOPSIDED_SHARE = 0.5


class LabProfileError(ValueError):
    """A profile that cannot be built or used; the message says why, in plain words."""


@dataclass(frozen=True)
class LabProfile:
    kind: str
    model_sha256: str
    created: str
    images: int  # images the profile was built from (blood cells only)
    ood_shift: np.ndarray = field(repr=False)  # added to block-12 features before the OOD check
    labelled: dict[str, int] = field(default_factory=dict)  # cells per class (few-shot)
    settings: dict[str, Any] = field(default_factory=dict)
    head_weights: np.ndarray | None = field(default=None, repr=False)  # (features, classes)
    head_bias: np.ndarray | None = field(default=None, repr=False)  # (classes,)
    # The re-estimated last batch norm, a gain and an offset per final feature (last_batch_norm.py):
    # unlabelled profiles that asked for it
    norm_gains: np.ndarray | None = field(default=None, repr=False)
    norm_offsets: np.ndarray | None = field(default=None, repr=False)

    # -- what users see ---------------------------------------------------------------
    @functools.cached_property
    def sha256(self) -> str:
        """The hash of the profile's file; computed once, since pages key their caches by it on every run."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    @property
    def short_id(self) -> str:
        return self.sha256[:12]

    @property
    def source(self) -> str:
        """What it was made from: "unlabelled, 90 images" or "few-shot, 20 labelled cells (...)"."""
        if self.kind == FEW_SHOT:
            counts = ", ".join(f"{n} {name.lower()}" for name, n in self.labelled.items())
            return f"few-shot, {sum(self.labelled.values())} labelled cells ({counts})"
        if self.norm_gains is None:
            return f"unlabelled, {self.images} images"
        lopsided = (f" on a batch of mostly {self.settings['largest_type'].lower()}s "
                    f"({self.settings['largest_type_share']:.0%})" if self.caution else "")
        return f"unlabelled, {self.images} images, last batch norm re-estimated{lopsided}"

    def describe(self) -> str:
        """One line for pages, reports and the CLI: what the profile is and where it came from."""
        return f"lab profile {self.short_id} ({self.source}; made {self.created[:10]})"

    @property
    def caution(self) -> str | None:
        """Why to distrust this profile, or None: its batch norm was re-estimated on a batch the
        shipped model reads as mostly one type."""
        share, kind = self.settings.get("largest_type_share"), self.settings.get("largest_type")
        # (settings come from the file: anything but a number and a name counts as not recorded)
        if self.norm_gains is None or not isinstance(share, (int, float)) or not isinstance(kind, str) \
                or share <= LOPSIDED_SHARE:
            return None
        return (f"{share:.0%} of the cells this profile was built from look like {kind.lower()}s. Re-estimating "
                "the last batch norm on a batch that is mostly one type, as a differential is, lowered accuracy on "
                "two of three labs in our tests: build it from a batch with the four types in similar numbers, or "
                "without the batch-norm option.")

    def as_dict(self) -> dict[str, Any]:
        """The profile's identity for JSON answers and CSV columns (no arrays)."""
        return {"sha256": self.sha256, "kind": self.kind, "images": self.images,
                "labelled": dict(self.labelled), "batch_norm": self.norm_gains is not None, "created": self.created,
                "caution": self.caution}

    # -- file format --------------------------------------------------------------------
    def _content(self) -> dict[str, Any]:
        content = {
            "format": FORMAT, "kind": self.kind, "model_sha256": self.model_sha256, "created": self.created,
            "images": self.images, "labelled": dict(self.labelled), "settings": dict(self.settings),
            "ood_shift": _encode(self.ood_shift),
        }
        if self.head_weights is not None:
            content["head_weights"] = _encode(self.head_weights)
            content["head_bias"] = _encode(self.head_bias)
        if self.norm_gains is not None:
            content["norm_gains"] = _encode(self.norm_gains)
            content["norm_offsets"] = _encode(self.norm_offsets)
        return content

    def to_bytes(self) -> bytes:
        content = self._content()
        return json.dumps({**content, "checksum": _checksum(content)}, indent=1).encode("utf-8") + b"\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.write_bytes(self.to_bytes())
        return path

    @classmethod
    def from_bytes(cls, data: bytes) -> LabProfile:
        """Read a profile, or raise ``LabProfileError`` saying what is wrong with it."""
        if len(data) > MAX_PROFILE_BYTES:
            raise LabProfileError(f"This file is {len(data):,} bytes; a lab profile is under 1 MB. "
                                  "Is it the right file?")
        try:
            raw = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise LabProfileError("This is not a lab profile: it is not a JSON file. Choose the .json file that "
                                  "'Build profile' or `python -m hematovision adapt` wrote.") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise LabProfileError(f"This JSON file is not a HematoVision lab profile (expected format {FORMAT!r}).")
        checksum = raw.pop("checksum", None)
        if checksum != _checksum(raw):
            raise LabProfileError("This lab profile was changed after it was made (its checksum does not match), "
                                  "so it cannot be trusted. Build a new one from the lab's images.")
        try:
            kind = raw["kind"]
            if kind not in KINDS:
                raise LabProfileError(f"Unknown kind of lab profile {kind!r}.")
            profile = cls(kind=kind, model_sha256=str(raw["model_sha256"]), created=str(raw["created"]),
                          images=int(raw["images"]), ood_shift=_decode(raw["ood_shift"]),
                          labelled={str(k): int(v) for k, v in raw.get("labelled", {}).items()},
                          settings=dict(raw.get("settings", {})),
                          head_weights=_decode(raw["head_weights"]) if "head_weights" in raw else None,
                          head_bias=_decode(raw["head_bias"]) if "head_bias" in raw else None,
                          norm_gains=_decode(raw["norm_gains"]) if "norm_gains" in raw else None,
                          norm_offsets=_decode(raw["norm_offsets"]) if "norm_offsets" in raw else None)
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, LabProfileError):
                raise
            raise LabProfileError(f"This lab profile is damaged ({type(exc).__name__}: {exc}).") from None
        return profile

    @classmethod
    def load(cls, path: str | Path) -> LabProfile:
        path = Path(path)
        if not path.is_file():
            raise LabProfileError(f"No lab profile at {path}.")
        return cls.from_bytes(path.read_bytes())

    @property
    def network(self) -> str:
        """The network whose features it was built on: "int8", or "f32" (also older profiles)."""
        return str(self.settings.get("network", "f32"))

    def check_model(self, model_sha256: str | None, precision: str | None = None) -> None:
        """Refuse a profile made for another model, or on the other network of this one (int8's
        features sit elsewhere than f32's): its numbers would not mean anything here."""
        if model_sha256 != self.model_sha256:
            raise LabProfileError(
                f"This lab profile was made for another model (SHA-256 {self.model_sha256[:12]}…), not the one "
                f"loaded ({(model_sha256 or 'unknown')[:12]}…). Build a new profile with this model.")
        if precision is not None and network_of(precision) != self.network:
            raise LabProfileError(
                f"This lab profile was built on the model's {self.network} network, but the {network_of(precision)} "
                f"one is loaded, whose features differ. Build the profile again, or load the {self.network} network "
                f"(--precision {self.network}, or HEMATOVISION_PRECISION={self.network}).")

    @property
    def batch_norm(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(gain, offset) of the re-estimated last batch norm, or None."""
        return None if self.norm_gains is None else (self.norm_gains, self.norm_offsets)

    def apply(self, outputs: ModelOutputs) -> ModelOutputs:
        """Outputs of the network the profile runs on (the shipped one, with the profile's
        re-estimated batch norm if it has one) as the adapted classifier gives them: the OOD shift,
        and the refitted head. The classifier runs the head inside the network, so
        explanations see it too; a test keeps both equal."""
        from scipy.special import softmax

        from hematovision.model.classifier import ModelOutputs

        probabilities = outputs.probabilities
        if self.head_weights is not None:
            logits = outputs.type_features.astype(np.float64) @ self.head_weights + self.head_bias
            probabilities = softmax(logits, axis=1).astype(np.float32)
        return ModelOutputs(outputs.ood_features + self.ood_shift, outputs.type_features, probabilities)

    def check_shapes(self, ood_width: int, feature_width: int, classes: int) -> None:
        if self.ood_shift.shape != (ood_width,):
            raise LabProfileError(f"This lab profile does not fit the model: its OOD shift has shape "
                                  f"{self.ood_shift.shape}, the model's features {ood_width} values.")
        if self.head_weights is not None and (self.head_weights.shape != (feature_width, classes)
                                              or self.head_bias is None or self.head_bias.shape != (classes,)):
            raise LabProfileError("This lab profile does not fit the model: its class weights have the wrong shape.")
        if self.norm_gains is not None:
            if self.kind != UNLABELLED:
                raise LabProfileError("This lab profile is damaged: only an unlabelled profile re-estimates batch "
                                      "norms.")
            # The last batch norm's channels are the final features.
            if self.norm_gains.shape != (feature_width,) or self.norm_offsets is None \
                    or self.norm_offsets.shape != (feature_width,):
                raise LabProfileError("This lab profile does not fit the model: its batch-norm statistics have the "
                                      "wrong shape.")


# -- building a profile ---------------------------------------------------------------------

@dataclass
class CellFeatures:
    """What a profile is built from: the shipped network's features of the images that look
    like white blood cells (a nucleus found, not far from every training cell). The others
    are left out, so a stray photo cannot bend the profile."""

    ood: np.ndarray  # (usable, block-12 width)
    final: np.ndarray  # (usable, final-feature width)
    given: int  # images offered, usable or not
    crops: np.ndarray  # (usable, size, size, 3): what the network saw, for the batch-norm option

    @property
    def usable(self) -> int:
        return len(self.ood)


def blood_cell_features(classifier: Classifier, crops: np.ndarray, outputs: ModelOutputs, found: Sequence[bool],
                        given: int | None = None) -> CellFeatures:
    """The rows of the shipped network's ``outputs`` for ``crops`` that look like white blood
    cells: a nucleus was ``found`` and the features are not far from every training cell."""
    blood = np.asarray(found, bool).copy()
    ood = classifier.trust.ood
    if ood is not None:
        blood &= ood.score(outputs.ood_features) <= ood.far_threshold
    return CellFeatures(outputs.ood_features[blood], outputs.type_features[blood],
                        len(blood) if given is None else given, np.asarray(crops)[blood])


def cell_features(classifier: Classifier, images: Sequence[ImageSource]) -> CellFeatures:
    """Features of each image's main white cell, as the classifier frames it."""
    crops, found = [], []
    for image in images:
        try:
            crop, box = classifier.prepare(load_image(image))
        except (ImageError, OSError, ValueError):
            continue
        crops.append(crop)
        found.append(bool(box.found))
    return crop_features(classifier, crops, found, given=len(images))


def crop_features(classifier: Classifier, crops: Sequence[np.ndarray], found: Sequence[bool],
                  given: int | None = None) -> CellFeatures:
    """Features of cells already framed for the model (a prediction's ``model_input``), such
    as the cells of a classified batch; ``found`` is whether each one's nucleus was found."""
    given = len(crops) if given is None else given
    if not len(crops):
        size = classifier.input_size
        return CellFeatures(np.zeros((0, 0), np.float32), np.zeros((0, 0), np.float32), given,
                            np.zeros((0, size, size, 3), np.uint8))
    crops = np.stack(crops)
    return blood_cell_features(classifier, crops, classifier.outputs(crops), found, given)


def prediction_features(classifier: Classifier, predictions: Sequence[Prediction]) -> CellFeatures:
    """Features of cells already classified (a batch): their crops, no image read again."""
    return crop_features(classifier, [p.model_input for p in predictions], [p.box.found for p in predictions])


def _ood_shift(classifier: Classifier, ood_features: np.ndarray) -> np.ndarray:
    ood = classifier.trust.ood
    if ood is None:  # a model without an OOD reference: nothing to move
        return np.zeros(ood_features.shape[1], np.float32)
    return (ood.mean - ood_features.mean(axis=0)).astype(np.float32)


def _network(classifier: Classifier) -> dict[str, str]:
    return {"network": network_of(classifier.backend.precision)}


def _require_shipped(classifier: Classifier) -> str:
    if classifier.lab_profile is not None:
        raise LabProfileError("Build a lab profile with the shipped model, not with another profile in use.")
    if not classifier.model_sha256:
        raise LabProfileError("The model file's SHA-256 is unknown, so a profile could not be tied to it.")
    return classifier.model_sha256


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_unlabelled(classifier: Classifier, images: Sequence[ImageSource],
                     min_images: int = MIN_UNLABELLED_IMAGES, batch_norm: bool = False) -> LabProfile:
    """A profile from the lab's images alone (at least ``min_images`` blood-cell images);
    ``batch_norm`` also re-estimates the network's last batch norm on them."""
    _require_shipped(classifier)
    return unlabelled_from_features(classifier, cell_features(classifier, images), min_images, batch_norm)


def unlabelled_from_features(classifier: Classifier, features: CellFeatures,
                             min_images: int = MIN_UNLABELLED_IMAGES, batch_norm: bool = False) -> LabProfile:
    model_sha = _require_shipped(classifier)
    if features.usable < min_images:
        left_out = features.given - features.usable
        raise LabProfileError(
            f"An unlabelled profile needs at least {min_images} images of white blood cells; "
            f"{features.usable} of the {features.given} given look like one"
            + (f" ({left_out} were unreadable, or show no stained cell)." if left_out else "."))
    gain, offset = _last_batch_norm(classifier, features.crops) if batch_norm else (None, None)
    return LabProfile(kind=UNLABELLED, model_sha256=model_sha, created=_now(), images=features.usable,
                      ood_shift=_ood_shift(classifier, features.ood),
                      settings={"min_images": min_images,
                                **({"batch_norm": "Conv_1", **_largest_type(classifier, features.final)}
                                   if batch_norm else {}),
                                **_network(classifier)},
                      norm_gains=gain, norm_offsets=offset)


def _largest_type(classifier: Classifier, final: np.ndarray) -> dict[str, Any]:
    """The type the shipped model gives most of these cells, and its share (for ``caution``)."""
    from hematovision.model.classifier import CLASS_NAMES

    weights, bias = classifier.head_weights()
    counts = np.bincount((final @ weights + bias).argmax(axis=1), minlength=len(CLASS_NAMES))
    return {"largest_type": CLASS_NAMES[int(counts.argmax())],
            "largest_type_share": round(float(counts.max() / counts.sum()), 3)}


def _last_batch_norm(classifier: Classifier, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(gain, offset): the last batch norm re-estimated on the lab's cells (``last_batch_norm.py``)."""
    from hematovision.model.last_batch_norm import estimate, sample

    chosen = sample(np.asarray(crops, np.float32))
    # Predictions read each cell as it is and turned 180° (Classifier.outputs), so the statistics
    # come from both views: on validation that did at least as well as the crops alone
    # (training/EXPERIMENTS.md, "Session 10").
    moments = classifier.backend.batch_norm_moments(np.concatenate([chosen, chosen[:, ::-1, ::-1]]))
    return estimate(classifier.shipped_model, moments)


def build_few_shot(classifier: Classifier, labelled: Mapping[str, Sequence[ImageSource]],
                   per_class: int = DEFAULT_PER_CLASS, seed: int = 0, pull: float = HEAD_PULL) -> LabProfile:
    """A profile from up to ``per_class`` labelled cells of each of the four types.

    ``labelled`` maps each class name to its images; with more than ``per_class``, a seeded
    draw picks which. Every class needs at least one usable image.
    """
    from hematovision.model.classifier import CLASS_NAMES, class_index

    _require_shipped(classifier)
    by_class: dict[str, list[ImageSource]] = {name: [] for name in CLASS_NAMES}
    for name, images in labelled.items():
        by_class[CLASS_NAMES[class_index(name)]].extend(images)
    rng = np.random.default_rng(seed)
    features = {}
    for name, images in by_class.items():
        if len(images) > per_class:
            images = [images[i] for i in sorted(rng.choice(len(images), per_class, replace=False))]
        features[name] = cell_features(classifier, images)
    return few_shot_from_features(classifier, features, {"per_class": per_class, "seed": seed}, pull)


def unlabelled_from_predictions(classifier: Classifier, predictions: Sequence[Prediction],
                                min_images: int = MIN_UNLABELLED_IMAGES, batch_norm: bool = False) -> LabProfile:
    """An unlabelled profile from cells already classified (a batch)."""
    return unlabelled_from_features(classifier, prediction_features(classifier, predictions), min_images,
                                    batch_norm)


def few_shot_from_predictions(classifier: Classifier, labelled: Mapping[str, Sequence[Prediction]]) -> LabProfile:
    """A few-shot profile from cells a person has labelled (the Batch page's reviews):
    ``labelled`` maps each class name to its cells, every one of them used."""
    features = {name: prediction_features(classifier, cells) for name, cells in labelled.items() if cells}
    return few_shot_from_features(classifier, features, {"from": "reviews"})


def few_shot_from_features(classifier: Classifier, features: Mapping[str, CellFeatures],
                           settings: Mapping[str, Any], pull: float = HEAD_PULL) -> LabProfile:
    """``features`` maps each class name to its labelled cells' features."""
    from hematovision.model.classifier import CLASS_NAMES

    model_sha = _require_shipped(classifier)
    ood_parts, final_parts, labels, counts = [], [], [], {}
    for index, name in enumerate(CLASS_NAMES):
        cells = features.get(name)
        if cells is None or cells.usable == 0:
            given = "none given" if cells is None or cells.given == 0 else f"{cells.given} given, none usable"
            raise LabProfileError(f"A few-shot profile needs at least one labelled {name.lower()} that looks like "
                                  f"a white blood cell ({given}).")
        ood_parts.append(cells.ood)
        final_parts.append(cells.final)
        labels += [index] * cells.usable
        counts[name] = cells.usable
    weights, bias = classifier.head_weights()
    refitted_weights, refitted_bias = refit_head(np.concatenate(final_parts), np.asarray(labels), weights, bias, pull)
    ood = np.concatenate(ood_parts)
    return LabProfile(kind=FEW_SHOT, model_sha256=model_sha, created=_now(), images=len(ood),
                      ood_shift=_ood_shift(classifier, ood), labelled=counts,
                      settings={**settings, "pull": pull, **_network(classifier)},
                      head_weights=refitted_weights, head_bias=refitted_bias)


def refit_head(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, bias: np.ndarray,
               pull: float = HEAD_PULL) -> tuple[np.ndarray, np.ndarray]:
    """The dense layer refitted by cross-entropy on (features, labels), plus ``pull`` times the
    squared distance to the shipped weights (and a light pull on the biases)."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    features = np.asarray(features, np.float64)
    start_w, start_b = np.asarray(weights, np.float64), np.asarray(bias, np.float64)
    n, width = features.shape
    classes = start_b.shape[0]
    targets = np.eye(classes)[labels]

    def loss_and_gradient(vector: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = vector[: width * classes].reshape(width, classes), vector[width * classes :]
        log_p = log_softmax(features @ w + b, axis=1)
        loss = -(targets * log_p).sum() / n + pull * ((w - start_w) ** 2).sum() + 1e-3 * ((b - start_b) ** 2).sum()
        residual = (np.exp(log_p) - targets) / n
        grad_w = features.T @ residual + 2 * pull * (w - start_w)
        grad_b = residual.sum(axis=0) + 2e-3 * (b - start_b)
        return float(loss), np.concatenate([grad_w.ravel(), grad_b])

    result = minimize(loss_and_gradient, np.concatenate([start_w.ravel(), start_b]), jac=True,
                      method="L-BFGS-B", options={"maxiter": 500})
    refitted = result.x
    return (refitted[: width * classes].reshape(width, classes).astype(np.float32),
            refitted[width * classes :].astype(np.float32))


# -- storage helpers --------------------------------------------------------------------

def _encode(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array, dtype="<f4")
    return {"shape": list(array.shape), "float32_base64": base64.b64encode(array.tobytes()).decode("ascii")}


def _decode(stored: Any) -> np.ndarray:
    if not isinstance(stored, dict):
        raise ValueError("an array entry is not an object")
    shape = tuple(int(s) for s in stored["shape"])
    values = np.frombuffer(base64.b64decode(stored["float32_base64"], validate=True), dtype="<f4")
    if values.size != int(np.prod(shape)) or not np.all(np.isfinite(values)):
        raise ValueError("an array has the wrong size or non-finite values")
    return values.reshape(shape).astype(np.float32)


def _checksum(content: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode("utf-8")).hexdigest()
