"""Reports a person can file or send: a batch differential and a single-image report,
each as a self-contained HTML page (images inlined) and as a PDF.

Both carry the model's identity and measured accuracy (from the model card) and say
plainly that HematoVision is decision support, not a diagnosis. Every cell carries its
status in words (``trust.STATUS_TEXT``); a batch lists the cells that look like another
cell type apart from the differential. Both are built in memory and returned as text or
bytes; nothing is written to disk.

A report is made in three steps, so the two formats cannot drift apart:
``build_*_report`` does the model's work (overlays, chart); ``*_contents`` turns that into
what the report says (texts, numbers, JPEG/PNG bytes); the HTML renderer (Jinja2 templates
in ``templates/``) and the PDF renderer (fpdf2) lay out the same contents.
"""

from __future__ import annotations

import html
import io
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from hematovision import charts
from hematovision.explanation.explainers import Explanation, explain
from hematovision.explanation.overlay import overlay
from hematovision.model.classifier import Classifier, Prediction, display_name
from hematovision.model.imaging import data_uri, jpeg_bytes
from hematovision.model.model_card import interval_text, load_model_card
from hematovision.model.trust import OTHER_CELL_TYPE
from hematovision.workflows.batch import BatchCell, Skipped, looks_like, other_cells
from hematovision.workflows.differential import (
    INTERVAL_NOTE,
    REFERENCE_SOURCE,
    Differential,
    differential,
)

DISCLAIMER = ("Decision support, not a diagnosis. HematoVision's classifications and explanations are for "
              "education and research and to assist review; a qualified person must check every cell and "
              "every result before any clinical use.")
ACCURACY_SPLITS = ("test_image", "test_cell", "pbc_test")
REPORT_METHODS = ("gradcam", "gradcam++", "lime", "shap")


# -- what every report says about the model ----------------------------------------------

@dataclass(frozen=True)
class ModelSummary:
    file: str
    sha256: str
    accuracy: list[str]  # "Kaggle TEST images: 87.3% (95% CI 85.9–88.5%), n = 2487"
    lab_profile: str | None = None  # "lab profile 3f2a… (few-shot, …)" when one adapted the model

    def identity(self, trained: str = "") -> str:
        """The model file and hash (and the lab profile), for a report's model section."""
        adapted = (f" Adapted to the user's lab by {self.lab_profile}: the measured accuracy below is the "
                   "shipped model's." if self.lab_profile else "")
        return f"{self.file} (sha256 {self.sha256}…){trained}.{adapted} Measured accuracy on held-out data:"


def model_summary(classifier: Classifier) -> ModelSummary:
    card = load_model_card()
    lines = []
    if card is not None:
        for name in ACCURACY_SPLITS:
            split = card.evaluation.splits.get(name)
            if split and split.accuracy is not None:
                interval = f" ({interval_text(split.accuracy_ci95)})" if split.accuracy_ci95 else ""
                label = (split.description or name).split(";")[0].split(" (")[0]
                n = "?" if split.n is None else split.n
                lines.append(f"{label}: {100 * split.accuracy:.1f}%{interval}, n = {n}")
    sha = (card.model_sha256 or "") if card is not None else ""
    path = Path(classifier.model_path) if classifier.model_path else None
    profile = classifier.lab_profile
    return ModelSummary(file=path.name if path else "in-memory model", sha256=sha[:12] or "unknown",
                        accuracy=lines or ["No measured accuracy found (model card missing)."],
                        lab_profile=f"{profile.describe()}, sha256 {profile.sha256[:12]}…" if profile else None)


def _timestamp() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _gradcam_overlay(classifier: Classifier, prediction: Prediction, side: int = 160) -> bytes:
    explanation = explain(classifier, prediction.model_input, "gradcam")
    picture = overlay(prediction.model_input, explanation.attribution, signed=False, opacity=0.5)
    return jpeg_bytes(picture, side)



# -- batch report: what it says ----------------------------------------------------------

@dataclass
class BatchReport:
    title: str
    created: str
    model: ModelSummary
    differential: Differential
    cells: list[BatchCell]
    overlays: dict[str, bytes]  # cell key -> Grad-CAM overlay (JPEG)
    skipped: list[Skipped]
    images: int
    other_types_checked: bool = False  # the model has an other-cell-type detector
    initials: str = ""  # the reviewer's, from the Batch page or a review file
    review_note: str = ""
    signed_in: str = ""  # who was signed in to the app (issue 17), when sign-in is on

    @property
    def other_cells(self) -> list[BatchCell]:
        return other_cells(self.cells)

    @property
    def changed_cells(self) -> list[BatchCell]:
        return [cell for cell in self.cells if cell.changed]


