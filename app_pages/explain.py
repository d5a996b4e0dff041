"""Explain: Grad-CAM, Grad-CAM++, LIME and SHAP (and, on request, four more methods) over the crop the model saw."""

import streamlit as st

from app import caches, state, widgets
from app.explanations import (
    DEFAULT_LIME_SAMPLES,
    DEFAULT_SHAP_EVALS,
    EXTRA_METHODS,
    LIME_SAMPLES_CHOICES,
    METHOD_BLURBS,
    METHOD_TITLES,
    SHAP_EVALS_CHOICES,
    ExplainSettings,
    explanation_key,
)
from app.page_paths import CLASSIFY_PAGE
from app.state import CELL_SELECT, EXPLAIN_SETTINGS, OPACITY, SIGN_VIEW
from app.texts import format_percent, format_seconds
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.model.trust import OTHER_CELL_TYPE
from hematovision.workflows.samples import list_samples

state.init_state()
SEED = 0
ROW_LENGTH = 4  # maps per row
VIEW_LABELS = {"both": "Both", "positive": "Supporting only", "negative": "Opposing only"}
SHAP_FEATURE_LABELS = {"regions": "Superpixels (default)", "pixels": "Pixel blocks"}


def use_first_sample() -> None:
    samples = list_samples()
    if samples:
        widgets.use_sample(next((s for s in samples if s.class_name == "NEUTROPHIL"), samples[0]).key)


def choice_list(choices: tuple[int, ...], current: int) -> list[int]:
    return sorted(set(choices) | {int(current)})


st.title("Explain the decision")
st.markdown(
    "Four ways of asking *which parts of the picture made the model say this?*, all on the "
    "crop the model saw (four more are under *Method settings*; the Compare page scores them). Where they agree, and land on the white cell, the decision rests on the "
    "cell itself. Heat on red cells or background is a warning sign."
)

image = state.current_image()
if image is None:
    st.info("No image has been chosen yet. Classify one first, or start with a sample.",
            icon=":material/info:")
    left, right = st.columns([1, 3])
    left.button("Use a sample image", on_click=use_first_sample, type="primary", key="explain_use_sample")
    right.page_link(CLASSIFY_PAGE, label="Go to Classify", icon=":material/labs:")
    st.stop()

cells, cell_index, prediction = widgets.selected_cell_or_stop(image, "explained")

if not prediction.box.found:
    st.warning(
        "No white-cell nucleus was found in this image, so the model looked at its centre. "
        "The maps below explain that guess; the classification itself is unreliable.",
        icon=":material/warning:",
    )

settings: ExplainSettings = st.session_state[EXPLAIN_SETTINGS]
target = settings.target or prediction.label

# ---------------------------------------------------------------------------
# What is being explained, and the controls
# ---------------------------------------------------------------------------
summary, controls = st.columns([1.1, 2], gap="large")
with summary:
    thumb, text = st.columns([1, 2])
    thumb.image(prediction.model_input, caption="Model input", width="stretch")
    text.markdown(f"**Image:** {image.name}")
    if len(cells) > 1:
        with text:
            widgets.cell_picker(st.selectbox, "White cell", cells, cell_index, CELL_SELECT,
                                help="This field holds several white cells; the numbers match the Classify page.")
    nearest = (" · only the nearest of the four types: the cell looks like another type"
               if prediction.status == OTHER_CELL_TYPE else "")
    text.markdown(
        f"**Predicted:** {display_name(prediction.label)} ({format_percent(prediction.confidence)}){nearest}"
    )
    explained = f"**Explaining:** {display_name(target)}"
    if settings.target and settings.target != prediction.label:
        explained += f" (probability {format_percent(prediction.probabilities.get(target))}, not the prediction)"
    else:
        explained += " (the predicted class)"
    text.markdown(explained)
    with text:
        widgets.profile_note()
    widgets.status_message(prediction)
