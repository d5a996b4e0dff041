"""The Explain page's methods, what the user chose for them, and the cache key of one map.

Plain Python (no Streamlit), so the settings and keys can be tested without a running app.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from hematovision.explanation.explainers import default_params, method_label

METHOD_ORDER = ("gradcam", "gradcam++", "lime", "shap")  # always shown on the Explain page
EXTRA_METHODS = ("scorecam", "integrated_gradients", "smoothgrad", "occlusion")  # shown on request
METHOD_TITLES = {method: method_label(method) for method in METHOD_ORDER + EXTRA_METHODS}
METHOD_BLURBS = {
    "gradcam": "Gradients of the class score weight the last convolutional layer's 7×7 feature "
    "maps, upsampled to the crop: where the network's evidence sits. Coarse; support only.",
    "gradcam++": "Grad-CAM with pixel-wise weights; often separates several supporting regions "
    "(such as nuclear lobes) better. Support only.",
    "lime": "Blurs random sets of superpixels and fits a linear model to how the class "
    "probability changes. Signed: evidence for and against.",
    "shap": "Partition SHAP: blurs the same superpixels as LIME, grouped by colour and place, "
    "and shares the change in class probability among them exactly (Owen values). Signed: "
    "for and against.",
    "scorecam": "Weights the last layer's feature maps by how much the class score rises when "
    "the image is masked by each one (64 strongest maps). No gradients; support only.",
    "integrated_gradients": "Gradients summed along a path from a blurred copy to the image; "
    "pixel-level and signed. Its attributions add up to the change in probability.",
    "smoothgrad": "Pixel gradients of the class score, averaged over noisy copies of the "
    "image to calm their speckle. Magnitude only.",
    "occlusion": "Slides a blurred 32 px patch over the crop and records how far the "
    "probability falls (or rises). Signed, coarse, and easy to reason about.",
}

# The explainers' own defaults (chosen for speed and stability; see docs/explanations.md).
DEFAULT_LIME_SAMPLES = int(default_params("lime")["num_samples"])
DEFAULT_SHAP_EVALS = int(default_params("shap")["max_evals"])
DEFAULT_SHAP_FEATURES = str(default_params("shap")["features"])
LIME_SAMPLES_CHOICES = tuple(sorted({DEFAULT_LIME_SAMPLES, 100, 300, 600, 1000, 2000}))
SHAP_EVALS_CHOICES = tuple(sorted({DEFAULT_SHAP_EVALS, 100, 300, 600, 1000, 2000}))

# The map the Atlas and Quiz pages show beside the model's answer: the cheapest one, under
# the same key the Explain page uses for the first cell of an image, so they share it.
TEACHING_METHOD = "gradcam"
TEACHING_SEED = 0


@dataclass(frozen=True)
class ExplainSettings:
    """What the user chose in the Explain page's settings form."""

    lime_samples: int = DEFAULT_LIME_SAMPLES
    shap_evals: int = DEFAULT_SHAP_EVALS
    target: str | None = None  # class name such as "MONOCYTE"; None = the predicted class
    extra_methods: tuple[str, ...] = ()  # from EXTRA_METHODS, shown after the four main ones
    shap_features: str = DEFAULT_SHAP_FEATURES  # "regions" (superpixels) or "pixels"

    @property
    def methods(self) -> tuple[str, ...]:
        return METHOD_ORDER + tuple(m for m in EXTRA_METHODS if m in self.extra_methods)

    def params_for(self, method: str) -> dict[str, Any]:
        if method == "lime":
            return {"num_samples": int(self.lime_samples)}
        if method == "shap":
            return {"max_evals": int(self.shap_evals), "features": self.shap_features}
        return {}


def explanation_key(
    digest: str, method: str, target: str | None, params: Mapping[str, Any], seed: int = 0
) -> tuple:
    """Everything that decides an explanation's result for one image and model.

    The parameters become a sorted tuple, so the key is hashable and independent of order.
    """
    return (digest, method, target or "", tuple(sorted((str(k), v) for k, v in params.items())), int(seed))


def teaching_explanation_key(digest: str, target: str | None = None) -> tuple:
    """Key of the Grad-CAM map for the first (most strongly stained) white cell of an image:
    evidence for ``target`` (a class name), or for the model's own answer when None."""
    return explanation_key(f"{digest}/cell0", TEACHING_METHOD, target, {}, TEACHING_SEED)
