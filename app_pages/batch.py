"""Batch: classify many cells, review each call, and count the differential."""

from __future__ import annotations

import hashlib

import streamlit as st

from app import caches, state, widgets
from app.auth import signed_in_name
from app.page_paths import EXPLAIN_PAGE
from app.state import (
    BATCH,
    BATCH_NORM_OPTION,
    BATCH_REPORT,
    BATCH_TARGET,
    BATCH_UPLOADER,
    CELL_INDEX,
    PROFILE_MESSAGE,
    PROFILE_UPLOADER,
    PSEUDONYMISE_BATCH,
    REVIEW_INITIALS,
    REVIEW_MESSAGE,
    REVIEW_NOTE,
    REVIEW_UPLOADER,
    card_key,
    review_key,
    uploaded_image,
)
from app.texts import UNSEEN_LAB_OTHER_CELLS, format_percent, status_label
from hematovision import charts
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.model.imaging import SUPPORTED_SUFFIXES
from hematovision.model.lab_profile import (
    LabProfile,
    LabProfileError,
    few_shot_from_predictions,
    unlabelled_from_predictions,
)
from hematovision.workflows.batch import (
    NOT_CLASSED,
    BatchCell,
    Skipped,
    UploadedImage,
    cells_csv,
    classify_batch,
    confirm_unreviewed,
    expand_uploads,
    other_cells,
    set_review,
)
from hematovision.workflows.differential import (
    INTERVAL_NOTE,
    REFERENCE_SOURCE,
    TARGET_COUNTS,
    differential,
)
from hematovision.workflows.pseudonyms import Pseudonyms, batch_digests
from hematovision.workflows.report import (
    batch_report_html,
    batch_report_pdf,
    build_batch_report,
    other_types_note,
)
from hematovision.workflows.review_file import (
    MAX_INITIALS,
    MAX_NOTE,
    Review,
    ReviewFileError,
    resume,
    review_of,
)

state.init_state()
PAGE_SIZE = 24
COLUMNS = 4
# The boxes' "not reviewed" choice: a selectbox reads None as "nothing chosen" and shows an empty box.
NOT_REVIEWED = "NOT_REVIEWED"
REVIEW_CHOICES = [NOT_REVIEWED, *CLASS_NAMES, NOT_CLASSED]
FLAG_TEXT = {"low": "below range", "high": "above range", "": "within range", "–": "–"}


def review_label(choice: str | None) -> str:
    if choice in (None, NOT_REVIEWED):
        return "Not reviewed"
    return "Not classed (leave out)" if choice == NOT_CLASSED else display_name(choice)


def classify_uploads(uploaded) -> None:
    files = [(item.name, item.getvalue()) for item in uploaded]
    images, skipped = expand_uploads(files)
    cells, unreadable = classify_images(images)
    digest = hashlib.sha256(b"".join(image.data[:64] for image in images)).hexdigest()[:12]
    st.session_state[BATCH] = {"cells": cells, "skipped": skipped + unreadable, "id": digest,
                               "images": {image.digest: (image.name, image.data) for image in images},
                               "profile": state.lab_profile_id()}
    st.session_state.pop(BATCH_REPORT, None)
    st.session_state.pop(REVIEW_MESSAGE, None)


def classify_images(images: list[UploadedImage]) -> tuple[list[BatchCell], list[Skipped]]:
    bar = st.progress(0.0, text=f"Classifying {len(images)} images…")
    result = classify_batch(caches.classifier(), images,
                            lambda done, total, name: bar.progress(done / total, text=f"{done}/{total}: {name}"))
    bar.empty()
    return result


def reclassify_with_current_profile(batch: dict) -> None:
    """Classify the batch again after the lab profile changed; each cell keeps its review."""
    reviews = {cell.key: cell.reviewed for cell in batch["cells"]}
    images = [UploadedImage(name, data) for name, data in batch["images"].values()]
    cells, _ = classify_images(images)
    for cell in cells:
        cell.reviewed = reviews.get(cell.key)
    batch.update(cells=cells, profile=state.lab_profile_id())
    st.session_state.pop(BATCH_REPORT, None)


def use_profile(profile: LabProfile | None, message: str) -> None:
    state.set_lab_profile(profile)
    caution = profile.caution if profile is not None else None
    st.session_state[PROFILE_MESSAGE] = ("warning", f"{message} {caution}") if caution else ("success", message)


