"""How parts of an image are hidden, in one place (the role shap's maskers play).

LIME, SHAP, occlusion, Integrated Gradients and the deletion/insertion metrics all hide
with the same named baseline, so their results can be compared and say what they hid
with. This module holds:

* the baseline: ``"blur(N)"`` (an N px box blur) or, for the metrics, ``"constant(V)"``;
* the regions hidden together: SLIC superpixels and their Ward hierarchy (SHAP's tree);
* masked batches: the image where a mask keeps it, the baseline everywhere else;
* shap's pixel masker, with a baseline set per image.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import ndimage
from skimage.segmentation import slic

# Side of the box filter that makes the "blurred" baseline. A nucleus in a 224 px crop is
# 60-120 px across: a 64 px box erases lobes, granules and the nuclear outline (what the
# classes differ in) while keeping the crop's overall colours, so hiding a region removes
# its shape evidence without painting an out-of-distribution grey hole into the cell.
DEFAULT_BLUR = 64
DEFAULT_BASELINE = f"blur({DEFAULT_BLUR})"

BASELINE_FORMS = {"blur": "blur(N)", "constant": "constant(V)"}


def parse_baseline(baseline: str, kinds: tuple[str, ...] = ("blur",)) -> tuple[str, int]:
    """``"blur(N)"`` -> ("blur", N), ``"constant(V)"`` -> ("constant", V) for V <= 255.

    Case and spaces are ignored. ``kinds`` lists the forms the caller accepts; anything
    else is a ValueError that names them. Baselines are strings so that every result's
    params say exactly what hidden pixels became.
    """
    text = str(baseline).strip().lower().replace(" ", "")
    kind, _, rest = text.partition("(")
    if kind in kinds and rest.endswith(")") and rest[:-1].isdigit():
        value = int(rest[:-1])
        if kind != "constant" or value <= 255:
            return kind, value
    forms = " or ".join(f"'{BASELINE_FORMS[kind]}'" for kind in kinds)
    raise ValueError(f"Unknown baseline {baseline!r}; use {forms}, e.g. '{DEFAULT_BASELINE}'.")


def baseline_image(image: np.ndarray, baseline: str = DEFAULT_BASELINE,
                   kinds: tuple[str, ...] = ("blur",)) -> np.ndarray:
    """What hidden pixels become, as float32 at the image's shape.

    ``blur(N)`` is the same filter as shap's ``"blur(N,N)"`` masker (OpenCV's box blur,
    mirrored borders), done with scipy so OpenCV is not a dependency.
    """
    kind, value = parse_baseline(baseline, kinds)
    pixels = np.asarray(image, dtype=np.float32)
    if kind == "constant":
        return np.full(pixels.shape, value, np.float32)
    return ndimage.uniform_filter(pixels, size=(value, value, 1), mode="mirror")


def masked_batch(image: np.ndarray, hidden: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """One image per (H, W) mask in ``keep``: ``image`` where the mask is True, ``hidden``
    elsewhere. ``keep`` is (n, H, W) for a batch or (H, W) for a single image."""
    return np.where(np.asarray(keep, bool)[..., None], image, hidden)


def region_masks(switches: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """(n, k) on/off rows over regions 0..k-1 -> (n, H, W) masks of the pixels kept."""
    return np.asarray(switches).astype(bool)[:, segments]


def cell_superpixels(image: np.ndarray, n_segments: int, compactness: float) -> np.ndarray:
    """SLIC labels 0..k-1 for an RGB image (labels made contiguous, as lime expects)."""
    labels = slic(image.astype(np.uint8), n_segments=n_segments, compactness=compactness,
                  sigma=1.0, start_label=0, convert2lab=True)
    _, contiguous = np.unique(labels, return_inverse=True)
    return contiguous.reshape(labels.shape)


def region_hierarchy(image: np.ndarray, segments: np.ndarray) -> np.ndarray:
    """Ward linkage (scipy format) of the regions 0..k-1 by mean Lab colour and centroid.

    Colour is in Lab units / 10 and position in tenths of the crop, so a nucleus lobe is
    closer to another lobe than to the pale cytoplasm beside it.
    """
    from scipy.cluster.hierarchy import linkage
    from skimage.color import rgb2lab

    count = int(segments.max()) + 1
    pixels = np.bincount(segments.ravel(), minlength=count).astype(np.float64)
    lab = rgb2lab(image.astype(np.uint8)).reshape(-1, 3)
    colour = np.stack([np.bincount(segments.ravel(), lab[:, c], count) for c in range(3)], 1)
    rows, cols = np.indices(segments.shape)
    centre = np.stack([np.bincount(segments.ravel(), axis.ravel().astype(np.float64), count)
                       for axis in (rows, cols)], 1)
    features = np.hstack([colour / pixels[:, None] / 10,
                          centre / pixels[:, None] / segments.shape[0] * 10])
    return linkage(features, method="ward")


@functools.lru_cache(maxsize=1)
def _background_masker_class() -> type:
    """shap's Image masker, subclassed on first use: importing shap is slow, and
    ``import hematovision.explanation.explainers`` should not pay it until SHAP is asked for."""
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
    return _background_masker_class()(shape)
