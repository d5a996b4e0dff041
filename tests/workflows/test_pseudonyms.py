"""Pseudonymised exports (issue 17): reports and CSV name images image-001, image-002, …;
the original file names, which labs often make from patient numbers, appear only in the
separate mapping file."""

from __future__ import annotations

import csv
import io

import pytest
from pypdf import PdfReader

from hematovision.workflows.batch import (
    NOT_CLASSED,
    Skipped,
    cells_csv,
    classify_batch,
    expand_uploads,
)
from hematovision.workflows.pseudonyms import Pseudonyms, batch_digests
from hematovision.workflows.report import batch_report_html, batch_report_pdf, build_batch_report
from tests.conftest import REPO_ROOT

NAMES = ["PATIENT-12345 left.jpeg", "MRN 0099812.jpeg", "PATIENT-12345 right.jpeg"]
SAMPLES = [REPO_ROOT / "samples" / f"{name}-1.jpeg" for name in ("eosinophil", "lymphocyte", "monocyte")]
IDENTIFIERS = ("PATIENT-12345", "0099812", "MRN", "notes-Smith")


@pytest.fixture(scope="module")
def batch(classifier):
    uploads = [(name, path.read_bytes()) for name, path in zip(NAMES, SAMPLES)] + [("notes-Smith.txt", b"hello")]
    images, skipped = expand_uploads(uploads)
    cells, not_read = classify_batch(classifier, images)
    assert len(cells) == 3 and [s.name for s in skipped + not_read] == ["notes-Smith.txt"]
    return cells, skipped + not_read


def test_names_become_numbered_pseudonyms_in_the_order_first_met():
    pseudonyms = Pseudonyms.for_names(["b.png", "a.png", "b.png", "c.png"])
    assert pseudonyms.by_name == {"b.png": "image-001", "a.png": "image-002", "c.png": "image-003"}
    assert Pseudonyms.for_names(f"{n}.png" for n in range(1200))["1199.png"] == "image-1200"


def test_the_batch_report_holds_no_original_file_name(classifier, batch):
    cells, skipped = batch
    cells[1].reviewed = NOT_CLASSED  # a change, so the report's change list names a file too
    pseudonyms = Pseudonyms.for_batch(cells, skipped)
    report = build_batch_report(classifier, pseudonyms.cells(cells), pseudonyms.skipped(skipped), initials="AL")
    page = batch_report_html(report)
    document = batch_report_pdf(report)
    text = "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(document)).pages)
    for identifier in IDENTIFIERS:
        assert identifier not in page and identifier not in text and identifier.encode() not in document
    for pseudonym in ("image-001", "image-002", "image-003", "image-004"):
        assert pseudonym in page and pseudonym in text
    assert cells[1].file == NAMES[1] and cells[1].reviewed == NOT_CLASSED  # the session keeps its names


def test_the_csv_holds_pseudonyms_and_the_mapping_leads_back(batch):
    cells, skipped = batch
    pseudonyms = Pseudonyms.for_batch(cells, skipped)
    exported = cells_csv(pseudonyms.cells(cells))
    assert not any(identifier in exported for identifier in IDENTIFIERS)
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert [row["file"] for row in rows] == ["image-001", "image-002", "image-003"]
    key = {row["pseudonym"]: row for row in csv.DictReader(io.StringIO(pseudonyms.mapping_csv(batch_digests(cells))))}
    assert [key[row["file"]]["file_name"] for row in rows] == NAMES
    assert key["image-001"]["image_sha256"] == cells[0].image_sha256
    assert key["image-004"]["file_name"] == "notes-Smith.txt" and key["image-004"]["image_sha256"] == ""


def test_skipped_entries_are_pseudonymised_with_their_reasons_kept():
    skipped = [Skipped("PATIENT-12345.tif", "not an image this app can read")]
    [renamed] = Pseudonyms.for_names(["PATIENT-12345.tif"]).skipped(skipped)
    assert renamed == Skipped("image-001", "not an image this app can read")
