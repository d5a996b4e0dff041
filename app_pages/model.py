"""Model: the model card, rendered: accuracy with 95% CIs, old vs new model, calibration,
abstention, out-of-distribution flag rates, whole fields, data, training, limits, commands."""

import streamlit as st

import app_support as support
from hematovision.app_state import format_percent, format_seconds
from hematovision.cell_types import OTHER_TYPES
from hematovision.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH, colour_normalisation_of, display_name
from hematovision.trust import STATUS_TEXT
from hematovision.model_card import (
    IMAGE_SPLITS,
    SPLITS,
    comparison_rows,
    leave_one_lab_out_rows,
    status_rows,
    UNSEEN_SPLITS,
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

NORMALISATION_TEXT = {
    "background": "Colour normalisation: every crop is white-balanced on its own slide background, in training "
                  "and in the app alike; differences in stain strength and hue are covered by training augmentation",
    "reinhard": "Stain normalisation: every crop's L\\*a\\*b\\* colour mean and spread are moved to a shared "
                "reference (Reinhard colour transfer), in training and in the app alike",
}


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
    "A MobileNetV2 network (ImageNet-pretrained, fine-tuned on two labs' images) that sorts a cropped white cell "
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
# Old and new model, and across labs
# ---------------------------------------------------------------------------
if card.comparison:
    st.subheader("Side by side: earlier models and the cross-lab test")
    st.markdown(
        "Accuracy (95% CI) of each model on every held-out split. A model tested on a lab it never "
        "saw is the honest measure of how it travels: read the Kaggle-only row's PBC column and the "
        "PBC-only row's Kaggle columns."
    )
    st.dataframe(comparison_rows(card), hide_index=True, width="stretch", key="comparison_table")
    for name, result in card.comparison.items():
        if isinstance(result, dict) and result.get("training_command"):
            st.caption(f"{name}: `{result['training_command']}`")

# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------
trust = card.trust
calibrated_splits = [n for n in IMAGE_SPLITS if "reliability_after" in (card.split(n) or {})]
st.header("Can you trust its confidence?")
if not trust:
    st.warning("This card has no calibration section: the confidences shown are the raw softmax, "
               "and no prediction is marked for checking.", icon=":material/warning:")
else:
    st.markdown(
        f"The network's raw probabilities are rescaled by one **temperature, T = {trust.get('temperature', 1):.2f}**, "
        f"fitted on {trust.get('validation_images', '?')} validation images it did not train on "
        "(it changes how sure the model sounds, never which class it picks). "
        "Expected calibration error (ECE, 15 bins) is the average gap between confidence and accuracy."
    )
    rows = [{"Data": "Validation (fitting data)", "ECE raw": trust.get("validation_ece_before"),
             "ECE calibrated": trust.get("validation_ece_after")}]
    rows += [{"Data": SPLITS[n][0], "ECE raw": card.split(n).get("ece_before"),
              "ECE calibrated": card.split(n).get("ece_after")} for n in calibrated_splits]
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, width="stretch", key="ece_table",
                 column_config={"ECE raw": percent, "ECE calibrated": percent})
    if calibrated_splits:
        tabs = st.tabs([SPLITS[n][0] for n in calibrated_splits])
        for tab, name in zip(tabs, calibrated_splits):
            split = card.split(name)
            with tab:
                st.plotly_chart(
                    support.reliability_figure(split["reliability_before"], split["reliability_after"],
                                               f"Reliability diagram, {SPLITS[name][0]}"),
                    key=f"reliability_{name}", config={"displayModeBar": False})

    # -- abstention ------------------------------------------------------------
    abstain = trust.get("abstain", {}) if isinstance(trust.get("abstain"), dict) else {}
    st.header("When does it say “check this cell yourself”?")
    if abstain:
        st.markdown(
            f"When the calibrated confidence is below **{format_percent(abstain.get('threshold'))}**. "
            f"That threshold is the lowest at which the validation cells it keeps were right at least "
            f"{format_percent(abstain.get('target_accuracy'), 0)} of the time"
            + ("" if abstain.get("reached", True) else " (the target was not reached; this is the best it did)")
            + f"; on validation it keeps {format_percent(abstain.get('coverage'))} of the images."
        )
        rows = []
        for name in calibrated_splits:
            kept = card.split(name).get("abstain", {})
            rows.append({"Data": SPLITS[name][0], "Kept (not flagged)": kept.get("coverage"),
                         "Accuracy on kept": kept.get("accuracy_kept"),
                         "Accuracy on all": card.split(name).get("accuracy")})
        st.dataframe(rows, hide_index=True, width="stretch", key="abstain_table",
                     column_config={k: percent for k in ("Kept (not flagged)", "Accuracy on kept", "Accuracy on all")})
        curves = {"Validation": trust.get("validation_coverage_curve", [])}
        points = {"Validation": (abstain.get("coverage"), abstain.get("accuracy"))}
        for name in calibrated_splits:
            split = card.split(name)
            curves[SPLITS[name][0]] = split.get("coverage_curve", [])
            kept = split.get("abstain", {})
            points[SPLITS[name][0]] = (kept.get("coverage"), kept.get("accuracy_kept"))
        st.plotly_chart(support.coverage_figure(curves, points), key="coverage_curve",
                        config={"displayModeBar": False})

    # -- statuses ------------------------------------------------------------------
    ood = trust.get("ood", {}) if isinstance(trust.get("ood"), dict) else {}
    other = trust.get("other_types", {}) if isinstance(trust.get("other_types"), dict) else {}
    st.header("Which status does it give, and how often?")
    st.markdown(
        f"- **{STATUS_TEXT['not_blood_cell']}**: no stained nucleus is found in the image at all, or its features "
        "(from the middle of the network) are farther from the training cells' than validation cells get even "
        "under strong stain, light and focus changes "
        f"({ood.get('far_threshold_rule', 'the far threshold')}).\n"
        f"- **{STATUS_TEXT['other_cell_type']}**: a detector on the network's final features says the cell is none of "
        f"the four types ({other.get('method', 'a classifier over eight cell types')}); "
        f"{other.get('threshold_rule', '')}.\n"
        f"- **{STATUS_TEXT['unfamiliar_source']}**: a stained blood cell whose features are farther from the "
        f"training labs' than all but {format_percent(ood.get('target_validation_flag_rate'))} of validation cells: "
        "another stain, microscope or camera. The class is still given.\n"
        f"- **{STATUS_TEXT['check']}** and **{STATUS_TEXT['confident']}**: the calibrated confidence against the "
        "threshold above."
    )
    rows = status_rows(card)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="status_table",
                     column_config={text: percent for text in STATUS_TEXT.values()})
    non_blood = evaluation.get("non_blood") if isinstance(evaluation.get("non_blood"), dict) else {}
    if non_blood.get("by_kind"):
        st.caption("Not-blood images by kind, marked “not a blood-cell image”: " + "; ".join(
            f"{kind} {v['flagged']}/{v['n']}" for kind, v in non_blood["by_kind"].items())
            + (f". Not marked: {', '.join(non_blood['not_flagged'])}." if non_blood.get("not_flagged") else "."))

