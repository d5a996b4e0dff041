"""Promises about loading images: every mode becomes clean RGB, every bad file a clear message."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from hematovision.model.cells import MODEL_INPUT_SIZE, frame_cell, locate_white_cell
from hematovision.model.imaging import MAX_PIXELS, ImageError, clean_display_name, load_image
from tests.synthetic import SMEAR, encode


def assert_rgb(array: np.ndarray, shape=(240, 320)) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (*shape, 3)


# -- every mode a user might upload becomes RGB --------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "BMP", "TIFF", "GIF"])
def test_common_formats_load_as_rgb(fmt):
    assert_rgb(load_image(encode(Image.fromarray(SMEAR), fmt)))


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "CMYK", "1", "I", "F"])
def test_every_pil_mode_becomes_rgb(mode):
    image = Image.fromarray(SMEAR).convert(mode)
    assert_rgb(load_image(image))


def test_cmyk_jpeg_bytes_become_rgb():
    data = encode(Image.fromarray(SMEAR).convert("CMYK"), "JPEG")
    assert_rgb(load_image(data))


def test_sixteen_bit_png_is_scaled_to_eight_bit():
    sixteen = (SMEAR[:, :, 0].astype(np.uint16) * 257)
    data = encode(Image.fromarray(sixteen), "PNG")
    loaded = load_image(data)
    assert_rgb(loaded)
    assert abs(int(loaded[..., 0].max()) - int(SMEAR[..., 0].max())) <= 1


def test_transparency_becomes_white_not_black():
    rgba = np.zeros((240, 320, 4), np.uint8)  # fully transparent
    loaded = load_image(Image.fromarray(rgba, "RGBA"))
    assert loaded.min() == 255


def test_palette_with_transparency_loads():
    palette = Image.fromarray(SMEAR).convert("P")
    palette.info["transparency"] = 0
    assert_rgb(load_image(encode(palette, "PNG")))


def test_animated_gif_uses_first_frame():
    first = Image.fromarray(SMEAR)
    second = Image.new("RGB", first.size, (0, 255, 0))
    data = encode(first, "GIF", save_all=True, append_images=[second])
    loaded = load_image(data)
    assert_rgb(loaded)
    assert loaded[..., 1].mean() < 250  # not the all-green second frame


def test_multipage_tiff_uses_first_page():
    pages = [Image.fromarray(SMEAR), Image.new("RGB", (320, 240), (0, 0, 0))]
    data = encode(pages[0], "TIFF", save_all=True, append_images=pages[1:])
    assert load_image(data).mean() > 100


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    data = encode(Image.fromarray(SMEAR), "JPEG", exif=exif)
    assert load_image(data).shape == (320, 240, 3)


@pytest.mark.parametrize(
    "array",
    [
        SMEAR,
        SMEAR[..., 0],
        SMEAR.astype(np.float32) / 255.0,
        np.dstack([SMEAR, np.full(SMEAR.shape[:2], 255, np.uint8)]),
    ],
    ids=["uint8 RGB", "grey", "float 0-1", "RGBA"],
)
def test_arrays_are_accepted(array):
    loaded = load_image(array)
    assert_rgb(loaded)
    assert np.abs(loaded.astype(int).mean() - SMEAR[..., 0].astype(int).mean()) < 60


def test_path_and_bytes_give_the_same_pixels(tmp_path):
    data = encode(Image.fromarray(SMEAR), "PNG")
    path = tmp_path / "cell.png"
    path.write_bytes(data)
    assert np.array_equal(load_image(path), load_image(data))
    assert np.array_equal(load_image(str(path)), SMEAR)


# -- bad input gets a specific message ----------------------------------------

def test_empty_file_is_refused():
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")


def test_random_bytes_are_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        load_image(os.urandom(5000))


def test_text_renamed_png_is_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"Patient notes, not a picture.\n" * 20)


def test_pdf_is_not_an_image():
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\n%%EOF")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_are_refused(fmt):
    data = encode(Image.fromarray(SMEAR), fmt)
    with pytest.raises(ImageError, match="truncated or corrupt"):
        load_image(data[: len(data) // 2])


def test_decompression_bomb_is_refused_before_decoding():
    # A tiny PNG that claims to be 20000x20000: refused from its header alone.
    side = 20_000
    assert side * side > MAX_PIXELS
    header = Image.new("1", (side, side))
    data = encode(header, "PNG")
    assert len(data) < 100_000
    with pytest.raises(ImageError, match="too large"):
        load_image(data)


@pytest.mark.parametrize("size", [(1, 1), (10_000, 10), (31, 200)])
def test_tiny_images_are_refused(size):
    with pytest.raises(ImageError, match="too small"):
        load_image(encode(Image.new("RGB", size, (200, 100, 200)), "PNG"))


def test_missing_path_is_a_clear_error(tmp_path):
    with pytest.raises(ImageError, match="No such file"):
        load_image(tmp_path / "nothing-here.png")


def test_wrong_array_shape_is_refused():
    with pytest.raises(ImageError, match="shape"):
        load_image(np.zeros((64, 64, 2), np.uint8))


def test_non_finite_array_is_refused():
    array = np.full((64, 64, 3), np.nan, np.float32)
    with pytest.raises(ImageError, match="NaN"):
        load_image(array)


def test_unsupported_type_is_refused():
    with pytest.raises(ImageError, match="Cannot read"):
        load_image(12345)  # type: ignore[arg-type]


# -- framing: the classifier looks at the white cell --------------------------

def test_crop_is_centred_on_the_nucleus():
    box = locate_white_cell(SMEAR)
    assert box.found
    centre_x, centre_y = box.x + box.side / 2, box.y + box.side / 2
    assert abs(centre_x - 200) < 10 and abs(centre_y - 90) < 10
    assert 60 < box.side <= 240


def test_crop_has_model_size():
    crop, box = frame_cell(SMEAR)
    assert crop.shape == (MODEL_INPUT_SIZE, MODEL_INPUT_SIZE, 3)
    assert crop.dtype == np.uint8


def test_image_without_a_nucleus_falls_back_to_the_centre():
    grey = np.full((240, 320, 3), 128, np.uint8)
    box = locate_white_cell(grey)
    assert not box.found
    assert (box.x, box.y, box.side) == (40, 0, 240)


def test_clean_display_name_never_keeps_a_path():
    assert clean_display_name("../../etc/passwd") == "passwd"
    assert clean_display_name("C:\\Users\\me\\cell.png") == "cell.png"
    assert clean_display_name("a\x00b\nc.jpg") == "abc.jpg"
    assert clean_display_name("") == "uploaded image"
    assert len(clean_display_name("x" * 500 + ".png")) <= 60

