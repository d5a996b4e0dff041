"""Stain normalisation brings differently stained copies of one image together."""

from __future__ import annotations

import numpy as np

from hematovision.stain import REFERENCE_MEAN, REFERENCE_STD, lab_statistics, normalise_stain
from tests.synthetic import synthetic_smear


def test_normalised_crop_has_the_reference_colour_statistics():
    mean, std = lab_statistics(normalise_stain(synthetic_smear(224, 224, nucleus_at=(112, 112))))
    assert np.allclose(mean, REFERENCE_MEAN, atol=3)
    assert np.allclose(std, REFERENCE_STD, rtol=0.15, atol=1.5)


def test_two_stainings_of_one_cell_look_alike_after_normalisation():
    cell = synthetic_smear(224, 224, nucleus_at=(112, 112)).astype(np.float32)
    warm = np.clip(cell * [1.08, 0.95, 0.85] + [10, 0, -5], 0, 255).astype(np.uint8)
    cool = np.clip(cell * [0.85, 0.95, 1.1] - [5, 0, 0], 0, 255).astype(np.uint8)
    before = np.abs(warm.astype(int) - cool).mean()
    after = np.abs(normalise_stain(warm).astype(int) - normalise_stain(cool)).mean()
    assert after < before / 3


def test_plain_image_survives_normalisation():
    out = normalise_stain(np.full((64, 64, 3), 200, np.uint8))
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
