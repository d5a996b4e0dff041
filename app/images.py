"""The display copies of an image: the preview with the cell boxes drawn, a thumbnail, a data URI.

Plain functions of an RGB array; ``app.caches`` keeps their results per image digest.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from hematovision.model.cells import CellBox
from hematovision.model.imaging import data_uri, jpeg_bytes

PREVIEW_SIDE = 1000  # longest side of images sent to the browser for display
BOX_COLOUR = (0, 200, 255)  # cyan: stands out against pink red cells and purple nuclei


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


def thumbnail(rgb: np.ndarray, side: int) -> np.ndarray:
    """A copy whose longer side is at most ``side``, proportions kept."""
    image = Image.fromarray(np.ascontiguousarray(rgb))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


def jpeg_data_uri(rgb: np.ndarray) -> str:
    """A small image as a data URI, for st.column_config.ImageColumn (nothing is served from disk)."""
    return data_uri(jpeg_bytes(rgb))
