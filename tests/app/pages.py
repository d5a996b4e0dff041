"""What the page tests share: the page list, small explanation settings, and helpers."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app.explanations import ExplainSettings
from hematovision import ImageError, load_image
from hematovision.workflows.samples import find_sample

PAGES = ["app_pages/home.py", "app_pages/classify.py", "app_pages/batch.py", "app_pages/explain.py",
         "app_pages/compare.py", "app_pages/atlas.py", "app_pages/quiz.py",
         "app_pages/model.py"]


FAST_EXPLAIN = ExplainSettings(lime_samples=50, shap_evals=60)


def png_bytes(rgb: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="PNG")
    return buffer.getvalue()


def evaluation_count(caption: str) -> int:
    """'1.2 s · 51 model evaluations' -> 51."""
    return int(caption.split("·")[1].split("model evaluation")[0].strip().replace(",", ""))


def expected_message(data: bytes) -> str:
    with pytest.raises(ImageError) as info:
        load_image(data)
    return str(info.value)


def _truncated_jpeg() -> bytes:
    data = find_sample("monocyte-1").read_bytes()
    return data[: len(data) // 2]


BAD_UPLOADS = {
    "random-bytes": np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes(),
    "truncated-jpeg": _truncated_jpeg(),
    "empty": b"",
    "too-small": png_bytes(np.zeros((8, 8, 3), np.uint8)),
}
