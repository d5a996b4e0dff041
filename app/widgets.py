"""Widgets and page sections shared by the pages: the uploader, the cell picker, status boxes,
the report section, the sidebar's current image and the overlays."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import caches, state
from app.auth import signed_in_name
from app.state import (
    CELL_INDEX,
    IMAGE_REPORT,
    PSEUDONYMISE_IMAGE_REPORT,
    UPLOAD_ERROR,
    CurrentImage,
)
from app.texts import STATUS_GUIDE, cell_choice_label, statuses_not_checked
from hematovision.explanation import overlay
from hematovision.explanation.explainers import Explanation
from hematovision.model.classifier import Prediction
from hematovision.model.imaging import (
    MAX_UPLOAD_BYTES,
    SUPPORTED_SUFFIXES,
    ImageError,
    over_upload_limit,
)
from hematovision.model.trust import (
    CHECK,
    CONFIDENT,
    NOT_BLOOD_CELL,
    OTHER_CELL_TYPE,
    STATUS_TEXT,
    STATUSES,
    UNFAMILIAR_SOURCE,
)
from hematovision.workflows.pseudonyms import Pseudonyms
from hematovision.workflows.report import (
    REPORT_METHODS,
    build_image_report,
    image_report_html,
    image_report_pdf,
)
from hematovision.workflows.samples import find_sample


# ---------------------------------------------------------------------------
# Choosing the image
# ---------------------------------------------------------------------------
def handle_upload(data: bytes | None, name: str | None) -> None:
    """Make an uploaded file the current image, or record why it cannot be used.

    Called from an uploader's on_change callback, so it runs only when the user actually
    adds or removes a file (not when they come back from another page).
    """
    if data is None:  # the user removed the file
        st.session_state[UPLOAD_ERROR] = None
        image = state.current_image()
        if image is not None and image.source == "upload":
            state.set_current_image(None)
        return
    if over_upload_limit(len(data)):
        # The browser and Streamlit's upload endpoint enforce server.maxUploadSize; this is the
        # same cap on the server side, for any path that delivers bytes without them.
        state.refuse_upload(f"The file is {len(data):,} bytes, over the upload limit of "
                            f"{MAX_UPLOAD_BYTES // 2**20} MB ({MAX_UPLOAD_BYTES:,} bytes).")
        return
    image = state.uploaded_image(data, name)
    try:  # refuse a bad file before any page sees it; the decoded image is kept for the pages
        caches.decoded_image(image.digest, image.data)
    except ImageError as exc:
        state.refuse_upload(str(exc))
        return
    state.set_current_image(image)


def image_uploader(page: str, label: str = "Upload a smear photo") -> None:
    """The file uploader every page uses: checks the file and makes it the current image."""
    key = state.uploader_key(page)

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
    state.set_current_image(state.sample_image(sample.read_bytes(), sample.key, sample.title))
    state.clear_uploader()


def profile_note() -> None:
    """Beside a prediction: which lab profile adapted the model, when one is in use."""
    profile = state.lab_profile()
    if profile is not None:
        st.caption(f":material/tune: Adapted by {profile.describe()} (Batch page: change or stop it).")


def sidebar_current_image() -> None:
    """Show the image in use (if any), and the lab profile in use, in the sidebar on every page."""
    image = state.current_image()
    with st.sidebar:
        profile = state.lab_profile()
        if profile is not None:
            st.markdown(f"**Lab profile** `{profile.short_id}`")
            st.caption(profile.source)
        st.markdown("**Current image**")
        if image is None:
            st.caption("None yet. Choose one on the Classify page.")
            return
        st.image(caches.thumbnail(image.digest, image.data), caption=f"{image.name} ({image.source})",
                 width="stretch")


# ---------------------------------------------------------------------------
# The cells of the current image
# ---------------------------------------------------------------------------
def selected_cell_or_stop(image: CurrentImage, action: str) -> tuple[list[Prediction], int, Prediction]:
    """Classify the current image (spinner, cached) and return its cells, the picked index and
    that cell's prediction; if the image cannot be read, say so and stop the page."""
    caches.classifier()  # shows its own spinner the first time
    try:
        with st.spinner("Classifying…"):
            cells = caches.predict_cells(image.digest, image.data, state.lab_profile_id())
    except ImageError as exc:  # should not happen: uploads are checked when they arrive
        st.error(f"**This image cannot be {action}.** {exc}", icon=":material/error:")
        st.stop()
    index = st.session_state.get(CELL_INDEX, 0)
    if not isinstance(index, int) or not 0 <= index < len(cells):
        index = 0
    return cells, index, cells[index]


