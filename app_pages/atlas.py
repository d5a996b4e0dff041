"""Atlas: what to look for in each white-cell type, and its examples as the model sees them."""

import streamlit as st

from app import caches, state, widgets
from app.explanations import teaching_explanation_key
from app.page_paths import EXPLAIN_PAGE, QUIZ_PAGE
from app.state import OPACITY, image_digest
from app.texts import format_percent, status_label
from hematovision.model.classifier import display_name
from hematovision.workflows.samples import Sample, list_samples
from hematovision.workflows.teaching import CELL_NOTES, NOT_COVERED, SMEAR_BASICS, CellNotes

state.init_state()


def notes_panel(notes: CellNotes) -> None:
    st.markdown(f"**Typical share:** {notes.share}")
    st.markdown(
        f"- **Size:** {notes.size}\n"
        f"- **Nucleus:** {notes.nucleus}\n"
        f"- **Cytoplasm:** {notes.cytoplasm}\n"
        f"- **Granules:** {notes.granules}"
    )
    st.markdown(f"**Role:** {notes.role}")
    st.markdown(f"**Easily confused with:** {notes.look_alikes}")


def example(sample: Sample, opacity: float) -> None:
    """One sample: the photo, the model's answer and its Grad-CAM map on the model's crop."""
    data = sample.read_bytes()
    digest = image_digest(data)
    photo, heat = st.columns(2, gap="small")
    photo.image(data, caption=f"{sample.title} (data-set label)", width="stretch")
    try:
        prediction = caches.predict_cells(digest, data)[0]
        explanation = caches.explain_crop(teaching_explanation_key(digest), prediction.model_input)
    except Exception as exc:  # one bad example must not hide the rest
        heat.error(f"{sample.title} could not be explained: {exc}", icon=":material/error:")
        return
    heat.image(widgets.overlay_image(prediction.model_input, explanation, opacity, "positive"),
               caption="Grad-CAM on the model's crop", width="stretch")
    agrees = prediction.label == sample.class_name
    verdict = "agrees with the label" if agrees else "differs from the label"
    icon = ":material/check:" if agrees else ":material/close:"
    st.markdown(
        f"{icon} Model: **{display_name(prediction.label)}**, "
        f"{format_percent(prediction.confidence)} ({status_label(prediction).lower()}), {verdict}."
    )


st.title("Atlas of white cells")
st.markdown(
    "What to look for in each of the four white cells, with the built-in examples. Beside "
    "each photo is the model's answer and its Grad-CAM map on the crop it saw: red marks "
    "where its evidence for that answer sits. Compare that with the features listed here."
)
st.caption(SMEAR_BASICS)

samples = list_samples()
caches.get_classifier()  # shows its own spinner the first time
opacity = float(st.session_state[OPACITY])
tabs = st.tabs([notes.title for notes in CELL_NOTES.values()])
for tab, notes in zip(tabs, CELL_NOTES.values()):
    with tab:
        st.subheader(notes.title)
        notes_column, examples_column = st.columns([2, 3], gap="large")
        with notes_column:
            notes_panel(notes)
        with examples_column:
            of_this_type = [sample for sample in samples if sample.class_name == notes.class_name]
            if not of_this_type:
                st.caption("No example images of this type are installed.")
            with st.spinner(f"Explaining the {notes.title.lower()} examples…"):
                for sample in of_this_type:
                    with st.container(border=True):
                        example(sample, opacity)

st.caption(NOT_COVERED)
left, right = st.columns(2)
left.page_link(QUIZ_PAGE, label="Test yourself in the quiz", icon=":material/school:")
right.page_link(EXPLAIN_PAGE, label="Explain a cell with every method",
                icon=":material/visibility:")
widgets.decision_support_note()
