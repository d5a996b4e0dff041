"""Colour normalisation: make every crop's colours look like one shared reference.

Two ways, chosen per model (its card's ``colour_normalisation`` setting):

* ``background`` (models from issue 12 on): white balance on the slide's own background,
  the brightest tenth of the image, moved to a neutral light grey. It uses only what
  every smear photo has, so it holds when the cell fills most of the crop; a yellow,
  grey or blue slide becomes the same grey. Stain strength and hue are left to the
  training augmentation.
* ``background_lightness`` (an issue-12 candidate): that white balance, then the L*
  channel's mean and spread moved to the reference, as Reinhard does, but a* and b* kept:
  pale, soft photos get the contrast of the training labs without a colour cast.
* ``reinhard`` (the issue-3 model): the method described next.

Labs differ in stain, lamp and camera: Kaggle/BCCD crops are soft and blue-grey, PBC
ones sharp and warm. Reinhard et al. (2001) colour transfer matches each image's
per-channel mean and spread in L*a*b* space to fixed reference values, which removes
most of that difference before the network sees the image. On frozen ImageNet features
it raised cross-source accuracy from 54% to 61% (Kaggle -> PBC) and from 59% to 66%
(PBC -> Kaggle) and did not lower either source's own accuracy (training/EXPERIMENTS.md,
stain probe).

The conversion uses Pillow's colour management (8-bit CIE L*a*b*, D50): compiled 8-bit
code, far cheaper than a float conversion.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageCms

# White balance moves the background to this level in every channel.
BACKGROUND_LEVEL = 235.0
# The background is the median colour of this brightest share of the pixels.
BACKGROUND_SHARE = 0.10
NORMALISATIONS = ("background", "background_lightness", "reinhard", "none")


def background_colour(rgb: np.ndarray) -> np.ndarray:
    """The slide's background colour (float RGB): median of the brightest tenth of the pixels."""
    pixels = np.asarray(rgb).reshape(-1, 3)
    if len(pixels) > 40_000:  # a large photo: a regular subsample is as good and far faster
        pixels = pixels[:: len(pixels) // 20_000]
    if pixels.dtype != np.uint8:
        brightness = pixels.astype(np.int32).sum(axis=1)
        cut = np.partition(brightness, int(len(brightness) * (1 - BACKGROUND_SHARE)))[
            int(len(brightness) * (1 - BACKGROUND_SHARE))]
        return np.median(pixels[brightness >= cut], axis=0).astype(np.float32)
    # 8-bit pixels (every loaded image): the same cut and medians read off histograms, exactly,
    # in a fifth of the time of sorting. It runs up to three times per prediction.
    channels = np.ascontiguousarray(pixels.T)
    brightness = channels[0].astype(np.uint16)
    brightness += channels[1]
    brightness += channels[2]
    cut = _kth_smallest(np.bincount(brightness, minlength=766), int(len(brightness) * (1 - BACKGROUND_SHARE)))
    bright = channels[:, brightness >= cut]
    middle = (bright.shape[1] - 1) // 2, bright.shape[1] // 2
    medians = []
    for channel in bright:
        counts = np.bincount(channel, minlength=256)
        medians.append((_kth_smallest(counts, middle[0]) + _kth_smallest(counts, middle[1])) / 2)
    return np.array(medians, np.float32)


def _kth_smallest(counts: np.ndarray, k: int) -> int:
    """The value at sorted position ``k`` (0-based) of the numbers counted in ``counts``."""
    return int(np.searchsorted(np.cumsum(counts), k, side="right"))


def white_balance(rgb: np.ndarray, background: np.ndarray | None = None, as_float: bool = False) -> np.ndarray:
    """Scale each channel so the background becomes neutral grey at ``BACKGROUND_LEVEL``."""
    if background is None:
        background = background_colour(rgb)
    gain = BACKGROUND_LEVEL / np.maximum(np.asarray(background, np.float32), 16.0)
    balanced = np.asarray(rgb, np.float32) * gain
    return balanced if as_float else np.clip(np.round(balanced), 0, 255).astype(np.uint8)


def normalise_colour(rgb: np.ndarray, method: str) -> np.ndarray:
    """The crop as the model expects it under ``method`` (one of ``NORMALISATIONS``)."""
    if method == "background":
        return white_balance(rgb)
    if method == "background_lightness":
        return match_lightness(white_balance(rgb))
    if method == "reinhard":
        return normalise_stain(rgb)
    if method == "none":
        return rgb
    raise ValueError(f"Unknown colour normalisation {method!r}; expected one of {', '.join(NORMALISATIONS)}.")

# Mean and standard deviation of the 8-bit L*, a*, b* channels, averaged over 400
# Kaggle TRAIN and 400 PBC training crops (python -m training.stain_probe prints them).
REFERENCE_MEAN = np.array([187.3, 10.9, -3.2], np.float32)
REFERENCE_STD = np.array([45.0, 10.9, 19.4], np.float32)


@functools.lru_cache(maxsize=1)
def _transforms():
    srgb, lab = ImageCms.createProfile("sRGB"), ImageCms.createProfile("LAB")
    return (ImageCms.buildTransformFromOpenProfiles(srgb, lab, "RGB", "LAB"),
            ImageCms.buildTransformFromOpenProfiles(lab, srgb, "LAB", "RGB"))


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB -> float32 L*a*b*: L* scaled to 0-255, a* and b* signed (-128..127)."""
    to_lab, _ = _transforms()
    raw = np.asarray(ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb)), to_lab))
    lab = raw.astype(np.float32)
    lab[..., 1:] = raw[..., 1:].view(np.int8)  # Pillow stores a* and b* as signed bytes
    return lab


def lab_to_rgb(lab: np.ndarray) -> np.ndarray:
    _, to_rgb = _transforms()
    raw = np.empty(lab.shape, np.uint8)
    raw[..., 0] = np.clip(np.round(lab[..., 0]), 0, 255)
    raw[..., 1:] = np.clip(np.round(lab[..., 1:]), -128, 127).astype(np.int8).view(np.uint8)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(raw, "LAB"), to_rgb))


def lab_statistics(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pixels = rgb_to_lab(rgb).reshape(-1, 3)
    return pixels.mean(axis=0), pixels.std(axis=0)


def normalise_stain(rgb: np.ndarray) -> np.ndarray:
    """The crop with each L*a*b* channel's mean and spread moved to the reference (uint8 RGB)."""
    to_lab, to_rgb = _transforms()
    raw = np.asarray(ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb)), to_lab))
    normalised = np.stack([_channel_to_reference(raw, channel) for channel in range(3)], axis=-1)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(normalised, "LAB"), to_rgb))

