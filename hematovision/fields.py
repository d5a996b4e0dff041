"""Whole smear fields: find every white cell, not just the biggest one.

A photo of a field (like the 640x480 BCCD originals) can hold several white cells
among many red cells and platelets. Each white cell is found the way ``cells.py``
finds one, by its purple nucleus, and framed the same way, so every cell reaches the
classifier exactly as a single-cell upload would.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from hematovision import cells
from hematovision.cells import CellBox

# A second nucleus blob counts as another white cell only if it is at least this share
# of the biggest one: smaller purple blobs are platelets, debris or a lobe already framed.
MIN_SHARE_OF_BIGGEST = 0.25
# Blobs whose centres lie inside an already accepted cell's box belong to that cell
# (e.g. neutrophil lobes the closing did not join).
MAX_CELLS = 50


def locate_white_cells(rgb: np.ndarray) -> list[CellBox]:
    """Square boxes around each white cell, biggest nucleus first.

    With no nucleus found it returns the single centre-square box of
    ``cells.locate_white_cell`` (``found`` False), so callers always get one box.
    """
    height, width = rgb.shape[:2]
    short_side = min(height, width)
    step = max(1, short_side // cells.SEARCH_SIDE)
    small = rgb[::step, ::step]
    mask = cells.nucleus_mask(small)
    radius = max(2, int(0.025 * min(small.shape[:2])))
    merged = ndimage.binary_closing(mask, structure=np.ones((2 * radius + 1,) * 2, bool))
    labels, count = ndimage.label(merged)
    if not count:
        return [cells.locate_white_cell(rgb)]
    sizes = ndimage.sum(merged, labels, index=np.arange(1, count + 1))
    minimum = max(cells.MIN_NUCLEUS_FRACTION * mask.size, MIN_SHARE_OF_BIGGEST * sizes.max())
    boxes: list[CellBox] = []
    for index in np.argsort(-sizes):
        if sizes[index] < minimum or len(boxes) == MAX_CELLS:
            break
        rows, cols = np.nonzero(labels == index + 1)
        centre_y = (rows.min() + rows.max() + 1) / 2 * step
        centre_x = (cols.min() + cols.max() + 1) / 2 * step
        if any(b.x <= centre_x < b.x + b.side and b.y <= centre_y < b.y + b.side for b in boxes):
            continue
        extent = (max(rows.max() - rows.min(), cols.max() - cols.min()) + 1) * step
        side = min(short_side, int(round(extent * cells.CELL_TO_NUCLEUS + cells.CONTEXT_FRACTION * short_side)))
        x = int(np.clip(round(centre_x - side / 2), 0, width - side))
        y = int(np.clip(round(centre_y - side / 2), 0, height - side))
        boxes.append(CellBox(x, y, side, True))
    return boxes or [cells.locate_white_cell(rgb)]
