"""Turn whatever a user hands us (bytes, a path, a PIL image, an array) into a clean RGB array.

Every refusal is an ``ImageError`` whose message can be shown to a user as it is.
Nothing here writes to disk.
"""

from __future__ import annotations

import base64
import io
import re
import unicodedata
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

# A 640x480 smear photo is 0.3 MP; phone photos of a field reach ~50 MP. Anything
# larger is refused before decoding, which also defuses decompression bombs.
MAX_PIXELS = 60_000_000
# One uploaded file, in bytes: the app's cap (server.maxUploadSize = 20 in
# .streamlit/config.toml, which Streamlit counts in MiB), the batch page's and the API's.
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
# Below this a white cell cannot be resolved at all.
MIN_SIDE = 32
MAX_DISPLAY_NAME = 60  # characters of a user's file name shown in the app
SUPPORTED_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")

ImageSource = Union[bytes, bytearray, str, Path, Image.Image, np.ndarray]


class ImageError(ValueError):
    """The input cannot be used as a blood-cell image; the message says why."""


def over_upload_limit(size: int) -> bool:
    """Whether one file of ``size`` bytes is over MAX_UPLOAD_BYTES: the one check of the cap,
    for the app's uploader and for each image of a batch (plain or inside a zip)."""
    return size > MAX_UPLOAD_BYTES


def load_image(source: ImageSource) -> np.ndarray:
    """Return the image as an ``(H, W, 3)`` uint8 RGB array, upright per its EXIF tag."""
    if isinstance(source, np.ndarray):
        return _array_to_rgb(source)
    if isinstance(source, Image.Image):
        return _pil_to_rgb(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, Path)):
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"No such file: {path.name}")
        data = path.read_bytes()
    else:
        raise ImageError(f"Cannot read an image from a {type(source).__name__}.")
    return decode_image_bytes(data)


def decode_image_bytes(data: bytes) -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, BMP, TIFF, GIF...) into RGB."""
    if len(data) == 0:
        raise ImageError("The file is empty (0 bytes).")
    with warnings.catch_warnings():
        # Pillow warns before it refuses; our own pixel limit below gives the message.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageError(_too_many_pixels_message(None, _claimed_pixels(exc))) from None
        except UnidentifiedImageError:
            raise ImageError(unreadable_message(data)) from None
        except Exception as exc:  # Pillow raises many types for malformed headers
            raise ImageError(f"This file could not be read as an image ({exc}).") from None
        _check_size(image.size)
        if getattr(image, "n_frames", 1) > 1:
            image.seek(0)  # animated GIF / multi-page TIFF: use the first frame
        try:
            image.load()
        except Image.DecompressionBombError:
            raise ImageError(_too_many_pixels_message(image.size)) from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise ImageError(
                f"The image file is truncated or corrupt and cannot be decoded ({exc})."
            ) from None
    return _pil_to_rgb(image)


def _too_many_pixels_message(size: tuple[int, int] | None, pixels: int | None = None) -> str:
    got = f" ({size[0]}x{size[1]})" if size else f" ({pixels / 1e6:.0f} megapixels)" if pixels else ""
    return (
        f"The image is too large{got}: at most {MAX_PIXELS // 1_000_000} megapixels are accepted."
    )


def _claimed_pixels(exc: Exception) -> int | None:
    """The pixel count in Pillow's own decompression-bomb refusal, so our message can say it."""
    found = re.search(r"\((\d+) pixels\)", str(exc))
    return int(found.group(1)) if found else None


# What Pillow cannot identify is often something else entirely: say what it is.
_SIGNATURES = (
    (b"%PDF-", "This file is a PDF document, not an image: export the page as PNG or JPEG first."),
    (b"PK\x03\x04", "This file is a zip archive, not an image: unzip it first "
                     "(the app's Batch differential page opens zips)."),
    (b"PK\x05\x06", "This file is an empty zip archive, not an image."),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"}
_IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"BM", "BMP"),
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
)


