"""When not to believe the model: calibrated confidence and a status for every prediction.

Three statuses, checked in this order:

* ``not_blood_cell`` - the image's features lie far from every training image's
  (``ood.OODDetector``); the class shown means little.
* ``check`` - the calibrated confidence is below the abstain threshold chosen on
  validation data: a person should look at this cell.
* ``confident`` - neither of the above.

The temperature, the threshold and the detector are fitted by ``training.calibrate``
on held-out validation images and stored beside the model (model card ``trust``
section and ``models/ood-reference.npz``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hematovision.calibration import apply_temperature
from hematovision.ood import OODDetector

CONFIDENT = "confident"
CHECK = "check"
NOT_BLOOD_CELL = "not_blood_cell"
STATUS_TEXT = {
    CONFIDENT: "Confident",
    CHECK: "Check this cell yourself",
    NOT_BLOOD_CELL: "Does not look like a blood-cell image",
}
STATUS_ADVICE = {
    CONFIDENT: "The calibrated confidence is above the level at which the model was right "
               "{target} of the time on validation cells.",
    CHECK: "The model is unsure: its calibrated confidence is below {threshold}, the level chosen "
           "on validation cells. Confirm the class yourself.",
    NOT_BLOOD_CELL: "This image is unlike the stained blood-cell images the model learned from, so "
                    "its answer is not meaningful. Upload a stained smear photo of a white cell.",
}


@dataclass(frozen=True)
class Assessment:
    calibrated_probabilities: np.ndarray
    calibrated_confidence: float
    status: str
    ood_score: float | None

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

    @property
    def is_fitted(self) -> bool:
        return self.ood is not None

    @classmethod
    def from_card(cls, card: dict, models_dir: Path) -> "TrustModel":
        """Read the card's ``trust`` section; a card without one gives the do-nothing model."""
        trust = card.get("trust") if isinstance(card, dict) else None
        if not isinstance(trust, dict):
            return cls()
        ood_file = trust.get("ood_file")
        ood = OODDetector.load(models_dir / ood_file) if ood_file and (models_dir / ood_file).is_file() else None
        abstain = trust.get("abstain", {})
        return cls(float(trust.get("temperature", 1.0)), float(abstain.get("threshold", 0.0)),
                   abstain.get("target_accuracy"), ood)

    def assess(self, probabilities: np.ndarray, features: np.ndarray) -> list[Assessment]:
        calibrated = apply_temperature(probabilities, self.temperature)
        scores = self.ood.score(features) if self.ood is not None else [None] * len(calibrated)
        results = []
        for probs, score in zip(calibrated, scores):
            confidence = float(probs.max())
            if score is not None and score > self.ood.threshold:
                status = NOT_BLOOD_CELL
            elif confidence < self.abstain_threshold:
                status = CHECK
            else:
                status = CONFIDENT
            results.append(Assessment(probs, confidence, status, None if score is None else float(score)))
        return results

    def advice(self, status: str) -> str:
        target = f"{self.target_accuracy:.0%}" if self.target_accuracy else "most"
        return STATUS_ADVICE[status].format(target=target, threshold=f"{self.abstain_threshold:.0%}")