with controls:
    st.slider("Overlay opacity", 0.0, 1.0, step=0.05, key=OPACITY,
              help="How strongly the heat map covers the image. Changing it does not recompute anything.")
    st.radio(
        "Signed maps (LIME, SHAP, …): show evidence",
        options=list(VIEW_LABELS),
        format_func=VIEW_LABELS.get,
        key=SIGN_VIEW,
        horizontal=True,
        help="LIME and SHAP also find regions that argue *against* the class. Grad-CAM maps only show support.",
    )
    with st.expander("Method settings"):
        with st.form("explain_settings", border=False):
            target_options = [None, *CLASS_NAMES]
            chosen_target = st.selectbox(
                "Class to explain",
                target_options,
                index=target_options.index(settings.target) if settings.target in target_options else 0,
                format_func=lambda c: f"Predicted class ({display_name(prediction.label)})"
                if c is None else display_name(c),
                help="Ask why the model would (or would not) call this cell another type.",
            )
            lime_samples = st.select_slider(
                "LIME: perturbed samples",
                options=choice_list(LIME_SAMPLES_CHOICES, settings.lime_samples),
                value=int(settings.lime_samples),
                help=f"More samples: steadier map, longer run (default {DEFAULT_LIME_SAMPLES}).",
            )
            shap_evals = st.select_slider(
                "SHAP: model evaluations",
                options=choice_list(SHAP_EVALS_CHOICES, settings.shap_evals),
                value=int(settings.shap_evals),
                help=f"Default {DEFAULT_SHAP_EVALS}: enough for the exact values over superpixels "
                     "(more changes nothing). Over pixel blocks, more evaluations give finer blocks.",
            )
            shap_features = st.radio(
                "SHAP: features",
                options=list(SHAP_FEATURE_LABELS),
                index=list(SHAP_FEATURE_LABELS).index(settings.shap_features),
                format_func=SHAP_FEATURE_LABELS.get,
                horizontal=True,
                help="Superpixels follow the stain (nucleus lobes, cytoplasm, red cells). Pixel blocks "
                     "halve the crop again and again; at the default budget they stay ~28 px wide "
                     "and move when the budget changes.",
            )
            extra_methods = st.multiselect(
                "More methods",
                EXTRA_METHODS,
                default=[m for m in EXTRA_METHODS if m in settings.extra_methods],
                format_func=METHOD_TITLES.get,
                help="Shown after the four main maps; each adds 0.5–2 s. The Compare page scores them all.",
            )
            if st.form_submit_button("Apply settings", type="primary"):
                st.session_state[EXPLAIN_SETTINGS] = ExplainSettings(
                    lime_samples=int(lime_samples), shap_evals=int(shap_evals),
                    shap_features=shap_features, target=chosen_target,
                    extra_methods=tuple(extra_methods),
                )
                st.rerun()
        st.caption(f"Random seed {SEED}: the same settings give the same maps every time.")

# ---------------------------------------------------------------------------
# The maps, four to a row
# ---------------------------------------------------------------------------
opacity = float(st.session_state[OPACITY])
view = st.session_state[SIGN_VIEW]
methods = settings.methods
columns = [column for start in range(0, len(methods), ROW_LENGTH)
           for column in st.columns(ROW_LENGTH, gap="small")]
explained = {}  # method -> Explanation, for the report
for column, method in zip(columns, methods):
    title = METHOD_TITLES[method]
    params = settings.params_for(method)
    with column.container(border=True):
        st.markdown(f"#### {title}")
        try:
            with st.spinner(f"Running {title}…" + (" (this takes a while)" if params else "")):
                key = explanation_key(f"{image.digest}/cell{cell_index}", method, settings.target, params, SEED)
                explanation = caches.explain_crop(key, prediction.model_input, state.lab_profile_id())
            shown_view = view if explanation.signed else "positive"
            st.image(
                widgets.overlay_image(prediction.model_input, explanation, opacity, shown_view),
                width="stretch",
            )
        except Exception as exc:  # one failing method must not take the others down
            st.error(f"{title} failed: {exc}", icon=":material/error:")
            st.caption(METHOD_BLURBS[method])
            continue
        explained[method] = explanation
        runs = explanation.evaluations
        st.caption(
            f"{format_seconds(explanation.seconds)} · {runs:,} model evaluation{'s' if runs != 1 else ''}"
        )
        st.download_button(
            "Download PNG",
            data=caches.overlay_download(key, opacity, shown_view, prediction.model_input, explanation),
            file_name=f"hematovision-{image.short_id}{f'-cell{cell_index + 1}' if len(cells) > 1 else ''}-{method.replace('+', 'plus')}-{explanation.target.lower()}.png",
            mime="image/png",
            key=f"download_{method}",
            icon=":material/download:",
            on_click="ignore",
            width="stretch",
        )
        st.caption(METHOD_BLURBS[method])

st.caption(widgets.OVERLAY_LEGEND)
widgets.image_report_section(image, cells, cell_index, explained)
widgets.decision_support_note()
