"""Images in reports carry pixels only: metadata planted in an upload never reaches a report.

Labs' cameras and slide scanners write patient or accession numbers into EXIF, PNG text and
TIFF tags. Each upload here carries such a number in every place its format allows; the
reports built from them (HTML and PDF, single image and batch) are taken apart, and every
embedded image is checked for the number and for any metadata at all.
"""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, PngImagePlugin, TiffImagePlugin
from pypdf import PdfReader

from hematovision.model.imaging import data_uri, jpeg_bytes, load_image, strip_metadata
from hematovision.workflows.batch import classify_batch, expand_uploads
from hematovision.workflows.report import (
    batch_report_html,
    batch_report_pdf,
    build_batch_report,
    build_image_report,
    image_report_html,
    image_report_pdf,
)
from tests.conftest import REPO_ROOT

PATIENT_ID = "PATIENT-12345"
SAMPLE = REPO_ROOT / "samples" / "neutrophil-1.jpeg"
ARTIST, IMAGE_DESCRIPTION = 0x013B, 0x010E  # EXIF and TIFF tags


def planted_exif() -> Image.Exif:
    exif = Image.Exif()
    exif[ARTIST] = PATIENT_ID
    exif[IMAGE_DESCRIPTION] = f"{PATIENT_ID}, ward 3, smear 2"
    return exif


def jpeg_upload(sample: Path = SAMPLE) -> bytes:
    buffer = io.BytesIO()
    with Image.open(sample) as image:
        image.save(buffer, "JPEG", quality=95, exif=planted_exif(), comment=PATIENT_ID.encode())
    return buffer.getvalue()


def png_upload(sample: Path = SAMPLE) -> bytes:
    text = PngImagePlugin.PngInfo()
    text.add_text("Author", PATIENT_ID)
    text.add_itxt("Description", f"{PATIENT_ID} blood smear")
    buffer = io.BytesIO()
    with Image.open(sample) as image:
        image.save(buffer, "PNG", pnginfo=text, exif=planted_exif())
    return buffer.getvalue()


def tiff_upload(sample: Path = SAMPLE) -> bytes:
    tags = TiffImagePlugin.ImageFileDirectory_v2()
    tags[ARTIST] = PATIENT_ID
    tags[IMAGE_DESCRIPTION] = f"{PATIENT_ID} blood smear"
    buffer = io.BytesIO()
    with Image.open(sample) as image:
        image.save(buffer, "TIFF", tiffinfo=tags)
    return buffer.getvalue()


UPLOADS = {"smear.jpeg": jpeg_upload, "smear.png": png_upload, "smear.tiff": tiff_upload}


@pytest.mark.parametrize("make", UPLOADS.values(), ids=list(UPLOADS))
def test_each_upload_really_carries_the_planted_number(make):
    data = make()
    assert data.count(PATIENT_ID.encode()) >= 2
    with Image.open(io.BytesIO(data)) as image:
        tags = image.getexif() if image.format != "TIFF" else image.tag_v2
        assert tags[ARTIST] == PATIENT_ID


def assert_pixels_only(data: bytes) -> None:
    """No planted number, and nothing but what draws the pixels: Pillow finds no metadata."""
    assert PATIENT_ID.encode() not in data
    with Image.open(io.BytesIO(data)) as image:
        assert image.format in ("JPEG", "PNG")
        assert not image.getexif()
        # No JFIF/EXIF/ICC/comment, no PNG text or dpi: at most how a JPEG was encoded.
        assert set(image.info) <= {"progressive", "progression"}, image.info
        assert image.width >= 64


def embedded_images(page: str) -> list[bytes]:
    sources = re.findall(r"<img src='([^']+)'", page)
    assert all(source.startswith("data:image/") for source in sources)
    return [base64.b64decode(source.split(",", 1)[1]) for source in sources]


def pdf_images(document: bytes) -> list[bytes]:
    """Each image of the PDF as its stored stream (a JPEG's own bytes) and as pypdf rebuilds it."""
    found = []
    for page in PdfReader(io.BytesIO(document)).pages:
        for image in page.images:
            found += [image.data, image.indirect_reference.get_object().get_data()]
    return found


