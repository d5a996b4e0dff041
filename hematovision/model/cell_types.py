"""Is this white cell one of the four types the classifier names, or another blood cell?

A smear holds more than eosinophils, lymphocytes, monocytes and neutrophils. The
four-class softmax must pick one of them, so an erythroblast comes out as a confident
"lymphocyte" and an immature granulocyte as a "monocyte", and a differential changes
silently. This detector is a multinomial logistic regression on the classifier's own
pooled features (``classifier.OTHER_TYPE_LAYER``) over eight classes: the four types and
four others (basophil, immature granulocyte, erythroblast, platelet, from PBC). The
probability mass on the other four is the chance that the cell is none of the four
types, and the largest of them says which type it looks like.

It is fitted by ``training.other_types`` on held-out-split PBC cells of all eight types
together with Kaggle cells, so the other types share their lab's background with four
of the eight classes and the detector has to separate them by the cell itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

OTHER_TYPES: tuple[str, ...] = ("basophil", "immature granulocyte", "erythroblast", "platelet")
OTHER_TYPE_TEXT = {
    "basophil": "a basophil",
    "immature granulocyte": "an immature granulocyte (metamyelocyte, myelocyte or promyelocyte)",
    "erythroblast": "an erythroblast (nucleated red cell)",
    "platelet": "a platelet or platelet clump",
}


@dataclass
class OtherTypeDetector:
    mean: np.ndarray  # (features,) standardisation
    scale: np.ndarray  # (features,)
    weights: np.ndarray  # (features, 4 + len(OTHER_TYPES))
    bias: np.ndarray  # (4 + len(OTHER_TYPES),)
    threshold: float = 1.0  # p(other) above this gives the status other_cell_type

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(N, 8) probabilities: the four classes first, then ``OTHER_TYPES``."""
        standard = (np.atleast_2d(np.asarray(features, np.float32)) - self.mean) / self.scale
        logits = standard @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return exp / exp.sum(axis=1, keepdims=True)

    def other_probability(self, features: np.ndarray) -> np.ndarray:
        return self.probabilities(features)[:, -len(OTHER_TYPES):].sum(axis=1)

    def assess(self, features: np.ndarray) -> list[tuple[float, str]]:
        """(p(other type), the other type it looks most like) per row."""
        probs = self.probabilities(features)
        others = probs[:, -len(OTHER_TYPES):]
        return [(float(row.sum()), OTHER_TYPES[int(row.argmax())]) for row in others]

    def save(self, path: Path) -> None:
        np.savez_compressed(path, mean=self.mean, scale=self.scale, weights=self.weights, bias=self.bias,
                            threshold=self.threshold)

    @classmethod
    def load(cls, path: Path) -> "OtherTypeDetector":
        with np.load(path) as stored:
            return cls(stored["mean"], stored["scale"], stored["weights"], stored["bias"], float(stored["threshold"]))