def build_profile(kind: str) -> None:
    """Build a profile from the current batch: unlabelled from every cell, few-shot from the reviews."""
    cells = st.session_state[BATCH]["cells"]
    shipped = caches.get_classifier()
    try:
        if kind == "batch":
            profile = unlabelled_from_predictions(shipped, [cell.prediction for cell in cells],
                                                  batch_norm=st.session_state.get(BATCH_NORM_OPTION, False))
        else:
            profile = few_shot_from_predictions(shipped, reviewed_cells(cells))
    except LabProfileError as exc:
        st.session_state[PROFILE_MESSAGE] = ("error", str(exc))
        return
    use_profile(profile, f"Now using {profile.describe()}. The batch was classified again with it; "
                         "your reviews are kept.")


def load_profile_file() -> None:
    uploaded = st.session_state.get(PROFILE_UPLOADER)
    if uploaded is None:
        return
    try:
        profile = LabProfile.from_bytes(uploaded.getvalue())
        shipped = caches.get_classifier()
        profile.check_model(shipped.model_sha256, shipped.backend.precision)
    except LabProfileError as exc:
        st.session_state[PROFILE_MESSAGE] = ("error", f"{exc} The model is used as it was.")
        return
    use_profile(profile, f"Now using {profile.describe()}.")


def stop_profile() -> None:
    use_profile(None, "Stopped using the lab profile: the shipped model, as trained, again.")


def reviewed_cells(cells: list[BatchCell]) -> dict[str, list]:
    """Each class's reviewed cells (a review that moved a cell counts for the class it was moved to)."""
    return {name: [cell.prediction for cell in cells if cell.reviewed == name] for name in CLASS_NAMES}


def lab_profile_panel(cells: list[BatchCell] | None) -> None:
    """Build, download, upload or stop a lab profile; its effect shows on every page."""
    profile = state.lab_profile()
    with st.expander("Lab profile: fit the model to your lab" + (f" (in use: {profile.short_id})" if profile else ""),
                     expanded=profile is not None or PROFILE_MESSAGE in st.session_state):
        st.markdown(
            "Photos from your microscope, stain and camera are not the ones the model learned from. A *lab profile* "
            "adapts it in seconds: **from this batch** (30 or more cells, no labels) it learns what your lab looks "
            "like, so your cells stop being flagged as *unfamiliar*; **from your reviews** (at least one reviewed "
            "cell of each type; 5 or more each is better) it also refits its last layer on the cells you labelled. "
            "The Model page shows how much each helps on labs it never saw.")
        kind, text = st.session_state.pop(PROFILE_MESSAGE, (None, None))
        if kind == "error":
            st.error(text, icon=":material/error:")
        elif kind == "success":
            st.success(text, icon=":material/check_circle:")
        elif kind == "warning":
            st.warning(text, icon=":material/warning:")
        if profile is not None:
            st.markdown(f"**In use:** {profile.describe()}")
            if profile.caution and kind != "warning":  # just shown above, with the build's message
                st.warning(profile.caution, icon=":material/warning:")
        reviewed = reviewed_cells(cells or [])
        counts = ", ".join(f"{len(reviewed[name])} {display_name(name).lower()}" for name in CLASS_NAMES)
        build, from_reviews, download, stop = st.columns(4, vertical_alignment="bottom")
        build.button("Build from this batch", on_click=build_profile, args=("batch",), disabled=not cells,
                     key="hv_profile_from_batch", icon=":material/auto_fix_high:", width="stretch",
                     help="Uses every cell of this batch, without labels.")
        from_reviews.button("Build from my reviews", on_click=build_profile, args=("reviews",), disabled=not cells,
                            key="hv_profile_from_reviews", icon=":material/rule:", width="stretch",
                            help=f"Reviewed cells so far: {counts}.")
        if profile is not None:
            download.download_button("Download the profile", profile.to_bytes(),
                                     file_name=f"hematovision-lab-profile-{profile.short_id}.json",
                                     mime="application/json", icon=":material/download:", on_click="ignore",
                                     width="stretch", key="hv_profile_download")
            stop.button("Stop using it", on_click=stop_profile, key="hv_profile_stop", icon=":material/close:",
                        width="stretch")
        st.checkbox("From this batch, also re-estimate the network's last batch norm", key=BATCH_NORM_OPTION,
                    help="This changes the classes too. Built from a batch with the four types in similar "
                         "numbers, it gained 3 to 20 points on labs the model never saw; from a batch that is "
                         "mostly one type, as a differential is, it lost 3 to 4 points on two of them. "
                         "The Model page has the numbers.")
        st.file_uploader("Use a saved profile (.json)", type=["json"], key=PROFILE_UPLOADER,
                         on_change=load_profile_file,
                         help="A profile downloaded here or written by `python -m hematovision adapt`, for "
                              "this model. It stays in memory for this session only.")


