"""Classify: choose an image (upload or sample), see the located cell, the crop and the prediction."""

import streamlit as st

from app import caches, state, widgets
from app.page_paths import EXPLAIN_PAGE
from app.state import CELL_RADIO
from app.texts import format_percent, status_label
from hematovision import charts
from hematovision.model.classifier import display_name
from hematovision.workflows.samples import find_sample, list_samples

state.init_state()
# How the crop's colours were adjusted before the model saw it (classifier.colour_normalisation).
COLOUR_NOTES = {"reinhard": ", colours normalised to the training stain",
                "background": ", white-balanced on the slide background"}


def classify_another() -> None:
    state.set_current_image(None)
    state.clear_uploader()


# ---------------------------------------------------------------------------
st.title("Classify a white blood cell")
st.markdown(
    "Upload a photo of a stained blood smear, or pick a sample. The model finds each white "
    "cell by its stained nucleus, crops it, names its type and says how far to trust that answer."
)

widgets.image_uploader("classify")

error = state.upload_error()
if error:
    st.error(f"**This file cannot be used.** {error}", icon=":material/error:")

image = state.current_image()
samples = list_samples()
with st.expander("Built-in samples (from the held-out test set)", expanded=image is None):
    if not samples:
        st.caption("No sample images are installed.")
    class_names = sorted({sample.class_name for sample in samples})
    columns = dict(zip(class_names, st.columns(max(len(class_names), 1))))
    for sample in samples:  # one column per cell type
        with columns[sample.class_name]:
            st.image(str(sample.path), width="stretch")
            st.button(
                f"Use {sample.title}",
                key=f"sample_{sample.key}",
                on_click=widgets.use_sample,
                args=(sample.key,),
                width="stretch",
            )

if image is None:
    if not error:
        st.caption("No image yet: upload one above or pick a sample.")
    widgets.decision_support_note()
    st.stop()

# ---------------------------------------------------------------------------
# The result
# ---------------------------------------------------------------------------
cells, cell_index, prediction = widgets.selected_cell_or_stop(image, "classified")
preview, (width, height) = caches.original_preview(image.digest, image.data, cell_index)

st.divider()
header, another, explain = st.columns([3, 1.5, 1.5], vertical_alignment="bottom")
header.subheader(f"Result: {image.name}")
another.button(
    "Classify another image", on_click=classify_another, icon=":material/restart_alt:",
    width="stretch", key="classify_another",
)
if explain.button("Explain this cell" if len(cells) > 1 else "Explain this image", type="primary",
                  icon=":material/visibility:", width="stretch", key="go_explain"):
    st.switch_page(EXPLAIN_PAGE)

if len(cells) > 1:
    st.markdown(f"**{len(cells)} white cells** found in this field. Pick one to see its crop, "
                "probabilities and explanation; the numbers match the boxes.")
    st.dataframe(
        [{"Cell": number, "Type": display_name(c.label), "Confidence": format_percent(c.confidence),
          "Status": status_label(c), "Box (x, y, side px)": f"{c.box.x}, {c.box.y}, {c.box.side}"}
         for number, c in enumerate(cells, 1)],
        hide_index=True, width="stretch", key="cells_table",
    )
    widgets.cell_picker(st.radio, "Cell shown", cells, cell_index, CELL_RADIO, horizontal=True)

left, middle, right = st.columns([1.25, 0.9, 1.6], gap="medium")
with left:
    st.image(
        preview,
        caption=f"Original ({width}×{height} px); "
        + ("numbered boxes mark the white cells found" if len(cells) > 1 else
           "the box marks the region the model used"),
        width="stretch",
    )
with middle:
    st.image(
        prediction.model_input,
        caption=f"What the model saw: the boxed region resized to {prediction.model_input.shape[1]}×"
        f"{prediction.model_input.shape[0]} px"
        + COLOUR_NOTES.get(caches.get_classifier().colour_normalisation, ""),
        width="stretch",
    )
with right:
    st.metric(
        "Predicted type",
        display_name(prediction.label),
        help="The type with the highest probability among the four the model knows.",
    )
    st.markdown(f"Calibrated probability **{format_percent(prediction.confidence)}**")
    widgets.profile_note()
    widgets.status_message(prediction)
    widgets.status_guide()
    if image.sample_key:
        sample = find_sample(image.sample_key)
        if sample is not None:
            agrees = sample.class_name == prediction.label
            st.caption(
                f"Data-set label for this sample: **{display_name(sample.class_name)}** — "
                + ("the model agrees." if agrees else "the model disagrees.")
            )
    st.plotly_chart(
        charts.probability_figure(prediction), key="probability_chart",
        config={"displayModeBar": False},
    )

if not prediction.box.found:
    st.warning(
        "No white-cell nucleus was found, so the model looked at the centre of the image. "
        "Check that the photo shows a stained white cell; this result is unreliable.",
        icon=":material/warning:",
    )

widgets.image_report_section(image, cells, cell_index)
widgets.decision_support_note()
