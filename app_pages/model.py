"""Model: the model card, rendered: accuracy with 95% CIs, per-class tables, confusions, data, limits."""

import streamlit as st

import app_support as support
from hematovision.app_state import format_percent, format_seconds
from hematovision.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH, display_name
from hematovision.model_card import (
    SPLITS,
    ModelCardError,
    confusion_matrix,
    default_card_path,
    file_sha256,
    interval_text,
    load_model_card,
    model_file_check,
    per_class_rows,
)

support.init_state()


@st.cache_data(show_spinner=False)
def committed_model_sha256(path: str, mtime: float) -> str | None:
    return file_sha256(path)


def show_setting_table(settings: dict) -> None:
    rows = [{"Setting": str(k), "Value": _plain(v)} for k, v in settings.items()]
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch")


def _plain(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value)
    if isinstance(value, dict):
        return "; ".join(f"{k}: {_plain(v)}" for k, v in value.items())
    return str(value)


st.title("About the model")
st.markdown(
    "A MobileNetV2 network (ImageNet-pretrained, fine-tuned) that sorts a cropped white cell "
    "into one of four types: " + ", ".join(display_name(c) for c in CLASS_NAMES) + ". "
    "Everything below is read from the model card that the training and evaluation scripts write."
)

try:
    card = load_model_card()
except ModelCardError as exc:
    st.error(f"**The model card could not be read.** {exc}", icon=":material/error:")
    st.stop()

if card is None:
    st.warning(
        f"**No model card was found** (expected `{default_card_path().name}` in `models/`). "
        "Accuracy figures, training settings and known limits cannot be shown until the "
        "evaluation script has written it. Treat the model as unvalidated until then.",
        icon=":material/warning:",
    )
    if DEFAULT_MODEL_PATH.is_file():
        sha = committed_model_sha256(str(DEFAULT_MODEL_PATH), DEFAULT_MODEL_PATH.stat().st_mtime)
        st.markdown(f"Model file in use: `{DEFAULT_MODEL_PATH.name}`")
        st.code(f"sha256 {sha}", language=None)
    support.decision_support_note()
    st.stop()

if card.problems:
    with st.expander(f"The model card is incomplete ({len(card.problems)} issue(s)); showing what it has"):
        for problem in card.problems:
            st.markdown(f"- {problem}")

ok, message = model_file_check(card)
if ok is True:
    st.success(message, icon=":material/verified:")
elif ok is False:
    st.error(message, icon=":material/error:")
else:
    st.caption(message)

class_names = card.class_names
evaluation = card.evaluation

# ---------------------------------------------------------------------------
# Headline accuracy
# ---------------------------------------------------------------------------
st.header("How accurate is it?")
split_names = card.available_splits()
if not split_names:
    st.warning(
        "The card holds no evaluation results yet"
        + (f" ({str(evaluation['note']).rstrip('.')})." if evaluation.get("note") else ".")
        + " Until then the model is unvalidated.",
        icon=":material/warning:",
    )
else:
    st.markdown(
        "Accuracy on data the model never trained on, with 95% confidence intervals (Wilson). "
        "The held-out set has few distinct cells, so the intervals are wide; read them, not "
        "just the headline number."
    )
    columns = st.columns(len(split_names))
    for column, name in zip(columns, split_names):
        split = card.split(name) or {}
        title, meaning = SPLITS.get(name, (name, ""))
        with column.container(border=True):
            accuracy = split.get("accuracy")
            st.metric(
                title,
                format_percent(accuracy) if isinstance(accuracy, (int, float)) else "–",
                help=split.get("description") or meaning,
            )
            ci = interval_text(split.get("accuracy_ci95"))
            counts = (
                f"{split['correct']} of {split['n']} correct"
                if "correct" in split and "n" in split else ""
            )
            st.caption(" · ".join(part for part in (ci, counts) if part))
            st.caption(meaning)
    when = [f"Evaluated on {evaluation['date']}"] if evaluation.get("date") else []
    unreadable = evaluation.get("unreadable")
    if isinstance(unreadable, list) and unreadable:
        when.append(f"{len(unreadable)} test file(s) could not be read and were left out")
    if when:
        st.caption("; ".join(when) + ".")

    st.subheader("Per class and confusions")
    tabs = st.tabs([SPLITS.get(name, (name, ""))[0] for name in split_names])
    for tab, name in zip(tabs, split_names):
        split = card.split(name) or {}
        title = SPLITS.get(name, (name, ""))[0]
        with tab:
            if split.get("description"):
                st.caption(split["description"])
            table_col, matrix_col = st.columns([1, 1.1], gap="large")
            with table_col:
                rows = [
                    {**row, **{k: (100 * row[k] if row[k] is not None else None)
                               for k in ("Precision", "Recall")}}
                    for row in per_class_rows(split, class_names)
                ]
                if rows:
                    st.dataframe(
                        rows,
                        hide_index=True,
                        width="stretch",
                        column_config={
                            "Precision": st.column_config.NumberColumn(format="%.1f%%"),
                            "Recall": st.column_config.NumberColumn(format="%.1f%%"),
                            "F1": st.column_config.NumberColumn(format="%.3f"),
                            "Support": st.column_config.NumberColumn(format="%d"),
                        },
                        key=f"per_class_{name}",
                    )
                    st.caption(
                        "Precision: of the cells called this type, the share that were. "
                        "Recall: of the cells of this type, the share found. Support: how many "
                        "there were. Small supports mean unstable percentages."
                    )
                else:
                    st.caption("No per-class results in the card.")
            with matrix_col:
                matrix = confusion_matrix(split, class_names)
                if matrix is not None:
                    st.plotly_chart(
                        support.confusion_figure(matrix, class_names, f"Confusion matrix, {title}"),
                        key=f"confusion_{name}",
                        config={"displayModeBar": False},
                    )
                else:
                    st.caption("No confusion matrix in the card.")