def remember_review(cell_key: str, widget_key: str) -> None:
    choice = st.session_state[widget_key]
    set_review(st.session_state[BATCH]["cells"], cell_key, None if choice == NOT_REVIEWED else choice)


def open_in_explain(cell: BatchCell) -> None:
    """Make the cell's image current, pick the cell, and go to the Explain page."""
    name, data = st.session_state[BATCH]["images"][cell.image_sha256]
    state.set_current_image(uploaded_image(data, name))  # classify_batch has read it
    st.session_state[CELL_INDEX] = cell.cell_number - 1
    st.switch_page(EXPLAIN_PAGE)


def show_reviews_in_widgets(batch: dict) -> None:
    """Set every 'Reviewed as' box to its cell's review as it is now: a box keeps showing its own
    value, whatever changed the cell behind it (confirm all, clear all, a resumed review)."""
    for cell in batch["cells"]:
        st.session_state[review_key(batch["id"], cell.key)] = cell.reviewed or NOT_REVIEWED


def confirm_all(batch: dict) -> None:
    confirm_unreviewed(batch["cells"])
    show_reviews_in_widgets(batch)


def clear_reviews(batch: dict) -> None:
    for cell in batch["cells"]:
        cell.reviewed = None
    show_reviews_in_widgets(batch)


def resume_review() -> None:
    """Put a saved review back onto this batch, or say why it cannot be (never raises)."""
    uploaded = st.session_state.get(REVIEW_UPLOADER)
    if uploaded is None:
        return
    batch = st.session_state[BATCH]
    try:
        review = Review.from_bytes(uploaded.getvalue())
        review.check_model(caches.get_classifier().model_sha256)
    except ReviewFileError as exc:
        st.session_state[REVIEW_MESSAGE] = ("error", f"{exc} The batch's reviews are as they were.", [])
        return
    outcome = resume(review, batch["cells"])
    show_reviews_in_widgets(batch)
    for key, text in ((REVIEW_INITIALS, review.initials), (REVIEW_NOTE, review.note)):
        st.session_state[key] = st.session_state[f"{key}_input"] = text
    st.session_state.pop(BATCH_REPORT, None)
    who = f" by {review.initials}" if review.initials else ""
    text = f"Resumed the review{who} saved {review.created.replace('T', ' ')[:16]} UTC: {outcome.summary()}."
    if review.lab_profile != state.lab_profile_id():
        text += (" It was made with a different lab profile from the one in use now, so some of the model's "
                 "calls may differ from those reviewed.")
    unmatched = [f"In the file, not in this batch: {saved.describe()}" for saved in outcome.not_found]
    unmatched += [f"In this batch, not in the file: {cell.file}, cell {cell.cell_number}" for cell in outcome.not_in_file]
    st.session_state[REVIEW_MESSAGE] = ("warning" if unmatched or outcome.other_calls else "success", text, unmatched)


def remembered_input(column, label: str, key: str, limit: int, **kwargs) -> None:
    """A text box whose text lives in ``key``: Streamlit forgets a widget's own state on pages
    that do not draw it, and the initials must survive a visit to the Explain page."""
    widget_key = f"{key}_input"

    def remember() -> None:
        st.session_state[key] = st.session_state[widget_key]

    if widget_key not in st.session_state:
        st.session_state[widget_key] = st.session_state.get(key, "")
    column.text_input(label, max_chars=limit, key=widget_key, on_change=remember, **kwargs)