def unreadable_message(data: bytes) -> str:
    """Why bytes that Pillow could not identify are no image, as specifically as they tell.

    Pillow only says "cannot identify image file", for a PDF and for a PNG with one bad
    checksum alike; the user needs to know which, and what to do about it.
    """
    for magic, message in _SIGNATURES:
        if data.startswith(magic):
            return message
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        return ("This is a HEIC/HEIF photo (the iPhone camera's default), which cannot be read here: "
                "export it as JPEG or PNG.")
    for magic, name in _IMAGE_MAGIC:
        if data.startswith(magic):
            reason = _tiff_problem(data) if name == "TIFF" else _plugin_refusal(data, name)
            return f"This file is not an image that can be read: it starts like a {name} file, but {reason}."
    head = data[:2048]
    if b"\x00" not in head and head.decode("utf-8", errors="replace").count("\ufffd") <= 1:
        return "This file holds text, not an image (expected JPEG, PNG, BMP or TIFF)."
    return "This file is not an image that can be read (expected JPEG, PNG, BMP or TIFF)."


def _plugin_refusal(data: bytes, name: str) -> str:
    """The format's own reader's complaint (Image.open hides it behind 'cannot identify')."""
    Image.init()
    try:
        Image.OPEN[name][0](io.BytesIO(data))
    except Exception as exc:  # the reason is what we want
        return f"it is corrupt ({exc})"
    return "it is corrupt"


def _tiff_problem(data: bytes) -> str:
    """A TIFF Pillow refuses is usually valid but unusual: name its compression or pixel layout."""
    from PIL import TiffImagePlugin

    try:
        tags = TiffImagePlugin.ImageFileDirectory_v2(data[:8])
        stream = io.BytesIO(data)
        stream.seek(tags.next)
        tags.load(stream)
    except Exception as exc:
        return f"its header is corrupt ({exc})"
    compression = tags.get(259, 1)
    if compression not in TiffImagePlugin.COMPRESSION_INFO:
        return (f"its compression (code {compression}) is not supported; "
                "save it uncompressed or with LZW, or as PNG or JPEG")
    bits = tags.get(258) or (1,)
    format_code = (tags.get(339) or (1,))[0]
    if format_code == 1 and bits[0] in (1, 8, 16):  # an ordinary layout: something else is broken
        return _plugin_refusal(data, "TIFF")
    sample_format = {2: "signed integer", 3: "floating-point"}.get(format_code, "unsigned integer")
    return (f"its pixel format ({tags.get(277, 1)} samples of {bits[0]}-bit {sample_format}) is not "
            "supported; save it as 8- or 16-bit RGB or greyscale")


def _check_size(size: tuple[int, int]) -> None:
    width, height = size
    if width * height > MAX_PIXELS:
        raise ImageError(_too_many_pixels_message(size))
    if min(width, height) < MIN_SIDE:
        raise ImageError(
            f"The image is too small ({width}x{height}): each side must be at least "
            f"{MIN_SIDE} pixels to show a white cell."
        )


