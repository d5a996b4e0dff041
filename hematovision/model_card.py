"""Read ``models/model-card.json`` and check that it has what the Model page shows.

The card is written by the training and evaluation scripts. This reader is tolerant:
a missing file gives ``None``, a file that is not JSON raises ``ModelCardError`` with
a readable message, and missing or malformed parts are reported as a list of problems
so the app can show what is there and say what is not.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hematovision.classifier import CLASS_NAMES, MODEL_CARD_PATH, MODELS_DIR

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

# Tests (or a deployment) can point the app at another card file.
CARD_PATH_ENV = "HEMATOVISION_MODEL_CARD"

REQUIRED_TOP = ("model_file", "model_sha256", "class_names", "training", "data", "evaluation", "limits", "trust")
REQUIRED_SPLIT = ("n", "correct", "accuracy", "accuracy_ci95", "per_class", "confusion_matrix")
PER_CLASS_FIELDS = ("precision", "recall", "f1", "support")


class ModelCardError(ValueError):
    """The model card exists but cannot be read; the message says why."""


@dataclass
class ModelCard:
    """The parsed card plus what was found wrong with it."""

    data: dict[str, Any]
    path: Path
    problems: list[str] = field(default_factory=list)

    # -- convenient views ------------------------------------------------------
    @property
    def class_names(self) -> list[str]:
        names = self.data.get("class_names")
        return list(names) if isinstance(names, list) and names else list(CLASS_NAMES)

    @property
    def training(self) -> dict[str, Any]:
        return _as_dict(self.data.get("training"))

    @property
    def data_info(self) -> dict[str, Any]:
        return _as_dict(self.data.get("data"))

    @property
    def evaluation(self) -> dict[str, Any]:
        return _as_dict(self.data.get("evaluation"))

    @property
    def trust(self) -> dict[str, Any]:
        return _as_dict(self.data.get("trust"))

    @property
    def comparison(self) -> dict[str, Any]:
        return _as_dict(self.data.get("comparison"))

    @property
    def limits(self) -> list[str]:
        limits = self.data.get("limits")
        return [str(x) for x in limits] if isinstance(limits, list) else []

    def split(self, name: str) -> dict[str, Any] | None:
        """One evaluation split (``test_image``, ``test_cell``, ``test_simple``) if present."""
        split = _as_dict(self.evaluation.get("splits")).get(name)
        return split if isinstance(split, dict) else None

    @property
    def previous(self) -> dict[str, Any]:
        """The model this one replaced, measured with its own code (``previous_model``)."""
        return _as_dict(self.data.get("previous_model"))

    def available_splits(self) -> list[str]:
        known = [name for name in SPLITS if self.split(name) is not None]
        extra = [
            name for name in _as_dict(self.evaluation.get("splits"))
            if name not in SPLITS and name not in UNSEEN_SPLITS and self.split(name) is not None
        ]
        return known + sorted(extra)


def _as_dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


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
    return ModelCard(data=data, path=card_path, problems=validate_model_card(data))


def default_card_path() -> Path:
    override = os.environ.get(CARD_PATH_ENV)
    return Path(override) if override else MODEL_CARD_PATH


def validate_model_card(data: dict[str, Any]) -> list[str]:
    """Human-readable problems with a card's structure (empty when it is complete)."""
    problems: list[str] = []
    for key in REQUIRED_TOP:
        if key not in data:
            problems.append(f"missing top-level field '{key}'")
    names = data.get("class_names")
    if "class_names" in data and (not isinstance(names, list) or len(names) < 2):
        problems.append("'class_names' should be a list of class names")
    n_classes = len(names) if isinstance(names, list) and names else len(CLASS_NAMES)
    splits = _as_dict(_as_dict(data.get("evaluation")).get("splits"))
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
        ci = split.get("accuracy_ci95")
        if "accuracy_ci95" in split and not _is_interval(ci):
            problems.append(f"split '{name}': 'accuracy_ci95' should be [low, high] within 0..1")
        matrix = split.get("confusion_matrix")
        if "confusion_matrix" in split and not _is_square(matrix, n_classes):
            problems.append(f"split '{name}': 'confusion_matrix' should be {n_classes}x{n_classes}")
        per_class = split.get("per_class")
        if isinstance(per_class, dict):
            for cls, row in per_class.items():
                if not isinstance(row, dict) or any(f not in row for f in PER_CLASS_FIELDS):
                    problems.append(f"split '{name}': per-class row '{cls}' is incomplete")
    limits = data.get("limits")
    if "limits" in data and not isinstance(limits, list):
        problems.append("'limits' should be a list of sentences")
    return problems


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_interval(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and 0.0 <= value[0] <= value[1] <= 1.0
    )


def _is_square(matrix: Any, size: int) -> bool:
    return (
        isinstance(matrix, list)
        and len(matrix) == size
        and all(isinstance(row, list) and len(row) == size for row in matrix)
        and all(_is_number(v) for row in matrix for v in row)
    )


# -- helpers for display -------------------------------------------------------
def per_class_rows(split: dict[str, Any], class_names: list[str]) -> list[dict[str, Any]]:
    """Rows for a per-class table, in class order, with whatever numbers are present."""
    per_class = _as_dict(split.get("per_class"))
    rows = []
    ordered = [c for c in class_names if c in per_class] + [c for c in per_class if c not in class_names]
    for cls in ordered:
        row = _as_dict(per_class.get(cls))
        rows.append(
            {
                "Class": str(cls).capitalize(),
                "Precision": _number_or_none(row.get("precision")),
                "Recall": _number_or_none(row.get("recall")),
                "F1": _number_or_none(row.get("f1")),
                "Support": _number_or_none(row.get("support")),
            }
        )
    return rows