def review_file_panel(batch: dict) -> None:
    """Save the review as a file, or resume one saved earlier: the review outlives the browser session."""
    message = st.session_state.get(REVIEW_MESSAGE)
    with st.expander("Save or resume the review", expanded=message is not None):
        st.markdown(
            "A review lives in this browser session only. **Save review** downloads it as a small JSON file (each "
            "cell's image hash and box, the model's call and yours, your initials and note, the time, and the "
            "model and lab profile used). To carry on later, upload the same images, press **Classify**, then "
            "**Resume review** with that file. Nothing is stored on the server.")
        initials, note = st.columns([1, 3])
        remembered_input(initials, "Reviewer initials", REVIEW_INITIALS, MAX_INITIALS,
                         help="Printed beside every change in the report.")
        remembered_input(note, "Note", REVIEW_NOTE, MAX_NOTE, placeholder="e.g. smear 12, ward 3")
        review = review_of(batch["cells"], caches.get_classifier().model_sha256 or "", state.lab_profile_id(),
                           st.session_state.get(REVIEW_INITIALS, ""), st.session_state.get(REVIEW_NOTE, ""))
        save, load = st.columns([1, 2], vertical_alignment="bottom")
        save.download_button("Save review", review.to_bytes(), file_name=f"hematovision-review-{batch['id']}.json",
                             mime="application/json", icon=":material/save:", on_click="ignore", width="stretch",
                             key="hv_review_save")
        load.file_uploader("Resume review (.json)", type=["json"], key=REVIEW_UPLOADER, on_change=resume_review,
                           help="A review file saved here, for the same images and this model.")
        if st.session_state.get(REVIEW_UPLOADER) is not None:
            # The uploader reads its file when it changes; a batch classified anew needs a nudge.
            load.button("Apply this file to the batch again", key="hv_review_reapply", on_click=resume_review,
                        icon=":material/replay:",
                        help="After pressing Classify again, the file above is not read again by itself.")
        if message is not None:
            kind, text, unmatched = message
            {"error": st.error, "warning": st.warning, "success": st.success}[kind](text)
            if unmatched:
                st.dataframe({"Not matched": unmatched}, hide_index=True, width="stretch")


# ---------------------------------------------------------------------------
st.title("Batch differential")
st.markdown(
    "Upload many cell images at once (or a .zip of them). HematoVision classifies every white cell; "
    "you then confirm each call, move it to another class, or leave it out, as in a digital "
    "morphology analyser's review. The differential below always counts the reviewed classes."
)

uploaded = st.file_uploader(
    "Cell images or .zip archives",
    type=[suffix.lstrip(".") for suffix in SUPPORTED_SUFFIXES] + ["zip"],
    accept_multiple_files=True,
    key=BATCH_UPLOADER,
    help="Up to 20 MB per file; zips may hold folders (at most 1,000 images). Everything stays in memory.",
)
batch = st.session_state.get(BATCH)
if batch is not None and batch.get("profile", "") != state.lab_profile_id():
    reclassify_with_current_profile(batch)
if st.button(f"Classify {len(uploaded)} file{'s' if len(uploaded) != 1 else ''}", type="primary",
             disabled=not uploaded, icon=":material/play_arrow:", key="hv_batch_classify",
             help="Starts a new batch; the reviews of the current batch are discarded."):
    classify_uploads(uploaded)
    batch = st.session_state[BATCH]
lab_profile_panel(batch["cells"] if batch else None)
if batch is not None and batch["cells"]:
    review_file_panel(batch)

if batch is None:
    st.info("No batch yet: upload images above and press **Classify**.", icon=":material/info:")
    widgets.decision_support_note()
    st.stop()

cells: list[BatchCell] = batch["cells"]
skipped: list[Skipped] = batch["skipped"]
if skipped:
    with st.expander(f"{len(skipped)} file{'s' if len(skipped) != 1 else ''} could not be used", expanded=True):
        st.dataframe([{"File": s.name, "Reason": s.reason} for s in skipped], hide_index=True, width="stretch")
if not cells:
    st.warning("No white cells were found in this batch.", icon=":material/warning:")
    st.stop()

# ---------------------------------------------------------------------------
# The differential
# ---------------------------------------------------------------------------
result = differential(cells)
st.subheader("Differential")
metrics = st.columns(5)
metrics[0].metric("White cells", result.total_cells)
metrics[1].metric("Counted", result.counted, help="Cells left out: other cell types (listed for review), images "
                                                    "that are not blood cells, and cells you marked 'not classed'. "
                                                    "A cell you move to a class counts in that class.")
metrics[2].metric("Reviewed", f"{result.reviewed} / {result.total_cells}")
metrics[3].metric("Changed by you", result.changed)
metrics[4].metric("Flagged for a check", result.flagged_for_check)
if result.not_classed:
    st.caption(f"Left out of the count: {result.left_out_text()}.")
if result.unfamiliar_source:
    st.warning(
        f"**{result.unfamiliar_source} of {result.total_cells} cells look unlike the labs the model was trained "
        "on** (another stain, microscope or camera). They are counted under the class the model gives, but its "
        "confidence is less reliable for them: check each one (filter *Flagged for a check* below), or build a "
        "*lab profile* (above) that adapts the model to your lab.", icon=":material/travel_explore:")
