"""Occlusion (Zeiler & Fergus 2014): hide one square patch at a time and watch the score.

Each patch position is replaced by the blurred baseline (the same "no detail" image LIME
and SHAP use); a pixel's attribution is the average drop in the target probability over
the patches that covered it. All positions go through the model in batches.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hematovision.explanation.explainers.base import Attribution, Explainer, register, require_int
from hematovision.explanation.explainers.maskers import (
    DEFAULT_BASELINE,
    baseline_image,
    masked_batch,
)


@register
class OcclusionExplainer(Explainer):
    name = "occlusion"
    label = "Occlusion"
    signed = True  # hiding a patch can also raise the probability: evidence against
    defaults = {"patch": 32, "stride": 16, "baseline": DEFAULT_BASELINE}

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        patch = require_int(params, "patch", 4)
        stride = require_int(params, "stride", 1)
        size = image.shape[0]
        if patch > size:
            raise ValueError(f"patch must be at most the image side ({size}); got {patch}.")
        baseline = baseline_image(image, params["baseline"])
        starts = list(range(0, size - patch + 1, stride))
        if starts[-1] != size - patch:  # the last row/column of patches reaches the edge
            starts.append(size - patch)
        positions = [(y, x) for y in starts for x in starts]
        keep = np.ones((len(positions), size, size), bool)
        for batch_index, (y, x) in enumerate(positions):
            keep[batch_index, y : y + patch, x : x + patch] = False
        occluded = masked_batch(image, baseline, keep)
        reference = self.classifier.predict_proba(image[None])[0, target_index]
        drops = reference - self.classifier.predict_proba(occluded)[:, target_index]
        total = np.zeros(image.shape[:2], np.float64)
        covered = np.zeros(image.shape[:2], np.float64)
        for drop, (y, x) in zip(drops, positions):
            total[y : y + patch, x : x + patch] += drop
            covered[y : y + patch, x : x + patch] += 1
        return Attribution(total / np.maximum(covered, 1), evaluations=len(positions) + 1,
                           details={"patches": len(positions)})
