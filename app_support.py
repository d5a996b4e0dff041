"""Streamlit glue shared by the pages: cached model and results, charts, common widgets.

The core package (``hematovision/``) stays free of Streamlit; everything that needs
``st`` lives here or in the page scripts.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image

from hematovision import CLASS_NAMES, load_classifier, load_image, overlay
from hematovision.app_state import (
    CELL_INDEX,
    CURRENT_IMAGE,
    EXPLAIN_SETTINGS,
    OPACITY,
    SIGN_VIEW,
    UPLOAD_ERROR,
    UPLOADER_NONCE,
    STATUS_GUIDE,
    CurrentImage,
    ExplainSettings,
    cell_choice_label,
    current_image_from_sample,
    current_image_from_upload,
    preview_with_boxes,
    statuses_not_checked,
)
from hematovision.cells import CellBox
from hematovision.classifier import Classifier, Prediction, display_name
from hematovision.compare import compare_image
from hematovision.explainers import built_explainers, explain
from hematovision.imaging import MAX_UPLOAD_BYTES, SUPPORTED_SUFFIXES, ImageError
from hematovision.report import REPORT_METHODS, build_image_report, image_report_html, image_report_pdf
from hematovision.samples import find_sample
from hematovision.trust import (CHECK, CONFIDENT, NOT_BLOOD_CELL, OTHER_CELL_TYPE, STATUS_TEXT, STATUSES,
                                UNFAMILIAR_SOURCE)

# Page scripts, relative to streamlit_app.py. Pages link to each other through these.
HOME_PAGE = "app_pages/home.py"
CLASSIFY_PAGE = "app_pages/classify.py"
EXPLAIN_PAGE = "app_pages/explain.py"
MODEL_PAGE = "app_pages/model.py"
COMPARE_PAGE = "app_pages/compare.py"
BATCH_PAGE = "app_pages/batch.py"
ATLAS_PAGE = "app_pages/atlas.py"
QUIZ_PAGE = "app_pages/quiz.py"

PRIMARY = "#1f6f8b"  # keep in step with .streamlit/config.toml
MUTED = "#a9bac6"
CLASS_COLOURS = {
    "EOSINOPHIL": "#c8553d",
    "LYMPHOCYTE": "#3a6ea5",
    "MONOCYTE": "#6a4c93",
    "NEUTROPHIL": "#2a9d8f",
}


# ---------------------------------------------------------------------------
# Session state
# ---------------------------------------------------------------------------
def init_state() -> None:
    """Create the shared session-state keys once per session."""
    defaults: dict[str, Any] = {
        CURRENT_IMAGE: None,
        UPLOAD_ERROR: None,
        UPLOADER_NONCE: 0,
        EXPLAIN_SETTINGS: ExplainSettings(),
        OPACITY: 0.5,
        CELL_INDEX: 0,
        SIGN_VIEW: "both",
    }
    for key, value in defaults.items():
        if key not in st.session_state:
            st.session_state[key] = value


def current_image() -> CurrentImage | None:
    return st.session_state.get(CURRENT_IMAGE)


def set_current_image(image: CurrentImage | None) -> None:
    st.session_state[CURRENT_IMAGE] = image
    st.session_state[UPLOAD_ERROR] = None
    st.session_state[CELL_INDEX] = 0
    # A new image starts from the predicted class again.
    settings = st.session_state.get(EXPLAIN_SETTINGS) or ExplainSettings()
    st.session_state[EXPLAIN_SETTINGS] = dataclasses.replace(settings, target=None)


def clear_uploader() -> None:
    """Give the file uploaders a fresh key so they show empty on the next run."""
    st.session_state[UPLOADER_NONCE] = st.session_state.get(UPLOADER_NONCE, 0) + 1


def uploader_key(page: str) -> str:
    return f"hv_uploader_{page}_{st.session_state[UPLOADER_NONCE]}"


def handle_upload(data: bytes | None, name: str | None) -> None:
    """Make an uploaded file the current image, or record why it cannot be used.

    Called from an uploader's on_change callback, so it runs only when the user actually
    adds or removes a file (not when they come back from another page).
    """
    if data is None:  # the user removed the file
        st.session_state[UPLOAD_ERROR] = None
        image = current_image()
        if image is not None and image.source == "upload":
            set_current_image(None)
        return
    if len(data) > MAX_UPLOAD_BYTES:
        # The browser and Streamlit's upload endpoint enforce server.maxUploadSize; this is the
        # same cap on the server side, for any path that delivers bytes without them.
        set_current_image(None)
        st.session_state[UPLOAD_ERROR] = (f"The file is {len(data):,} bytes, over the upload limit of "
                                          f"{MAX_UPLOAD_BYTES // 2**20} MB ({MAX_UPLOAD_BYTES:,} bytes).")
        return
    try:
        image = current_image_from_upload(data, name)
    except ImageError as exc:
        set_current_image(None)
        st.session_state[UPLOAD_ERROR] = str(exc)
        return
    set_current_image(image)


def image_uploader(page: str, label: str = "Upload a smear photo") -> None:
    """The file uploader every page uses: checks the file and makes it the current image."""
    key = uploader_key(page)

    def changed() -> None:
        uploaded = st.session_state.get(key)
        handle_upload(None if uploaded is None else uploaded.getvalue(), None if uploaded is None else uploaded.name)

    st.file_uploader(
        label,
        type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES],
        key=key,
        on_change=changed,
        help="JPEG, PNG, BMP or TIFF, up to 20 MB. The file stays in memory for this session only.",
    )


def use_sample(key: str) -> None:
    sample = find_sample(key)
    if sample is None:
        st.session_state[UPLOAD_ERROR] = f"The sample {key} is missing from this installation."
        return
    set_current_image(current_image_from_sample(sample.read_bytes(), sample.key, sample.title))
    clear_uploader()


# ---------------------------------------------------------------------------
# Cached model work
# ---------------------------------------------------------------------------
@st.cache_resource(show_spinner="Loading the classifier (first time only)…")
def get_classifier() -> Classifier:
    global _classifiers_loaded
    classifier = load_classifier()
    _classifiers_loaded += 1
    return classifier


_classifiers_loaded = 0
_frozen_after: tuple[int, int] = (0, 0)  # (classifiers loaded, explainers built) at the last freeze


def freeze_long_lived_objects() -> None:
    """Hide the model, the explainers and the libraries from the cyclic garbage collector.

    Streamlit ends every script run with ``keras.backend.clear_session()``, and that runs a
    full ``gc.collect()``. Once TensorFlow, the model and shap's numba code are loaded, the
    collector walks ~650,000 objects that live as long as the process: 0.35 s added to every
    click of every user, holding the GIL (measured; with them frozen a rerun of Explain
    takes 0.03 s). ``gc.freeze()`` moves everything alive into a generation the collector
    skips. Called at the end of every run, it freezes only after a classifier or a new
    explainer was built, so at most once per method per process: the few objects of that
    one run that are frozen with them are all the memory this can keep.
    """
    global _frozen_after
    built = (_classifiers_loaded, built_explainers())
    if built != _frozen_after:
        gc.freeze()
        _frozen_after = built


@st.cache_data(max_entries=64, show_spinner=False)
def predict_cells(digest: str, _data: bytes) -> list[Prediction]:
    """One prediction per white cell in the image (biggest first), cached by the bytes' SHA-256."""
    return get_classifier().predict_cells(_data)