# ---------------------------------------------------------------------------
# Training and data
# ---------------------------------------------------------------------------
st.header("How it was made")
training = card.training
data = card.data_info
left, right = st.columns(2, gap="large")
with left:
    st.subheader("Training")
    facts = []
    size = card.data.get("input_size")
    if isinstance(size, int):
        facts.append(f"Input: {size}×{size} pixels, RGB")
    elif size:
        facts.append(f"Input: {_plain(size)} pixels, RGB")
    if card.data.get("framing"):
        facts.append(f"Framing: {card.data['framing']}")
    if training.get("imagenet_weights"):
        facts.append(f"Starting weights: {training['imagenet_weights']}")
    if isinstance(training.get("seconds"), (int, float)):
        facts.append(f"Training time: {format_seconds(float(training['seconds']))} on CPU")
    validation = training.get("validation") if isinstance(training.get("validation"), dict) else {}
    if validation:
        parts = []
        if "accuracy" in validation:
            parts.append(f"image accuracy {format_percent(validation['accuracy'])}")
        if "cell_accuracy" in validation:
            parts.append(f"cell accuracy {format_percent(validation['cell_accuracy'])}")
        if "cells" in validation or "images" in validation:
            parts.append(f"{validation.get('cells', '?')} cells / {validation.get('images', '?')} images")
        facts.append("Validation (cells held out of TRAIN): " + ", ".join(parts))
    for fact in facts:
        st.markdown(f"- {fact}")
    settings = training.get("settings")
    if isinstance(settings, dict) and settings:
        with st.expander("All training settings"):
            show_setting_table(settings)
with right:
    st.subheader("Data")
    st.markdown(f"**{data.get('name', 'Blood Cell Images (Kaggle)')}**, license: {data.get('license', 'MIT')}.")
    st.caption(
        "Kaggle \"Blood Cell Images\" by Paul Mooney, made from the BCCD dataset "
        "(MIT License, Copyright (c) 2017 shenggan); augmented copies of each cell as prepared "
        "in the GitHub repository dhruvp/wbc-classification."
    )
    counts = []
    if "train_images" in data:
        counts.append(f"{data['train_images']:,} training images" if isinstance(data["train_images"], int)
                      else f"{data['train_images']} training images")
    if "train_cells" in data:
        counts.append(f"made from {data['train_cells']} distinct cells (augmented copies)")
    if counts:
        st.markdown("- " + " ".join(counts))
    if data.get("url_note"):
        st.markdown(f"- Source: {data['url_note']}")
    if data.get("manifest_sha256"):
        st.markdown(f"- Data manifest sha256: `{data['manifest_sha256']}`")

st.header("What it was not trained on")
if card.limits:
    for limit in card.limits:
        st.markdown(f"- {limit}")
else:
    st.caption("The card lists no limits; that does not mean there are none.")

st.header("Reproduce the numbers")
commands = []
if training.get("command"):
    commands.append(("Train", str(training["command"])))
if evaluation.get("command"):
    commands.append(("Evaluate", str(evaluation["command"])))
for title, command in commands:
    st.markdown(f"**{title}**")
    st.code(command, language="bash")
st.markdown(f"**Model file** `{card.data.get('model_file', '?')}`")
st.code(f"sha256 {card.data.get('model_sha256', '?')}", language=None)

support.decision_support_note()