table, chart = st.columns([1.3, 1], gap="large")
target = table.radio("Target count", TARGET_COUNTS, horizontal=True, key=BATCH_TARGET,
                     format_func=lambda n: f"{n} cells",
                     help="Manual differentials count 100 or 200 cells: the more cells, the narrower each interval.")
table.progress(min(1.0, result.counted / target),
               text=f"{result.counted} of {target} cells counted"
                    + (" (target reached)" if result.counted >= target else f": {target - result.counted} to go"))
table.dataframe(
    [{"Cell type": display_name(r.cell_type), "Count": r.count,
      "Share": "–" if r.percent is None else f"{r.percent:.1f}%", "95% interval": r.interval_text(),
      "Adult reference": f"{r.reference[0]:g}–{r.reference[1]:g}%", "Flag": FLAG_TEXT[r.flag]} for r in result.rows],
    hide_index=True, width="stretch")
for row in result.rows:
    if row.flag in ("low", "high"):
        (table.error if row.finding else table.warning)(f"**{display_name(row.cell_type)}**: {row.flag_text()}.",
                                                         icon=":material/warning:")
table.caption(" ".join((INTERVAL_NOTE, REFERENCE_SOURCE,
                        other_types_note(caches.get_classifier().trust.other_types is not None))))
chart.plotly_chart(charts.differential_figure(result.rows), key="hv_batch_chart")
chart.caption(charts.DIFFERENTIAL_LEGEND)

# ---------------------------------------------------------------------------
# Other cells: none of the four types, kept out of the counts
# ---------------------------------------------------------------------------
others = other_cells(cells)
if others:
    st.subheader("Other cells, review")
    st.markdown(f"{len(others)} cell{'s look' if len(others) != 1 else ' looks'} like a blood cell that is none of "
                "the four types. They are not in the differential above: identify each yourself, and move it to "
                f"a class below if the model was wrong. {UNSEEN_LAB_OTHER_CELLS}")
    for start in range(0, len(others), COLUMNS):
        for column, cell in zip(st.columns(COLUMNS), others[start:start + COLUMNS]):
            with column.container(border=True):
                st.image(cell.thumbnail, width=96)
                where = f" · cell {cell.cell_number} of {cell.cells_in_image}" if cell.cells_in_image > 1 else ""
                st.caption(f"{cell.file}{where}")
                chance = cell.prediction.other_type_probability
                st.markdown(f"Looks most like **{cell.looks_like}**"
                            + (f" ({format_percent(chance, 0)} that it is none of the four)" if chance is not None
                               else ""))
                if st.button("Explain", key=f"hv_batch_other_explain_{cell.key}", icon=":material/visibility:",
                             width="stretch"):
                    open_in_explain(cell)

# ---------------------------------------------------------------------------
# Review
# ---------------------------------------------------------------------------
st.subheader("Review the cells")
with st.expander(f"All {len(cells)} cells as a table"):
    st.dataframe(
        [{"Cell": caches.thumbnail_uri(cell.key, cell.thumbnail), "File": cell.file, "No.": cell.cell_number,
          "Predicted": display_name(cell.predicted), "Confidence": cell.prediction.confidence,
          "Status": status_label(cell.prediction), "Reviewed as": review_label(cell.reviewed),
          "Counted as": cell.counted_as} for cell in cells],
        column_config={"Cell": st.column_config.ImageColumn("Cell", width="small"),
                       "Confidence": st.column_config.ProgressColumn("Confidence", format="percent", min_value=0,
                                                                     max_value=1)},
        hide_index=True, width="stretch", row_height=64)
left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
show = left.radio("Show", ["All cells", "Flagged for a check", "Not reviewed"], horizontal=True,
                  key="hv_batch_filter")
middle.button("Confirm all unreviewed", on_click=confirm_all, args=(batch,), width="stretch",
              key="hv_batch_confirm_all", help="Accept the model's class for every cell you have not reviewed. "
                                               "Other cell types and non-blood images are left for you to decide.")
right.button("Clear all reviews", on_click=clear_reviews, args=(batch,), width="stretch", key="hv_batch_clear")
shown = [c for c in cells if show == "All cells" or (show == "Flagged for a check" and c.needs_check)
         or (show == "Not reviewed" and c.reviewed is None)]
