"""A reproducible set of images that are not blood-cell photos, for the OOD check.

Built only from images scikit-image ships (natural photos, other microscopy) and from
images generated here (plain colours, noise, patterns), so anyone can rebuild it
offline. Each photo is used whole and as three seeded random crops; nothing here is
used to fit the detector or its threshold, only to measure how often it flags.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NATURAL = ("astronaut", "camera", "cat", "coffee", "coins", "horse", "hubble_deep_field", "moon",
           "rocket", "page", "text", "clock", "brick", "grass", "gravel", "logo", "colorwheel")
MICROSCOPY = ("immunohistochemistry", "retina", "cell", "microaneurysms")
CROPS_PER_PHOTO = 3


@dataclass(frozen=True)
class NonBloodImage:
    name: str
    kind: str  # "natural photo", "other microscopy", "plain colour", "noise", "pattern"
    rgb: np.ndarray


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = (255 * (image - image.min()) / max(float(np.ptp(image)), 1e-9)).astype(np.uint8)
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3])


def _photos(seed: int) -> list[NonBloodImage]:
    from skimage import data

    rng = np.random.default_rng(seed)
    images = []
    for kind, names in (("natural photo", NATURAL), ("other microscopy", MICROSCOPY)):
        for name in names:
            rgb = _as_rgb(getattr(data, name)())
            images.append(NonBloodImage(name, kind, rgb))
            height, width = rgb.shape[:2]
            for index in range(CROPS_PER_PHOTO):
                side = int(min(height, width) * rng.uniform(0.4, 0.8))
                y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
                images.append(NonBloodImage(f"{name} crop {index + 1}", kind, rgb[y : y + side, x : x + side]))
    return images


def synthetic(seed: int = 0, size: int = 256) -> list[NonBloodImage]:
    """Plain colours (stain-like purple and pink among them), noise and patterns."""
    rng = np.random.default_rng(seed)
    images = []
    colours = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "red": (220, 30, 30),
               "green": (30, 180, 60), "blue": (30, 60, 220), "stain purple": (120, 60, 170),
               "stain pink": (230, 180, 190)}
    for name, colour in colours.items():
        images.append(NonBloodImage(f"plain {name}", "plain colour", np.full((size, size, 3), colour, np.uint8)))
    images += [
        NonBloodImage("uniform noise", "noise", rng.integers(0, 256, (size, size, 3), dtype=np.uint8)),
        NonBloodImage("grey noise", "noise", np.repeat(rng.integers(0, 256, (size, size, 1), dtype=np.uint8), 3, 2)),
        NonBloodImage("gaussian noise", "noise", np.clip(rng.normal(128, 40, (size, size, 3)), 0, 255).astype(np.uint8)),
        NonBloodImage("purple noise", "noise", np.clip(rng.normal((120, 60, 170), 30, (size, size, 3)), 0, 255).astype(np.uint8)),
    ]
    ramp = np.linspace(0, 255, size, dtype=np.float32)
    horizontal = np.broadcast_to(ramp[None, :, None], (size, size, 3))
    images += [
        NonBloodImage("grey gradient", "pattern", horizontal.astype(np.uint8)),
        NonBloodImage("colour gradient", "pattern", np.stack([horizontal[..., 0], horizontal[..., 0].T,
                                                               255 - horizontal[..., 0]], -1).astype(np.uint8)),
        NonBloodImage("stripes", "pattern", ((np.indices((size, size))[1] // 16) % 2 * 255).astype(np.uint8)[..., None].repeat(3, 2)),
        NonBloodImage("checkerboard", "pattern",
                      (((np.indices((size, size)) // 32).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, 2)),
    ]
    return images


def non_blood_images(seed: int = 0) -> list[NonBloodImage]:
    """The whole measurement set: ~84 photo images and 16 generated ones."""
    return _photos(seed) + synthetic(seed)
