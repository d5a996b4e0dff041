"""When not to believe the model: calibrated confidence and a status for every prediction.

Five statuses, checked in this order:

* ``not_blood_cell`` - no nucleus-stained object was found in the image
  (``cells.locate_white_cells``), or its features lie far from every stained blood
  cell's, farther than validation cells do even under strong lab-to-lab changes
  (``ood.OODDetector``, its far threshold): a photo, other microscopy, a plain colour,
  noise, a document. The class shown means little.
* ``other_cell_type`` - a blood cell that is none of the four types (basophil, immature
  granulocyte, erythroblast, platelet; ``cell_types.OtherTypeDetector``). It is left out
  of a differential's four counts, and the type it looks like is named.
* ``unfamiliar_source`` - a stained blood cell, but further from the training labs'
  cells than almost all validation cells (the OOD near threshold): another stain,
  microscope or camera. The class is still given, with the advice to check it.
* ``check`` - the calibrated confidence is below the abstain threshold chosen on
  validation data: a person should look at this cell.
* ``confident`` - none of the above.

Everything is fitted by ``training.calibrate`` and ``training.other_types`` on held-out
validation images and stored beside the model (model card ``trust`` section,
``models/ood-reference.npz`` and ``models/other-types.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from hematovision.model.calibration import apply_temperature
from hematovision.model.cell_types import OTHER_TYPE_TEXT, OtherTypeDetector
from hematovision.model.ood import OODDetector

if TYPE_CHECKING:  # the card module reads status names from here, so it is imported for types only
    from hematovision.model.model_card import Trust

CONFIDENT = "confident"
CHECK = "check"
UNFAMILIAR_SOURCE = "unfamiliar_source"
OTHER_CELL_TYPE = "other_cell_type"
NOT_BLOOD_CELL = "not_blood_cell"
STATUSES = (CONFIDENT, CHECK, UNFAMILIAR_SOURCE, OTHER_CELL_TYPE, NOT_BLOOD_CELL)
# Statuses whose class is still one of the four types and counts in a differential.
COUNTED_STATUSES = (CONFIDENT, CHECK, UNFAMILIAR_SOURCE)
STATUS_TEXT = {
    CONFIDENT: "Confident",
    CHECK: "Check this cell yourself",
    UNFAMILIAR_SOURCE: "Unfamiliar lab or camera: check this cell",
    OTHER_CELL_TYPE: "Another cell type, not one of the four",
    NOT_BLOOD_CELL: "Does not look like a blood-cell image",
}
STATUS_ADVICE = {
    CONFIDENT: "The calibrated confidence is above the level at which the model was right "
               "{target} of the time on validation cells.",
    CHECK: "The model is unsure: its calibrated confidence is below {threshold}, the level chosen "
           "on validation cells. Confirm the class yourself.",
    UNFAMILIAR_SOURCE: "This looks like a stained blood cell, but its stain, microscope or camera is unlike the "
                       "labs the model learned from, so its confidence is less reliable here. The class shown "
                       "is the model's best answer: confirm it yourself.",
    OTHER_CELL_TYPE: "This cell does not look like an eosinophil, lymphocyte, monocyte or neutrophil; it looks "
                     "most like {other_type}. It is kept out of the four-type counts: review it yourself.",
    NOT_BLOOD_CELL: "This image is unlike stained blood-smear cells, so the model's answer is not "
                    "meaningful. Upload a stained smear photo of a white cell.",
}


@dataclass(frozen=True)
class Assessment:
    calibrated_probabilities: np.ndarray
    calibrated_confidence: float
    status: str
    ood_score: float | None
    other_type: str | None = None  # the other cell type it looks most like
    other_type_probability: float | None = None

    @property
    def status_text(self) -> str:
        return STATUS_TEXT[self.status]


@dataclass
class TrustModel:
    """Everything needed to turn raw probabilities and features into an Assessment."""

    temperature: float = 1.0
    abstain_threshold: float = 0.0
    target_accuracy: float | None = None
    ood: OODDetector | None = None
    other_types: OtherTypeDetector | None = None

    @property
    def is_fitted(self) -> bool:
        return self.ood is not None

    @classmethod
    def from_card(cls, trust: Trust | None, models_dir: Path) -> "TrustModel":
        """The model card's ``trust`` section with the fitted files it names; a card without
        one gives the do-nothing model."""
        if trust is None:
            return cls()

        def stored(name, loader):
            return loader(models_dir / name) if name and (models_dir / name).is_file() else None

        abstain = trust.abstain
        threshold = abstain.threshold if abstain and abstain.threshold is not None else 0.0
        return cls(float(trust.temperature), float(threshold), abstain.target_accuracy if abstain else None,
                   stored(trust.ood_file, OODDetector.load), stored(trust.other_types_file, OtherTypeDetector.load))

    def assess(self, probabilities: np.ndarray, features: np.ndarray,
               type_features: np.ndarray | None = None,
               nucleus_found: Sequence[bool] | None = None) -> list[Assessment]:
        """``features`` feed the OOD check, ``type_features`` the other-type detector, and
        ``nucleus_found`` says whether the cell finder saw a stained nucleus in each image."""
        calibrated = apply_temperature(probabilities, self.temperature)
        found = [True] * len(calibrated) if nucleus_found is None else list(nucleus_found)
        scores = self.ood.score(features) if self.ood is not None else [None] * len(calibrated)
        others = (self.other_types.assess(type_features)
                  if self.other_types is not None and type_features is not None else [(None, None)] * len(calibrated))
        results = []
        for probs, score, (other_probability, other_type), nucleus in zip(calibrated, scores, others, found):
            confidence = float(probs.max())
            # Every stained white-cell photo shows a nucleus; no nucleus at all is the surest
            # sign of a photo, a document or a plain colour (100 of 100 real-cell images
            # tried had one, 12 of 100 non-blood images did).
            if score is not None and (score > self.ood.far_threshold or not nucleus):
                status = NOT_BLOOD_CELL
            elif other_probability is not None and other_probability > self.other_types.threshold:
                status = OTHER_CELL_TYPE
            elif score is not None and score > self.ood.threshold:
                status = UNFAMILIAR_SOURCE
            elif confidence < self.abstain_threshold:
                status = CHECK
            else:
                status = CONFIDENT
            results.append(Assessment(probs, confidence, status, None if score is None else float(score),
                                      other_type if status == OTHER_CELL_TYPE else None,
                                      other_probability))
        return results

    def advice(self, status: str, other_type: str | None = None) -> str:
        target = f"{self.target_accuracy:.0%}" if self.target_accuracy else "most"
        return STATUS_ADVICE[status].format(target=target, threshold=f"{self.abstain_threshold:.0%}",
                                            other_type=OTHER_TYPE_TEXT.get(other_type or "", "another type"))
