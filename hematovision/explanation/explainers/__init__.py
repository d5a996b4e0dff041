"""Explanations of the classifier's decisions, every method behind one call.

    from hematovision.explanation.explainers import explain
    result = explain(classifier, prediction.model_input, method="gradcam++", target="NEUTROPHIL")
    result.attribution  # (224, 224) float32 map; result.signed says if negatives mean "against"

Each method registers itself (``@register``) when its module is imported below; a new
method is one new file plus its import here (see base.py). The app lists methods by
name, sorted, so the order of these imports does not matter.
"""

from __future__ import annotations

from hematovision.explanation.explainers import (  # noqa: F401
    gradcam,
    gradcam_plusplus,
    integrated_gradients,
    lime_explainer,
    occlusion,
    scorecam,
    shap_explainer,
    smoothgrad,
)
from hematovision.explanation.explainers.base import (
    Explainer,
    Explanation,
    available_methods,
    built_explainers,
    default_params,
    explain,
    get_explainer,
    method_label,
    register,
)

__all__ = [
    "default_params",
    "Explainer",
    "Explanation",
    "available_methods",
    "built_explainers",
    "explain",
    "get_explainer",
    "method_label",
    "register",
]