def build_batch_report(classifier: Classifier, cells: list[BatchCell], skipped: list[Skipped] | None = None,
                       title: str = "White-cell differential", initials: str = "",
                       review_note: str = "", signed_in: str = "") -> BatchReport:
    """Everything both formats show, computed once (one Grad-CAM per cell)."""
    overlays = {cell.key: _gradcam_overlay(classifier, cell.prediction, side=128) for cell in cells}
    return BatchReport(title=title, created=_timestamp(), model=model_summary(classifier),
                       differential=differential(cells), cells=list(cells), overlays=overlays,
                       skipped=list(skipped or []), images=len({cell.image_sha256 for cell in cells}),
                       other_types_checked=classifier.trust.other_types is not None, initials=initials.strip(),
                       review_note=review_note.strip(), signed_in=signed_in.strip())


def other_types_note(checked: bool) -> str:
    """What the differential says about cells that are none of the four types."""
    if checked:
        return ("Cells that look like a basophil, an immature granulocyte, an erythroblast or a platelet are "
                "kept out of the four counts and listed under \"Other cells, review\".")
    return ("This model does not check for other cell types: a basophil, immature granulocyte, erythroblast or "
            "platelet is counted as the nearest of the four types.")


OTHER_CELLS_INTRO = ("Not counted in the differential above: each looks like a blood cell that is none of the four "
                     "types. Check each one yourself.")
FLAG_WORDS = {"low": "below range", "high": "above range", "": "within", "–": "–"}
UNSURE_WORDS = {"low": "below? count more", "high": "above? count more"}
CHANGES_INTRO = ("Every cell whose class the reviewer changed from the model's call (moved to another class or left "
                 "out), with the crop and its Grad-CAM map for the model's class.")


@dataclass(frozen=True)
class TableRow:
    """One cell type's line in the differential table, as printed."""

    cell_type: str
    count: int
    share: str  # "52.0%", or "–" when nothing is counted
    interval: str  # the exact 95% interval, "41.9–62.0%"
    reference: str  # "40–70%"
    flag: str  # "low", "high", "" or "–" (the HTML colours low and high)
    flag_words: str  # "below range", or "below? count more" while the interval still reaches the range


@dataclass(frozen=True)
class CellTile:
    """One cell of the batch: its crop, its Grad-CAM map and what was decided."""

    file: str
    where: str  # " · cell 2" when its image holds several cells, else ""
    model_call: str  # "Neutrophil (90%)"
    counted_as: str
    status: str  # "Status: Confident · not reviewed"
    thumbnail: bytes  # JPEG, 128 px
    overlay: bytes  # JPEG


@dataclass(frozen=True)
class ChangeLine:
    """One change a reviewer made, with the cell, its Grad-CAM map and who made it."""

    text: str  # "ward-3.png · cell 2: model Neutrophil (90%) → reviewer Monocyte"
    initials: str  # "AB", or "reviewer (no initials given)"
    thumbnail: bytes  # JPEG, 64 px
    overlay: bytes  # JPEG


@dataclass(frozen=True)
class OtherCellLine:
    text: str  # "ward-3.png: looks most like an erythroblast ..."
    thumbnail: bytes  # JPEG, 64 px


@dataclass(frozen=True)
class BatchContents:
    """What a batch report says, as texts, numbers and JPEG bytes: HTML and PDF lay out the same."""

    title: str
    created: str
    summary: list[str]
    rows: list[TableRow]
    counted: int
    counted_share: str
    flags: list[str]  # each class outside its range, with the planning hint
    chart: bytes  # PNG: shares with their intervals over the reference ranges
    note: str  # where the reference ranges come from, the intervals, and what happens to other cell types
    changes: list[ChangeLine]
    reviewer: str  # "Reviewer: AB. Note: …", or "" when no initials or note were given
    other_cells: list[OtherCellLine]
    model_text: str
    accuracy: list[str]
    tiles: list[CellTile]
    skipped: list[str]  # "name: reason"


