"""Batch differential: unpacking uploads, review, counts, CSV and the PDF/HTML reports."""

from __future__ import annotations

import csv
import html
import io
import json
import zipfile

import numpy as np
import pytest
from PIL import Image

from hematovision.model.classifier import MODEL_CARD_PATH
from hematovision.model.imaging import MAX_UPLOAD_BYTES
from hematovision.workflows.batch import (
    NOT_CLASSED,
    cells_csv,
    classify_batch,
    expand_uploads,
    set_review,
)
from hematovision.workflows.differential import differential
from hematovision.workflows.samples import list_samples


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def shifted(data: bytes, amount: int) -> bytes:
    """The same cell photo with its colours nudged: a different file, the same class."""
    rgb = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(rgb + amount, 0, 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def batch(classifier):
    samples = list_samples()
    loose = [(s.path.name, s.read_bytes()) for s in samples[:8]]
    archive = zip_bytes({f"ward-3/slide 1/{s.path.stem}-b.png": shifted(s.read_bytes(), 3) for s in samples[8:]}
                        | {"ward-3/notes.txt": b"not an image", "ward-3/inner.zip": zip_bytes({"a.png": b"x"}),
                           "__MACOSX/._x.png": b"junk"})
    images, skipped = expand_uploads(loose + [("../../cells.zip", archive), ("broken.jpg", b"\xff\xd8\xff garbage")])
    cells, unreadable = classify_batch(classifier, images)
    return images, skipped + unreadable, cells


def test_uploads_and_zips_are_unpacked_in_memory_with_a_reason_for_every_file_left_out(batch):
    images, skipped, cells = batch
    assert len(images) == 8 + 4 + 1  # loose files, zip members in nested folders, the broken file
    assert any(image.name == "cells.zip: neutrophil-3-b.png" for image in images)  # path parts dropped
    reasons = {item.name: item.reason for item in skipped}
    assert reasons["cells.zip: notes.txt"].startswith("not an image file")
    assert reasons["cells.zip: inner.zip"] == "a zip inside a zip is not opened"
    assert "not an image" in reasons["broken.jpg"]
    assert not any("MACOSX" in name for name in reasons)
    assert len(cells) == 12 and all(cell.reviewed is None for cell in cells)


def test_bad_archives_are_refused_with_specific_messages():
    bomb = zip_bytes({"big.png": b"\0" * (60 * 2**20)})
    _, skipped = expand_uploads([("bomb.zip", bomb)])
    assert "zip bomb" in skipped[0].reason
    _, skipped = expand_uploads([("cut.zip", zip_bytes({"a.png": b"x" * 1000})[:30])])
    assert "not a readable zip" in skipped[0].reason
    _, skipped = expand_uploads([("empty.png", b""), ("huge.png", b"\x89PNG" + b"0" * MAX_UPLOAD_BYTES)])
    assert [s.reason for s in skipped] == ["the file is empty", "larger than the 20 MB limit per image"]


def test_review_changes_the_differential_and_is_counted(batch):
    _, _, cells = batch
    for cell in cells:
        cell.reviewed = None
    before = differential(cells)
    assert before.counted == sum(cell.final_class is not None for cell in cells)
    assert sum(row.count for row in before.rows) == before.counted
    assert sum(row.percent for row in before.rows) == pytest.approx(100, abs=0.3)
    target = next(cell for cell in cells if cell.predicted == "NEUTROPHIL")
    set_review(cells, target.key, "MONOCYTE")
    other = next(cell for cell in cells if cell.predicted == "LYMPHOCYTE")
    set_review(cells, other.key, NOT_CLASSED)
    confirmed = next(cell for cell in cells if cell.predicted == "EOSINOPHIL")
    set_review(cells, confirmed.key, "EOSINOPHIL")
    after = differential(cells)
    count = {row.cell_type: row.count for row in after.rows}
    was = {row.cell_type: row.count for row in before.rows}
    assert count["NEUTROPHIL"] == was["NEUTROPHIL"] - 1 and count["MONOCYTE"] == was["MONOCYTE"] + 1
    assert count["LYMPHOCYTE"] == was["LYMPHOCYTE"] - 1 and after.counted == before.counted - 1
    assert (after.reviewed, after.changed) == (3, 2)  # the confirmation is a review, not a change
    with pytest.raises(ValueError, match="Unknown class"):
        set_review(cells, target.key, "BASOPHIL")
    for cell in cells:
        cell.reviewed = None


def test_reference_ranges_flag_a_differential_outside_them(batch):
    _, _, cells = batch
    for cell in cells:
        cell.reviewed = "MONOCYTE"  # 100% monocytes: far above 2-8%, everything else below
    flags = {row.cell_type: row.flag for row in differential(cells).rows}
    assert flags == {"EOSINOPHIL": "low", "LYMPHOCYTE": "low", "MONOCYTE": "high", "NEUTROPHIL": "low"}
    for cell in cells:
        cell.reviewed = None


def test_csv_lists_every_cell_with_probabilities_review_and_flags(batch):
    _, _, cells = batch
    set_review(cells, cells[0].key, NOT_CLASSED)
    rows = list(csv.DictReader(io.StringIO(cells_csv(cells))))
    assert len(rows) == len(cells)
    assert {"file", "cell", "predicted_class", "p_neutrophil", "reviewed_class", "check_flag", "final_class"} <= set(rows[0])
    assert rows[0]["reviewed_class"] == NOT_CLASSED and rows[0]["changed_by_reviewer"] == "1"
    for row in rows:
        total = sum(float(row[f"p_{name}"]) for name in ("eosinophil", "lymphocyte", "monocyte", "neutrophil"))
        assert total == pytest.approx(1.0, abs=1e-4)
    cells[0].reviewed = None


def test_batch_report_pdf_and_html_carry_the_differential_model_and_disclaimer(batch, classifier):
    from pypdf import PdfReader

    from hematovision.workflows.report import (
        DISCLAIMER,
        batch_report_html,
        batch_report_pdf,
        build_batch_report,
    )

    _, skipped, cells = batch
    set_review(cells, cells[1].key, "NEUTROPHIL")
    report = build_batch_report(classifier, cells, skipped)
    counts = {row.cell_type: row.count for row in report.differential.rows}
    pdf = batch_report_pdf(report)
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    flat = " ".join(text.split())
    assert "Decision support, not a diagnosis" in flat
    assert f"Neutrophil {counts['NEUTROPHIL']} " in flat and "40–70%" in flat
    measured = json.loads(MODEL_CARD_PATH.read_text())["evaluation"]["splits"]["test_image"]["accuracy"]
    assert f"Kaggle TEST images: {100 * measured:.1f}%" in flat  # the measured accuracy, from the model card
    assert "Reviewed by a person: 1 of 12 cells" in flat
    assert "cells.zip: notes.txt" in flat  # files not used are listed
    page = batch_report_html(report)
    # each cell and its map, the chart, and the changed cell again beside the reviewer's initials
    assert page.count("<img") == 2 * len(cells) + 1 + 2 * len(report.changed_cells)
    assert "http" not in page.split("<body>")[1]  # self-contained
    assert html.escape(DISCLAIMER) in page
    cells[1].reviewed = None


def test_single_image_report_has_the_prediction_chart_and_four_overlays(classifier):
    from pypdf import PdfReader

    from hematovision.model.imaging import load_image
    from hematovision.workflows.report import (
        build_image_report,
        image_report_html,
        image_report_pdf,
    )

    sample = list_samples()[4]
    prediction = classifier.predict(sample.path)
    report = build_image_report(classifier, "<b>cell</b>.png", load_image(sample.path), prediction)
    assert [e.method for e, _ in report.explanations] == ["gradcam", "gradcam++", "lime", "shap"]
    text = " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(image_report_pdf(report))).pages).split())
    assert f"Predicted: {prediction.label.capitalize()}" in text and "SHAP for" in text
    page = image_report_html(report)
    assert page.count("<img") == 2 + 4 and "&lt;b&gt;cell&lt;/b&gt;.png" in page  # the user's name is escaped
