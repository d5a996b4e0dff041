"""The cell finder frames the same cell the same way whatever the photo's magnification:
whole fields, centred crops of any size and tight crops where the cell fills the frame,
from every lab in ../shared/data."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hematovision.model.cells import CellBox, crop_to_box, frame_cell, locate_white_cell
from hematovision.model.imaging import load_image
from tests.conftest import DATA_DIR

SHARED = DATA_DIR.parent
# Two images per lab and kind of framing, picked by a fixed rule (the first files).
SOURCES = {
    "Kaggle 320x240 crop": DATA_DIR / "TEST_SIMPLE" / "MONOCYTE",
    "BCCD 640x480 field": DATA_DIR / "ORIGINAL" / "JPEGImages",
    "PBC 360x363 crop": SHARED / "pbc" / "neutrophil",
    "LISC 224x224 crop": SHARED / "lisc" / "eosinophil",
    "PBC other type": SHARED / "pbc-other" / "erythroblast",
}


def first_images(folder, count=2):
    if not folder.is_dir():
        pytest.skip(f"{folder} not present")
    return [p for p in sorted(folder.iterdir()) if p.suffix.lower() in (".jpg", ".jpeg", ".png")][:count]


def cases():
    return [pytest.param(source, index, id=f"{source}-{index}") for source in SOURCES for index in range(2)]


def resized(rgb, factor):
    height, width = rgb.shape[:2]
    return np.asarray(Image.fromarray(rgb).resize((round(width * factor), round(height * factor)),
                                                  Image.Resampling.BILINEAR))


def centre(box: CellBox) -> np.ndarray:
    return np.array([box.x + box.side / 2, box.y + box.side / 2])


@pytest.mark.parametrize("factor", [0.5, 2.0, 2.5])
@pytest.mark.parametrize("source,index", cases())
def test_rescaled_photo_gives_the_same_box_scaled(source, index, factor):
    rgb = load_image(first_images(SOURCES[source])[index])
    box = locate_white_cell(rgb)
    scaled = locate_white_cell(resized(rgb, factor))
    assert box.found and scaled.found
    assert scaled.side / (box.side * factor) == pytest.approx(1.0, abs=0.2)
    assert np.abs(centre(scaled) / factor - centre(box)).max() < 0.1 * box.side


@pytest.mark.parametrize("source,index", cases())
def test_rescaled_photo_gives_nearly_the_same_crop(source, index):
    rgb = load_image(first_images(SOURCES[source])[index])
    crop, _ = frame_cell(rgb)
    crop_big, _ = frame_cell(resized(rgb, 2.0))
    # Same framing: pixels differ only by resampling and a small shift of the box.
    assert np.abs(crop.astype(float) - crop_big.astype(float)).mean() < 20


@pytest.mark.parametrize("source,index", cases())
def test_tight_crop_where_the_cell_fills_the_frame_is_padded_to_the_usual_view(source, index):
    rgb = load_image(first_images(SOURCES[source])[index])
    box = locate_white_cell(rgb)
    inner = box.side // 2  # about the cell itself, no margin
    tight_box = CellBox(box.x + (box.side - inner) // 2, box.y + (box.side - inner) // 2, inner, True)
    tight = crop_to_box(rgb, tight_box, 110)  # as some analysers export cells: ~110 px, cell edge to edge
    framed = locate_white_cell(tight)
    assert framed.found
    # The crop reaches past the tight image on every side (filled with background)
    # and keeps the cell at the size the model learned it at.
    assert framed.side == pytest.approx(220, rel=0.3)
    assert np.abs(centre(framed) - 55).max() < 15
    view = crop_to_box(tight, framed, 224)
    border = np.concatenate([view[:8].reshape(-1, 3), view[-8:].reshape(-1, 3)])
    assert border.mean() > 150  # a light background margin, not black or a smeared edge


def test_crop_past_the_edge_is_filled_with_the_background_colour():
    rgb = np.full((100, 100, 3), (230, 220, 160), np.uint8)  # a yellow slide
    rgb[40:60, 40:60] = (90, 40, 140)
    crop = crop_to_box(rgb, CellBox(-50, -50, 200, True), 100)
    assert tuple(crop[2, 2]) == pytest.approx((230, 220, 160), abs=2)
    assert tuple(crop[50, 50]) == pytest.approx((90, 40, 140), abs=2)
