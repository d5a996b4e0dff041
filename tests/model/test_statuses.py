"""The five statuses, carried to everything a user sees: differential, CSV, reports, CLI, app.

Every prediction here is built by hand, so these tests need no model and can give each
status (the shipped model cannot yet say unfamiliar_source or other_cell_type).
"""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from hematovision.model.cells import CellBox
from hematovision.model.classifier import CLASS_NAMES, Prediction
from hematovision.model.trust import (
    CHECK,
    CONFIDENT,
    NOT_BLOOD_CELL,
    OTHER_CELL_TYPE,
    STATUS_TEXT,
    STATUSES,
    UNFAMILIAR_SOURCE,
    TrustModel,
)
from hematovision.workflows.batch import (
    NOT_CLASSED,
    BatchCell,
    cells_csv,
    confirm_unreviewed,
    other_cells,
    set_review,
)
from hematovision.workflows.differential import differential


def prediction(label: str, status: str = CONFIDENT, other_type: str | None = None,
               other_probability: float | None = None, confidence: float = 0.9) -> Prediction:
    rest = (1 - confidence) / (len(CLASS_NAMES) - 1)
    colour = 60 + 40 * CLASS_NAMES.index(label)  # tiles that differ, so a report's images differ
    return Prediction(label=label, confidence=confidence,
                      probabilities={name: confidence if name == label else rest for name in CLASS_NAMES},
                      box=CellBox(10, 10, 120, True), model_input=np.full((224, 224, 3), colour, np.uint8),
                      status=status, status_text=STATUS_TEXT[status], raw_confidence=confidence,
                      other_type=other_type, other_type_probability=other_probability)


def cell(number: int, pred: Prediction, file: str = "field.png") -> BatchCell:
    return BatchCell(key=f"{number:016x}:1", file=file, cell_number=1, cells_in_image=1, prediction=pred,
                     thumbnail=np.asarray(pred.model_input[::4, ::4]))


def one_of_each() -> list[BatchCell]:
    """Six cells, one of each status and a second neutrophil; ward-7.png holds an erythroblast."""
    return [
        cell(1, prediction("NEUTROPHIL")),
        cell(2, prediction("NEUTROPHIL", CHECK, confidence=0.55)),
        cell(3, prediction("LYMPHOCYTE", UNFAMILIAR_SOURCE)),
        cell(4, prediction("LYMPHOCYTE", OTHER_CELL_TYPE, "erythroblast", 0.91), file="ward-7.png"),
        cell(5, prediction("MONOCYTE", NOT_BLOOD_CELL)),
        cell(6, prediction("EOSINOPHIL")),
    ]


@pytest.fixture()
def cells() -> list[BatchCell]:
    return one_of_each()


def counts(cells: list[BatchCell]) -> dict[str, int]:
    return {row.cell_type: row.count for row in differential(cells).rows}


# -- the differential --------------------------------------------------------------------

def test_another_cell_type_is_left_out_of_the_four_counts_and_listed_for_review_with_its_type(cells):
    result = differential(cells)
    assert counts(cells) == {"EOSINOPHIL": 1, "LYMPHOCYTE": 1, "MONOCYTE": 0, "NEUTROPHIL": 2}
    assert (result.counted, result.other_cells, result.not_blood, result.not_classed) == (4, 1, 1, 2)
    [other] = other_cells(cells)
    assert other.file == "ward-7.png" and other.looks_like == "an erythroblast (nucleated red cell)"
    assert other.counted_as == "other cell, review"
    assert result.left_out_text() == "1 other cell type (listed for review), 1 image that is not a blood cell"


def test_unfamiliar_source_and_check_cells_still_count_under_their_class(cells):
    lymphocytes = [c for c in cells if c.final_class == "LYMPHOCYTE"]
    assert [c.prediction.status for c in lymphocytes] == [UNFAMILIAR_SOURCE]
    assert differential(cells).unfamiliar_source == 1
    assert cells[1].final_class == "NEUTROPHIL"  # status check, counted


def test_a_reviewer_who_moves_another_cell_into_a_class_counts_it_there(cells):
    set_review(cells, cells[3].key, "LYMPHOCYTE")
    assert counts(cells)["LYMPHOCYTE"] == 2 and other_cells(cells) == []
    assert differential(cells).other_cells == 0
    set_review(cells, cells[3].key, NOT_CLASSED)  # the reviewer agrees it is none of the four
    assert counts(cells)["LYMPHOCYTE"] == 1 and other_cells(cells) == [cells[3]]
    set_review(cells, cells[4].key, "MONOCYTE")  # the "not a blood cell" was one after all
    assert counts(cells)["MONOCYTE"] == 1 and differential(cells).not_blood == 0