def _cell_status(cell: BatchCell) -> str:
    """'Status: Confident · not reviewed', naming the type another cell looks like."""
    if cell.reviewed is None:
        review = "not reviewed"
    elif cell.final_class is None:
        review = "reviewer: not classed"
    elif cell.changed:
        review = f"reviewer: {display_name(cell.final_class)} (changed)"
    else:
        review = "reviewer: confirmed"
    status = cell.prediction.status_text
    if cell.looks_like:
        status += f" (looks like: {cell.prediction.other_type or 'another type'})"
    return f"Status: {status} · {review}"


def _summary_lines(report: BatchReport) -> list[str]:
    d = report.differential
    left_out = f" ({d.left_out_text()})" if d.not_classed else ""
    lines = [f"{d.total_cells} white cells found in {report.images} images; {d.counted} counted in the differential, "
             f"{d.not_classed} left out{left_out}.",
             f"Reviewed by a person: {d.reviewed} of {d.total_cells} cells; {d.changed} changed from the model's call. "
             f"{d.flagged_for_check} cells were flagged for checking by the model."]
    if d.unfamiliar_source:
        lines.append(f"{d.unfamiliar_source} cells look unlike the labs the model was trained on (another stain, "
                     "microscope or camera): they are counted, but check each of them.")
    if report.skipped:
        lines.append(f"{len(report.skipped)} files could not be used (listed at the end).")
    return lines


def _other_cell_line(cell: BatchCell) -> str:
    """'ward-3.png · cell 2: looks most like an erythroblast (nucleated red cell), p(other type) 91%'."""
    where = f" · cell {cell.cell_number}" if cell.cells_in_image > 1 else ""
    probability = cell.prediction.other_type_probability
    chance = f", p(other type) {100 * probability:.0f}%" if probability is not None else ""
    return (f"{cell.file}{where}: looks most like {cell.looks_like}{chance}; "
            f"nearest of the four: {display_name(cell.predicted)}")


def _change_line(cell: BatchCell, initials: str, overlay_jpeg: bytes) -> ChangeLine:
    where = f" · cell {cell.cell_number}" if cell.cells_in_image > 1 else ""
    return ChangeLine(text=f"{cell.file}{where}: model {display_name(cell.predicted)} "
                           f"({100 * cell.prediction.confidence:.0f}%) → reviewer {cell.counted_as}",
                      initials=initials or "reviewer (no initials given)",
                      thumbnail=jpeg_bytes(cell.thumbnail, 64), overlay=overlay_jpeg)


def _reviewer_line(report: BatchReport) -> str:
    parts = ([f"Signed in as: {report.signed_in}."] if report.signed_in else []) + (
        [f"Reviewer: {report.initials}."] if report.initials else []) + (
        [f"Note: {report.review_note}"] if report.review_note else [])
    return " ".join(parts)


def batch_contents(report: BatchReport) -> BatchContents:
    d = report.differential
    rows = [TableRow(cell_type=display_name(r.cell_type), count=r.count,
                     share="–" if r.percent is None else f"{r.percent:.1f}%", interval=r.interval_text(),
                     reference=f"{r.reference[0]:g}–{r.reference[1]:g}%", flag=r.flag,
                     flag_words=UNSURE_WORDS[r.flag] if r.flag in UNSURE_WORDS and not r.finding
                     else FLAG_WORDS[r.flag])
            for r in d.rows]
    tiles = [CellTile(file=cell.file, where=f" · cell {cell.cell_number}" if cell.cells_in_image > 1 else "",
                      model_call=f"{display_name(cell.predicted)} ({100 * cell.prediction.confidence:.0f}%)",
                      counted_as=cell.counted_as, status=_cell_status(cell), thumbnail=jpeg_bytes(cell.thumbnail, 128),
                      overlay=report.overlays[cell.key])
             for cell in report.cells]
    return BatchContents(
        title=report.title, created=report.created, summary=_summary_lines(report), rows=rows, counted=d.counted,
        counted_share="100%" if d.counted else "–", flags=d.flags(), chart=charts.differential_png(d.rows),
        note=" ".join((INTERVAL_NOTE, REFERENCE_SOURCE, other_types_note(report.other_types_checked))),
        changes=[_change_line(cell, report.initials, report.overlays[cell.key]) for cell in report.changed_cells],
        reviewer=_reviewer_line(report),
        other_cells=[OtherCellLine(_other_cell_line(cell), jpeg_bytes(cell.thumbnail, 64)) for cell in report.other_cells],
        model_text=report.model.identity(", MobileNetV2 fine-tuned on two labs' images"),
        accuracy=list(report.model.accuracy), tiles=tiles,
        skipped=[f"{item.name}: {item.reason}" for item in report.skipped])