def cell_picker(widget, label: str, cells: list[Prediction], index: int, widget_key: str, **kwargs) -> None:
    """A radio or selectbox over the cells of a field, kept in CELL_INDEX across pages.

    Streamlit drops a widget's own state on pages where it is not drawn, so the choice
    lives in a plain session key and the widget only writes to it.
    """
    def remember() -> None:
        st.session_state[CELL_INDEX] = st.session_state[widget_key]

    widget(label, range(len(cells)), index=index, key=widget_key, on_change=remember,
           format_func=lambda i: cell_choice_label(i + 1, cells[i]), **kwargs)


def selected_cell(image: CurrentImage) -> tuple[list[Prediction], int]:
    """(every cell's prediction, index of the one the user picked) for the current image."""
    cells = predict_cells(image.digest, image.data)
    index = st.session_state.get(CELL_INDEX, 0)
    if not isinstance(index, int) or not 0 <= index < len(cells):
        index = 0
    return cells, index


def selected_cell_or_stop(image: CurrentImage, action: str) -> tuple[list[Prediction], int, Prediction]:
    """Classify the current image (spinner, cached) and return its cells, the picked index and
    that cell's prediction; if the image cannot be read, say so and stop the page."""
    get_classifier()  # shows its own spinner the first time
    try:
        with st.spinner("Classifying…"):
            cells, index = selected_cell(image)
    except ImageError as exc:
        st.error(f"**This image cannot be {action}.** {exc}", icon=":material/error:")
        st.stop()
    return cells, index, cells[index]