@pytest.fixture(scope="module")
def image_report(classifier):
    rgb = load_image(jpeg_upload())
    prediction = classifier.predict_cells(rgb)[0]
    return build_image_report(classifier, "image-001", rgb, prediction)


def test_the_single_image_report_embeds_no_metadata_of_the_upload(image_report):
    page = image_report_html(image_report)
    images = embedded_images(page)
    assert len(images) == 2 + 4  # the image, the chart, four maps
    for data in images:
        assert_pixels_only(data)
    assert PATIENT_ID not in page

    document = image_report_pdf(image_report)
    stored = pdf_images(document)
    assert len(stored) >= 2 * 6
    for data in stored:
        assert PATIENT_ID.encode() not in data
    assert PATIENT_ID.encode() not in document


def test_the_batch_report_embeds_no_metadata_of_jpeg_png_or_tiff_uploads(classifier):
    # Three different cells: a report stores identical pictures once.
    samples = [REPO_ROOT / "samples" / f"{name}-1.jpeg" for name in ("eosinophil", "lymphocyte", "monocyte")]
    images, skipped = expand_uploads((name, make(sample))
                                     for (name, make), sample in zip(UPLOADS.items(), samples))
    cells, not_read = classify_batch(classifier, images)
    assert not skipped and not not_read and len(cells) == 3
    report = build_batch_report(classifier, cells, [])

    page = batch_report_html(report)
    embedded = embedded_images(page)
    assert len(embedded) >= 2 * len(cells)  # a thumbnail and a map per cell
    for data in embedded:
        assert_pixels_only(data)
    assert PATIENT_ID not in page

    document = batch_report_pdf(report)
    assert len(pdf_images(document)) >= 2 * 2 * len(cells)
    for data in pdf_images(document):
        assert PATIENT_ID.encode() not in data
    assert PATIENT_ID.encode() not in document


# -- the stripping itself, on bytes from any encoder ------------------------------------

def test_strip_metadata_keeps_every_pixel_and_drops_every_tag():
    pixels = np.asarray(Image.open(SAMPLE).convert("RGB"))
    for original in (jpeg_upload(), png_upload()):
        stripped = strip_metadata(original)
        assert_pixels_only(stripped)
        with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(stripped)) as after:
            assert np.array_equal(np.asarray(before.convert("RGB")), np.asarray(after.convert("RGB")))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(strip_metadata(png_upload())))), pixels)


def test_a_progressive_jpeg_with_restarts_and_a_trailer_is_stripped_whole():
    buffer = io.BytesIO()
    with Image.open(SAMPLE) as image:
        image.save(buffer, "JPEG", progressive=True, restart_marker_blocks=4, exif=planted_exif(),
                   comment=PATIENT_ID.encode())
    # Some cameras append data after the image's end marker.
    original = buffer.getvalue() + f"maker-note {PATIENT_ID}".encode()
    stripped = strip_metadata(original)
    assert_pixels_only(stripped)
    with Image.open(io.BytesIO(original)) as before, Image.open(io.BytesIO(stripped)) as after:
        assert np.array_equal(np.asarray(before), np.asarray(after))


def test_a_cmyk_jpeg_keeps_the_adobe_segment_its_colours_need():
    buffer = io.BytesIO()
    with Image.open(SAMPLE) as image:
        image.convert("CMYK").save(buffer, "JPEG", exif=planted_exif())
    stripped = strip_metadata(buffer.getvalue())
    assert PATIENT_ID.encode() not in stripped and b"Adobe" in stripped
    with Image.open(buffer) as before, Image.open(io.BytesIO(stripped)) as after:
        assert np.array_equal(np.asarray(before.convert("RGB")), np.asarray(after.convert("RGB")))


def test_what_the_app_and_reports_embed_is_stripped_whatever_made_it():
    assert_pixels_only(jpeg_bytes(np.asarray(Image.open(SAMPLE).convert("RGB"))))
    uri = data_uri(png_upload())
    assert uri.startswith("data:image/png;base64,")
    assert_pixels_only(base64.b64decode(uri.split(",", 1)[1]))
    with pytest.raises(ValueError, match="PNG or JPEG"):
        strip_metadata(tiff_upload())
