"""Find the white cell in a smear image and frame it for the classifier.

White-cell nuclei are the only strongly purple objects in a Wright/Giemsa-stained
smear: blue well above green. Red cells are pink (red high, blue ~ green) and the
background is pale, so "blue minus green" isolates nuclei without a trained detector.
The classifier sees a square crop centred on the largest nucleus blob, which makes
the framing of a photo (where the cell sits, how much background) matter far less.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

MODEL_INPUT_SIZE = 224
# Nucleus pixels: blue exceeds green by at least this much (0-255 scale) ...
MIN_PURPLE = 50.0
# ... and by more than 90% of the image's pixels (adapts to stain strength).
PURPLE_PERCENTILE = 90.0
# The cell is about this much wider than its nucleus; the extra fraction of the
# image side keeps small lymphocytes in context.
CELL_TO_NUCLEUS = 1.6
CONTEXT_FRACTION = 0.08
# Nucleus blobs smaller than this share of the image are platelets or debris ...
MIN_NUCLEUS_FRACTION = 0.002
# ... and in a field with several, smaller than this share of the biggest blob.
MIN_SHARE_OF_BIGGEST = 0.25
MAX_CELLS = 50
# The search runs on a copy whose short side is about this long: nuclei stay tens of
# pixels wide, and the morphology costs ~1 ms instead of ~15.
SEARCH_SIDE = 120


@dataclass(frozen=True)
class CellBox:
    """A square region of the source image, in source pixels."""

    x: int
    y: int
    side: int
    found: bool  # False when no nucleus was seen and the box is just the centre square

    def as_dict(self) -> dict:
        return {"x": self.x, "y": self.y, "width": self.side, "height": self.side,
                "cell_found": self.found}


def nucleus_mask(rgb: np.ndarray) -> np.ndarray:
    """Boolean mask of nucleus-coloured pixels."""
    channels = rgb.astype(np.float32)
    purple = ndimage.uniform_filter(channels[..., 2] - channels[..., 1], size=3)
    threshold = max(MIN_PURPLE, float(np.percentile(purple, PURPLE_PERCENTILE)))
    return purple > threshold


def locate_white_cells(rgb: np.ndarray) -> list[CellBox]:
    """Square boxes around each white cell's nucleus, biggest first.

    A whole smear field can hold several white cells; a single-cell photo gives one box.
    With no nucleus found the list holds only the centre square (``found`` False), so
    callers always get at least one box.
    """
    height, width = rgb.shape[:2]
    short_side = min(height, width)
    step = max(1, short_side // SEARCH_SIDE)
    small = rgb[::step, ::step]
    mask = nucleus_mask(small)
    # Close small gaps so the lobes of one neutrophil nucleus count as one blob.
    radius = max(2, int(0.025 * min(small.shape[:2])))
    merged = ndimage.binary_closing(mask, structure=np.ones((2 * radius + 1,) * 2, bool))
    labels, count = ndimage.label(merged)
    boxes: list[CellBox] = []
    if count:
        sizes = ndimage.sum(merged, labels, index=np.arange(1, count + 1))
        minimum = max(MIN_NUCLEUS_FRACTION * mask.size, MIN_SHARE_OF_BIGGEST * sizes.max())
        for index in np.argsort(-sizes, kind="stable"):
            if sizes[index] < minimum or len(boxes) == MAX_CELLS:
                break
            rows, cols = np.nonzero(labels == index + 1)
            centre_y = (rows.min() + rows.max() + 1) / 2 * step
            centre_x = (cols.min() + cols.max() + 1) / 2 * step
            # A blob centred inside an accepted cell's box is part of that cell (a lobe).
            if any(b.x <= centre_x < b.x + b.side and b.y <= centre_y < b.y + b.side for b in boxes):
                continue
            extent = (max(rows.max() - rows.min(), cols.max() - cols.min()) + 1) * step
            side = min(short_side, int(round(extent * CELL_TO_NUCLEUS + CONTEXT_FRACTION * short_side)))
            x = int(np.clip(round(centre_x - side / 2), 0, width - side))
            y = int(np.clip(round(centre_y - side / 2), 0, height - side))
            boxes.append(CellBox(x, y, side, True))
    return boxes or [CellBox((width - short_side) // 2, (height - short_side) // 2, short_side, False)]


def locate_white_cell(rgb: np.ndarray) -> CellBox:
    """Square box around the largest nucleus, or the centre square if none is found."""
    return locate_white_cells(rgb)[0]


def crop_to_box(rgb: np.ndarray, box: CellBox, size: int = MODEL_INPUT_SIZE) -> np.ndarray:
    """Cut the box out and resize it to ``size`` x ``size`` (bilinear, antialiased)."""
    patch = rgb[box.y : box.y + box.side, box.x : box.x + box.side]
    resized = Image.fromarray(patch).resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def frame_cell(rgb: np.ndarray, size: int = MODEL_INPUT_SIZE) -> tuple[np.ndarray, CellBox]:
    """The classifier's view of an image: the cell crop at model size, and where it came from."""
    box = locate_white_cell(rgb)
    return crop_to_box(rgb, box, size), box
