"""Plain-Python helpers behind the Streamlit pages (this module never imports streamlit).

What lives here: the names of the session-state keys the pages share, the record of
"the image the user is working on", and small pure functions (drawing the cell box,
wording a confidence, keying cached explanations) that are easier to test without a
running app.

The current image is kept as bytes in memory only. A user's file name is kept for
display, cleaned first, and is never used to build a path.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
from PIL import Image, ImageDraw

from hematovision.batch import looks_like
from hematovision.cells import CellBox
from hematovision.explainers import default_params, method_label
from hematovision.imaging import ImageError, clean_display_name, load_image
from hematovision.trust import CHECK, CONFIDENT, NOT_BLOOD_CELL, OTHER_CELL_TYPE, UNFAMILIAR_SOURCE, TrustModel

# ---------------------------------------------------------------------------
# Session-state keys (one place, so pages cannot drift apart)
# ---------------------------------------------------------------------------
CURRENT_IMAGE = "hv_current_image"  # CurrentImage | None
UPLOAD_ERROR = "hv_upload_error"  # str | None: the message for the last bad upload
UPLOADER_NONCE = "hv_uploader_nonce"  # int: bump it to give the uploader a new key (clears it)
EXPLAIN_SETTINGS = "hv_explain_settings"  # ExplainSettings applied on the Explain page
CELL_INDEX = "hv_cell_index"  # int: which white cell of the current image is shown and explained
OPACITY = "hv_opacity"  # float 0..1, the overlay slider
SIGN_VIEW = "hv_sign_view"  # "positive" | "negative" | "both"

PREVIEW_SIDE = 1000  # longest side of images sent to the browser for display
BOX_COLOUR = (0, 200, 255)  # cyan: stands out against pink red cells and purple nuclei


@dataclass(frozen=True)
class CurrentImage:
    """The image the user is working on, as encoded bytes held in memory."""

    data: bytes = field(repr=False)
    source: str  # "upload" or "sample"
    name: str  # for display only; already cleaned
    sample_key: str | None = None
    digest: str = ""

    @property
    def short_id(self) -> str:
        return self.digest[:10]


def image_digest(data: bytes) -> str:
    """SHA-256 of the encoded bytes: the cache key for everything derived from an image."""
    return hashlib.sha256(data).hexdigest()


def current_image_from_upload(data: bytes, name: str | None) -> CurrentImage:
    """Check that uploaded bytes decode as a usable image and wrap them.

    Raises ``ImageError`` (message ready for the user) when they do not.
    """
    load_image(bytes(data))  # decode once to refuse bad files before anything else sees them
    return CurrentImage(
        data=bytes(data),
        source="upload",
        name=clean_display_name(name),
        digest=image_digest(bytes(data)),
    )


def current_image_from_sample(data: bytes, key: str, title: str) -> CurrentImage:
    return CurrentImage(
        data=bytes(data), source="sample", name=title, sample_key=key, digest=image_digest(data)
    )


# ---------------------------------------------------------------------------
# Showing a prediction
# ---------------------------------------------------------------------------
def draw_cell_boxes(
    rgb: np.ndarray, boxes: list[CellBox], selected: int = 0, colour: tuple[int, int, int] = BOX_COLOUR
) -> np.ndarray:
    """A copy of the image with each cell's crop drawn as a square outline.

    With several cells each box is numbered (1, 2, ...) and the selected one is drawn
    thicker, so the numbers match the table beside the image.
    """
    image = Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8))
    width = max(2, round(min(image.size) / 120))
    draw = ImageDraw.Draw(image)
    for number, box in enumerate(boxes, 1):
        thick = width * 2 if len(boxes) > 1 and number - 1 == selected else width
        draw.rectangle([box.x, box.y, box.x + box.side - 1, box.y + box.side - 1], outline=colour, width=thick)
        if len(boxes) > 1:
            size = max(12, round(min(image.size) / 18))
            label_box = [box.x + thick, box.y + thick, box.x + thick + size, box.y + thick + size]
            draw.rectangle(label_box, fill=colour)
            draw.text((label_box[0] + size // 4, label_box[1]), str(number), fill=(255, 255, 255),
                      font_size=size - 2)
    return np.asarray(image)


def preview_with_boxes(
    rgb: np.ndarray, boxes: list[CellBox], selected: int = 0, max_side: int = PREVIEW_SIDE
) -> np.ndarray:
    """A display-sized copy of the image (longest side at most ``max_side``) with the boxes drawn.

    Phone photos can be tens of megapixels; the browser never needs more than this.
    """
    height, width = rgb.shape[:2]
    scale = min(1.0, max_side / max(height, width))
    if scale >= 1.0:
        return draw_cell_boxes(rgb, boxes, selected)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    small = np.asarray(Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.LANCZOS))
    scaled = [CellBox(x=int(round(b.x * scale)), y=int(round(b.y * scale)),
                      side=max(1, int(round(b.side * scale))), found=b.found) for b in boxes]
    return draw_cell_boxes(small, scaled, selected)


def status_label(prediction) -> str:
    """The status in words for a table, naming the type another cell looks like."""
    other = looks_like(prediction)
    return f"{prediction.status_text}: looks like {other}" if other else prediction.status_text


def cell_choice_label(number: int, prediction) -> str:
    """'Cell 2: Neutrophil, 93% (check this cell yourself)' for the cell picker."""
    if prediction.status == OTHER_CELL_TYPE:
        return f"Cell {number}: another cell type, looks like {prediction.other_type or 'none of the four'}"
    status = "" if prediction.status == CONFIDENT else f" ({prediction.status_text.lower()})"
    return (f"Cell {number}: {prediction.label.capitalize()}, "
            f"{format_percent(prediction.confidence, 0)}{status}")


# What each status means and what to do, for a clinician or a student (Classify page).
STATUS_GUIDE = {
    CONFIDENT: ("The model is sure, and the cell looks like the cells it learned from.",
                "Still look at the cell: HematoVision suggests, a person decides."),
    CHECK: ("The model hesitates between types: its calibrated confidence is below the level chosen on "
            "validation cells.",
            "Decide the type yourself; the probability chart shows which types it weighed."),
    UNFAMILIAR_SOURCE: ("A stained blood cell, but its stain, microscope or camera is unlike the labs the model "
                        "learned from, so its confidence means less here.",
                        "The type shown is its best answer and still counts in a differential: check each such "
                        "cell. A lab profile, adapting the model to your lab from a few cells you label, is "
                        "planned but not built yet."),
    OTHER_CELL_TYPE: ("A blood cell that is none of the four types: it looks like a basophil, an immature "
                      "granulocyte, an erythroblast (nucleated red cell) or a platelet, and the message names "
                      "which.",
                      "Identify it yourself. It is left out of the four-type counts; the predicted type is only "
                      "the nearest of the four."),
    NOT_BLOOD_CELL: ("The image does not look like a stained blood-smear cell: a photo, another kind of "
                     "microscopy, a plain colour or noise.",
                     "Ignore the type shown and upload a stained smear photo of a white cell."),
}


def statuses_not_checked(trust: TrustModel) -> set[str]:
    """Statuses the installed model cannot give, because the check behind them was not fitted."""
    missing = set()
    if trust.other_types is None:
        missing.add(OTHER_CELL_TYPE)
    if trust.ood is None or not trust.ood.far_threshold > trust.ood.threshold:
        missing.add(UNFAMILIAR_SOURCE)  # one OOD line only marks not_blood_cell
    if trust.ood is None:
        missing.add(NOT_BLOOD_CELL)
    return missing


def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def format_percent(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    return f"{100 * float(value):.{digits}f}%"


# ---------------------------------------------------------------------------
# Explanation settings and cache keys
# ---------------------------------------------------------------------------
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


def params_key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """Parameters as a sorted, hashable tuple (part of an explanation's cache key)."""
    return tuple(sorted((str(k), v) for k, v in params.items()))


def explanation_key(
    digest: str, method: str, target: str | None, params: Mapping[str, Any], seed: int = 0
) -> tuple:
    """Everything that decides an explanation's result for one image and model."""
    return (digest, method, target or "", params_key(params), int(seed))


__all__ = [
    "CURRENT_IMAGE",
    "CurrentImage",
    "ExplainSettings",
    "ImageError",
    "clean_display_name",
    "current_image_from_sample",
    "current_image_from_upload",
    "draw_cell_boxes",
    "explanation_key",
    "format_percent",
    "format_seconds",
    "image_digest",
]
