"""Explanations of the classifier's decisions, every method behind one call.

    from hematovision.explainers import explain
    result = explain(classifier, prediction.model_input, method="gradcam++", target="NEUTROPHIL")
    result.attribution  # (224, 224) float32 map; result.signed says if negatives mean "against"

Every module in this package that registers an Explainer is imported here, so a new
method is one new file (see base.py).
"""

from __future__ import annotations

import importlib
import pkgutil

from hematovision.explainers.base import (
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

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base":
        importlib.import_module(f"{__name__}.{_module.name}")

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
