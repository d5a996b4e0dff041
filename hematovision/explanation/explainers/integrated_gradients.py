"""Integrated Gradients (Sundararajan et al. 2017), on tf.GradientTape.

The attribution of pixel i is (x_i - x'_i) times the average gradient of the target
probability along the straight path from a baseline x' to the image x. By the
completeness axiom the attributions add up to p(x) - p(x'); the sum is computed with
the trapezoid rule over ``steps`` intervals, so the gap to the true change shows whether
``steps`` was enough, and is reported in ``details``.

The baseline is the blurred image the other perturbation methods use (``blur(64)``):
"no detail" rather than a black image, which would be far outside the data.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hematovision.explanation.explainers.base import Attribution, Explainer, register, require_int
from hematovision.explanation.explainers.maskers import DEFAULT_BASELINE, baseline_image
from hematovision.model.classifier import Classifier

# Path points per gradient batch: enough to keep both cores busy, small enough that the
# backward pass through MobileNetV2 stays within a few hundred MB.
GRADIENT_BATCH = 16


@register
class IntegratedGradientsExplainer(Explainer):
    name = "integrated_gradients"
    label = "Integrated Gradients"
    signed = True
    defaults = {"steps": 32, "baseline": DEFAULT_BASELINE}

    def __init__(self, classifier: Classifier) -> None:
        import tensorflow as tf

        super().__init__(classifier)
        model = classifier.model
        size = classifier.input_size

        def gradients(batch, target):
            with tf.GradientTape() as tape:
                tape.watch(batch)
                scores = model(batch, training=False)[:, target]
            return tape.gradient(scores, batch), scores

        self._gradients = tf.function(gradients, input_signature=[
            tf.TensorSpec([None, size, size, 3], tf.float32), tf.TensorSpec([], tf.int32)])

    def attribute(self, image: np.ndarray, target_index: int, seed: int,
                  params: dict[str, Any]) -> Attribution:
        steps = require_int(params, "steps", 1)
        baseline = baseline_image(image, params["baseline"])
        alphas = np.linspace(0.0, 1.0, steps + 1, dtype=np.float32)
        difference = image - baseline
        gradient_sum = np.zeros_like(image)
        scores = np.empty(steps + 1, np.float32)
        # Trapezoid weights: the two ends count half.
        weights = np.full(steps + 1, 1.0 / steps, np.float32)
        weights[[0, -1]] /= 2
        for start in range(0, steps + 1, GRADIENT_BATCH):
            chunk = alphas[start : start + GRADIENT_BATCH]
            path = baseline[None] + chunk[:, None, None, None] * difference[None]
            grads, chunk_scores = self._gradients(path, np.int32(target_index))
            gradient_sum += np.tensordot(weights[start : start + len(chunk)], grads.numpy(), axes=1)
            scores[start : start + len(chunk)] = chunk_scores.numpy()
        attribution = (difference * gradient_sum).sum(axis=-1)
        change = float(scores[-1] - scores[0])
        total = float(attribution.sum())
        return Attribution(attribution, evaluations=steps + 1, details={
            "attribution_sum": round(total, 6),
            "score_change": round(change, 6),
            "completeness_gap": round(abs(total - change), 6),
            "score": "target-class probability",
        })
