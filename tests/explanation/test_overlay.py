"""Overlay drawing: normalisation, views, shapes/dtypes and PNG export."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from hematovision.explanation.overlay import (
    explanation_png,
    normalize_attribution,
    overlay,
    overlay_png,
    to_png_bytes,
)

IMAGE = np.full((224, 224, 3), 200, dtype=np.uint8)
# Left half evidence for (+), right half against (-), a zero strip in the middle.
SIGNED = np.zeros((224, 224), np.float32)
SIGNED[:, :100] = 2.0
SIGNED[:, 124:] = -1.0


def test_normalisation_unsigned_and_signed():
    unsigned = normalize_attribution(np.array([[-1.0, 0.0, 2.0, 4.0]]), signed=False)
    np.testing.assert_allclose(unsigned, [[0.0, 0.0, 0.5, 1.0]])
    signed = normalize_attribution(np.array([[-4.0, 0.0, 2.0]]), signed=True)
    np.testing.assert_allclose(signed, [[-1.0, 0.0, 0.5]])
    assert not np.any(normalize_attribution(np.zeros((3, 3)), signed=True))


def test_overlay_shape_dtype_and_opacity():
    out = overlay(IMAGE, SIGNED, signed=True, opacity=0.7)
    assert out.shape == IMAGE.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(overlay(IMAGE, SIGNED, signed=True, opacity=0.0), IMAGE)
    np.testing.assert_array_equal(out[:, 100:124], IMAGE[:, 100:124])  # zero evidence: untouched


def test_signed_views_colour_only_their_half():
    both = overlay(IMAGE, SIGNED, signed=True, view="both").astype(int)
    positive = overlay(IMAGE, SIGNED, signed=True, view="positive").astype(int)
    negative = overlay(IMAGE, SIGNED, signed=True, view="negative").astype(int)
    assert both[0, 0, 0] > both[0, 0, 2]  # red for
    assert both[0, -1, 2] > both[0, -1, 0]  # blue against
    np.testing.assert_array_equal(positive[:, 124:], IMAGE[:, 124:])
    np.testing.assert_array_equal(negative[:, :100], IMAGE[:, :100])
    np.testing.assert_array_equal(positive[:, :100], both[:, :100])


def test_unsigned_map_at_other_resolution_is_resized():
    coarse = np.arange(49, dtype=np.float32).reshape(7, 7)
    out = overlay(IMAGE, coarse, signed=False)
    assert out.shape == IMAGE.shape
    assert not np.array_equal(out[-1, -1], IMAGE[-1, -1])  # hottest corner coloured
    np.testing.assert_array_equal(overlay(IMAGE, coarse, view="negative"), IMAGE)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="view"):
        overlay(IMAGE, SIGNED, signed=True, view="sideways")
    with pytest.raises(ValueError, match="opacity"):
        overlay(IMAGE, SIGNED, opacity=1.5)


def test_png_round_trip():
    out = overlay(IMAGE, SIGNED, signed=True)
    decoded = np.asarray(Image.open(io.BytesIO(to_png_bytes(out))))
    np.testing.assert_array_equal(decoded, out)


@pytest.mark.parametrize("signed", [False, True])
def test_colour_bar_png_decodes(signed):
    data = overlay_png(IMAGE, SIGNED, signed=signed, title="Test", target="NEUTROPHIL", dpi=60)
    picture = Image.open(io.BytesIO(data))
    picture.load()
    assert picture.format == "PNG" and picture.width > 100 and picture.height > 100
    assert not picture.text  # no "Software: matplotlib" or any other text chunk leaves with it


def test_explanation_png_uses_the_explanation():
    fake = SimpleNamespace(attribution=SIGNED, signed=True, label="LIME", target="EOSINOPHIL",
                           target_probability=0.93)
    assert Image.open(io.BytesIO(explanation_png(IMAGE, fake))).format == "PNG"
