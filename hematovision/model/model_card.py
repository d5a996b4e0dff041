"""``models/model-card.json``: the one place that reads and writes it.

The training scripts write their sections through ``ModelCard``'s ``with_*`` methods and
``save``; everything else reads typed fields. Reading is tolerant: a missing file gives
``None``, a file that is not JSON raises ``ModelCardError`` with a readable message, and
missing or malformed parts become ``None`` or empty fields, listed in ``problems``, so
the app can show what is there and say what is not.

Each section keeps the raw JSON it came from (``ModelCard.raw``): saving writes that back
in its original order and formatting, so a card saved unchanged stays byte-identical.
Large free-form records (training settings, reliability bins, coverage curves) stay as
plain JSON; the fields the app shows are typed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hematovision.model.backends import network_of
from hematovision.model.trust import STATUS_TEXT, STATUSES

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
MODEL_CARD_PATH = MODELS_DIR / "model-card.json"
# Tests (or a deployment) can point the app at another card file.
CARD_PATH_ENV = "HEMATOVISION_MODEL_CARD"

# The evaluation splits in the order the page shows them, with plain-language meaning.
SPLITS: dict[str, tuple[str, str]] = {
    "test_image": (
        "TEST, image level",
        "Every augmented test image counted once (about 2,500 images, but made from only "
        "~71 distinct cells, so images are far from independent).",
    ),
    "test_cell": (
        "TEST, cell level",
        "One vote per distinct cell: a cell counts as right when most of its augmented "
        "copies are classified right. The honest sample size is the number of cells.",
    ),
    "test_simple": (
        "TEST_SIMPLE",
        "The held-out cells once each, without augmentation (the closest thing here to "
        "new, ordinary photographs).",
    ),
    "pbc_test": (
        "PBC test split",
        "A seeded 20% of each class of the PBC images (another lab, Barcelona), never used "
        "for training or for any choice. New cells, but the same lab as the PBC training images.",
    ),
}
# Labs the model never trained on (validation only: nothing was chosen on them alone).
UNSEEN_SPLITS: dict[str, tuple[str, str]] = {
    "lisc": (
        "LISC (a lab it never saw)",
        "181 cells from a third lab (Tehran, Giemsa-Wright stain, 100x lens): it stands for your own lab. "
        "Never trained on; no epoch, threshold or recipe was chosen on it alone.",
    ),
}
# The splits calibration and abstention are reported on (cell-level votes have no probabilities).
IMAGE_SPLITS = ("test_image", "test_simple", "pbc_test")

REQUIRED_TOP = ("model_file", "model_sha256", "class_names", "training", "data", "evaluation", "limits", "trust")
REQUIRED_SPLIT = ("n", "correct", "accuracy", "accuracy_ci95", "per_class", "confusion_matrix")
PER_CLASS_FIELDS = ("precision", "recall", "f1", "support")
# The counts a data source may give, in the order the page lists them.
DATA_COUNTS = ("images", "cells", "training_cells", "validation_cells", "training_images", "validation_images",
               "test_images")
# Cards written before PBC joined the training data name no sources: those models saw Kaggle only.
DEFAULT_SOURCES = ("kaggle",)
SOURCE_NAMES = {"kaggle": "Kaggle/BCCD", "pbc": "PBC"}

Json = dict[str, Any]
Interval = tuple[float, float]


class ModelCardError(ValueError):
    """The model card exists but cannot be read; the message says why."""


# -- the parts of a card -----------------------------------------------------------

@dataclass(frozen=True)
class Share:
    """A count out of ``n`` with its rate and Wilson 95% interval (``metrics.rate``)."""

    count: int | None = None
    n: int | None = None
    rate: float | None = None
    ci95: Interval | None = None

    @classmethod
    def from_json(cls, value: Any) -> Share:
        value = _mapping(value)
        return cls(_count(value.get("count")), _count(value.get("n")), _number(value.get("rate")),
                   _interval(value.get("ci95")))


def _shares(value: Any) -> dict[str, Share]:
    return {str(key): Share.from_json(share) for key, share in _mapping(value).items()}


@dataclass(frozen=True)
class ClassScores:
    precision: float | None
    recall: float | None
    f1: float | None
    support: float | None

    @classmethod
    def from_json(cls, value: Any) -> ClassScores:
        value = _mapping(value)
        return cls(*(_float(value.get(name)) for name in PER_CLASS_FIELDS))


@dataclass(frozen=True)
class KeptByThreshold:
    """What the abstain threshold keeps on one split."""

    coverage: float | None
    accuracy_kept: float | None


@dataclass(frozen=True)
class Split:
    """One evaluation split: accuracy with its interval, per class, calibration, statuses."""

    description: str | None = None
    n: int | None = None
    correct: int | None = None
    accuracy: float | None = None
    accuracy_ci95: Interval | None = None
    macro_recall: float | None = None
    per_class: dict[str, ClassScores] = field(default_factory=dict)
    confusion_matrix: Any = None  # checked against the class count where it is drawn
    ece_before: float | None = None
    ece_after: float | None = None
    reliability_before: list[Json] | None = None
    reliability_after: list[Json] | None = None
    abstain: KeptByThreshold | None = None
    coverage_curve: list[Json] = field(default_factory=list)
    statuses: dict[str, Share] = field(default_factory=dict)

    @classmethod
    def from_json(cls, value: Json) -> Split:
        abstain = value.get("abstain")
        return cls(
            description=_text(value.get("description")),
            n=_count(value.get("n")),
            correct=_count(value.get("correct")),
            accuracy=_number(value.get("accuracy")),
            accuracy_ci95=_interval(value.get("accuracy_ci95")),
            macro_recall=_number(value.get("macro_recall")),
            per_class={str(name): ClassScores.from_json(row) for name, row in _mapping(value.get("per_class")).items()},
            confusion_matrix=value.get("confusion_matrix"),
            ece_before=_number(value.get("ece_before")),
            ece_after=_number(value.get("ece_after")),
            reliability_before=_list_or_none(value.get("reliability_before")),
            reliability_after=_list_or_none(value.get("reliability_after")),
            abstain=KeptByThreshold(_number(abstain.get("coverage")), _number(abstain.get("accuracy_kept")))
            if isinstance(abstain, dict) else None,
            coverage_curve=_list_or_none(value.get("coverage_curve")) or [],
            statuses=_shares(value.get("statuses")),
        )

    def status(self, name: str) -> Share:
        return self.statuses.get(name, Share())


def _splits(value: Any) -> dict[str, Split]:
    return {str(name): Split.from_json(split) for name, split in _mapping(value).items() if isinstance(split, dict)}


@dataclass(frozen=True)
class Flagged:
    n: int | None
    flagged: int | None


@dataclass(frozen=True)
class NonBloodResult:
    """How the model marks images that are not blood cells at all."""

    by_kind: dict[str, Flagged]  # natural photo, noise, other microscopy, ...
    not_flagged: tuple[str, ...]
    statuses: dict[str, Share]

    @classmethod
    def from_json(cls, value: Json) -> NonBloodResult:
        by_kind = {str(kind): Flagged(_count(_mapping(counts).get("n")), _count(_mapping(counts).get("flagged")))
                   for kind, counts in _mapping(value.get("by_kind")).items()}
        return cls(by_kind,
                   tuple(str(name) for name in _list_or_none(value.get("not_flagged")) or ()),
                   _shares(value.get("statuses")))


@dataclass(frozen=True)
class OtherTypeResult:
    """How the model treats held-out cells of one type that is none of the four (or of all of them)."""

    statuses: dict[str, Share]
    no_confident_four_type_answer: Share
    type_named_right_when_flagged: Share

    @classmethod
    def from_json(cls, value: Json) -> OtherTypeResult:
        return cls(_shares(value.get("statuses")), Share.from_json(value.get("no_confident_four_type_answer")),
                   Share.from_json(value.get("type_named_right_when_flagged")))

    def status(self, name: str) -> Share:
        return self.statuses.get(name, Share())


def _other_types(value: Any) -> dict[str, OtherTypeResult]:
    """'all' and each other type; other keys (a description) are not results."""
    return {str(name): OtherTypeResult.from_json(block) for name, block in _mapping(value).items()
            if isinstance(block, dict)}


@dataclass(frozen=True)
class Rescaled:
    label_kept: Share
    right: Share


@dataclass(frozen=True)
class RescalingResult:
    """The same photos at other magnifications: how often the label stays the same."""

    images: dict[str, Any]  # source -> image count
    changes: dict[str, Rescaled]  # "0.5x", "tight 110 px crop", ...

    @classmethod
    def from_json(cls, value: Json) -> RescalingResult:
        changes = {str(name): Rescaled(Share.from_json(block["label_kept"]), Share.from_json(block.get("right")))
                   for name, block in value.items() if isinstance(block, dict) and "label_kept" in block}
        return cls(_mapping(value.get("images")), changes)


@dataclass(frozen=True)
class FieldCounts:
    """Whole smear fields: white cells found and classified against the labels."""

    fields: int | None
    cells_expected: int | None
    cells_found: int | None
    fields_with_right_count: int | None
    cells_classified_right: int | None
    classified_right_ci95: Interval | None
    fields_with_two_cells: int | None
    two_cell_fields_both_found: int | None

    @classmethod
    def from_json(cls, value: Any) -> FieldCounts | None:
        if not isinstance(value, dict):
            return None
        return cls(*(_count(value.get(name)) for name in ("fields", "cells_expected", "cells_found",
                                                          "fields_with_right_count", "cells_classified_right")),
                   _interval(value.get("classified_right_ci95")), _count(value.get("fields_with_two_cells")),
                   _count(value.get("two_cell_fields_both_found")))


@dataclass(frozen=True)
class FieldsResult:
    how: str
    held_out: FieldCounts | None
    training_fields: FieldCounts | None

    @classmethod
    def from_json(cls, value: Json) -> FieldsResult:
        return cls(_text(value.get("how")) or "", FieldCounts.from_json(value.get("held_out")),
                   FieldCounts.from_json(value.get("training_fields")))


@dataclass(frozen=True)
class Evaluation:
    """The ``evaluation`` section written by ``training.evaluate`` (or a note that it has not run)."""

    splits: dict[str, Split]
    note: str | None = None
    date: str | None = None
    command: str | None = None
    unreadable: tuple[str, ...] = ()
    non_blood: NonBloodResult | None = None
    other_types: dict[str, OtherTypeResult] = field(default_factory=dict)
    rescaling: RescalingResult | None = None
    fields: FieldsResult | None = None
    precision: str = "f32"  # the network measured: OpenVINO int8, or f32 (also cards from before int8)

    @classmethod
    def from_json(cls, value: Any) -> Evaluation:
        value = _mapping(value)
        return cls(
            splits=_splits(value.get("splits")),
            note=_text(value.get("note")),
            date=_text(value.get("date")),
            command=_text(value.get("command")),
            unreadable=tuple(str(name) for name in _list_or_none(value.get("unreadable")) or ()),
            non_blood=_section(value.get("non_blood"), NonBloodResult.from_json),
            other_types=_other_types(value.get("other_types")),
            rescaling=_section(value.get("rescaling"), RescalingResult.from_json),
            fields=_section(value.get("fields"), FieldsResult.from_json),
            precision="int8" if value.get("precision") == "int8" else "f32",
        )


@dataclass(frozen=True)
class ModelResult:
    """Another model measured on the same splits (the card's ``comparison``)."""

    splits: dict[str, Split]
    trained_on: tuple[str, ...]
    training_command: str | None = None

    @classmethod
    def from_json(cls, value: Any) -> ModelResult:
        value = _mapping(value)
        return cls(_splits(value.get("splits")), tuple(str(s) for s in _list_or_none(value.get("trained_on")) or ()),
                   _text(value.get("training_command")))


def _comparison(value: Any) -> dict[str, ModelResult]:
    return {str(name): ModelResult.from_json(result) for name, result in _mapping(value).items()}


@dataclass(frozen=True)
class PreviousModel:
    """The model this one replaced, measured with its own code (``previous_model``)."""

    name: str | None
    splits: dict[str, Split]
    non_blood: NonBloodResult | None
    other_types: dict[str, OtherTypeResult]
    comparison: dict[str, ModelResult]

    @classmethod
    def from_json(cls, value: Json) -> PreviousModel:
        return cls(_text(value.get("name")), _splits(value.get("splits")),
                   _section(value.get("non_blood"), NonBloodResult.from_json),
                   _other_types(value.get("other_types")), _comparison(value.get("comparison")))


@dataclass(frozen=True)
class TrainingValidation:
    images: int | None
    accuracy: float | None


@dataclass(frozen=True)
class Training:
    """The ``training`` section written by ``training.train``; ``settings`` are its arguments as given."""

    command: str | None = None
    seconds: float | None = None
    activation_cache_seconds: float | None = None
    imagenet_weights: str | None = None
    sources: tuple[str, ...] = DEFAULT_SOURCES
    settings: Json = field(default_factory=dict)
    validation: TrainingValidation | None = None

    @classmethod
    def from_json(cls, value: Any) -> Training:
        value = _mapping(value)
        validation = value.get("validation")
        sources = value.get("sources", list(DEFAULT_SOURCES))
        return cls(
            command=_text(value.get("command")),
            seconds=_number(value.get("seconds")),
            activation_cache_seconds=_number(value.get("activation_cache_seconds")),
            imagenet_weights=_text(value.get("imagenet_weights")),
            sources=tuple(str(s) for s in sources) if isinstance(sources, list) else DEFAULT_SOURCES,
            settings=_mapping(value.get("settings")),
            validation=TrainingValidation(_count(validation.get("images")), _number(validation.get("accuracy")))
            if isinstance(validation, dict) and validation else None,
        )

    @property
    def colour_normalisation(self) -> str:
        """'background', 'reinhard' or 'none'. Cards before issue 12 only say whether
        Reinhard stain normalisation was on."""
        if "colour_normalisation" in self.settings:
            return str(self.settings["colour_normalisation"])
        return "reinhard" if self.settings.get("stain_normalise") else "none"


@dataclass(frozen=True)
class DataSource:
    """One training source in the ``data`` section."""

    name: str
    licence: str | None
    split: str | None
    counts: dict[str, int]  # DATA_COUNTS that the source gives, in that order

    @classmethod
    def from_json(cls, key: str, value: Json) -> DataSource:
        return cls(str(value.get("name", key)), _text(value.get("license")), _text(value.get("split")),
                   {name: value[name] for name in DATA_COUNTS if isinstance(value.get(name), int)})


@dataclass(frozen=True)
class Abstain:
    """The confidence below which a prediction becomes 'check this cell', chosen on validation."""

    threshold: float | None
    target_accuracy: float | None
    coverage: float | None
    accuracy: float | None
    reached: bool


@dataclass(frozen=True)
class OODCheck:
    far_threshold_rule: str | None
    target_validation_flag_rate: float | None


@dataclass(frozen=True)
class OtherTypeDetectorInfo:
    command: str | None
    method: str | None
    threshold_rule: str | None


@dataclass(frozen=True)
class Trust:
    """The ``trust`` section: calibration and abstention from ``training.calibrate``, the
    other-type detector from ``training.other_types``, and the files they fitted."""

    command: str | None = None
    temperature: float = 1.0
    validation_images: int | None = None
    validation_ece_before: float | None = None
    validation_ece_after: float | None = None
    validation_coverage_curve: list[Json] = field(default_factory=list)
    abstain: Abstain | None = None
    ood: OODCheck | None = None
    ood_file: str | None = None
    other_types: OtherTypeDetectorInfo | None = None
    other_types_file: str | None = None

    @classmethod
    def from_json(cls, value: Json) -> Trust:
        abstain, ood, other = (value.get(key) for key in ("abstain", "ood", "other_types"))
        temperature = _number(value.get("temperature"))
        return cls(
            command=_text(value.get("command")),
            temperature=1.0 if temperature is None else temperature,
            validation_images=_count(value.get("validation_images")),
            validation_ece_before=_number(value.get("validation_ece_before")),
            validation_ece_after=_number(value.get("validation_ece_after")),
            validation_coverage_curve=_list_or_none(value.get("validation_coverage_curve")) or [],
            abstain=Abstain(_number(abstain.get("threshold")), _number(abstain.get("target_accuracy")),
                            _number(abstain.get("coverage")), _number(abstain.get("accuracy")),
                            bool(abstain.get("reached", True)))
            if isinstance(abstain, dict) and abstain else None,
            ood=OODCheck(_text(ood.get("far_threshold_rule")), _number(ood.get("target_validation_flag_rate")))
            if isinstance(ood, dict) else None,
            ood_file=_text(value.get("ood_file")),
            other_types=OtherTypeDetectorInfo(_text(other.get("command")), _text(other.get("method")),
                                              _text(other.get("threshold_rule")))
            if isinstance(other, dict) else None,
            other_types_file=_text(value.get("other_types_file")),
        )


# -- the card ------------------------------------------------------------------------

@dataclass(frozen=True)
class MeanOverDraws:
    """A mean over seeded draws with its Student-t 95% interval (``compare.mean_ci``)."""

    mean: float | None = None
    ci95: Interval | None = None
    draws: int | None = None

    @classmethod
    def from_json(cls, value: Any) -> MeanOverDraws:
        value = _mapping(value)
        return cls(_number(value.get("mean")), _interval(value.get("ci95")), _count(value.get("n")))


@dataclass(frozen=True)
class ProfileResult:
    """One way of adapting (unlabelled, 5-shot, ...) on one unseen lab, over seeded draws."""

    macro_recall: MeanOverDraws
    accuracy: MeanOverDraws
    not_blood_cell: MeanOverDraws
    unfamiliar_source: MeanOverDraws
    shipped_macro_recall: MeanOverDraws  # no profile, on the same images
    shipped_unfamiliar_source: MeanOverDraws
    images_judged: int | None
    note: str | None

    @classmethod
    def from_json(cls, value: Any) -> ProfileResult:
        value = _mapping(value)
        shipped = _mapping(value.get("shipped_on_same_images"))
        return cls(*(MeanOverDraws.from_json(value.get(key)) for key in
                     ("macro_recall", "accuracy", "not_blood_cell", "unfamiliar_source")),
                   MeanOverDraws.from_json(shipped.get("macro_recall")),
                   MeanOverDraws.from_json(shipped.get("unfamiliar_source")),
                   _count(value.get("images_judged")), _text(value.get("note")))


@dataclass(frozen=True)
class ProfileSource:
    """An unseen lab and the model that never saw it: no profile, then each kind of profile."""

    model: str | None
    images: int | None
    cells: int | None
    no_profile: dict[str, float]  # macro_recall, accuracy, not_blood_cell, unfamiliar_source, cell_accuracy
    profiles: dict[str, ProfileResult]
    # Macro recall with every other cell labelled (cross-validation by cell): "refit",
    # "logistic_regression", and "labelled_cells_per_fold".
    ceiling: dict[str, float]

    @classmethod
    def from_json(cls, value: Any) -> ProfileSource:
        value = _mapping(value)
        none = _mapping(value.get("none"))
        return cls(_text(value.get("model")), _count(none.get("images")), _count(none.get("cells")),
                   {str(k): v for k, v in none.items() if isinstance(v, (int, float)) and k not in ("images", "cells")},
                   {str(k): ProfileResult.from_json(v) for k, v in value.items()
                    if k not in ("model", "none", "ceiling") and isinstance(v, dict)},
                   {str(k): v for k, v in _mapping(value.get("ceiling")).items() if isinstance(v, (int, float))})


@dataclass(frozen=True)
class LabProfilesResult:
    """The card's ``lab_profiles`` section (``training.lab_profiles``)."""

    sources: dict[str, ProfileSource]
    how: str | None
    command: str | None
    date: str | None
    build_seconds_100_images: float | None

    @classmethod
    def from_json(cls, value: Any) -> LabProfilesResult:
        value = _mapping(value)
        return cls({str(k): ProfileSource.from_json(v) for k, v in _mapping(value.get("sources")).items()},
                   _text(value.get("how")), _text(value.get("command")), _text(value.get("date")),
                   _number(value.get("unlabelled_build_seconds_100_images")))


@dataclass(frozen=True)
class ModelCard:
    """A model card: typed sections, the JSON they came from, and what is wrong with it."""

    path: Path
    raw: Json  # the file's JSON in its own key order: what ``save`` writes back
    problems: tuple[str, ...]
    model_file: str | None
    model_sha256: str | None
    class_names: tuple[str, ...]  # empty when the card does not give them
    input_size: int | None
    framing: str | None
    training: Training
    data: dict[str, DataSource]
    evaluation: Evaluation
    limits: tuple[str, ...]
    trust: Trust | None  # the f32 network's (OpenVINO f32 and TensorFlow)
    trust_int8: Trust | None  # the int8 network's own, fitted the same way on its features
    previous_model: PreviousModel | None
    comparison: dict[str, ModelResult]
    lab_profiles: LabProfilesResult | None

    @classmethod
    def from_json(cls, raw: Json, path: Path) -> ModelCard:
        names = raw.get("class_names")
        size = raw.get("input_size")
        limits = raw.get("limits")
        return cls(
            path=path,
            raw=raw,
            problems=tuple(validate_model_card(raw)),
            model_file=_text(raw.get("model_file")),
            model_sha256=_text(raw.get("model_sha256")),
            class_names=tuple(str(n) for n in names) if isinstance(names, list) else (),
            input_size=size if isinstance(size, int) else None,
            framing=_text(raw.get("framing")),
            training=Training.from_json(raw.get("training")),
            data={str(key): DataSource.from_json(str(key), info) for key, info in _mapping(raw.get("data")).items()
                  if isinstance(info, dict)},
            evaluation=Evaluation.from_json(raw.get("evaluation")),
            limits=tuple(str(x) for x in limits) if isinstance(limits, list) else (),
            trust=_section(raw.get("trust"), Trust.from_json),
            trust_int8=_section(raw.get("trust_int8"), Trust.from_json),
            previous_model=_section(raw.get("previous_model"), PreviousModel.from_json),
            comparison=_comparison(raw.get("comparison")),
            lab_profiles=_section(raw.get("lab_profiles"), LabProfilesResult.from_json),
        )

    @classmethod
    def blank(cls, path: Path) -> ModelCard:
        """A card with nothing in it yet, for the first script that writes one."""
        return cls.from_json({}, path)

    def available_splits(self) -> list[str]:
        """The evaluated splits in page order: the known ones, then any others by name."""
        splits = self.evaluation.splits
        known = [name for name in SPLITS if name in splits]
        extra = sorted(name for name in splits if name not in SPLITS and name not in UNSEEN_SPLITS)
        return known + extra

    # -- writing: each script replaces its own sections -------------------------------
    def with_sections(self, **sections: Any) -> ModelCard:
        """The card with these top-level sections set; existing ones keep their place."""
        return ModelCard.from_json({**self.raw, **sections}, self.path)

    def without_sections(self, *names: str) -> ModelCard:
        return ModelCard.from_json({k: v for k, v in self.raw.items() if k not in names}, self.path)

    def with_training(self, *, model_file: str, model_sha256: str | None, class_names: list[str], input_size: int,
                      framing: str, training: Json, data: Json, limits: list[str]) -> ModelCard:
        """A newly trained model: its identity, training and data. The evaluation, trust and
        quantised network of whatever model the card described before no longer apply, so they go."""
        trained = self.with_sections(model_file=model_file, model_sha256=model_sha256, class_names=class_names,
                                     input_size=input_size, framing=framing, training=training, data=data)
        return trained.without_sections("evaluation", "trust", "trust_int8", "openvino_int8").with_sections(
            evaluation={"note": "not evaluated yet: run python -m training.evaluate"}, limits=limits)

    @property
    def evaluated_trust(self) -> Trust | None:
        """The trust checks of the network the evaluation measured: what the Model page shows."""
        return self.trust_for(self.evaluation.precision)

    def trust_for(self, precision: str) -> Trust | None:
        """The trust checks fitted to the network that runs at ``precision`` (``network_of``):
        int8's own once fitted, else f32's."""
        if network_of(precision) == "int8" and self.trust_int8 is not None:
            return self.trust_int8
        return self.trust

    def with_calibration(self, trust: Json, section: str = "trust") -> ModelCard:
        """A new trust section (``trust``, or ``trust_int8`` for the int8 network) from
        calibration. The other-type detector is fitted after calibration, by its own script,
        so its entries are kept."""
        kept = {k: v for k, v in _mapping(self.raw.get(section)).items() if k.startswith("other_types")}
        return self.with_sections(**{section: {**trust, **kept}})

    def with_other_type_detector(self, summary: Json, file_name: str, file_sha256: str | None,
                                 section: str = "trust") -> ModelCard:
        trust = {**_mapping(self.raw.get(section)), "other_types": summary, "other_types_file": file_name,
                 "other_types_file_sha256": file_sha256}
        return self.with_sections(**{section: trust})

    def with_evaluation(self, *, model_file: str, model_sha256: str | None, evaluation: Json,
                        comparison: Json) -> ModelCard:
        return self.with_sections(model_file=model_file, model_sha256=model_sha256, evaluation=evaluation,
                                  comparison=comparison)

    def with_lab_profiles(self, section: Json) -> ModelCard:
        """How lab profiles do on labs the model never saw (``training.lab_profiles``)."""
        return self.with_sections(lab_profiles=section)

    def to_json(self) -> str:
        return json.dumps(self.raw, indent=2) + "\n"

    def save(self, path: str | Path | None = None) -> None:
        Path(path or self.path).write_text(self.to_json())


def load_model_card(path: str | Path | None = None) -> ModelCard | None:
    """The card at ``path``, or None if there is none.

    Default: ``$HEMATOVISION_MODEL_CARD`` if set, else ``models/model-card.json``.
    """
    card_path = Path(path) if path is not None else default_card_path()
    if not card_path.is_file():
        return None
    try:
        data = json.loads(card_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelCardError(f"The model card {card_path.name} is not valid JSON ({exc}).") from None
    if not isinstance(data, dict):
        raise ModelCardError(f"The model card {card_path.name} should hold a JSON object.")
    return ModelCard.from_json(data, card_path)


def default_card_path() -> Path:
    override = os.environ.get(CARD_PATH_ENV)
    return Path(override) if override else MODEL_CARD_PATH


def validate_model_card(data: Json) -> list[str]:
    """Human-readable problems with a card's structure (empty when it is complete)."""
    problems: list[str] = []
    for key in REQUIRED_TOP:
        if key not in data:
            problems.append(f"missing top-level field '{key}'")
    names = data.get("class_names")
    if "class_names" in data and (not isinstance(names, list) or len(names) < 2):
        problems.append("'class_names' should be a list of class names")
    splits = _mapping(_mapping(data.get("evaluation")).get("splits"))
    if "evaluation" in data and not splits:
        problems.append("'evaluation.splits' is missing or empty")
    for name in SPLITS:
        if splits and name not in splits:
            problems.append(f"evaluation split '{name}' is missing")
    for name, split in splits.items():
        if not isinstance(split, dict):
            problems.append(f"split '{name}' should be an object")
            continue
        for key in REQUIRED_SPLIT:
            if key not in split:
                problems.append(f"split '{name}' has no '{key}'")
        if "accuracy_ci95" in split and _interval(split["accuracy_ci95"]) is None:
            problems.append(f"split '{name}': 'accuracy_ci95' should be [low, high] within 0..1")
        # Without class names there is no size to check the matrix against; that is reported above.
        if "confusion_matrix" in split and isinstance(names, list) and names \
                and not _is_square(split["confusion_matrix"], len(names)):
            problems.append(f"split '{name}': 'confusion_matrix' should be {len(names)}x{len(names)}")
        per_class = split.get("per_class")
        if isinstance(per_class, dict):
            for cls, row in per_class.items():
                if not isinstance(row, dict) or any(f not in row for f in PER_CLASS_FIELDS):
                    problems.append(f"split '{name}': per-class row '{cls}' is incomplete")
    if "limits" in data and not isinstance(data["limits"], list):
        problems.append("'limits' should be a list of sentences")
    return problems


# -- reading JSON values tolerantly ----------------------------------------------------

def _mapping(value: Any) -> Json:
    return value if isinstance(value, dict) else {}


def _section(value: Any, parse):
    """A parsed section, or None when the card has none (or an empty one)."""
    return parse(value) if isinstance(value, dict) and value else None


def _number(value: Any) -> float | None:
    """The number as the card stores it (an int stays an int), or None."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return value if is_number else None


def _float(value: Any) -> float | None:
    number = _number(value)
    return None if number is None else float(number)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _list_or_none(value: Any) -> list | None:
    return value if isinstance(value, list) else None


def _interval(value: Any) -> Interval | None:
    if (isinstance(value, (list, tuple)) and len(value) == 2 and all(_number(v) is not None for v in value)
            and 0.0 <= value[0] <= value[1] <= 1.0):
        return (value[0], value[1])
    return None


def _is_square(matrix: Any, size: int) -> bool:
    return (
        isinstance(matrix, list)
        and len(matrix) == size
        and all(isinstance(row, list) and len(row) == size for row in matrix)
        and all(_number(v) is not None for row in matrix for v in row)
    )


# -- what the Model page and reports show ----------------------------------------------

def per_class_rows(split: Split, class_names: list[str]) -> list[dict[str, Any]]:
    """Rows for a per-class table, in class order, with whatever numbers are present."""
    per_class = split.per_class
    ordered = [c for c in class_names if c in per_class] + [c for c in per_class if c not in class_names]
    return [{"Class": cls.capitalize(), "Precision": per_class[cls].precision, "Recall": per_class[cls].recall,
             "F1": per_class[cls].f1, "Support": per_class[cls].support} for cls in ordered]


def confusion_matrix(split: Split, class_names: list[str]) -> list[list[float]] | None:
    matrix = split.confusion_matrix
    return matrix if _is_square(matrix, len(class_names)) else None


def accuracy_cell(split: Split | None) -> str:
    """'86.0% (84.6–87.3)' for a comparison table, or '–'."""
    if split is None or split.accuracy is None:
        return "–"
    ci = split.accuracy_ci95
    return f"{100 * split.accuracy:.1f}%" + (f" ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})" if ci else "")


def comparison_rows(card: ModelCard) -> list[dict[str, str]]:
    """One row per model (the shipped one first): accuracy with 95% CI on every split."""
    shipped = ModelResult(card.evaluation.splits, card.training.sources)
    rows = []
    for name, result in {"Shipped model": shipped, **card.comparison}.items():
        row = {"Model": name,
               "Trained on": " + ".join(SOURCE_NAMES.get(t, t) for t in result.trained_on) or "?"}
        for split, (title, _) in {**SPLITS, **UNSEEN_SPLITS}.items():
            row[title] = accuracy_cell(result.splits.get(split))
        rows.append(row)
    return rows


def leave_one_lab_out_rows(card: ModelCard) -> list[dict[str, str]]:
    """Each recipe's single-lab models on the lab they did not see: this model's recipe and,
    where the card has it, the previous model's (its ``comparison`` of the same kind)."""
    previous = card.previous_model.comparison if card.previous_model else {}
    rows = []
    for recipe, models in (("This model's recipe", card.comparison), ("Previous recipe (issue 3)", previous)):
        for name, result in models.items():
            if "this recipe" not in name:  # an older model kept for comparison, not a single-lab run of the recipe
                continue
            if result.trained_on == ("kaggle",):
                rows.append({"Recipe": recipe, "Trained on": "Kaggle/BCCD only", "Tested on": "PBC test split",
                             "Accuracy (95% CI)": accuracy_cell(result.splits.get("pbc_test")), "Model": name})
            elif result.trained_on == ("pbc",):
                rows.append({"Recipe": recipe, "Trained on": "PBC only", "Tested on": "Kaggle TEST, per cell",
                             "Accuracy (95% CI)": accuracy_cell(result.splits.get("test_cell")), "Model": name})
    return rows


def status_rows(card: ModelCard) -> list[dict[str, Any]]:
    """Share of each status on every image set, for this model and the previous one."""
    sets = {**{k: v[0] for k, v in SPLITS.items()}, **{k: v[0] for k, v in UNSEEN_SPLITS.items()}}
    rows = []
    for model, results in (("This model", card.evaluation), ("Previous model", card.previous_model)):
        if results is None:
            continue
        blocks = [(title, results.splits[name].statuses if name in results.splits else {})
                  for name, title in sets.items()]
        other = results.other_types.get("all")
        blocks.append(("Other cell types (PBC, held out)", other.statuses if other else {}))
        blocks.append(("Not blood cells", results.non_blood.statuses if results.non_blood else {}))
        for title, mix in blocks:
            if not mix:
                continue
            row = {"Model": model, "Images": title, "n": next(iter(mix.values())).n}
            row.update({STATUS_TEXT[s]: mix[s].rate if s in mix else None for s in STATUSES})
            rows.append(row)
    return rows


# The sets ``training.precision`` measures, as the Model page names them.
PRECISION_SETS = {"kaggle_test": "Kaggle TEST images", "pbc_test": "PBC test split", "lisc": "LISC (never seen)"}


def precision_rows(card: ModelCard) -> list[dict[str, Any]]:
    """The int8 network against f32 on each test set (``training.precision --save``), one row
    per set; empty when the card holds no such measurement."""
    sets = _mapping(_mapping(_mapping(card.raw.get("openvino_int8")).get("against_f32")).get("sets"))

    def accuracy(result: Json) -> str:
        value = _float(result.get("accuracy"))
        if value is None:
            return "–"
        text = f"{100 * value:.1f}% ({interval_text(_interval(result.get('ci95')))})"
        return text + (f", cells {result['cells_correct']}" if result.get("cells_correct") else "")

    def unfamiliar(result: Json) -> float | None:
        return _float(_mapping(_mapping(result.get("statuses")).get("unfamiliar_source")).get("rate"))

    rows = []
    for name, title in PRECISION_SETS.items():
        entry = _mapping(sets.get(name))
        f32, int8 = _mapping(entry.get("f32")), _mapping(entry.get("int8"))
        if not f32 or not int8:
            continue
        rows.append({"Data": title, "f32 accuracy": accuracy(f32), "int8 accuracy": accuracy(int8),
                     "Labels changed": f"{entry.get('labels_changed')} of {int8.get('n')}",
                     "ECE f32": _float(f32.get("ece")), "ECE int8": _float(int8.get("ece")),
                     "Unfamiliar lab, f32": unfamiliar(f32), "Unfamiliar lab, int8": unfamiliar(int8)})
    return rows


def interval_text(ci: Interval | None, digits: int = 1) -> str:
    """'95% CI 91.2–97.0%' or '' when there is no interval."""
    if ci is None:
        return ""
    low, high = ci
    return f"95% CI {100 * low:.{digits}f}–{100 * high:.{digits}f}%"


def file_sha256(path: str | Path) -> str | None:
    """SHA-256 of a file, or None if it does not exist."""
    path = Path(path)
    if not path.is_file():
        return None
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_file_check(card: ModelCard) -> tuple[bool | None, str]:
    """Does the committed model file match the card's sha256? (ok, explanation)

    ``ok`` is None when it cannot be checked (no file name or hash in the card, or no file).
    """
    if not card.model_file or not card.model_sha256:
        return None, "The card does not name the model file and its SHA-256."
    name = Path(card.model_file).name  # the card names a file in models/
    actual = file_sha256(MODELS_DIR / name)
    if actual is None:
        return None, f"The model file {name} named by the card is not in models/."
    if actual.lower() == card.model_sha256.lower():
        return True, "The model file in models/ matches the SHA-256 in this card."
    return False, (
        "The model file in models/ does not match the SHA-256 in this card: the numbers "
        "below may describe a different model."
    )