# ---------------------------------------------------------------------------
# Labs it never saw
# ---------------------------------------------------------------------------
lisc = card.split("lisc")
if lisc:
    st.header("On labs it never saw")
    st.markdown(
        "Your microscope, stain and camera are not the ones the model learned from. These numbers say how it "
        "does on a lab it never trained on. " + UNSEEN_SPLITS["lisc"][1]
    )
    previous_lisc = card.previous.get("splits", {}).get("lisc", {}) if isinstance(card.previous.get("splits"), dict) else {}
    rows = []
    for model, split in (("This model", lisc), ("Previous model (issue 3)", previous_lisc)):
        if not isinstance(split, dict) or "accuracy" not in split:
            continue
        statuses = split.get("statuses", {})
        rows.append({"Model": model, "Accuracy": split.get("accuracy"),
                     "95% CI": interval_text(split.get("accuracy_ci95")),
                     "Macro recall": split.get("macro_recall"),
                     STATUS_TEXT["not_blood_cell"]: statuses.get("not_blood_cell", {}).get("rate"),
                     STATUS_TEXT["unfamiliar_source"]: statuses.get("unfamiliar_source", {}).get("rate"),
                     STATUS_TEXT["confident"]: statuses.get("confident", {}).get("rate")})
    st.dataframe(rows, hide_index=True, width="stretch", key="lisc_table",
                 column_config={k: percent for k in ("Accuracy", STATUS_TEXT["not_blood_cell"],
                                                     STATUS_TEXT["unfamiliar_source"], STATUS_TEXT["confident"])}
                 | {"Macro recall": st.column_config.NumberColumn(format="%.3f")})
    lolo = leave_one_lab_out_rows(card)
    if lolo:
        st.subheader("Leave one lab out")
        st.markdown("The same recipe trained on one lab only and tested on the other: how the *recipe* travels.")
        st.dataframe(lolo, hide_index=True, width="stretch", key="lolo_table")