@st.cache_data(max_entries=16, show_spinner=False)
def original_preview(
    digest: str, _data: bytes, boxes: tuple[tuple[int, int, int, bool], ...], selected: int
) -> tuple[np.ndarray, tuple[int, int]]:
    """(display-sized original with the crop boxes drawn, (width, height) of the full image)."""
    rgb = load_image(_data)
    return preview_with_boxes(rgb, [CellBox(*box) for box in boxes], selected), (rgb.shape[1], rgb.shape[0])


STATUS_STYLE = {  # how each trust status is shown: Streamlit message kind and icon
    CONFIDENT: (st.success, ":material/check_circle:"),
    CHECK: (st.warning, ":material/help:"),
    UNFAMILIAR_SOURCE: (st.warning, ":material/travel_explore:"),
    OTHER_CELL_TYPE: (st.warning, ":material/category:"),
    NOT_BLOOD_CELL: (st.error, ":material/block:"),
}


def status_message(prediction: Prediction) -> None:
    """The prediction's status in plain words, coloured by how far to trust it."""
    show, icon = STATUS_STYLE[prediction.status]
    advice = get_classifier().trust.advice(prediction.status, prediction.other_type)
    show(f"**{prediction.status_text}.** {advice}", icon=icon)


def status_guide() -> None:
    """An expander with what each of the five statuses means and what to do about it."""
    missing = statuses_not_checked(get_classifier().trust)
    with st.expander("What the statuses mean"):
        for status in STATUSES:
            meaning, action = STATUS_GUIDE[status]
            note = " *(The installed model does not make this check yet.)*" if status in missing else ""
            st.markdown(f"**{STATUS_TEXT[status]}.** {meaning} {action}{note}")


@st.cache_data(max_entries=32, show_spinner=False)
def thumbnail(digest: str, _data: bytes, side: int = 360) -> np.ndarray:
    """Small RGB copy for the sidebar (any supported format, any size)."""
    image = Image.fromarray(load_image(_data))
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image)


@st.cache_data(max_entries=128, show_spinner=False)
def explain_crop(key: tuple, _crop: np.ndarray):
    """One explanation of the model's crop, cached by ``app_state.explanation_key``.

    ``key`` is (image digest, method, target or "", params as a sorted tuple, seed);
    ``_crop`` is not hashed, since the digest and the loaded model determine it.
    """
    _digest, method, target, params, seed = key
    return explain(get_classifier(), _crop, method=method, target=target or None, seed=seed, **dict(params))


COMPARISONS = "hv_comparisons"  # session cache: comparison key -> ImageComparison
MAX_COMPARISONS = 6  # each holds 8 maps of 224x224 floats (~1.6 MB): a few images' worth


def cached_comparison(key: tuple):
    """The comparison already run in this session for this image, cell and settings, if any."""
    return st.session_state.get(COMPARISONS, {}).get(key)


def run_comparison(key: tuple, crop: np.ndarray, settings: dict, progress):
    """Run ``hematovision.compare.compare_image`` and keep the result in the session.

    Kept per session rather than in ``st.cache_data`` so the run can drive a progress bar.
    """
    result = compare_image(get_classifier(), crop, list(settings["methods"]), target=settings["target"],
                           seed=settings["seed"], steps=settings["steps"], baseline=settings["baseline"],
                           stability_seeds=settings["stability_seeds"], sanity=settings["sanity"],
                           progress=progress)
    stored = st.session_state.setdefault(COMPARISONS, {})
    stored[key] = result
    while len(stored) > MAX_COMPARISONS:  # dicts keep insertion order: drop the oldest
        stored.pop(next(iter(stored)))
    return result


