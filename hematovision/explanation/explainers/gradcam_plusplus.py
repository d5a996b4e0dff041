"""Grad-CAM++ through tf-keras-vis, sharing Grad-CAM's split network (see gradcam.py).

Grad-CAM++ weights each feature map by positive higher-order gradients of exp(score),
which spreads the map over several instances of a feature (e.g. all lobes of a
neutrophil nucleus) instead of the single strongest one.
"""

from __future__ import annotations

from hematovision.explanation.explainers.base import register
from hematovision.explanation.explainers.gradcam import GradcamExplainer


@register
class GradcamPlusPlusExplainer(GradcamExplainer):
    name = "gradcam++"
    label = "Grad-CAM++"

    @staticmethod
    def _visualizer_class() -> type:
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus

        return GradcamPlusPlus