def match_lightness(rgb: np.ndarray) -> np.ndarray:
    """The crop with only its L* mean and spread moved to the reference (a* and b* kept)."""
    to_lab, to_rgb = _transforms()
    raw = np.array(ImageCms.applyTransform(Image.fromarray(np.ascontiguousarray(rgb)), to_lab))
    raw[..., 0] = _channel_to_reference(raw, 0)
    return np.asarray(ImageCms.applyTransform(Image.fromarray(raw, "LAB"), to_rgb))


def _channel_to_reference(lab: np.ndarray, channel: int) -> np.ndarray:
    """One 8-bit L*a*b* channel with its mean and spread moved to the reference.

    Each channel takes only 256 values, so the statistics come from a histogram and the
    affine map is a 256-entry lookup table. a* and b* are signed bytes.
    """
    codes = np.arange(256, dtype=np.float64)
    values = codes if channel == 0 else np.where(codes > 127, codes - 256, codes)
    counts = np.bincount(lab[..., channel].ravel(), minlength=256)
    mean = counts @ values / counts.sum()
    std = np.sqrt(counts @ (values - mean) ** 2 / counts.sum())
    # A flat channel (a plain-colour image) keeps its spread: nothing to stretch.
    scale = REFERENCE_STD[channel] / std if std > 1.0 else 1.0
    target = np.round((values - mean) * scale + REFERENCE_MEAN[channel])
    if channel == 0:
        table = np.clip(target, 0, 255).astype(np.uint8)
    else:
        table = np.clip(target, -128, 127).astype(np.int8).view(np.uint8)
    return table[lab[..., channel]]