# ---------------------------------------------------------------------------
# Charts
# ---------------------------------------------------------------------------
def probability_figure(prediction: Prediction) -> go.Figure:
    """Horizontal bars of all class probabilities; the predicted class is highlighted."""
    names = list(CLASS_NAMES)[::-1]  # plotly draws the first bar at the bottom
    values = [100 * prediction.probabilities.get(name, 0.0) for name in names]
    colours = [PRIMARY if name == prediction.label else MUTED for name in names]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=[display_name(n) for n in names],
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1f}%" if v >= 0.05 else "<0.1%" for v in values],
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text="Class probabilities", x=0, font=dict(size=15)),
        xaxis=dict(range=[0, 112], title="Probability (%)", ticksuffix="%", dtick=25),
        yaxis=dict(title=None),
        height=260,
        margin=dict(l=10, r=10, t=40, b=40),
        showlegend=False,
    )
    return figure


def confusion_figure(matrix: list[list[float]], class_names: list[str], title: str) -> go.Figure:
    """Confusion matrix heatmap: rows are the true class, columns the predicted one.

    Colour shows the share of each true class (row-normalised), text shows the counts,
    so a rare class's errors are as visible as a common class's.
    """
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    labels = [display_name(c) for c in class_names]
    text = [[f"{int(round(v))}" for v in row] for row in counts]
    figure = go.Figure(
        go.Heatmap(
            z=shares,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="Row share", tickformat=".0%"),
            hovertemplate="True %{y}, predicted %{x}: %{text} (%{z:.1%} of row)<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text=title, x=0, font=dict(size=14)),
        xaxis=dict(title="Predicted class", side="bottom"),
        yaxis=dict(title="True class", autorange="reversed"),
        height=360,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return figure


def reliability_figure(before: list[dict], after: list[dict], title: str) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling.

    A calibrated model sits on the diagonal; marker size shows how many predictions a bin holds.
    """
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Perfect calibration",
                                line=dict(color=MUTED, dash="dash"), hoverinfo="skip"))
    for name, bins, colour in (("Raw softmax", before, "#c8553d"), ("Calibrated", after, PRIMARY)):
        filled = [b for b in bins if b.get("count")]
        total = sum(b["count"] for b in filled) or 1
        figure.add_trace(go.Scatter(
            x=[b["confidence"] for b in filled], y=[b["accuracy"] for b in filled], mode="lines+markers",
            name=name, line=dict(color=colour),
            marker=dict(size=[6 + 24 * (b["count"] / total) ** 0.5 for b in filled], color=colour),
            customdata=[b["count"] for b in filled],
            hovertemplate="confidence %{x:.1%}, accuracy %{y:.1%}, %{customdata} predictions<extra></extra>",
        ))
    figure.update_layout(
        title=dict(text=title, x=0, font=dict(size=14)), height=340, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="Confidence (15 bins)", range=[0.2, 1.02], tickformat=".0%"),
        yaxis=dict(title="Accuracy in the bin", range=[0, 1.02], tickformat=".0%"),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


def coverage_figure(curves: dict[str, list[dict]], threshold_points: dict[str, tuple[float, float]]) -> go.Figure:
    """Accuracy on the cells the model keeps, against the share it keeps, one line per data set."""
    figure = go.Figure()
    palette = [PRIMARY, "#c8553d", "#2a9d8f", "#6a4c93", "#e9a03b"]
    for (name, curve), colour in zip(curves.items(), palette):
        figure.add_trace(go.Scatter(
            x=[row["coverage"] for row in curve], y=[row["accuracy"] for row in curve], mode="lines",
            name=name, line=dict(color=colour),
            customdata=[row["threshold"] for row in curve],
            hovertemplate="keeps %{x:.1%}: accuracy %{y:.1%} (confidence ≥ %{customdata:.2f})<extra></extra>",
        ))
        if name in threshold_points:
            coverage, accuracy = threshold_points[name]
            figure.add_trace(go.Scatter(x=[coverage], y=[accuracy], mode="markers", showlegend=False,
                                        marker=dict(color=colour, size=11, symbol="diamond"),
                                        hovertemplate=f"{name} at the chosen threshold: keeps %{{x:.1%}}, "
                                                      "accuracy %{y:.1%}<extra></extra>"))
    figure.update_layout(
        title=dict(text="Coverage and accuracy (diamonds: the chosen threshold)", x=0, font=dict(size=14)),
        height=380, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="Share of cells the model keeps (the rest: 'check this cell')", tickformat=".0%",
                   autorange="reversed"),
        yaxis=dict(title="Accuracy on the kept cells", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


# ---------------------------------------------------------------------------
# Shared bits of page layout
# ---------------------------------------------------------------------------
@st.cache_data(max_entries=2000, show_spinner=False)
def thumbnail_uri(key: str, _rgb: np.ndarray) -> str:
    """A small image as a data URI, for st.column_config.ImageColumn (nothing is served from disk).

    Cached by ``key`` (e.g. a batch cell's key): the batch table is redrawn on every rerun.
    """
    import base64
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(_rgb, np.uint8)).save(buffer, format="JPEG", quality=85)
    return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


REPORT = "hv_image_report"  # (what it was built from, pdf bytes, html text)


def image_report_section(image: CurrentImage, cells: list[Prediction], cell_index: int,
                         explanations: dict | None = None) -> None:
    """'Prepare a report' for the cell on screen, then PDF and HTML downloads.

    Built on request (LIME and SHAP take a few seconds when the page has not run them) and
    kept for the session while the image, cell and maps stay the same.
    """
    explanations = {m: e for m, e in (explanations or {}).items() if m in REPORT_METHODS}
    built_from = (image.digest, cell_index, tuple(sorted((m, e.target, str(e.params)) for m, e in explanations.items())))
    stem = f"hematovision-report-{image.short_id}" + (f"-cell{cell_index + 1}" if len(cells) > 1 else "")
    left, middle, right = st.columns(3, vertical_alignment="center")
    if left.button("Prepare a report (PDF and HTML)", icon=":material/description:", width="stretch",
                   key="hv_prepare_image_report"):
        with st.spinner("Drawing the four explanations and the report…"):
            report = build_image_report(get_classifier(), image.name, load_image(image.data), cells[cell_index],
                                        cells_in_image=len(cells), cell_number=cell_index + 1,
                                        explanations=explanations)
            st.session_state[REPORT] = (built_from, image_report_pdf(report), image_report_html(report))
    prepared = st.session_state.get(REPORT)
    if prepared and prepared[0] == built_from:
        middle.download_button("Download PDF report", prepared[1], file_name=f"{stem}.pdf", mime="application/pdf",
                               icon=":material/download:", on_click="ignore", width="stretch")
        right.download_button("Download HTML report", prepared[2], file_name=f"{stem}.html", mime="text/html",
                              icon=":material/download:", on_click="ignore", width="stretch")
    else:
        middle.caption("The image, its prediction and probability chart, and the four explanation overlays, "
                       "with the model's measured accuracy.")


def decision_support_note() -> None:
    st.caption(
        "HematoVision is decision support for education and research. It is not a "
        "diagnostic device: a qualified person must review every cell and result."
    )


def sidebar_current_image() -> None:
    """Show the image in use (if any) in the sidebar on every page."""
    image = current_image()
    with st.sidebar:
        st.markdown("**Current image**")
        if image is None:
            st.caption("None yet. Choose one on the Classify page.")
            return
        st.image(thumbnail(image.digest, image.data), caption=f"{image.name} ({image.source})",
                 width="stretch")


# ---------------------------------------------------------------------------
# Overlays (drawing lives in hematovision.overlay; this only adapts and caches)
# ---------------------------------------------------------------------------
OVERLAY_LEGEND = (
    "How to read the maps. Grad-CAM and Grad-CAM++ show only evidence *for* the class, "
    "on a blue (weak) to red (strongest in this image) scale. LIME and SHAP are signed: "
    "**red** regions push the probability of the class up, **blue** regions push it down. "
    "Each map is scaled to its own maximum, and weak evidence is drawn more transparent, "
    "so compare where the maps point rather than how bright they are. The downloaded PNGs "
    "include a colour bar. Times on the first image after the app starts include one-time "
    "set-up; later images are faster, and revisiting an image reuses its maps."
)


def overlay_image(crop: np.ndarray, explanation, opacity: float, view: str) -> np.ndarray:
    return overlay.overlay(crop, explanation.attribution, signed=explanation.signed,
                           opacity=opacity, view=view)


@st.cache_data(max_entries=64, show_spinner=False)
def overlay_download(key: tuple, opacity: float, view: str, _crop: np.ndarray, _explanation) -> bytes:
    """PNG (overlay + colour bar) for a download button, cached per explanation and display.

    ``key`` is the explanation's cache key; it determines ``_crop`` and ``_explanation``.
    """
    return overlay.explanation_png(_crop, _explanation, opacity=opacity, view=view)
