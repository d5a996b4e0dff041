"""Stain normalisation brings differently stained copies of one image together."""

from __future__ import annotations

import numpy as np

from hematovision.model.imaging import load_image
from hematovision.model.stain import (
    REFERENCE_MEAN,
    REFERENCE_STD,
    background_colour,
    lab_statistics,
    normalise_stain,
)
from hematovision.workflows.samples import list_samples
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


def test_white_balance_turns_a_yellow_or_blue_slide_the_same_grey():
    from hematovision.model.stain import BACKGROUND_LEVEL, background_colour, white_balance

    cell = synthetic_smear(224, 224, nucleus_at=(112, 112)).astype(np.float32)
    yellow = np.clip(cell * [1.0, 0.95, 0.7], 0, 255).astype(np.uint8)
    blue = np.clip(cell * [0.8, 0.9, 1.0], 0, 255).astype(np.uint8)
    for slide in (yellow, blue):
        background = background_colour(white_balance(slide))
        assert np.allclose(background, BACKGROUND_LEVEL, atol=3)
    assert np.abs(white_balance(yellow).astype(int) - white_balance(blue)).mean() < 6


def test_lightness_matching_gives_a_pale_photo_the_reference_contrast_without_a_colour_cast():
    from hematovision.model.stain import lab_statistics, normalise_colour

    cell = synthetic_smear(224, 224, nucleus_at=(112, 112)).astype(np.float32)
    pale = np.clip(cell * 0.4 + 150, 0, 255).astype(np.uint8)  # washed out, low contrast
    mean, std = lab_statistics(normalise_colour(pale, "background_lightness"))
    assert abs(mean[0] - REFERENCE_MEAN[0]) < 3 and abs(std[0] - REFERENCE_STD[0]) < 3
    balanced_mean, _ = lab_statistics(normalise_colour(pale, "background"))
    assert np.allclose(mean[1:], balanced_mean[1:], atol=4)  # a* and b* as white balance left them


def test_an_unknown_normalisation_is_refused_by_name():
    import pytest

    from hematovision.model.stain import normalise_colour

    with pytest.raises(ValueError, match="background, background_lightness, reinhard, none"):
        normalise_colour(np.zeros((8, 8, 3), np.uint8), "histogram")


def test_the_histogram_background_colour_is_exactly_the_sorted_one():
    """8-bit images take a histogram shortcut; any other dtype sorts. Both must give the same
    colour, to the bit, or every prediction would move (even counts, odd counts, one pixel)."""
    rng = np.random.default_rng(3)
    images = [load_image(sample.path) for sample in list_samples()] + [
        rng.integers(0, 256, (1200, 1600, 3), np.uint8),  # subsampled
        rng.integers(0, 256, (31, 17, 3), np.uint8),
        np.full((50, 50, 3), 200, np.uint8),
        np.zeros((1, 1, 3), np.uint8),
    ]
    for image in images:
        assert np.array_equal(background_colour(image), background_colour(image.astype(np.float32)))