pages = max(1, -(-len(shown) // PAGE_SIZE))
page = st.number_input("Page", 1, pages, 1, key="hv_batch_page") if pages > 1 else 1
if not shown:
    st.caption("No cells match this filter.")
for start in range(0, len(shown[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]), COLUMNS):
    row = st.columns(COLUMNS)
    for column, cell in zip(row, shown[(page - 1) * PAGE_SIZE + start: (page - 1) * PAGE_SIZE + start + COLUMNS]):
        # The key gives the card a stable CSS class (st-key-…), which the browser tests find it by.
        with column.container(border=True, key=card_key(cell.key)):
            st.image(cell.thumbnail, width=120)
            where = f" · cell {cell.cell_number} of {cell.cells_in_image}" if cell.cells_in_image > 1 else ""
            st.caption(f"{cell.file}{where}")
            if cell.is_other_cell:
                st.markdown(f"**Other cell**: looks like {cell.prediction.other_type or 'none of the four'}  \n"
                            f":orange[nearest of the four: {display_name(cell.predicted)}]")
            else:
                flag = f"  \n:orange[{cell.prediction.status_text.lower()}]" if cell.needs_check else ""
                st.markdown(f"**{display_name(cell.predicted)}** "
                            f"{format_percent(cell.prediction.confidence, 0)}{flag}")
            widget_key = review_key(batch["id"], cell.key)
            if widget_key not in st.session_state:  # a new batch, or a box Streamlit dropped on another page
                st.session_state[widget_key] = cell.reviewed or NOT_REVIEWED
            st.selectbox("Reviewed as", REVIEW_CHOICES, format_func=review_label, key=widget_key,
                         on_change=remember_review,
                         args=(cell.key, widget_key), label_visibility="collapsed")
            if st.button("Explain", key=f"hv_batch_explain_{cell.key}", icon=":material/visibility:", width="stretch"):
                open_in_explain(cell)

# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------
st.subheader("Export")
initials, note = st.session_state.get(REVIEW_INITIALS, ""), st.session_state.get(REVIEW_NOTE, "")
signed_in = signed_in_name() or ""
pseudonymise = st.toggle("Pseudonymise file names", value=True, key=PSEUDONYMISE_BATCH,
                         help=widgets.PSEUDONYMISE_HELP)
pseudonyms = Pseudonyms.for_batch(cells, skipped)
exported, exported_skipped = (pseudonyms.cells(cells), pseudonyms.skipped(skipped)) if pseudonymise else (cells, skipped)
if pseudonymise:
    with st.expander(f"Key to the pseudonyms ({len(pseudonyms.by_name)} files): shown only in this session"):
        st.dataframe([{"In the exports": alias, "File": name} for name, alias in pseudonyms.by_name.items()],
                     hide_index=True)
        st.download_button("Download the key (CSV)", pseudonyms.mapping_csv(batch_digests(cells)),
                           file_name=f"hematovision-key-{batch['id']}.csv", mime="text/csv", on_click="ignore",
                           icon=":material/key:", help="Keep it apart from the reports and the CSV of cells.")
signature = (batch["id"], tuple(cell.reviewed for cell in cells), initials, note, pseudonymise, signed_in)
left, middle, right = st.columns(3)
left.download_button("Download CSV of all cells", cells_csv(exported, state.lab_profile_id()),
                     file_name=f"hematovision-batch-{batch['id']}.csv",
                     mime="text/csv", icon=":material/download:", on_click="ignore", width="stretch")
prepared = st.session_state.get(BATCH_REPORT)
if middle.button("Prepare the report (PDF and HTML)", width="stretch", key="hv_batch_prepare",
                 icon=":material/description:"):
    with st.spinner("Drawing a Grad-CAM map for every cell…"):
        report = build_batch_report(caches.classifier(), exported, exported_skipped, initials=initials,
                                    review_note=note, signed_in=signed_in)
        prepared = (signature, batch_report_pdf(report), batch_report_html(report))
        st.session_state[BATCH_REPORT] = prepared
if prepared and prepared[0] == signature:
    right.download_button("Download PDF report", prepared[1], file_name=f"hematovision-report-{batch['id']}.pdf",
                          mime="application/pdf", icon=":material/download:", on_click="ignore", width="stretch")
    right.download_button("Download HTML report", prepared[2], file_name=f"hematovision-report-{batch['id']}.html",
                          mime="text/html", icon=":material/download:", on_click="ignore", width="stretch")
elif prepared:
    right.caption("The reviews changed since the report was prepared: prepare it again.")
widgets.decision_support_note()
