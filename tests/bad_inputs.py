"""A corpus of bad and odd uploads, built in memory by the tests (no binary file is committed).

``KINDS`` maps a kind's name to a ``BadInput``: how to make its bytes, the file name a
user would send it under, and what every door (loader, app, API, CLI) must answer. An
``expect`` of ``None`` means the file is odd but usable and must load correctly (its
``check`` says what "correctly" means); otherwise ``expect`` is a fragment of the specific
message the loader gives, and every door must show that message.
"""

from __future__ import annotations

import functools
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np
from PIL import Image

from hematovision.model.imaging import MAX_UPLOAD_BYTES, MIN_SIDE
from tests.synthetic import SMEAR, encode, synthetic_smear

# A fragment of the API's 413 message and of the Classify page's byte-cap message.
UPLOAD_LIMIT = "upload limit"
ZIP_MESSAGE = "zip archive"


@dataclass(frozen=True)
class BadInput:
    """One kind of input and the promises every door makes about it."""

    make: Callable[[], bytes]
    file_name: str
    expect: str | None  # message fragment; None = usable, ``check`` must pass on the loaded RGB
    check: Callable[[np.ndarray], None] | None = None
    # A door that answers differently from the loader: door -> fragment (None = usable there).
    per_door: Mapping[str, str | None] = field(default_factory=dict)
    # Zip kinds: ``expect`` is what the one-image doors (API, CLI) say; the batch doors
    # (expand_uploads + classify_batch, and the Batch page) find ``zip_images`` and list
    # ``zip_skipped`` (name -> reason fragment), including found images that do not decode.
    zip_images: tuple[str, ...] = ()
    zip_skipped: Mapping[str, str] = field(default_factory=dict)
    no_cell: bool = False  # usable, but no white cell can be found in it
    refused_unread: bool = False  # its header alone condemns it: refused before any pixel is decoded
    api_status: int = 422  # the API's status for it when refused
    shown_as: str | None = None  # the name the app shows, when it is not the file name itself

    @property
    def is_zip(self) -> bool:
        return self.file_name.lower().endswith(".zip")

    def expected(self, door: str) -> str | None:
        return self.per_door.get(door, self.expect)


# -- encoders ----------------------------------------------------------------------------

