"""Reproducible sets of images that are not blood-cell photos, for the OOD check.

Built only from images scikit-image ships (natural photos, other microscopy) and from
images generated here (plain colours, noise, patterns), so anyone can rebuild them
offline. Two sets that share no image:

* ``non_blood_images``: the measurement set. Each photo whole and as three seeded
  random crops, plus generated images. Never used to fit or set anything.
* ``validation_non_blood_images``: scikit-image's other bundled pictures (a stereo
  motorcycle pair, the Shepp-Logan phantom, faces, blobs) and generated images of other
  kinds (two-colour gradients, smooth colour fields, shapes, text). ``training.calibrate``
  sets the not-a-blood-cell threshold with it.
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


def validation_non_blood_images(seed: int = 1, size: int = 256) -> list[NonBloodImage]:
    """The threshold-setting set (about 60 images); no image of ``non_blood_images`` is in it."""
    from PIL import Image, ImageDraw
    from scipy import ndimage
    from skimage import data

    rng = np.random.default_rng(seed)
    images = []
    left, right, _ = data.stereo_motorcycle()
    photos = {"motorcycle left": left, "motorcycle right": right, "phantom": data.shepp_logan_phantom(),
              "blobs": data.binary_blobs(length=256, rng=seed)}
    for name, picture in photos.items():
        rgb = _as_rgb(picture)
        images.append(NonBloodImage(name, "natural photo" if "motorcycle" in name else "pattern", rgb))
        height, width = rgb.shape[:2]
        for index in range(3):
            side = int(min(height, width) * rng.uniform(0.3, 0.7))
            y, x = rng.integers(0, height - side + 1), rng.integers(0, width - side + 1)
            images.append(NonBloodImage(f"{name} crop {index + 1}", "natural photo", rgb[y : y + side, x : x + side]))
    faces = data.lfw_subset()
    for index in rng.choice(len(faces), 8, replace=False):
        face = np.asarray(Image.fromarray(_as_rgb(faces[index])).resize((200, 200), Image.Resampling.BICUBIC))
        images.append(NonBloodImage(f"face {index}", "natural photo", face))
    ramp = np.linspace(0, 1, size, dtype=np.float32)[None, :, None]
    for index in range(12):
        first, second = rng.integers(0, 256, (2, 3))
        gradient = first * (1 - ramp) + second * ramp
        images.append(NonBloodImage(f"two-colour gradient {index + 1}", "pattern",
                                    np.broadcast_to(gradient, (size, size, 3)).astype(np.uint8)))
    for index in range(10):
        field = ndimage.gaussian_filter(rng.normal(0, 1, (size, size, 3)), (rng.uniform(4, 24),) * 2 + (0,))
        field = (field - field.min()) / max(float(np.ptp(field)), 1e-9)
        images.append(NonBloodImage(f"smooth colour field {index + 1}", "noise", (field * 255).astype(np.uint8)))
    for index in range(8):
        canvas = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(3, 12))):
            x0, y0 = rng.integers(0, size - 20, 2)
            x1, y1 = x0 + rng.integers(10, 120), y0 + rng.integers(10, 120)
            colour = tuple(int(v) for v in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([int(x0), int(y0), int(x1), int(y1)], fill=colour)
        images.append(NonBloodImage(f"shapes {index + 1}", "pattern", np.asarray(canvas)))
    for index in range(4):
        canvas = Image.new("RGB", (size, size), (250, 250, 245))
        draw = ImageDraw.Draw(canvas)
        for line in range(12):
            draw.text((8, 8 + 20 * line), "".join(chr(int(c)) for c in rng.integers(97, 123, 30)), fill=(20, 20, 20))
        images.append(NonBloodImage(f"text {index + 1}", "document", np.asarray(canvas)))
    return images
