"""Images the tests make themselves, so no test depends on a data set being present."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def synthetic_smear(width: int = 320, height: int = 240, nucleus_at=(200, 90)) -> np.ndarray:
    """Pale background, pink red cells, one purple nucleus: enough to test framing."""
    rng = np.random.default_rng(0)
    image = np.full((height, width, 3), (225, 220, 230), np.uint8)
    yy, xx = np.mgrid[:height, :width]
    for cy, cx in rng.integers(0, [height, width], size=(12, 2)):
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < 22**2] = (205, 150, 150)
    nx, ny = nucleus_at
    image[(yy - ny) ** 2 + (xx - nx) ** 2 < 30**2] = (200, 170, 215)  # cytoplasm
    image[(yy - ny) ** 2 + (xx - nx) ** 2 < 18**2] = (110, 60, 190)  # nucleus
    return image


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


SMEAR = synthetic_smear()