def test_cells_marked_not_classed_are_told_apart_from_other_cells(cells):
    set_review(cells, cells[0].key, NOT_CLASSED)
    result = differential(cells)
    assert (result.left_out_by_reviewer, result.other_cells, result.not_blood) == (1, 1, 1)
    assert "1 marked not classed by the reviewer" in result.left_out_text()


def test_confirm_all_leaves_other_cells_and_non_blood_images_for_a_person(cells):
    assert confirm_unreviewed(cells) == 4
    assert cells[3].reviewed is None and cells[4].reviewed is None
    assert counts(cells) == {"EOSINOPHIL": 1, "LYMPHOCYTE": 1, "MONOCYTE": 0, "NEUTROPHIL": 2}


def test_the_csv_carries_status_status_text_and_the_other_type(cells):
    rows = list(csv.DictReader(io.StringIO(cells_csv(cells))))
    assert [row["status"] for row in rows] == [CONFIDENT, CHECK, UNFAMILIAR_SOURCE, OTHER_CELL_TYPE,
                                               NOT_BLOOD_CELL, CONFIDENT]
    assert rows[2]["status_text"] == STATUS_TEXT[UNFAMILIAR_SOURCE]
    assert (rows[3]["other_type"], float(rows[3]["other_type_probability"])) == ("erythroblast", 0.91)
    assert rows[3]["final_class"] == NOT_CLASSED and rows[2]["final_class"] == "LYMPHOCYTE"
    assert rows[0]["other_type"] == "" and rows[0]["other_type_probability"] == ""


# -- reports -----------------------------------------------------------------------------

def batch_report(cells: list[BatchCell], other_types_checked: bool = True):
    from hematovision.model.imaging import jpeg_bytes
    from hematovision.workflows.report import BatchReport, ModelSummary

    return BatchReport(title="White-cell differential", created="2026-11-30 09:00 UTC",
                       model=ModelSummary("test.keras", "0123456789ab", ["Kaggle TEST images: 90.0%, n = 10"]),
                       differential=differential(cells), cells=cells,
                       overlays={c.key: jpeg_bytes(c.prediction.model_input, 64) for c in cells}, skipped=[],
                       images=len(cells), other_types_checked=other_types_checked)


def pdf_text(data: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages).split())


def test_the_batch_reports_list_other_cells_apart_from_the_differential(cells):
    from hematovision.workflows.report import batch_report_html, batch_report_pdf

    report = batch_report(cells)
    page = batch_report_html(report)
    table, after = page.split("<h2>Other cells, review</h2>")
    assert "<td>Lymphocyte</td><td class=n>1</td>" in table  # the erythroblast is not a lymphocyte here
    others = after.split("<h2>Model</h2>")[0]
    assert "ward-7.png: looks most like an erythroblast (nucleated red cell), p(other type) 91%" in others
    assert others.count("<li>") == 1
    text = pdf_text(batch_report_pdf(report))
    assert "Lymphocyte 1 " in text and "Other cells, review" in text
    assert "ward-7.png: looks most like an erythroblast (nucleated red cell), p(other type) 91%" in text
    assert "1 other cell type (listed for review), 1 image that is not a blood cell" in text
    assert "1 cells look unlike the labs the model was trained on" in text


def test_every_cell_in_a_batch_report_carries_its_status_in_words(cells):
    from hematovision.workflows.report import batch_report_html, batch_report_pdf

    report = batch_report(cells)
    page = batch_report_html(report)
    text = pdf_text(batch_report_pdf(report))
    for status in STATUSES:
        assert f"Status: {STATUS_TEXT[status]}" in page
        assert f"Status: {STATUS_TEXT[status]}" in text
    assert "(looks like: erythroblast)" in page


def test_a_report_from_a_model_without_the_other_type_check_says_so(cells):
    from hematovision.workflows.report import batch_report_html

    plain = [c for c in cells if c.prediction.status != OTHER_CELL_TYPE]
    page = batch_report_html(batch_report(plain, other_types_checked=False))
    assert "does not check for other cell types" in page and "Other cells, review" not in page