def _number_or_none(value: Any) -> float | None:
    return float(value) if _is_number(value) else None


def confusion_matrix(split: dict[str, Any], class_names: list[str]) -> list[list[float]] | None:
    matrix = split.get("confusion_matrix")
    return matrix if _is_square(matrix, len(class_names)) else None


def accuracy_cell(split: Any) -> str:
    """'86.0% (84.6–87.3)' for a comparison table, or '–'."""
    split = _as_dict(split)
    accuracy, ci = split.get("accuracy"), split.get("accuracy_ci95")
    if not _is_number(accuracy):
        return "–"
    text = f"{100 * accuracy:.1f}%"
    return text + (f" ({100 * ci[0]:.1f}–{100 * ci[1]:.1f})" if _is_interval(ci) else "")


def _models(card: "ModelCard") -> dict[str, Any]:
    """The shipped model's results, then each comparison model's, in one shape."""
    shipped = {"splits": card.evaluation.get("splits"), "non_blood": card.evaluation.get("non_blood"),
               "trained_on": card.training.get("sources", ["kaggle"])}
    return {"Shipped model": shipped, **card.comparison}


def comparison_rows(card: "ModelCard") -> list[dict[str, str]]:
    """One row per model (the shipped one first): accuracy with 95% CI on every split."""
    rows = []
    for name, result in _models(card).items():
        result = _as_dict(result)
        splits = _as_dict(result.get("splits"))
        trained = result.get("trained_on") or []
        row = {"Model": name, "Trained on": " + ".join(SOURCE_NAMES.get(t, str(t)) for t in trained) or "?"}
        for split, (title, _) in {**SPLITS, **UNSEEN_SPLITS}.items():
            row[title] = accuracy_cell(splits.get(split))
        rows.append(row)
    return rows


def leave_one_lab_out_rows(card: "ModelCard") -> list[dict[str, str]]:
    """Each recipe's single-lab models on the lab they did not see: this model's recipe and,
    where the card has it, the previous model's (its ``comparison`` of the same kind)."""
    rows = []
    for recipe, models in (("This model's recipe", card.comparison),
                           ("Previous recipe (issue 3)", _as_dict(card.previous.get("comparison")))):
        for name, result in models.items():
            if "this recipe" not in name:  # an older model kept for comparison, not a single-lab run of the recipe
                continue
            result = _as_dict(result)
            trained = result.get("trained_on") or []
            splits = _as_dict(result.get("splits"))
            if trained == ["kaggle"]:
                rows.append({"Recipe": recipe, "Trained on": "Kaggle/BCCD only", "Tested on": "PBC test split",
                             "Accuracy (95% CI)": accuracy_cell(splits.get("pbc_test")), "Model": name})
            elif trained == ["pbc"]:
                rows.append({"Recipe": recipe, "Trained on": "PBC only", "Tested on": "Kaggle TEST, per cell",
                             "Accuracy (95% CI)": accuracy_cell(splits.get("test_cell")), "Model": name})
    return rows


def status_rows(card: "ModelCard") -> list[dict[str, Any]]:
    """Share of each status on every image set, for this model and the previous one."""
    from hematovision.trust import STATUS_TEXT, STATUSES

    sets = {**{k: v[0] for k, v in SPLITS.items()}, **{k: v[0] for k, v in UNSEEN_SPLITS.items()}}
    rows = []
    for model, evaluation in (("This model", card.evaluation), ("Previous model", card.previous)):
        blocks = [(sets[name], _as_dict(_as_dict(evaluation.get("splits")).get(name)).get("statuses"))
                  for name in sets]
        other = _as_dict(_as_dict(evaluation.get("other_types")).get("all"))
        blocks.append(("Other cell types (PBC, held out)", other.get("statuses")))
        blocks.append(("Not blood cells", _as_dict(evaluation.get("non_blood")).get("statuses")))
        for title, mix in blocks:
            mix = _as_dict(mix)
            if not mix:
                continue
            n = next((_as_dict(v).get("n") for v in mix.values()), None)
            row = {"Model": model, "Images": title, "n": n}
            row.update({STATUS_TEXT[s]: _as_dict(mix.get(s)).get("rate") for s in STATUSES})
            rows.append(row)
    return rows


SOURCE_NAMES = {"kaggle": "Kaggle/BCCD", "pbc": "PBC"}


def interval_text(ci: Any, digits: int = 1) -> str:
    """'95% CI 91.2–97.0%' or '' when the interval is missing or malformed."""
    if not _is_interval(ci):
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
    name = card.data.get("model_file")
    expected = card.data.get("model_sha256")
    if not isinstance(name, str) or not isinstance(expected, str) or not expected:
        return None, "The card does not name the model file and its SHA-256."
    model_path = MODELS_DIR / Path(name).name  # the card names a file in models/
    actual = file_sha256(model_path)
    if actual is None:
        return None, f"The model file {Path(name).name} named by the card is not in models/."
    if actual.lower() == expected.lower():
        return True, "The model file in models/ matches the SHA-256 in this card."
    return False, (
        "The model file in models/ does not match the SHA-256 in this card: the numbers "
        "below may describe a different model."
    )