def _pil_to_rgb(image: Image.Image) -> np.ndarray:
    _check_size(image.size)
    try:
        image = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block should not cost the user the image
        pass
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        return _array_to_rgb(np.asarray(image))
    if mode == "P":
        image = image.convert("RGBA")
        mode = "RGBA"
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        # Transparent areas become white, like the background of a stained slide.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise ImageError(
            f"An image array must be HxW, HxWx3 or HxWx4; got shape {array.shape}."
        )
    _check_size((array.shape[1], array.shape[0]))
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    if array.dtype != np.uint8:
        values = array.astype(np.float64)
        if not np.all(np.isfinite(values)):
            raise ImageError("The image array contains NaN or infinite values.")
        top = values.max() if values.size else 0.0
        if np.issubdtype(array.dtype, np.floating) and top <= 1.0:
            values = values * 255.0  # floats in 0..1
        elif top > 255.0:
            values = values * (255.0 / (65535.0 if top <= 65535.0 else top))  # 16-bit
        array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    if array.shape[2] == 4:
        alpha = array[:, :, 3:4].astype(np.float32) / 255.0
        array = (array[:, :, :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(array)


def clean_display_name(name: str | None, fallback: str = "uploaded image", limit: int = MAX_DISPLAY_NAME) -> str:
    """A user's file name made safe to *show*: no folders, no control characters, short.

    The result is only ever displayed; nothing builds a path from it.
    """
    if not name:
        return fallback
    base = str(name).replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(ch for ch in base if unicodedata.category(ch)[0] != "C").strip()
    if not base:
        return fallback
    if len(base) > limit:
        base = base[: limit - 1] + "…"
    return base


# -- writing images out (reports, the app's tables, the API) ------------------------------
#
# Every image we send out is made from pixels alone, so an upload's EXIF, ICC profile, PNG
# text or TIFF tags never reach it; ``strip_metadata`` then removes whatever an encoder
# adds (Pillow's JFIF header, matplotlib's "Software" text), so the promise holds for bytes
# from any encoder: only what a decoder needs to draw the pixels leaves this package.

JPEG_QUALITY = 88  # photos and overlays: a report with hundreds of cells stays a few MB
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that draw the pixels; every other one (tEXt, zTXt, iTXt, eXIf, iCCP, tIME, pHYs...) goes.
PNG_PIXEL_CHUNKS = (b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND")
JPEG_STANDALONE = {0x01, *range(0xD0, 0xD8), 0xD8}  # markers without a length field
JPEG_COMMENT, JPEG_APP0, JPEG_APP14, JPEG_APP15 = 0xFE, 0xE0, 0xEE, 0xEF
JPEG_START_OF_SCAN, JPEG_END_OF_IMAGE = 0xDA, 0xD9


def jpeg_bytes(rgb: np.ndarray, side: int | None = None, quality: int = JPEG_QUALITY) -> bytes:
    """An RGB array as JPEG without metadata, resized to ``side`` x ``side`` first when given."""
    image = Image.fromarray(np.asarray(rgb, np.uint8)).convert("RGB")
    if side:
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return strip_metadata(buffer.getvalue())


def data_uri(data: bytes) -> str:
    """PNG or JPEG bytes as a data URI, without metadata, so a page or a report embeds them
    without serving files."""
    data = strip_metadata(data)
    kind = "png" if data.startswith(PNG_SIGNATURE) else "jpeg"
    return f"data:image/{kind};base64," + base64.b64encode(data).decode("ascii")


def strip_metadata(data: bytes) -> bytes:
    """PNG or JPEG bytes with every metadata chunk or segment removed; the pixels are untouched
    (nothing is decoded or re-encoded). ValueError for any other format: we only send these two."""
    if data.startswith(PNG_SIGNATURE):
        return _png_pixels_only(data)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_pixels_only(data)
    raise ValueError("strip_metadata takes PNG or JPEG bytes.")


def _png_pixels_only(data: bytes) -> bytes:
    kept = [PNG_SIGNATURE]
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        end = position + 12 + length  # length, type, data, CRC
        if data[position + 4:position + 8] in PNG_PIXEL_CHUNKS:
            kept.append(data[position:end])
        position = end
    return b"".join(kept)


def _jpeg_pixels_only(data: bytes) -> bytes:
    """Drop APPn segments (EXIF, XMP, ICC, JFIF, IPTC...) and comments, keeping Adobe's APP14,
    which says how to convert the colours. Entropy-coded scan data is copied as it is."""
    kept = [data[:2]]
    position = 2
    while position + 2 <= len(data):
        if data[position] != 0xFF:
            raise ValueError("Malformed JPEG: expected a marker.")
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        if marker == JPEG_END_OF_IMAGE:  # anything after it (camera trailers) is dropped too
            kept.append(data[position:position + 2])
            break
        if marker in JPEG_STANDALONE:
            kept.append(data[position:position + 2])
            position += 2
            continue
        end = position + 2 + int.from_bytes(data[position + 2:position + 4], "big")
        is_app = JPEG_APP0 <= marker <= JPEG_APP15
        adobe = marker == JPEG_APP14 and data[position + 4:position + 9] == b"Adobe"
        if not (is_app or marker == JPEG_COMMENT) or adobe:
            kept.append(data[position:end])
        position = end
        if marker == JPEG_START_OF_SCAN:
            scan_end = _end_of_scan(data, position)
            kept.append(data[position:scan_end])
            position = scan_end
    return b"".join(kept)


def _end_of_scan(data: bytes, position: int) -> int:
    """Where a scan's entropy-coded data ends: at the first marker that is neither a stuffed
    zero (FF 00) nor a restart (FF D0-D7)."""
    while True:
        position = data.find(b"\xff", position)
        if position < 0 or position + 1 >= len(data):
            return len(data)
        following = data[position + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7 or following == 0xFF:
            position += 1 if following == 0xFF else 2
            continue
        return position
