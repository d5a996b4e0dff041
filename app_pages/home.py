"""Home: what HematoVision does, the four white cells, and how to use the app."""

import streamlit as st

from app import widgets
from app.page_paths import CLASSIFY_PAGE, EXPLAIN_PAGE, MODEL_PAGE
from hematovision.workflows.samples import find_sample
from hematovision.workflows.teaching import CELL_NOTES, NOT_COVERED, SMEAR_BASICS

st.title("HematoVision")
st.markdown(
    "##### Classify a white blood cell in a stained blood-smear photo, and see why the model decided as it did."
)
st.info(
    "**Decision support, not a diagnosis.** HematoVision suggests which of four white-cell "
    "types a photo shows and highlights the regions behind that suggestion. It was trained "
    "on one small public data set and can be wrong. A qualified person must review every "
    "cell; never use it alone for a clinical decision.",
    icon=":material/info:",
)

st.subheader("The four white cells it knows")
st.markdown(SMEAR_BASICS)

columns = st.columns(len(CELL_NOTES))
for column, notes in zip(columns, CELL_NOTES.values()):
    with column.container(border=True):
        st.markdown(f"#### {notes.title}")
        sample = find_sample(f"{notes.class_name.lower()}-1")
        if sample is not None:
            st.image(str(sample.path), caption="Sample from the test set", width="stretch")
        st.markdown(f"**Typical share:** {notes.share}")
        st.markdown(f"**Role:** {notes.role}")
        st.markdown(f"**How it looks:** {notes.looks}")

st.caption(NOT_COVERED)

st.subheader("How to use it")
st.markdown(
    """
1. **Classify**: upload a photo of a stained smear (JPEG, PNG, BMP or TIFF, up to 20 MB) or
   pick a built-in sample. The app finds every white cell, draws a box around each, and shows
   the crop the model looked at, the predicted type, the calibrated probability of every type,
   and a status: **Confident**; **Check this cell yourself** (the model is unsure);
   **Unfamiliar lab or camera** (a blood cell, but stained or photographed unlike the
   training images: check it); **Another cell type** (a blood cell that is none of the four,
   such as a basophil or an erythroblast: kept out of a differential's counts); or **Does not
   look like a blood-cell image**. The Classify page explains each.
2. **Explain**: see four heat maps (Grad-CAM, Grad-CAM++, LIME, SHAP) over the same crop.
   They show which parts of the picture pushed the model towards its answer. If they
   light up the background or a red cell rather than the white cell, be sceptical.
3. **Model**: read how the model was trained and tested, how accurate it was with 95%
   confidence intervals (on two labs' images), how well its confidence is calibrated, when
   it asks for a check, how it spots non-blood images, and what it was never shown.

Works with a single-cell photo or a whole field (each white cell is classified on its
own), at 100× oil immersion, stained like the training images (Wright/Giemsa or May
Grünwald-Giemsa). Uploads stay in memory for your session only; nothing is saved to disk.
"""
)

left, middle, right = st.columns(3)
left.page_link(CLASSIFY_PAGE, label="Classify a cell", icon=":material/labs:")
middle.page_link(EXPLAIN_PAGE, label="Explain a decision", icon=":material/visibility:")
right.page_link(MODEL_PAGE, label="About the model", icon=":material/fact_check:")

widgets.decision_support_note()
