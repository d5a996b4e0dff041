"""Maskers: how LIME, SHAP, occlusion and the deletion/insertion metrics hide parts of an
image. No model needed: these are promises about the hidden images themselves."""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from hematovision.explanation.explainers.maskers import (
    DEFAULT_BASELINE,
    baseline_image,
    cell_superpixels,
    masked_batch,
    parse_baseline,
    region_hierarchy,
    region_masks,
)
from tests.synthetic import synthetic_smear


@pytest.mark.parametrize("text, expected", [("blur(64)", ("blur", 64)),
                                            (" Blur( 8 ) ", ("blur", 8)), ("BLUR(1)", ("blur", 1))])
def test_blur_baselines_are_read_whatever_the_case_and_spacing(text, expected):
    assert parse_baseline(text) == expected


@pytest.mark.parametrize("text", ["zeros", "blur", "blur()", "blur(x)", "blur(-1)", "blur(6.5)",
                                  "blur(64", "blur(64)(2)", "constant(128)", ""])
def test_a_malformed_or_unaccepted_baseline_is_refused_naming_the_right_form(text):
    with pytest.raises(ValueError,
                       match=r"Unknown baseline .*; use 'blur\(N\)', e\.g\. 'blur\(64\)'"):
        parse_baseline(text)


def test_metrics_also_accept_a_grey_constant_up_to_255():
    both = ("blur", "constant")
    assert parse_baseline("constant(0)", both) == ("constant", 0)
    assert parse_baseline("constant(255)", both) == ("constant", 255)
    assert parse_baseline("blur(32)", both) == ("blur", 32)
    with pytest.raises(ValueError, match=r"use 'blur\(N\)' or 'constant\(V\)'"):
        parse_baseline("constant(256)", both)


def test_blur_baseline_is_the_mean_of_each_pixels_box_and_keeps_the_colour():
    rng = np.random.default_rng(0)
    image = rng.integers(100, 200, (40, 40, 3)).astype(np.uint8)
    blurred = baseline_image(image, "blur(5)")
    assert blurred.dtype == np.float32 and blurred.shape == image.shape
    # Away from the border every value is the mean of its 5x5 box, channel by channel.
    np.testing.assert_allclose(blurred[20, 13], image[18:23, 11:16].mean(axis=(0, 1)), rtol=1e-5)
    # Detail goes, colour stays.
    assert blurred.std(axis=(0, 1)).max() < image.std(axis=(0, 1)).min() / 3
    np.testing.assert_allclose(blurred.mean(axis=(0, 1)), image.mean(axis=(0, 1)), atol=1.0)


def test_constant_baseline_is_flat_grey_at_the_images_shape():
    image = np.zeros((10, 12, 3), np.uint8)
    grey = baseline_image(image, "constant(128)", kinds=("blur", "constant"))
    assert grey.shape == image.shape and np.all(grey == 128)


def test_a_masked_batch_shows_the_image_where_kept_and_the_baseline_elsewhere():
    image = np.full((4, 5, 3), 200, np.uint8)
    hidden = np.full((4, 5, 3), 7, np.uint8)
    keep = np.zeros((2, 4, 5), bool)
    keep[0, :2] = True  # first image: top half kept
    keep[1, :, 3] = True  # second image: one column kept
    batch = masked_batch(image, hidden, keep)
    assert batch.shape == (2, 4, 5, 3) and batch.dtype == np.uint8
    for mask, masked in zip(keep, batch):
        assert np.all(masked[mask] == 200) and np.all(masked[~mask] == 7)
    single = masked_batch(image, hidden, keep[0])  # one (H, W) mask, one image
    np.testing.assert_array_equal(single, batch[0])


def test_switching_regions_off_hides_exactly_those_regions():
    segments = np.array([[0, 0, 1],
                         [2, 2, 1]])
    image = np.arange(18, dtype=np.float32).reshape(2, 3, 3) + 100
    hidden = np.zeros_like(image)
    switches = np.array([[1, 1, 1], [0, 1, 0], [0, 0, 0]])
    batch = masked_batch(image, hidden, region_masks(switches, segments))
    np.testing.assert_array_equal(batch[0], image)  # all on: the image itself
    np.testing.assert_array_equal(batch[1][segments == 1], image[segments == 1])
    assert np.all(batch[1][segments != 1] == 0)
    assert np.all(batch[2] == 0)  # all off: the baseline


def test_superpixels_cover_the_image_with_contiguous_labels():
    image = synthetic_smear()
    segments = cell_superpixels(image, 20, 20.0)
    assert segments.shape == image.shape[:2]
    count = int(segments.max()) + 1
    assert count > 4
    np.testing.assert_array_equal(np.unique(segments), np.arange(count))  # no gaps in 0..k-1


def test_superpixels_follow_stain_edges():
    image = np.zeros((96, 96, 3), np.uint8)
    image[:, :40] = (110, 60, 190)  # nucleus purple
    image[:, 40:] = (225, 220, 230)  # pale background
    segments = cell_superpixels(image, 8, 20.0)
    purple = np.zeros(segments.shape, bool)
    purple[:, :40] = True
    # SLIC smooths first, so a sliver along the edge may go either way; no more than that.
    for region in range(int(segments.max()) + 1):
        share = purple[segments == region].mean()
        assert share < 0.05 or share > 0.95, (region, share)


def test_the_region_tree_joins_two_nucleus_lobes_before_the_pale_cytoplasm():
    from scipy.cluster.hierarchy import is_valid_linkage

    image = np.zeros((30, 30, 3), np.uint8)
    segments = np.zeros((30, 30), int)
    image[:, :10], segments[:, :10] = (110, 60, 190), 0  # lobe
    image[:, 10:20], segments[:, 10:20] = (115, 65, 185), 1  # neighbouring lobe
    image[:, 20:], segments[:, 20:] = (225, 215, 230), 2  # pale cytoplasm
    tree = region_hierarchy(image, segments)
    assert is_valid_linkage(tree) and tree.shape == (2, 4)
    assert sorted(tree[0, :2].astype(int)) == [0, 1]


def test_every_perturbation_method_and_metric_hides_with_the_same_default_baseline():
    from hematovision.explanation import faithfulness
    from hematovision.explanation.explainers import default_params

    for method in ("lime", "shap", "occlusion", "integrated_gradients"):
        assert default_params(method)["baseline"] == DEFAULT_BASELINE
    for metric in (faithfulness.deletion_insertion, faithfulness.drop_and_increase):
        assert inspect.signature(metric).parameters["baseline"].default == DEFAULT_BASELINE
