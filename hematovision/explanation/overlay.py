"""Draw attribution maps over the cell image, and export them as PNG with a colour bar.

Normalisation (so colours mean the same thing for every image and method):

* unsigned maps (Grad-CAM, Grad-CAM++): negatives clipped to 0, then divided by the
  map's maximum -> 0..1, where 1 is this image's strongest evidence;
* signed maps (LIME, SHAP): divided by the map's largest absolute value -> -1..1, so
  0 stays 0 and positive/negative parts keep their relative sizes in every view.

Colours and blending:

* unsigned maps: 'turbo' (a perceptually smoothed jet: blue low, red high), blended
  per pixel at ``opacity * value``: the cell glows where the CAM is high and stays
  visible (not washed dark) where it is low;
* signed maps: a diverging red/blue map centred on 0 (red = evidence for the class,
  blue = against), blended at ``opacity * sqrt(|value|)``, so weak evidence stays
  visible, zero evidence leaves the cell unchanged, and the positive and negative
  views leave the other half of the image untouched.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from hematovision.model.imaging import strip_metadata

UNSIGNED_CMAP = "turbo"
SIGNED_CMAP = "RdBu_r"
VIEWS = ("both", "positive", "negative")


def normalize_attribution(attribution: np.ndarray, signed: bool) -> np.ndarray:
    """Scale to 0..1 (unsigned) or -1..1 (signed), as described in the module docstring."""
    values = np.nan_to_num(np.asarray(attribution, dtype=np.float32))
    if not signed:
        values = np.clip(values, 0.0, None)
    scale = float(np.abs(values).max()) if values.size else 0.0
    return values / scale if scale > 0 else np.zeros_like(values)


def select_view(values: np.ndarray, signed: bool, view: str = "both") -> np.ndarray:
    """Keep the positive part, the negative part, or both, of a normalised map.

    An unsigned map has no evidence against, so its "negative" view is all zeros.
    """
    if view not in VIEWS:
        raise ValueError(f"view must be one of {', '.join(VIEWS)}; got {view!r}.")
    if view == "positive" or (view == "both" and not signed):
        return np.clip(values, 0.0, None)
    if view == "negative":
        return np.clip(values, None, 0.0) if signed else np.zeros_like(values)
    return values


def colorize(values: np.ndarray, signed: bool, cmap: str | None = None) -> np.ndarray:
    """RGB floats 0..1 for a normalised map (signed: -1..1, unsigned: 0..1)."""
    from matplotlib import colormaps

    colormap = colormaps[cmap or (SIGNED_CMAP if signed else UNSIGNED_CMAP)]
    position = (values + 1.0) / 2.0 if signed else values
    return colormap(np.clip(position, 0.0, 1.0))[..., :3].astype(np.float32)


def resize_map(attribution: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of a 2-D map, for drawing it over an image of another size."""
    values = np.asarray(attribution, dtype=np.float32)
    if values.shape == (height, width):
        return values
    resized = Image.fromarray(values, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.float32)


def overlay(image: np.ndarray, attribution: np.ndarray, signed: bool = False,
            opacity: float = 0.6, view: str = "both", cmap: str | None = None) -> np.ndarray:
    """The image (H, W, 3 uint8) with the attribution map blended over it, as uint8."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1; got {opacity}.")
    rgb = np.asarray(image)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"image must be an (H, W, 3) RGB array; got shape {rgb.shape}.")
    values = resize_map(np.asarray(attribution), rgb.shape[0], rgb.shape[1])
    values = select_view(normalize_attribution(values, signed), signed, view)
    colours = colorize(values, signed, cmap) * 255.0
    # sqrt for signed maps: their weak evidence (small superpixel weights) should show;
    # linear for CAMs, which are smooth and positive around the whole cell.
    weight = np.sqrt(np.abs(values)) if signed else np.abs(values)
    alpha = (opacity * weight)[..., None]
    blended = rgb.astype(np.float32) * (1.0 - alpha) + colours * alpha
    return np.clip(np.rint(blended), 0, 255).astype(np.uint8)


def to_png_bytes(array: np.ndarray) -> bytes:
    """PNG encoding of a uint8 image array (H, W), (H, W, 3) or (H, W, 4)."""
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def overlay_png(image: np.ndarray, attribution: np.ndarray, signed: bool = False,
                opacity: float = 0.6, view: str = "both", cmap: str | None = None,
                title: str | None = None, target: str | None = None, dpi: int = 150) -> bytes:
    """PNG of the overlay beside a labelled colour bar, e.g. for a download button."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.figure import Figure

    picture = overlay(image, attribution, signed, opacity, view, cmap)
    # Figure + Agg canvas rather than pyplot: no global state, safe in Streamlit threads.
    figure = Figure(figsize=(4.6, 3.9), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.imshow(picture)
    axes.set_axis_off()
    if title:
        axes.set_title(title, fontsize=10)
    subject = target.capitalize() if target else "the class"
    colormap = cmap or (SIGNED_CMAP if signed else UNSIGNED_CMAP)
    norm = Normalize(-1.0, 1.0) if signed else Normalize(0.0, 1.0)
    bar = figure.colorbar(ScalarMappable(norm=norm, cmap=colormap), ax=axes,
                          fraction=0.05, pad=0.03)
    if signed:
        bar.set_ticks([-1.0, 0.0, 1.0], labels=["against\n(-max)", "0", "for\n(+max)"])
        bar.set_label(f"evidence for / against {subject}", fontsize=8)
    else:
        bar.set_ticks([0.0, 0.5, 1.0], labels=["0", "0.5", "1 (max)"])
        bar.set_label(f"relative importance for {subject}", fontsize=8)
    bar.ax.tick_params(labelsize=7)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return strip_metadata(buffer.getvalue())  # matplotlib writes its name and version as text


def explanation_png(image: np.ndarray, explanation, opacity: float = 0.6,
                    view: str = "both") -> bytes:
    """``overlay_png`` for an explainers.Explanation, titled with method, class and probability.

    The maps explain the network's own (uncalibrated) softmax, so that is the number shown.
    """
    title = (f"{explanation.label}: {explanation.target.capitalize()} "
             f"(raw softmax {explanation.target_probability:.2f})")
    return overlay_png(image, explanation.attribution, explanation.signed, opacity, view,
                       title=title, target=explanation.target)
