"""Home: what HematoVision does, the four white cells, and how to use the app."""

import streamlit as st

import app_support as support
from hematovision.samples import find_sample

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
st.markdown(
    "White blood cells (leukocytes) defend the body. In a Wright- or Giemsa-stained smear "
    "their nuclei stain purple, while the far more numerous red cells are pink discs "
    "about 7–8 µm across with no nucleus. Shares below are typical adult ranges of all "
    "white cells in a differential count."
)

CELLS = [
    (
        "NEUTROPHIL",
        "40–70% of white cells",
        "First responders to bacterial and fungal infection: they leave the blood, swallow "
        "microbes (phagocytosis) and kill them; the main cell of pus.",
        "10–12 µm, about 1.5× a red cell. The nucleus has 2–5 lobes joined by thin strands "
        "(younger 'band' forms have a curved, unsegmented nucleus). Pale pink-lilac cytoplasm "
        "with fine, faint granules.",
    ),
    (
        "LYMPHOCYTE",
        "20–40%",
        "Adaptive immunity: B cells make antibodies, T cells coordinate the response and kill "
        "infected cells, NK cells kill virus-infected and tumour cells.",
        "Mostly small, 7–10 µm, close to a red cell's size. A round, dense, dark-purple nucleus "
        "fills most of the cell, leaving a thin rim of sky-blue cytoplasm with few or no granules.",
    ),
    (
        "MONOCYTE",
        "2–10%",
        "Circulate for a day or so, then enter tissues and become macrophages and dendritic "
        "cells: they clear debris and microbes and present antigens to lymphocytes.",
        "The largest, 12–20 µm, about 2–2.5× a red cell. Kidney- or horseshoe-shaped, folded "
        "nucleus with lacy chromatin. Plentiful grey-blue, 'ground-glass' cytoplasm, sometimes "
        "with vacuoles.",
    ),
    (
        "EOSINOPHIL",
        "1–4%",
        "Fight parasites such as worms and take part in allergic reactions and asthma; "
        "their numbers rise in both.",
        "12–17 µm. Usually a two-lobed nucleus ('spectacles'). The cytoplasm is packed with "
        "large, round, orange-red granules that take up the eosin stain.",
    ),
]

columns = st.columns(4)
for column, (class_name, share, role, looks) in zip(columns, CELLS):
    with column.container(border=True):
        st.markdown(f"#### {class_name.capitalize()}")
        sample = find_sample(f"{class_name.lower()}-1")
        if sample is not None:
            st.image(str(sample.path), caption="Sample from the test set", width="stretch")
        st.markdown(f"**Typical share:** {share}")
        st.markdown(f"**Role:** {role}")
        st.markdown(f"**How it looks:** {looks}")

st.caption(
    "Not covered by the model: basophils (under 1% of white cells), band counts, immature or "
    "abnormal cells (blasts, atypical lymphocytes), platelets and red-cell findings. Shown any "
    "of these, it still answers with one of the four classes above."
)

st.subheader("How to use it")
st.markdown(
    """
1. **Classify**: upload a photo of a stained smear (JPEG, PNG, BMP or TIFF, up to 20 MB) or
   pick a built-in sample. The app finds every white cell, draws a box around each, and shows
   the crop the model looked at, the predicted type, the calibrated probability of every type,
   and a status: **Confident**, **Check this cell yourself**, or **Does not look like a
   blood-cell image**.
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
left.page_link(support.CLASSIFY_PAGE, label="Classify a cell", icon=":material/labs:")
middle.page_link(support.EXPLAIN_PAGE, label="Explain a decision", icon=":material/visibility:")
right.page_link(support.MODEL_PAGE, label="About the model", icon=":material/fact_check:")

support.decision_support_note()