other_types = evaluation.get("other_types") if isinstance(evaluation.get("other_types"), dict) else {}
if other_types.get("all"):
    st.header("Cells that are none of the four types")
    st.markdown(
        "Basophils, immature granulocytes, erythroblasts (nucleated red cells) and platelets held out from the "
        "PBC lab. A confident four-type answer for one of them would silently change a differential."
    )
    previous_other = card.previous.get("other_types", {}) if isinstance(card.previous.get("other_types"), dict) else {}
    rows = []
    for model, result in (("This model", other_types), ("Previous model (issue 3)", previous_other)):
        for name in ("all",) + OTHER_TYPES:
            block = result.get(name) if isinstance(result, dict) else None
            if not isinstance(block, dict):
                continue
            no_confident = block.get("no_confident_four_type_answer", {})
            flagged = block.get("statuses", {}).get("other_cell_type", {})
            named = block.get("type_named_right_when_flagged", {})
            rows.append({"Model": model, "Cells": "all" if name == "all" else name, "n": no_confident.get("n"),
                         "No confident four-type answer": no_confident.get("rate"),
                         "95% CI": interval_text(no_confident.get("ci95")),
                         "Marked “another cell type”": flagged.get("rate"),
                         "Type named right (of marked)": named.get("rate")})
    st.dataframe(rows, hide_index=True, width="stretch", key="other_types_table",
                 column_config={k: percent for k in ("No confident four-type answer", "Marked “another cell type”",
                                                     "Type named right (of marked)")})

rescaling = evaluation.get("rescaling") if isinstance(evaluation.get("rescaling"), dict) else {}
if rescaling:
    st.header("The same cell at another magnification")
    st.markdown("Each photo rescaled, or cut to a tight ~110 px crop where the cell fills the frame, and classified "
                "again: how often the label stays the same as at the original size.")
    rows = [{"Change": name, "Label kept": block["label_kept"]["rate"],
             "95% CI": interval_text(block["label_kept"].get("ci95")), "Right": block["right"]["rate"]}
            for name, block in rescaling.items() if isinstance(block, dict) and "label_kept" in block]
    st.dataframe(rows, hide_index=True, width="stretch", key="rescaling_table",
                 column_config={"Label kept": percent, "Right": percent})
    st.caption("Images: " + ", ".join(f"{source} {count}" for source, count in rescaling.get("images", {}).items()))