# -- single-image report: what it says ---------------------------------------------------

IMAGE_REPORT_TITLE = "White-cell classification"


@dataclass
class ImageReport:
    name: str
    created: str
    model: ModelSummary
    prediction: Prediction
    original_jpeg: bytes
    chart_png: bytes
    explanations: list[tuple[Explanation, bytes]]  # each with its overlay (JPEG)
    cells_in_image: int
    cell_number: int
    advice: str = ""  # what the prediction's status means and what to do (TrustModel.advice)
    signed_in: str = ""  # who was signed in to the app (issue 17), when sign-in is on


def build_image_report(classifier: Classifier, image_name: str, original: np.ndarray, prediction: Prediction,
                       cells_in_image: int = 1, cell_number: int = 1,
                       explanations: dict[str, Explanation] | None = None, signed_in: str = "") -> ImageReport:
    """The image, its prediction, the probability chart and the four overlays.

    ``explanations`` can pass maps the app already computed (same cell, same class);
    missing methods are computed here at their defaults.
    """
    from PIL import Image

    explanations = dict(explanations or {})
    made = []
    for method in REPORT_METHODS:
        result = explanations.get(method) or explain(classifier, prediction.model_input, method)
        picture = overlay(prediction.model_input, result.attribution, signed=result.signed, opacity=0.5)
        made.append((result, jpeg_bytes(picture, 224)))
    preview = Image.fromarray(np.asarray(original, np.uint8))
    preview.thumbnail((640, 640))
    return ImageReport(name=image_name, created=_timestamp(), model=model_summary(classifier), prediction=prediction,
                       original_jpeg=jpeg_bytes(np.asarray(preview)), chart_png=charts.probability_png(prediction),
                       explanations=made, cells_in_image=cells_in_image, cell_number=cell_number,
                       advice=classifier.trust.advice(prediction.status, prediction.other_type),
                       signed_in=signed_in.strip())


@dataclass(frozen=True)
class MapFigure:
    """One explanation's overlay and its caption."""

    label: str  # "Grad-CAM++"
    target: str  # the class explained, as shown: "Neutrophil"
    kind: str  # how to read the colours
    evaluations: int  # images pushed through the model
    overlay: bytes  # JPEG, 224 px


@dataclass(frozen=True)
class ImageContents:
    """What a single-image report says; HTML and PDF lay out the same."""

    title: str
    name: str
    created: str
    facts: list[str]
    advice: str
    original: bytes  # JPEG
    chart: bytes  # PNG
    maps: list[MapFigure]
    model_text: str
    accuracy: list[str]


def _image_facts(report: ImageReport) -> list[str]:
    p = report.prediction
    facts = [f"Image: {report.name}" + (f" (cell {report.cell_number} of {report.cells_in_image})"
                                         if report.cells_in_image > 1 else ""),
             f"Predicted: {display_name(p.label)}, calibrated probability {100 * p.confidence:.1f}%",
             f"Status: {p.status_text}"]
    if p.status == OTHER_CELL_TYPE:
        chance = (f" (probability it is none of the four types: {100 * p.other_type_probability:.0f}%)"
                  if p.other_type_probability is not None else "")
        facts.append(f"Looks most like: {looks_like(p)}{chance}")
    if not p.box.found:
        facts.append("No white-cell nucleus was found; the model looked at the image centre.")
    if report.signed_in:
        facts.append(f"Prepared by: {report.signed_in} (signed in)")
    return facts


def image_contents(report: ImageReport) -> ImageContents:
    maps = [MapFigure(label=e.label, target=display_name(e.target),
                      kind="signed: red for, blue against" if e.signed else "support only",
                      evaluations=e.evaluations, overlay=jpeg)
            for e, jpeg in report.explanations]
    return ImageContents(
        title=IMAGE_REPORT_TITLE, name=report.name, created=report.created, facts=_image_facts(report),
        advice=report.advice, original=report.original_jpeg, chart=report.chart_png, maps=maps,
        model_text=report.model.identity(),
        accuracy=list(report.model.accuracy))


# -- HTML ----------------------------------------------------------------------------------