def cell_picker(widget, label: str, cells: list[Prediction], index: int, widget_key: str, **kwargs) -> None:
    """A radio or selectbox over the cells of a field, kept in CELL_INDEX across pages.

    Streamlit drops a widget's own state on pages where it is not drawn, so the choice
    lives in a plain session key and the widget only writes to it.
    """
    def remember() -> None:
        st.session_state[CELL_INDEX] = st.session_state[widget_key]

    widget(label, range(len(cells)), index=index, key=widget_key, on_change=remember,
           format_func=lambda i: cell_choice_label(i + 1, cells[i]), **kwargs)


# ---------------------------------------------------------------------------
# Statuses
# ---------------------------------------------------------------------------
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
    advice = caches.classifier().trust.advice(prediction.status, prediction.other_type)
    show(f"**{prediction.status_text}.** {advice}", icon=icon)


def status_guide() -> None:
    """An expander with what each of the five statuses means and what to do about it."""
    missing = statuses_not_checked(caches.classifier().trust)
    with st.expander("What the statuses mean"):
        for status in STATUSES:
            meaning, action = STATUS_GUIDE[status]
            note = " *(The installed model does not make this check yet.)*" if status in missing else ""
            st.markdown(f"**{STATUS_TEXT[status]}.** {meaning} {action}{note}")


# ---------------------------------------------------------------------------
# Report and disclaimer
# ---------------------------------------------------------------------------
def image_report_section(image: CurrentImage, cells: list[Prediction], cell_index: int,
                         explanations: dict[str, Explanation] | None = None) -> None:
    """'Prepare a report' for the cell on screen, then PDF and HTML downloads.

    Built on request (LIME and SHAP take a few seconds when the page has not run them) and
    kept for the session while the image, cell and maps stay the same.
    """
    explanations = {m: e for m, e in (explanations or {}).items() if m in REPORT_METHODS}
    pseudonymise = st.toggle("Pseudonymise the file name", value=True, key=PSEUDONYMISE_IMAGE_REPORT,
                             help=PSEUDONYMISE_HELP)
    name_in_report = Pseudonyms.for_names([image.name])[image.name] if pseudonymise else image.name
    if pseudonymise:
        st.caption(f"The report calls the image **{name_in_report}**; its file name, {image.name!r}, "
                   "is shown only here.")
    built_from = (image.digest, cell_index, state.lab_profile_id(), name_in_report, signed_in_name(),
                  tuple(sorted((m, e.target, str(e.params)) for m, e in explanations.items())))
    stem = f"hematovision-report-{image.short_id}" + (f"-cell{cell_index + 1}" if len(cells) > 1 else "")
    left, middle, right = st.columns(3, vertical_alignment="center")
    if left.button("Prepare a report (PDF and HTML)", icon=":material/description:", width="stretch",
                   key="hv_prepare_image_report"):
        with st.spinner("Drawing the four explanations and the report…"):
            report = build_image_report(caches.classifier(), name_in_report,
                                        caches.decoded_image(image.digest, image.data), cells[cell_index],
                                        cells_in_image=len(cells), cell_number=cell_index + 1,
                                        explanations=explanations, signed_in=signed_in_name() or "")
            st.session_state[IMAGE_REPORT] = (built_from, image_report_pdf(report), image_report_html(report))
    prepared = st.session_state.get(IMAGE_REPORT)
    if prepared and prepared[0] == built_from:
        middle.download_button("Download PDF report", prepared[1], file_name=f"{stem}.pdf", mime="application/pdf",
                               icon=":material/download:", on_click="ignore", width="stretch")
        right.download_button("Download HTML report", prepared[2], file_name=f"{stem}.html", mime="text/html",
                              icon=":material/download:", on_click="ignore", width="stretch")
    else:
        middle.caption("The image, its prediction and probability chart, and the four explanation overlays, "
                       "with the model's measured accuracy.")


PSEUDONYMISE_HELP = ("Labs often name files by patient or accession number, and reports travel by e-mail. "
                     "On: exports call images image-001, image-002, …; the real names stay in this session.")


def decision_support_note() -> None:
    st.caption(
        "HematoVision is decision support for education and research. It is not a "
        "diagnostic device: a qualified person must review every cell and result."
    )


# ---------------------------------------------------------------------------
# Overlays (drawing lives in hematovision.explanation.overlay; this only adapts it)
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


def overlay_image(crop: np.ndarray, explanation: Explanation, opacity: float, view: str) -> np.ndarray:
    return overlay.overlay(crop, explanation.attribution, signed=explanation.signed,
                           opacity=opacity, view=view)
