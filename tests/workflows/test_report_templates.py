"""Reports rendered from templates: what a reader of the HTML and the PDF can rely on.

Predictions are built by hand (as in test_statuses), so no model is needed.
"""

from __future__ import annotations

import base64
import dataclasses
import html
import io
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from hematovision.model.imaging import jpeg_bytes
from hematovision.model.trust import OTHER_CELL_TYPE, STATUS_TEXT, STATUSES, TrustModel
from hematovision.workflows.batch import Skipped
from hematovision.workflows.report import (
    ImageReport,
    ModelSummary,
    batch_contents,
    batch_report_html,
    batch_report_pdf,
    image_contents,
    image_report_html,
    image_report_pdf,
)
from tests.model.test_statuses import batch_report, one_of_each, pdf_text, prediction

HOSTILE = "<script>alert('x')</script> & \"ward\".png"


class _Reader(HTMLParser):
    """What a browser shows: the text outside <style>, and each image's source."""

    def __init__(self, page: str):
        super().__init__(convert_charrefs=True)
        self.text, self.sources, self._tag = [], [], ""
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        self._tag = tag
        if tag == "img":
            self.sources.append(dict(attrs)["src"])

    def handle_data(self, data):
        if self._tag != "style":
            self.text.append(data)

    def visible(self) -> str:
        return " ".join("".join(self.text).split())


def image_report(status: str, name: str = "cell.png") -> ImageReport:
    pred = prediction("MONOCYTE", status, "erythroblast" if status == OTHER_CELL_TYPE else None, 0.8)
    picture = jpeg_bytes(pred.model_input)
    return ImageReport(name=name, created="2026-11-30 09:00 UTC",
                       model=ModelSummary("test.keras", "0123456789ab", ["n = 10"]), prediction=pred,
                       original_jpeg=picture, chart_png=picture, explanations=[], cells_in_image=1, cell_number=1,
                       advice=TrustModel().advice(pred.status, pred.other_type))


def test_a_hostile_file_name_is_shown_as_text_everywhere_it_appears_in_a_batch_report():
    cells = [dataclasses.replace(c, file=HOSTILE) for c in one_of_each()]  # every tile and the other-cells list
    report = batch_report(cells)
    report.skipped = [Skipped(HOSTILE, "not an image")]
    page = batch_report_html(report)
    assert "<script>" not in page
    escaped = html.escape(HOSTILE)
    assert page.count(escaped) == len(cells) + 1 + 1  # tiles, the other cell, the file not used
    assert "&amp;lt;" not in page and "&amp;amp;" not in page  # escaped once, not twice
    assert _Reader(page).visible().count(HOSTILE) == len(cells) + 2  # and reads as the name itself


def test_a_hostile_image_name_is_escaped_in_the_title_and_the_facts():
    page = image_report_html(image_report("confident", name=HOSTILE))
    assert "<script>" not in page
    assert f"<title>{html.escape(HOSTILE)} – HematoVision</title>" in page
    assert f"Image: {HOSTILE}" in _Reader(page).visible()


def stylesheet(page: str) -> str:
    [_, style] = page.split("<style>")  # exactly one stylesheet
    return style.split("</style>")[0]


def test_both_reports_carry_one_stylesheet_and_it_is_the_same_one():
    batch = batch_report_html(batch_report(one_of_each()))
    single = image_report_html(image_report("confident"))
    assert stylesheet(batch) == stylesheet(single)
    assert stylesheet(batch).count(".warn{") == 1


@pytest.mark.parametrize("status", STATUSES)
def test_the_image_report_names_its_status_in_words_in_both_formats(status):
    report = image_report(status)
    words = f"Status: {STATUS_TEXT[status]}"
    assert words in _Reader(image_report_html(report)).visible()
    assert words in pdf_text(image_report_pdf(report))


def test_html_and_pdf_say_the_same_thing_about_every_cell():
    report = batch_report(one_of_each())
    contents = batch_contents(report)
    page, text = _Reader(batch_report_html(report)).visible(), pdf_text(batch_report_pdf(report))
    for line in [*contents.summary, contents.note, *contents.flags, *(tile.status for tile in contents.tiles),
                 *(other.text for other in contents.other_cells)]:
        assert line in page and line in text


def data_uri(jpeg: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


def pixels(picture: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(picture)).convert("RGB"))


def test_images_are_inlined_exactly_as_built():
    report = batch_report(one_of_each())
    contents = batch_contents(report)
    built = [image for tile in contents.tiles for image in (tile.thumbnail, tile.overlay)]
    built += [other.thumbnail for other in contents.other_cells]
    sources = _Reader(batch_report_html(report)).sources
    [chart] = [source for source in sources if source.startswith("data:image/png;base64,")]
    assert np.array_equal(pixels(base64.b64decode(chart.split(",")[1])), pixels(contents.chart))
    assert sorted(source for source in sources if source != chart) == sorted(map(data_uri, built))
    single = image_report("check")
    assert _Reader(image_report_html(single)).sources[0] == data_uri(image_contents(single).original)


def test_every_change_a_reviewer_made_is_listed_with_its_grad_cam_beside_the_initials():
    cells = one_of_each()
    cells[0].reviewed = "MONOCYTE"  # a change
    cells[4].reviewed = "NOT_CLASSED"  # a change: the model's monocyte left out
    cells[5].reviewed = "EOSINOPHIL"  # a confirmation, not a change
    report = dataclasses.replace(batch_report(cells), initials="JK", review_note="Smear 4 <ward 2>")
    contents = batch_contents(report)
    assert [c.text for c in contents.changes] == ["field.png: model Neutrophil (90%) → reviewer Monocyte",
                                                  "field.png: model Monocyte (90%) → reviewer not classed"]
    assert [c.overlay for c in contents.changes] == [report.overlays[cells[0].key], report.overlays[cells[4].key]]
    page = _Reader(batch_report_html(report))
    text = pdf_text(batch_report_pdf(report))
    for change in contents.changes:
        assert f"{change.text} · changed by JK" in page.visible() and f"{change.text} · changed by JK" in text
        assert data_uri(change.overlay) in page.sources
    assert "Reviewer: JK. Note: Smear 4 <ward 2>" in page.visible() and "Reviewer: JK. Note: Smear 4 <ward 2>" in text


def test_both_formats_show_each_share_with_its_interval_and_what_the_flag_means():
    cells = one_of_each()  # 4 counted: 2 neutrophils, 1 lymphocyte, 1 eosinophil
    report = batch_report(cells)
    page, text = batch_report_html(report), pdf_text(batch_report_pdf(report))
    for expected in ("Neutrophil 2 50.0% 6.8–93.2% 40–70% within", "Monocyte 0 0.0% 0.0–60.2% 2–8% below? count more",
                     "Eosinophil 1 25.0% 0.6–80.6% 1–4% above? count more"):
        assert expected in text
        name, count, share, interval, reference, *flag = expected.split(" ")
        assert (f"<tr><td>{name}</td><td class=n>{count}</td><td class=n>{share}</td><td class=n>{interval}</td>"
                f"<td class=n>{reference}</td>") in page and " ".join(flag) + "</td></tr>" in page
    [eosinophils] = [line for line in batch_contents(report).flags if line.startswith("Eosinophil")]
    assert "count " in eosinophils and "more cells to tell" in eosinophils