# ---------------------------------------------------------------------------
# Whole fields
# ---------------------------------------------------------------------------
fields = evaluation.get("fields") if isinstance(evaluation.get("fields"), dict) else {}
if fields:
    st.header("Whole smear fields")
    st.markdown(fields.get("how", ""))
    rows = []
    for group, title in (("held_out", "Held-out fields (Kaggle TEST originals)"),
                         ("training_fields", "Fields TRAIN images came from (optimistic)")):
        result = fields.get(group)
        if isinstance(result, dict) and result.get("fields"):
            rows.append({
                "Fields": title, "Count": result["fields"],
                "White cells named": result["cells_expected"], "White cells found": result["cells_found"],
                "Fields with the right count": f"{result['fields_with_right_count']}/{result['fields']}",
                "Classified right": f"{result['cells_classified_right']}/{result['cells_expected']} "
                                    f"({interval_text(result.get('classified_right_ci95'))})",
                "Two-cell fields: both found": f"{result['two_cell_fields_both_found']}/{result['fields_with_two_cells']}",
            })
    st.dataframe(rows, hide_index=True, width="stretch", key="fields_table")

# ---------------------------------------------------------------------------
# Training and data
# ---------------------------------------------------------------------------
st.header("How it was made")
training = card.training
sources = card.data_info
st.subheader("Training")
facts = []
size = card.data.get("input_size")
if isinstance(size, int):
    facts.append(f"Input: {size}×{size} pixels, RGB")
if card.data.get("framing"):
    facts.append(f"Framing: {card.data['framing']}")
normalisation = colour_normalisation_of(training.get("settings") or {})
if normalisation in NORMALISATION_TEXT:
    facts.append(NORMALISATION_TEXT[normalisation])
if training.get("imagenet_weights"):
    facts.append(f"Starting weights: {training['imagenet_weights']}")
if isinstance(training.get("seconds"), (int, float)):
    cache = training.get("activation_cache_seconds")
    facts.append(f"Training time: {format_seconds(float(training['seconds']))} on a 2-core CPU"
                 + (f" (activation caches: {format_seconds(float(cache))})" if isinstance(cache, (int, float)) and cache else ""))
validation = training.get("validation") if isinstance(training.get("validation"), dict) else {}
if validation:
    facts.append(f"Validation (held-out images of the training sources, {validation.get('images', '?')} images): "
                 f"accuracy {format_percent(validation.get('accuracy'))}")
for fact in facts:
    st.markdown(f"- {fact}")
settings = training.get("settings")
if isinstance(settings, dict) and settings:
    with st.expander("All training settings"):
        show_setting_table(settings)

st.subheader("Data")
source_rows = []
for key, info in sources.items():
    if not isinstance(info, dict):
        continue
    counts = [f"{info[k]:,} {k.replace('_', ' ')}" for k in
              ("images", "cells", "training_cells", "validation_cells", "training_images", "validation_images", "test_images")
              if isinstance(info.get(k), int)]
    source_rows.append({"Source": info.get("name", key), "Licence": info.get("license", "?"),
                        "Counts": ", ".join(counts), "Split": info.get("split", "by cell, TRAIN_SOURCES.csv")})
if source_rows:
    st.dataframe(source_rows, hide_index=True, width="stretch", key="data_table")
st.caption(
    "Kaggle \"Blood Cell Images\" by Paul Mooney, made from the BCCD dataset (MIT License, Copyright (c) 2017 "
    "shenggan). PBC: Acevedo et al., \"A dataset of microscopic peripheral blood cell images for development of "
    "automatic recognition systems\", Data in Brief 30 (2020) 105474, CC BY 4.0."
)

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
if trust.get("command"):
    commands.append(("Calibrate, choose the abstain threshold, fit the OOD check", str(trust["command"])))
if isinstance(trust.get("other_types"), dict) and trust["other_types"].get("command"):
    commands.append(("Fit the other-cell-type detector", str(trust["other_types"]["command"])))
if evaluation.get("command"):
    commands.append(("Evaluate", str(evaluation["command"])))
for title, command in commands:
    st.markdown(f"**{title}**")
    st.code(command, language="bash", wrap_lines=True)
    if title == "Train" and "--output" in command:
        st.caption("The shipped file is that run's output, copied into models/ before calibrating "
                   "(training/README.md lists every step).")
st.markdown(f"**Model file** `{card.data.get('model_file', '?')}`")
st.code(f"sha256 {card.data.get('model_sha256', '?')}", language=None)

support.decision_support_note()
