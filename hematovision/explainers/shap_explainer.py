"""SHAP Partition explainer (shap.Explainer + an Image masker) for the target class only.

The Partition explainer recursively halves the image along its axes and estimates Owen
values for the halves, spending ``max_evals`` model evaluations where the target score
changes most. Hidden regions take a blurred copy of the image (base.baseline_image). The
map is the SHAP value of each pixel summed over its three colour channels: positive =
pushes the target probability up, negative = down; the map sums to
p(target | image) - p(target | fully blurred image).

Building the masker (a numba partition tree over 224*224*3 features) and the explainer
costs ~3 s, so both are built once per classifier and only the background changes per
image. Partition SHAP has no randomness: the seed is recorded but changes nothing.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from hematovision.classifier import CLASS_NAMES, Classifier
from hematovision.explainers.base import (DEFAULT_BLUR, Attribution, Explainer, baseline_image,
                                          register, require_int)


@functools.lru_cache(maxsize=1)
def _masker_class() -> type:
    """shap's Image masker, subclassed on first use: importing shap costs ~2 s, and
    ``import hematovision.explainers`` should not pay it until SHAP is asked for."""
    import shap

    class BackgroundPerImageMasker(shap.maskers.Image):
        """shap's Image masker whose hidden value is a per-image array set before each call.

        It behaves like shap's own ``"blur(k,k)"`` masker (which needs OpenCV): hidden
        pixels take the blurred image, and ``fixed_background`` is False so the explainer
        recomputes the base value for every image instead of reusing the first one.
        """

        def __init__(self, shape: tuple[int, int, int]) -> None:
            super().__init__(np.zeros(shape, dtype=np.float32), shape)
            self.fixed_background = False

        def use_background(self, background: np.ndarray) -> None:
            self.mask_value = np.asarray(background, dtype=np.float32).ravel()

    return BackgroundPerImageMasker


def background_masker(shape: tuple[int, int, int]):
    """A shap Image masker for images of ``shape``; call ``use_background`` per image."""
    return _masker_class()(shape)


@register
class ShapExplainer(Explainer):
    name = "shap"
    label = "SHAP"
    signed = True
    defaults: dict[str, Any] = {
        "max_evals": 160,
        "batch_size": 32,
        "baseline": f"blur({DEFAULT_BLUR})",
    }

    def __init__(self, classifier: Classifier) -> None:
        import shap

        super().__init__(classifier)
        size = classifier.input_size
        self.masker = background_masker((size, size, 3))
        self._evaluations = 0
        self.explainer = shap.Explainer(self._model, self.masker, output_names=list(CLASS_NAMES),
                                        algorithm="partition")

    def _model(self, batch: np.ndarray) -> np.ndarray:
        self._evaluations += len(batch)
        return self.classifier.predict_proba(batch)

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        self.masker.use_background(baseline_image(image, params["baseline"]))
        self._evaluations = 0
        result = self.explainer(
            image[None],
            max_evals=require_int(params, "max_evals", 8),
            batch_size=require_int(params, "batch_size", 1),
            outputs=[target_index],
            silent=True,
        )
        values = np.asarray(result.values, dtype=np.float32)[0, ..., 0]  # (H, W, 3)
        return Attribution(
            values.sum(axis=-1),
            evaluations=self._evaluations,
            details={"base_value": float(np.ravel(result.base_values)[0])},
        )