def _png(image: Image.Image | np.ndarray, **kwargs) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    return encode(image, "PNG", **kwargs)


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_claiming(width: int, height: int) -> bytes:
    """A ~100-byte greyscale PNG whose header claims ``width`` x ``height`` pixels.

    Its one data chunk holds a few compressed rows; a loader that decoded before checking
    the size would allocate width*height bytes and wait for the rest.
    """
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = zlib.compress(b"\0" * (width + 1) * 4, 9)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def _zip(entries: Mapping[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            if name.endswith("/"):
                archive.writestr(zipfile.ZipInfo(name), b"")
            else:
                archive.writestr(name, data)
    return buffer.getvalue()


def _smear_png(nucleus_at=(200, 90)) -> bytes:
    return _png(synthetic_smear(nucleus_at=nucleus_at))


def _tiff_entry(tag: int, kind: int, count: int, value: int | bytes) -> bytes:
    packed = struct.pack("<HHI", tag, kind, count)
    return packed + (value if isinstance(value, bytes) else struct.pack("<I", value))


def _tiff(width: int, height: int, entries: list[tuple[int, int, int, int]], pixels: bytes,
          bits: tuple[int, ...]) -> bytes:
    """A little-endian TIFF with one strip, built tag by tag (for pixel layouts Pillow cannot write)."""
    header_size, count = 8, len(entries) + 6
    ifd_size = 2 + 12 * count + 4
    bits_offset = header_size + ifd_size
    bits_data = struct.pack(f"<{len(bits)}H", *bits)
    pixel_offset = bits_offset + len(bits_data)
    bits_entry = (258, 3, len(bits), bits_offset) if len(bits) > 1 else (258, 3, 1, bits[0])  # inline if one
    tags = sorted([(256, 4, 1, width), (257, 4, 1, height), bits_entry, (273, 4, 1, pixel_offset),
                   (278, 4, 1, height), (279, 4, 1, len(pixels)), *entries])
    ifd = struct.pack("<H", len(tags)) + b"".join(_tiff_entry(*tag) for tag in tags)
    ifd += struct.pack("<I", 0)  # no next page
    return b"II*\0" + struct.pack("<I", header_size) + ifd + bits_data + pixels


# -- factories: bad files ----------------------------------------------------------------

def truncated_jpeg() -> bytes:
    data = encode(Image.fromarray(SMEAR), "JPEG", quality=90)
    return data[: len(data) // 2]


def truncated_png() -> bytes:
    noisy = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    data = _png(noisy)
    return data[: int(len(data) * 0.6)]


def png_bad_crc() -> bytes:
    data = bytearray(_smear_png())
    data[29] ^= 0xFF  # the last byte of IHDR's CRC
    return bytes(data)


def random_bytes() -> bytes:
    return np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()


def null_bytes() -> bytes:
    return b"\0" * 2048


def pdf_document() -> bytes:
    """A real one-page PDF (of the smear picture), as a user might export from a scanner."""
    return encode(Image.fromarray(SMEAR), "PDF")


def text_notes() -> bytes:
    return "Patient 17, slide 3: neutrophils look hypersegmented.\nRecheck on Monday.\n".encode()


def html_page() -> bytes:
    return b"<!DOCTYPE html><html><body><img src='cell.jpg'></body></html>\n"


def heic_photo() -> bytes:
    """The start of an iPhone HEIC photo: an ISO-BMFF 'ftyp' box with the 'heic' brand."""
    ftyp = b"ftypheic" + b"\0\0\0\0" + b"mif1heic"
    return struct.pack(">I", len(ftyp) + 4) + ftyp + b"\0\0\0\x08free" + bytes(200)


def bmp_bad_header() -> bytes:
    data = bytearray(encode(Image.fromarray(SMEAR), "BMP"))
    data[28:30] = struct.pack("<H", 7)  # bits per pixel: 7 does not exist
    return bytes(data)


def tiff_unknown_compression() -> bytes:
    grey = SMEAR[:, :, 0].tobytes()
    return _tiff(320, 240, [(259, 3, 1, 34712), (262, 3, 1, 1), (277, 3, 1, 1)], grey, bits=(8,))


def tiff_float_rgba() -> bytes:
    """A 4-channel 32-bit float TIFF, the kind scientific imaging software writes."""
    rgba = np.concatenate([SMEAR, np.full((240, 320, 1), 255, np.uint8)], axis=2)
    pixels = (rgba.astype("<f4") / 255.0).tobytes()
    # no compression, RGB, 4 samples, chunky, extra sample = unassociated alpha, IEEE float
    entries = [(259, 3, 1, 1), (262, 3, 1, 2), (277, 3, 1, 4), (284, 3, 1, 1), (338, 3, 1, 2),
               (339, 3, 1, 3)]
    return _tiff(320, 240, entries, pixels, bits=(32, 32, 32, 32))


def decompression_bomb() -> bytes:
    return _png_claiming(30_000, 30_000)


def bomb_under_pillow_limit() -> bytes:
    """8000x8000 = 64 MP: over our 60 MP cap but under the size where Pillow itself refuses."""
    return _png_claiming(8_000, 8_000)


def one_pixel() -> bytes:
    return _png(np.full((1, 1, 3), 128, np.uint8))


def ten_thousand_by_ten() -> bytes:
    return _png(np.full((10, 10_000, 3), 200, np.uint8))


def over_upload_cap() -> bytes:
    """A valid PNG padded to one byte over the upload cap: only the byte cap can refuse it."""
    data = _smear_png()
    return data + b"\0" * (MAX_UPLOAD_BYTES + 1 - len(data))


# -- factories: odd but usable files ------------------------------------------------------

def sixteen_bit_png() -> bytes:
    return _png(Image.fromarray(SMEAR[:, :, 0].astype(np.uint16) * 257))


def cmyk_jpeg() -> bytes:
    return encode(Image.fromarray(SMEAR).convert("CMYK"), "JPEG", quality=95)


def palette_transparent_png() -> bytes:
    """A palette PNG whose left quarter uses entry 0: magenta, and fully transparent."""
    quantized = Image.fromarray(SMEAR).quantize(colors=8)
    pixels = np.asarray(quantized) + 1
    pixels[:, :80] = 0
    image = Image.fromarray(pixels.astype(np.uint8), "P")
    image.putpalette([255, 0, 255] + quantized.getpalette()[: 8 * 3])
    return _png(image, transparency=0)


def la_png() -> bytes:
    grey = SMEAR.mean(axis=2).astype(np.uint8)
    alpha = np.full_like(grey, 255)
    alpha[:, :80] = 0
    return _png(Image.fromarray(np.stack([grey, alpha], axis=2), "LA"))


def animated_gif() -> bytes:
    first = Image.fromarray(SMEAR)
    return encode(first, "GIF", save_all=True, append_images=[Image.new("RGB", first.size, (0, 255, 0))])


def multipage_tiff() -> bytes:
    first = Image.fromarray(SMEAR)
    return encode(first, "TIFF", save_all=True, append_images=[Image.new("RGB", first.size, (0, 0, 0))])


def exif_rotated_jpeg() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    return encode(Image.fromarray(SMEAR), "JPEG", quality=95, exif=exif)


def broken_exif_jpeg() -> bytes:
    """A JPEG whose EXIF block is garbage: the picture itself is fine."""
    data = encode(Image.fromarray(SMEAR), "JPEG", quality=95)
    app1 = b"Exif\0\0" + b"MM\0*" + b"\xff" * 40
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + data[2:]


def one_bit_png() -> bytes:
    return _png(Image.fromarray(SMEAR).convert("1"))


def webp_image() -> bytes:
    return encode(Image.fromarray(SMEAR), "WEBP", lossless=True)


def png_named_jpg() -> bytes:
    return _smear_png()


def all_black() -> bytes:
    return _png(np.zeros((240, 320, 3), np.uint8))


# -- factories: zips ---------------------------------------------------------------------

def zip_nested() -> bytes:
    return _zip({"slides/": b"", "slides/ward 3/": b"",
                 "slides/ward 3/field 1/cell-a.png": _smear_png(),
                 "slides/ward 3/field 2/deeper/still/cell-b.png": _smear_png(nucleus_at=(120, 150)),
                 "__MACOSX/slides/._cell-a.png": b"resource fork"})


def zip_bomb() -> bytes:
    """64 MB of zeros packed into ~64 KB, named like an image."""
    return _zip({"cells/big.png": b"\0" * (64 * 2**20)})


def zip_non_images() -> bytes:
    return _zip({"run/cell.png": _smear_png(), "run/notes.txt": text_notes(),
                 "run/report.pdf": pdf_document(),
                 "run/inner.zip": _zip({"a.png": _smear_png()}), "run/empty.png": b"",
                 "run/fake.png": text_notes()})


def zip_slip() -> bytes:
    """A member named with parent-folder steps (a "zip slip"): must be read, never extracted."""
    return _zip({"../../evil.png": _smear_png(), "/abs/olute.png": _smear_png(nucleus_at=(100, 120))})


def zip_only_folders() -> bytes:
    return _zip({"empty/": b"", "empty/inside/": b""})


def zip_truncated() -> bytes:
    return _zip({"cell.png": _smear_png()})[:200]


# -- checks for usable kinds --------------------------------------------------------------

def _near(array: np.ndarray, expected: np.ndarray, tolerance: float) -> None:
    difference = float(np.abs(array.astype(float) - expected.astype(float)).mean())
    assert difference < tolerance, f"mean difference {difference:.1f} >= {tolerance}"


def is_smear(rgb: np.ndarray, tolerance: float = 4.0) -> None:
    assert rgb.shape == SMEAR.shape and rgb.dtype == np.uint8
    _near(rgb, SMEAR, tolerance)


def is_lossless_smear(rgb: np.ndarray) -> None:
    is_smear(rgb, tolerance=0.5)


def is_sixteen_bit_smear(rgb: np.ndarray) -> None:
    assert rgb.shape == SMEAR.shape
    red = SMEAR[:, :, 0]
    # 16 bits scaled down to 8, not clipped to white
    assert all(np.abs(rgb[:, :, c].astype(int) - red).max() <= 1 for c in range(3))


def left_quarter_white(rgb: np.ndarray) -> None:
    assert rgb.shape == SMEAR.shape
    assert rgb[:, :80].min() == 255  # transparent becomes white, not black
    assert rgb[:, 80:].mean() < 250


def first_frame(rgb: np.ndarray) -> None:
    assert rgb.shape == SMEAR.shape
    assert rgb[:, :, 1].mean() < 230 and rgb.mean() > 100  # not the green or black second frame
    _near(rgb, SMEAR, 12.0)  # GIF: a 256-colour palette


def rotated_clockwise(rgb: np.ndarray) -> None:
    assert rgb.shape == (320, 240, 3)  # portrait, as the EXIF tag says to show it
    _near(rgb, np.rot90(SMEAR, k=-1), 4.0)


def one_bit(rgb: np.ndarray) -> None:
    assert rgb.shape == SMEAR.shape
    assert set(np.unique(rgb)) <= {0, 255}


def black(rgb: np.ndarray) -> None:
    assert rgb.shape == (240, 320, 3) and rgb.max() == 0


# -- the registry -----------------------------------------------------------------------

NOT_AN_IMAGE = "not an image that can be read (expected JPEG, PNG, BMP or TIFF)"
TOO_LARGE = "too large"
SMALL = f"each side must be at least {MIN_SIDE} pixels"

KINDS: dict[str, BadInput] = {
    # Files no door may use: each gets a specific message.
    "empty": BadInput(bytes, "empty.png", "The file is empty (0 bytes)"),
    "truncated-jpeg": BadInput(truncated_jpeg, "cut.jpg", "truncated or corrupt"),
    "truncated-png": BadInput(truncated_png, "cut.png", "truncated or corrupt"),
    "png-bad-crc": BadInput(png_bad_crc, "crc.png", "starts like a PNG file, but it is corrupt"),
    "random-bytes": BadInput(random_bytes, "noise.jpg", NOT_AN_IMAGE),
    "null-bytes": BadInput(null_bytes, "zeros.tif", NOT_AN_IMAGE),
    "pdf-renamed-png": BadInput(pdf_document, "scan.png", "PDF document"),
    "text-renamed-png": BadInput(text_notes, "notes.png", "holds text"),
    "html-renamed-jpg": BadInput(html_page, "page.jpg", "holds text"),
    "heic-photo": BadInput(heic_photo, "IMG_0001.png", "HEIC"),
    "bmp-bad-header": BadInput(bmp_bad_header, "bad.bmp", "Unsupported BMP pixel depth (7)"),
    "tiff-unknown-compression": BadInput(tiff_unknown_compression, "jp2k.tif",
                                         "compression (code 34712) is not supported"),
    "tiff-float-rgba": BadInput(tiff_float_rgba, "float.tif",
                                 "pixel format (4 samples of 32-bit floating-point) is not supported"),
    "decompression-bomb": BadInput(decompression_bomb, "bomb.png", f"{TOO_LARGE} (900 megapixels)",
                                  refused_unread=True),
    "bomb-under-pillow-limit": BadInput(bomb_under_pillow_limit, "big.png", f"{TOO_LARGE} (8000x8000)",
                                       refused_unread=True),
    "one-pixel": BadInput(one_pixel, "dot.png", f"too small (1x1): {SMALL}", refused_unread=True),
    "ten-thousand-by-ten": BadInput(ten_thousand_by_ten, "strip.png", f"too small (10000x10): {SMALL}",
                                   refused_unread=True),
    # The loader caps pixels, not bytes (the CLI reads local files of any size); uploads have a byte cap.
    "over-upload-cap": BadInput(over_upload_cap, "huge.png", UPLOAD_LIMIT, check=is_lossless_smear,
                                per_door={"loader": None, "cli": None}, api_status=413),
    # Odd but usable: every door must load them correctly.
    "sixteen-bit-png": BadInput(sixteen_bit_png, "deep.png", None, check=is_sixteen_bit_smear),
    "cmyk-jpeg": BadInput(cmyk_jpeg, "print.jpg", None, check=lambda rgb: is_smear(rgb, 8.0)),
    "palette-transparent-png": BadInput(palette_transparent_png, "palette.png", None,
                                        check=left_quarter_white),
    "la-png": BadInput(la_png, "grey-alpha.png", None, check=left_quarter_white),
    "animated-gif": BadInput(animated_gif, "moving.gif", None, check=first_frame),
    "multipage-tiff": BadInput(multipage_tiff, "pages.tif", None, check=is_smear),
    "exif-rotated-jpeg": BadInput(exif_rotated_jpeg, "phone.jpg", None, check=rotated_clockwise),
    "broken-exif-jpeg": BadInput(broken_exif_jpeg, "exif.jpg", None, check=is_smear),
    "one-bit-png": BadInput(one_bit_png, "bilevel.png", None, check=one_bit),
    "webp": BadInput(webp_image, "cell.webp", None, check=is_lossless_smear),
    "png-named-jpg": BadInput(png_named_jpg, "really-a-png.jpg", None, check=is_lossless_smear),
    "non-ascii-name": BadInput(_smear_png, "Zelle-血球-é.png", None, check=is_lossless_smear),
    "path-like-name": BadInput(_smear_png, "../../x.png", None, check=is_lossless_smear,
                               shown_as="x.png"),
    "path-like-name-backslash": BadInput(_smear_png, "..\\..\\y.png", None, check=is_lossless_smear,
                                         shown_as="y.png"),
    "control-characters-name": BadInput(_smear_png, "cell\r\n\x1b[31m.png", None,
                                        check=is_lossless_smear, shown_as="cell[31m.png"),
    "long-name": BadInput(_smear_png, "a" * 200 + ".png", None, check=is_lossless_smear,
                          shown_as="a" * 59 + "…"),
    "all-black-no-cell": BadInput(all_black, "black.png", None, check=black, no_cell=True),
    # Zips: the loader door is expand_uploads, the app door the Batch page; the API and CLI
    # take one image and say that a zip is not one.
    "zip-nested-folders": BadInput(zip_nested, "slides.zip", ZIP_MESSAGE,
                                   zip_images=("slides.zip: cell-a.png", "slides.zip: cell-b.png")),
    "zip-bomb": BadInput(zip_bomb, "bomb.zip", ZIP_MESSAGE,
                         zip_skipped={"bomb.zip": "refused as a possible zip bomb"}),
    "zip-non-images": BadInput(zip_non_images, "run.zip", ZIP_MESSAGE,
                               zip_images=("run.zip: cell.png", "run.zip: fake.png"),
                               zip_skipped={"run.zip: notes.txt": "not an image file",
                                            "run.zip: report.pdf": "not an image file",
                                            "run.zip: inner.zip": "a zip inside a zip is not opened",
                                            "run.zip: empty.png": "the file is empty",
                                            "run.zip: fake.png": "holds text"}),
    "zip-slip": BadInput(zip_slip, "slip.zip", ZIP_MESSAGE, zip_images=("slip.zip: olute.png",),
                         zip_skipped={"slip.zip: evil.png": "climbs out of the archive"}),
    "zip-only-folders": BadInput(zip_only_folders, "folders.zip", ZIP_MESSAGE,
                                 zip_skipped={"folders.zip": "holds no files"}),
    "zip-truncated": BadInput(zip_truncated, "cut.zip", ZIP_MESSAGE,
                              zip_skipped={"cut.zip": "not a readable zip archive"}),
}


@functools.cache
def data_of(kind: str) -> bytes:
    """The kind's bytes, made once per test run (the doors only read them)."""
    return KINDS[kind].make()