def test_the_single_image_report_shows_the_status_the_type_it_looks_like_and_the_advice():
    from hematovision.model.imaging import jpeg_bytes
    from hematovision.workflows.report import (
        ImageReport,
        ModelSummary,
        image_report_html,
        image_report_pdf,
    )

    pred = prediction("MONOCYTE", OTHER_CELL_TYPE, "immature granulocyte", 0.8)
    advice = TrustModel().advice(pred.status, pred.other_type)
    picture = jpeg_bytes(pred.model_input)
    report = ImageReport(name="cell.png", created="2026-11-30 09:00 UTC",
                         model=ModelSummary("test.keras", "0123456789ab", ["n = 10"]), prediction=pred,
                         original_jpeg=picture, chart_png=picture, explanations=[], cells_in_image=1, cell_number=1,
                         advice=advice)
    page = image_report_html(report)
    assert f"Status: {STATUS_TEXT[OTHER_CELL_TYPE]}" in page
    assert "Looks most like: an immature granulocyte (metamyelocyte, myelocyte or promyelocyte)" in page
    assert "it looks most like an immature granulocyte" in page  # the advice names it too
    text = pdf_text(image_report_pdf(report))
    assert f"Status: {STATUS_TEXT[OTHER_CELL_TYPE]}" in text and "Looks most like: an immature granulocyte" in text
    assert "kept out of the four-type counts" in text


# -- words in the app, before any page runs ------------------------------------------------

def test_tables_and_the_cell_picker_name_the_type_another_cell_looks_like():
    from app.texts import cell_choice_label, status_label

    other = prediction("LYMPHOCYTE", OTHER_CELL_TYPE, "platelet", 0.7)
    assert status_label(other) == f"{STATUS_TEXT[OTHER_CELL_TYPE]}: looks like a platelet or platelet clump"
    assert cell_choice_label(2, other) == "Cell 2: another cell type, looks like platelet"
    unfamiliar = prediction("LYMPHOCYTE", UNFAMILIAR_SOURCE)
    assert status_label(unfamiliar) == STATUS_TEXT[UNFAMILIAR_SOURCE]
    assert cell_choice_label(1, unfamiliar) == "Cell 1: Lymphocyte, 90% (unfamiliar lab or camera: check this cell)"


def test_the_status_guide_explains_all_five_and_knows_which_checks_the_model_lacks():
    from app.texts import STATUS_GUIDE, statuses_not_checked
    from hematovision.model.ood import OODDetector

    assert set(STATUS_GUIDE) == set(STATUSES)
    # An unfamiliar lab is told where to build a lab profile; other cell types warn that on such a
    # lab, real four-type cells get that status too (measured on LISC).
    assert "lab profile" in STATUS_GUIDE[UNFAMILIAR_SOURCE][1] and "Batch page" in STATUS_GUIDE[UNFAMILIAR_SOURCE][1]
    assert "never saw" in STATUS_GUIDE[OTHER_CELL_TYPE][1]
    assert statuses_not_checked(TrustModel()) == {UNFAMILIAR_SOURCE, OTHER_CELL_TYPE, NOT_BLOOD_CELL}
    one_line = OODDetector.__new__(OODDetector)
    one_line.threshold = one_line.far_threshold = 5.0  # a pre-issue-12 file: only not_blood_cell
    assert statuses_not_checked(TrustModel(ood=one_line)) == {UNFAMILIAR_SOURCE, OTHER_CELL_TYPE}
    one_line.far_threshold = 9.0
    assert statuses_not_checked(TrustModel(ood=one_line)) == {OTHER_CELL_TYPE}


# -- the command line ----------------------------------------------------------------------

def test_the_cli_names_the_type_another_cell_looks_like(capsys, monkeypatch, tmp_path):
    from PIL import Image

    import hematovision.interfaces.cli as cli

    image = tmp_path / "field.png"
    Image.fromarray(np.full((64, 64, 3), 200, np.uint8)).save(image)

    class TwoCells:
        lab_profile = None

        def predict_cells(self, rgb):
            first, second = prediction("NEUTROPHIL", UNFAMILIAR_SOURCE), prediction(
                "LYMPHOCYTE", OTHER_CELL_TYPE, "erythroblast", 0.87)
            return [first, second]

    monkeypatch.setattr(cli, "_classifier", lambda args: TwoCells())
    assert cli.main(["predict", str(image)]) == 0
    out = capsys.readouterr().out
    assert f"neutrophil (90.0%) - {STATUS_TEXT[UNFAMILIAR_SOURCE]}" in out
    assert (f"{STATUS_TEXT[OTHER_CELL_TYPE]}: looks most like an erythroblast (nucleated red cell) "
            "(87% likely none of the four); nearest of the four: lymphocyte (90.0%)") in out
