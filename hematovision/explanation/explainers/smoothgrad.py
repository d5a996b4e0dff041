"""Vanilla gradients and SmoothGrad (Smilkov et al. 2017) through tf-keras-vis Saliency.

The map is the largest absolute gradient of the class score over the colour channels;
SmoothGrad averages it over ``smooth_samples`` copies of the image with Gaussian noise
(``smooth_noise`` times the pixel range), which removes much of the speckle of raw
gradients. ``smooth_samples=0`` gives the vanilla gradient map. As for the CAMs, the
softmax is replaced by a linear output on a clone, so the classifier is never modified.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from hematovision.explanation.explainers.base import Attribution, Explainer, register, require_int
from hematovision.model.classifier import Classifier


@register
class SmoothGradExplainer(Explainer):
    name = "smoothgrad"
    label = "SmoothGrad"
    signed = False
    # 10 noisy copies: tf-keras-vis runs each one eagerly, so every copy adds a full
    # forward and backward pass.
    defaults = {"smooth_samples": 10, "smooth_noise": 0.15}

    def __init__(self, classifier: Classifier) -> None:
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        super().__init__(classifier)
        self._saliency = Saliency(classifier.model, model_modifier=ReplaceToLinear(), clone=True)

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        from tf_keras_vis.utils.scores import CategoricalScore

        samples = require_int(params, "smooth_samples", 0)
        noise = float(params["smooth_noise"])
        if not 0 <= noise <= 1:
            raise ValueError(f"smooth_noise must be between 0 and 1; got {noise}.")
        # tf-keras-vis draws the noise from numpy's global generator; seed it for
        # reproducible maps (under this explainer's lock, so no other call interleaves).
        np.random.seed(seed)
        with warnings.catch_warnings():
            # tf-keras-vis passes the input as a list; Keras warns and then accepts it.
            warnings.filterwarnings("ignore", message="The structure of `inputs`", category=UserWarning)
            saliency = self._saliency(CategoricalScore([target_index]), image[None].copy(),
                                      smooth_samples=samples, smooth_noise=noise, normalize_map=False)
        return Attribution(np.asarray(saliency)[0], evaluations=max(samples, 1))