def _escape(value: object) -> Markup:
    """Escape as html.escape does ('&#x27;' for a quote), the entities these reports have always had."""
    return value if isinstance(value, Markup) else Markup(html.escape(str(value)))


_templates = Environment(loader=PackageLoader("hematovision.workflows", "templates"), autoescape=select_autoescape(["html"]),
                         finalize=_escape, trim_blocks=True, lstrip_blocks=True, undefined=StrictUndefined)
_templates.filters["data_uri"] = data_uri
_templates.globals.update(disclaimer=DISCLAIMER, other_cells_intro=OTHER_CELLS_INTRO, changes_intro=CHANGES_INTRO,
                          chart_legend=charts.DIFFERENTIAL_LEGEND)


def batch_report_html(report: BatchReport) -> str:
    return _templates.get_template("batch.html").render(report=batch_contents(report))


def image_report_html(report: ImageReport) -> str:
    return _templates.get_template("image.html").render(report=image_contents(report))


# -- PDF ---------------------------------------------------------------------------------

def _font_path(bold: bool = False) -> Path:
    """DejaVu Sans from matplotlib's own data (always installed with it): covers – ≥ · µ."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")


def _new_pdf(title: str):
    from fpdf import FPDF

    pdf = FPDF(format="A4", unit="mm")
    pdf.set_title(title)
    pdf.set_creator("HematoVision")
    pdf.add_font("DejaVu", "", str(_font_path()))
    pdf.add_font("DejaVu", "B", str(_font_path(bold=True)))
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    return pdf


def _heading(pdf, text: str, size: int = 13) -> None:
    pdf.set_font("DejaVu", "B", size)
    pdf.multi_cell(0, size * 0.55, text, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(1)


def _text(pdf, text: str, size: int = 9, bold: bool = False) -> None:
    pdf.set_font("DejaVu", "B" if bold else "", size)
    pdf.multi_cell(0, size * 0.5, text, new_x="LMARGIN", new_y="NEXT")


def _warning(pdf) -> None:
    pdf.set_draw_color(200, 85, 61)
    pdf.set_text_color(150, 40, 20)
    pdf.set_font("DejaVu", "B", 9)
    pdf.multi_cell(0, 5, DISCLAIMER, border=1, padding=2, new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)


def _table(pdf, header: list[str], rows: list[list[str]], widths: tuple[int, ...]) -> None:
    pdf.set_font("DejaVu", "", 9)
    with pdf.table(col_widths=widths, width=sum(widths), align="LEFT", line_height=5.5,
                   first_row_as_headings=True) as table:
        for values in [header, *rows]:
            row = table.row()
            for value in values:
                row.cell(str(value))
    pdf.ln(2)


def _start(title: str, created: str):
    """A new PDF opened as every report opens: heading, date and the disclaimer."""
    pdf = _new_pdf(title)
    _heading(pdf, title, 16)
    _text(pdf, f"HematoVision report · {created}")
    pdf.ln(2)
    _warning(pdf)
    return pdf


def _model_section(pdf, model_text: str, accuracy: list[str]) -> None:
    _heading(pdf, "Model")
    _text(pdf, model_text)
    for line in accuracy:
        _text(pdf, "• " + line)


def _picture_row(pdf, pictures: list[bytes], text: str) -> None:
    """One line of the PDF: small 10 mm pictures side by side, then the text beside them."""
    if pdf.get_y() + 12 > pdf.h - pdf.b_margin:
        pdf.add_page()
    top = pdf.get_y()
    for number, picture in enumerate(pictures):
        pdf.image(io.BytesIO(picture), x=pdf.l_margin + 11 * number, y=top, w=10, h=10)
    pdf.set_xy(pdf.l_margin + 11 * len(pictures) + 1, top + 1)
    pdf.set_font("DejaVu", "", 8)
    pdf.multi_cell(0, 4, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(max(pdf.get_y(), top + 11))


def batch_report_pdf(report: BatchReport) -> bytes:
    contents = batch_contents(report)
    pdf = _start(contents.title, contents.created)
    _heading(pdf, "Differential")
    for line in contents.summary:
        _text(pdf, line)
    pdf.ln(1)
    _table(pdf, ["Cell type", "Count", "Share", "95% interval", "Adult reference", "Flag"],
           [[r.cell_type, r.count, r.share, r.interval, r.reference, r.flag_words] for r in contents.rows]
           + [["Counted", contents.counted, contents.counted_share, "", "", ""]], (28, 16, 18, 30, 30, 38))
    for line in contents.flags:
        _text(pdf, "• " + line, size=8)
    pdf.image(io.BytesIO(contents.chart), x=pdf.l_margin, w=120)
    _text(pdf, charts.DIFFERENTIAL_LEGEND + " " + contents.note, size=7)
    pdf.ln(2)
    if contents.reviewer:
        _text(pdf, contents.reviewer)
        pdf.ln(1)
    if contents.changes:
        _heading(pdf, "Changes made by the reviewer")
        _text(pdf, CHANGES_INTRO, size=8)
        pdf.ln(1)
        for change in contents.changes:
            _picture_row(pdf, [change.thumbnail, change.overlay], f"{change.text} · changed by {change.initials}")
        pdf.ln(2)
    if contents.other_cells:
        _heading(pdf, "Other cells, review")
        _text(pdf, OTHER_CELLS_INTRO, size=8)
        pdf.ln(1)
        for other in contents.other_cells:
            _picture_row(pdf, [other.thumbnail], other.text)
        pdf.ln(2)
    _model_section(pdf, contents.model_text, contents.accuracy)
    pdf.ln(2)
    _heading(pdf, "Cells")
    _text(pdf, "Each cell: the crop the model classified, and its Grad-CAM map (red = strongest evidence for the "
               "model's class).", size=8)
    pdf.ln(1)
    tile_width, image_side, per_row = 62, 22, 3
    for number, tile in enumerate(contents.tiles):
        column = number % per_row
        if column == 0:
            if pdf.get_y() + 40 > pdf.h - pdf.b_margin:
                pdf.add_page()
            top = bottom = pdf.get_y()
        x = pdf.l_margin + column * tile_width
        pdf.image(io.BytesIO(tile.thumbnail), x=x, y=top, w=image_side, h=image_side)
        pdf.image(io.BytesIO(tile.overlay), x=x + image_side + 1, y=top, w=image_side, h=image_side)
        pdf.set_xy(x, top + image_side + 0.5)
        pdf.set_font("DejaVu", "", 6.5)
        name = tile.file if len(tile.file) <= 40 else tile.file[:39] + "…"  # a tile is 62 mm wide
        pdf.multi_cell(tile_width - 2, 2.8,
                       f"{name}{tile.where}\nModel: {tile.model_call} · counted: {tile.counted_as}\n{tile.status}",
                       new_x="LMARGIN", new_y="NEXT")
        bottom = max(bottom, pdf.get_y())  # a status wraps onto more lines in some tiles than others
        if column == per_row - 1 or number == len(contents.tiles) - 1:
            pdf.set_y(max(bottom + 2, top + image_side + 10))
    if contents.skipped:
        pdf.ln(3)
        _heading(pdf, "Files not used")
        for line in contents.skipped:
            _text(pdf, "• " + line, size=8)
    pdf.ln(3)
    _warning(pdf)
    return bytes(pdf.output())


def image_report_pdf(report: ImageReport) -> bytes:
    contents = image_contents(report)
    pdf = _start(contents.title, contents.created)
    top = pdf.get_y()
    pdf.image(io.BytesIO(contents.original), x=pdf.l_margin, y=top, w=80)
    pdf.set_xy(pdf.l_margin + 85, top)
    pdf.set_font("DejaVu", "", 9)
    pdf.multi_cell(0, 5, "\n".join(contents.facts), new_x="LMARGIN", new_y="NEXT")
    chart_top = pdf.get_y() + 2
    chart = pdf.image(io.BytesIO(contents.chart), x=pdf.l_margin + 85, y=chart_top, w=90)
    pdf.set_y(max(top + 75, chart_top + chart.rendered_height + 2))
    if contents.advice:
        _text(pdf, contents.advice)
        pdf.ln(3)
    _heading(pdf, "Explanations")
    side = 42
    y = pdf.get_y()
    for column, figure in enumerate(contents.maps):
        x = pdf.l_margin + column * (side + 4)
        pdf.image(io.BytesIO(figure.overlay), x=x, y=y, w=side, h=side)
        pdf.set_xy(x, y + side + 1)
        pdf.set_font("DejaVu", "", 7)
        pdf.multi_cell(side, 3.2, f"{figure.label} for {figure.target}\n{figure.kind}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_y(y + side + 12)
    _model_section(pdf, contents.model_text, contents.accuracy)
    return bytes(pdf.output())
