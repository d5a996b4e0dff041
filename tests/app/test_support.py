"""What the pages share in ``app/``: the cached decode, the drawn boxes, the explanation key."""

from __future__ import annotations

import numpy as np
import pytest

from app.explanations import explanation_key
from app.images import draw_cell_boxes
from hematovision import ImageError
from hematovision.model.cells import CellBox
from tests.app.pages import BAD_UPLOADS, expected_message


def test_the_cached_decode_refuses_bad_bytes_with_the_loader_message():
    from app.caches import decoded_image

    data = BAD_UPLOADS["random-bytes"]
    with pytest.raises(ImageError) as info:
        decoded_image("random-bytes", data)
    assert str(info.value) == expected_message(data)


def test_draw_cell_boxes_marks_the_box_only():
    rgb = np.full((100, 120, 3), 255, np.uint8)
    boxed = draw_cell_boxes(rgb, [CellBox(10, 20, 50, True)])
    assert boxed.shape == rgb.shape
    assert (boxed[20, 30] != 255).any()  # top edge
    assert (boxed[45, 35] == 255).all()  # inside untouched
    assert (rgb == 255).all()  # input not modified


def test_explanation_key_depends_on_everything_that_changes_the_result():
    base = explanation_key("abc", "lime", None, {"num_samples": 50})
    assert base == explanation_key("abc", "lime", None, {"num_samples": 50})
    assert base != explanation_key("abc", "lime", None, {"num_samples": 100})
    assert base != explanation_key("abc", "lime", "MONOCYTE", {"num_samples": 50})
    assert base != explanation_key("abd", "lime", None, {"num_samples": 50})

