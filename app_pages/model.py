"""Model: the model card, rendered: accuracy with 95% CIs, old vs new model, calibration,
abstention, out-of-distribution flag rates, whole fields, data, training, limits, commands."""

import streamlit as st

from app import caches, state, widgets
from app.texts import format_percent, format_seconds
from hematovision import charts
from hematovision.model.cell_types import OTHER_TYPES
from hematovision.model.classifier import CLASS_NAMES, DEFAULT_MODEL_PATH, display_name
from hematovision.model.model_card import (
    IMAGE_SPLITS,
    SPLITS,
    UNSEEN_SPLITS,
    ModelCardError,
    comparison_rows,
    confusion_matrix,
    default_card_path,
    interval_text,
    leave_one_lab_out_rows,
    load_model_card,
    model_file_check,
    per_class_rows,
    precision_rows,
    status_rows,
)
from hematovision.model.trust import STATUS_TEXT

state.init_state()

NORMALISATION_TEXT = {
    "background": "Colour normalisation: every crop is white-balanced on its own slide background, in training "
                  "and in the app alike; differences in stain strength and hue are covered by training augmentation",
    "reinhard": "Stain normalisation: every crop's L\\*a\\*b\\* colour mean and spread are moved to a shared "
                "reference (Reinhard colour transfer), in training and in the app alike",
}


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


def trust_commands(checks, network: str = "") -> list[tuple[str, str]]:
    """(title, command) for how a network's trust checks were fitted; ``network`` ("int8: ")
    prefixes the titles."""
    def title(text: str) -> str:
        return f"{network}{text}" if network else text[0].upper() + text[1:]

    found = []
    if checks and checks.command:
        found.append((title("calibrate, choose the abstain threshold, fit the OOD check"), checks.command))
    if checks and checks.other_types and checks.other_types.command:
        found.append((title("fit the other-cell-type detector"), checks.other_types.command))
    return found


def _or_unknown(value) -> str:
    return "?" if value is None else str(value)


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
        sha = caches.model_file_sha256(str(DEFAULT_MODEL_PATH), DEFAULT_MODEL_PATH.stat().st_mtime)
        st.markdown(f"Model file in use: `{DEFAULT_MODEL_PATH.name}`")
        st.code(f"sha256 {sha}", language=None)
    widgets.decision_support_note()
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

class_names = list(card.class_names or CLASS_NAMES)
evaluation = card.evaluation

# ---------------------------------------------------------------------------
# Headline accuracy
# ---------------------------------------------------------------------------
st.header("How accurate is it?")
split_names = card.available_splits()
if not split_names:
    st.warning(
        "The card holds no evaluation results yet"
        + (f" ({evaluation.note.rstrip('.')})." if evaluation.note else ".")
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
        split = evaluation.splits[name]
        title, meaning = SPLITS.get(name, (name, ""))
        with column.container(border=True):
            st.metric(
                title,
                format_percent(split.accuracy) if split.accuracy is not None else "–",
                help=split.description or meaning,
            )
            ci = interval_text(split.accuracy_ci95)
            counts = (
                f"{split.correct} of {split.n} correct"
                if split.correct is not None and split.n is not None else ""
            )
            st.caption(" · ".join(part for part in (ci, counts) if part))
            st.caption(meaning)
    when = [f"Evaluated on {evaluation.date}"] if evaluation.date else []
    if evaluation.unreadable:
        when.append(f"{len(evaluation.unreadable)} test file(s) could not be read and were left out")
    if when:
        st.caption("; ".join(when) + ".")

    st.subheader("Per class and confusions")
    tabs = st.tabs([SPLITS.get(name, (name, ""))[0] for name in split_names])
    for tab, name in zip(tabs, split_names):
        split = evaluation.splits[name]
        title = SPLITS.get(name, (name, ""))[0]
        with tab:
            if split.description:
                st.caption(split.description)
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
                        charts.confusion_figure(matrix, class_names, f"Confusion matrix, {title}"),
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
        if result.training_command:
            st.caption(f"{name}: `{result.training_command}`")

# ---------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------
trust = card.evaluated_trust  # the checks of the network the figures on this page describe
percent = st.column_config.NumberColumn(format="percent")  # also for the tables after this section
calibrated_splits = [n for n in IMAGE_SPLITS
                     if n in evaluation.splits and evaluation.splits[n].reliability_after is not None]
st.header("Can you trust its confidence?")
if not trust:
    st.warning("This card has no calibration section: the confidences shown are the raw softmax, "
               "and no prediction is marked for checking.", icon=":material/warning:")
else:
    st.markdown(
        f"The network's raw probabilities are rescaled by one **temperature, T = {trust.temperature:.2f}**, "
        f"fitted on {_or_unknown(trust.validation_images)} validation images it did not train on "
        "(it changes how sure the model sounds, never which class it picks). "
        "Expected calibration error (ECE, 15 bins) is the average gap between confidence and accuracy."
    )
    rows = [{"Data": "Validation (fitting data)", "ECE raw": trust.validation_ece_before,
             "ECE calibrated": trust.validation_ece_after}]
    rows += [{"Data": SPLITS[n][0], "ECE raw": evaluation.splits[n].ece_before,
              "ECE calibrated": evaluation.splits[n].ece_after} for n in calibrated_splits]
    st.dataframe(rows, hide_index=True, width="stretch", key="ece_table",
                 column_config={"ECE raw": percent, "ECE calibrated": percent})
    if calibrated_splits:
        tabs = st.tabs([SPLITS[n][0] for n in calibrated_splits])
        for tab, name in zip(tabs, calibrated_splits):
            split = evaluation.splits[name]
            with tab:
                st.plotly_chart(
                    charts.reliability_figure(split.reliability_before, split.reliability_after,
                                               f"Reliability diagram, {SPLITS[name][0]}"),
                    key=f"reliability_{name}", config={"displayModeBar": False})

    # -- abstention ------------------------------------------------------------
    abstain = trust.abstain
    st.header("When does it say “check this cell yourself”?")
    if abstain:
        st.markdown(
            f"When the calibrated confidence is below **{format_percent(abstain.threshold)}**. "
            f"That threshold is the lowest at which the validation cells it keeps were right at least "
            f"{format_percent(abstain.target_accuracy, 0)} of the time"
            + ("" if abstain.reached else " (the target was not reached; this is the best it did)")
            + f"; on validation it keeps {format_percent(abstain.coverage)} of the images."
        )
        rows = []
        for name in calibrated_splits:
            split = evaluation.splits[name]
            kept = split.abstain
            rows.append({"Data": SPLITS[name][0], "Kept (not flagged)": kept.coverage if kept else None,
                         "Accuracy on kept": kept.accuracy_kept if kept else None,
                         "Accuracy on all": split.accuracy})
        st.dataframe(rows, hide_index=True, width="stretch", key="abstain_table",
                     column_config={k: percent for k in ("Kept (not flagged)", "Accuracy on kept", "Accuracy on all")})
        curves = {"Validation": trust.validation_coverage_curve}
        points = {"Validation": (abstain.coverage, abstain.accuracy)}
        for name in calibrated_splits:
            split = evaluation.splits[name]
            curves[SPLITS[name][0]] = split.coverage_curve
            kept = split.abstain
            points[SPLITS[name][0]] = (kept.coverage, kept.accuracy_kept) if kept else (None, None)
        st.plotly_chart(charts.coverage_figure(curves, points), key="coverage_curve",
                        config={"displayModeBar": False})

    # -- statuses ------------------------------------------------------------------
    ood, other = trust.ood, trust.other_types
    st.header("Which status does it give, and how often?")
    st.markdown(
        f"- **{STATUS_TEXT['not_blood_cell']}**: no stained nucleus is found in the image at all, or its features "
        "(from the middle of the network) are farther from the training cells' than validation cells get even "
        "under strong stain, light and focus changes "
        f"({(ood.far_threshold_rule if ood else None) or 'the far threshold'}).\n"
        f"- **{STATUS_TEXT['other_cell_type']}**: a detector on the network's final features says the cell is none of "
        f"the four types ({(other.method if other else None) or 'a classifier over eight cell types'}); "
        f"{(other.threshold_rule if other else None) or ''}.\n"
        f"- **{STATUS_TEXT['unfamiliar_source']}**: a stained blood cell whose features are farther from the "
        f"training labs' than all but {format_percent(ood.target_validation_flag_rate if ood else None)} of "
        "validation cells: "
        "another stain, microscope or camera. The class is still given.\n"
        f"- **{STATUS_TEXT['check']}** and **{STATUS_TEXT['confident']}**: the calibrated confidence against the "
        "threshold above."
    )
    rows = status_rows(card)
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="status_table",
                     column_config={text: percent for text in STATUS_TEXT.values()})
    non_blood = evaluation.non_blood
    if non_blood and non_blood.by_kind:
        st.caption("Not-blood images by kind, marked “not a blood-cell image”: " + "; ".join(
            f"{kind} {counts.flagged}/{counts.n}" for kind, counts in non_blood.by_kind.items())
            + (f". Not marked: {', '.join(non_blood.not_flagged)}." if non_blood.not_flagged else "."))

# ---------------------------------------------------------------------------
# Labs it never saw
# ---------------------------------------------------------------------------
lisc = evaluation.splits.get("lisc")
if lisc:
    st.header("On labs it never saw")
    st.markdown(
        "Your microscope, stain and camera are not the ones the model learned from. These numbers say how it "
        "does on a lab it never trained on. " + UNSEEN_SPLITS["lisc"][1]
    )
    previous_lisc = card.previous_model.splits.get("lisc") if card.previous_model else None
    rows = []
    for model, split in (("This model", lisc), ("Previous model (issue 3)", previous_lisc)):
        if split is None or split.accuracy is None:
            continue
        rows.append({"Model": model, "Accuracy": split.accuracy,
                     "95% CI": interval_text(split.accuracy_ci95),
                     "Macro recall": split.macro_recall,
                     **{STATUS_TEXT[status]: split.status(status).rate
                        for status in ("not_blood_cell", "unfamiliar_source", "confident")}})
    st.dataframe(rows, hide_index=True, width="stretch", key="lisc_table",
                 column_config={k: percent for k in ("Accuracy", STATUS_TEXT["not_blood_cell"],
                                                     STATUS_TEXT["unfamiliar_source"], STATUS_TEXT["confident"])}
                 | {"Macro recall": st.column_config.NumberColumn(format="%.3f")})
    lolo = leave_one_lab_out_rows(card)
    if lolo:
        st.subheader("Leave one lab out")
        st.markdown("The same recipe trained on one lab only and tested on the other: how the *recipe* travels.")
        st.dataframe(lolo, hide_index=True, width="stretch", key="lolo_table")

profiles = card.lab_profiles
if profiles and profiles.sources:
    st.header("Adapting it to your lab: lab profiles")
    st.markdown(
        "A *lab profile* fits the model to one lab in seconds, from that lab's own images (build one on the "
        "Batch page or with `python -m hematovision adapt`). An **unlabelled** profile needs 30 or more images "
        "and only teaches the *unfamiliar lab* check what this lab looks like; its option *last batch norm "
        "re-estimated* also re-normalises the network's last layer on the lab's cells, which changes the "
        "classes. That helps when the batch holds the four types in similar numbers and hurts most labs when it "
        "is mostly one type, as a differential is (the rows *from a differential's mix*: 60% neutrophils). "
        "A **few-shot** profile refits the last layer on a few labelled cells per class. Each row is a "
        "lab the model never saw, "
        "judged on images the profile was not built from, over seeded draws (mean, 95% interval); "
        "*no profile* is the shipped model on the same images."
    )
    rows = []
    for source_name, source in profiles.sources.items():
        for setting, result in source.profiles.items():
            if result.macro_recall.mean is None:
                continue
            rows.append({"Unseen lab, model": source_name, "Profile": setting,
                         "Macro recall": result.macro_recall.mean,
                         "95% CI": interval_text(result.macro_recall.ci95),
                         "No profile": result.shipped_macro_recall.mean,
                         "Unfamiliar lab": result.unfamiliar_source.mean,
                         "Unfamiliar, no profile": result.shipped_unfamiliar_source.mean,
                         "Not a blood cell": result.not_blood_cell.mean,
                         "Images judged": result.images_judged})
    st.dataframe(rows, hide_index=True, width="stretch", key="lab_profiles_table",
                 column_config={k: st.column_config.NumberColumn(format="%.3f")
                                for k in ("Macro recall", "No profile")}
                 | {k: percent for k in ("Unfamiliar lab", "Unfamiliar, no profile", "Not a blood cell")})
    notes = sorted({f"{name}, {setting}: {result.note}" for name, source in profiles.sources.items()
                    for setting, result in source.profiles.items() if result.note})
    for note in notes:
        st.caption(note)
    ceilings = [f"- {name}: **{source.ceiling['refit']:.3f}** (a logistic regression on the same features: "
                f"{source.ceiling['logistic_regression']:.3f}), from about "
                f"{source.ceiling['labelled_cells_per_fold']:.0f} labelled cells"
                for name, source in profiles.sources.items()
                if {"refit", "logistic_regression", "labelled_cells_per_fold"} <= source.ceiling.keys()]
    if ceilings:
        st.markdown("**How far labelled cells can take it.** Macro recall when *every other* cell of the lab is "
                    "labelled and the last layer refitted as a few-shot profile does (cross-validation by cell). "
                    "A profile from a few cells per class cannot be expected to beat this:\n" + "\n".join(ceilings))
    if profiles.build_seconds_100_images is not None:
        st.caption(f"Building an unlabelled profile from 100 images took {profiles.build_seconds_100_images:.1f} s "
                   f"on the machine that measured this ({profiles.date or 'date unknown'}).")

other_types = evaluation.other_types
if "all" in other_types:
    st.header("Cells that are none of the four types")
    st.markdown(
        "Basophils, immature granulocytes, erythroblasts (nucleated red cells) and platelets held out from the "
        "PBC lab. A confident four-type answer for one of them would silently change a differential."
    )
    previous_other = card.previous_model.other_types if card.previous_model else {}
    rows = []
    for model, results in (("This model", other_types), ("Previous model (issue 3)", previous_other)):
        for name in ("all",) + OTHER_TYPES:
            if name not in results:
                continue
            result = results[name]
            no_confident = result.no_confident_four_type_answer
            rows.append({"Model": model, "Cells": name, "n": no_confident.n,
                         "No confident four-type answer": no_confident.rate,
                         "95% CI": interval_text(no_confident.ci95),
                         "Marked “another cell type”": result.status("other_cell_type").rate,
                         "Type named right (of marked)": result.type_named_right_when_flagged.rate})
    st.dataframe(rows, hide_index=True, width="stretch", key="other_types_table",
                 column_config={k: percent for k in ("No confident four-type answer", "Marked “another cell type”",
                                                     "Type named right (of marked)")})

rescaling = evaluation.rescaling
if rescaling:
    st.header("The same cell at another magnification")
    st.markdown("Each photo rescaled, or cut to a tight ~110 px crop where the cell fills the frame, and classified "
                "again: how often the label stays the same as at the original size.")
    rows = [{"Change": name, "Label kept": change.label_kept.rate,
             "95% CI": interval_text(change.label_kept.ci95), "Right": change.right.rate}
            for name, change in rescaling.changes.items()]
    st.dataframe(rows, hide_index=True, width="stretch", key="rescaling_table",
                 column_config={"Label kept": percent, "Right": percent})
    st.caption("Images: " + ", ".join(f"{source} {count}" for source, count in rescaling.images.items()))

# ---------------------------------------------------------------------------
# Whole fields
# ---------------------------------------------------------------------------
fields = evaluation.fields
if fields:
    st.header("Whole smear fields")
    st.markdown(fields.how)
    rows = []
    for result, title in ((fields.held_out, "Held-out fields (Kaggle TEST originals)"),
                          (fields.training_fields, "Fields TRAIN images came from (optimistic)")):
        if result and result.fields:
            rows.append({
                "Fields": title, "Count": result.fields,
                "White cells named": result.cells_expected, "White cells found": result.cells_found,
                "Fields with the right count": f"{result.fields_with_right_count}/{result.fields}",
                "Classified right": f"{result.cells_classified_right}/{result.cells_expected} "
                                    f"({interval_text(result.classified_right_ci95)})",
                "Two-cell fields: both found": f"{result.two_cell_fields_both_found}/{result.fields_with_two_cells}",
            })
    st.dataframe(rows, hide_index=True, width="stretch", key="fields_table")

# ---------------------------------------------------------------------------
# The network that answers
# ---------------------------------------------------------------------------
st.header("Which network gives the answers?")
backend = caches.get_classifier().backend
running = f"{'OpenVINO' if backend.name == 'openvino' else 'TensorFlow'} {backend.precision}"
if backend.precision == "int8":
    st.markdown(
        "Predictions, LIME, SHAP, occlusion and the faithfulness curves run on **OpenVINO int8**: this model "
        "quantised after training (NNCF, calibrated on training images only), 2–4× faster on these CPUs, with "
        "its own temperature, abstain threshold and trust checks, fitted the same way as the full-precision "
        "network's but on its own features. The gradient maps (Grad-CAM, Grad-CAM++, Integrated Gradients, "
        "SmoothGrad) need TensorFlow and use the full-precision (f32) network, for the class int8 chose."
    )
else:
    st.markdown(f"Predictions run on **{running}**.")
st.markdown(
    "Every prediction reads the cell twice, as photographed and turned 180° (a cell on a slide has no up or "
    "down), and averages the two; every figure on this page was measured that way. The explanation maps "
    "explain the network on the photo as it is, for the class the prediction gave."
)
if evaluation.precision != backend.precision:
    st.warning(f"The figures on this page describe the {evaluation.precision} network, not the {running} one "
               "answering now; the table below puts the two side by side.", icon=":material/info:")
rows = precision_rows(card)
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", key="precision_table",
                 column_config={k: percent for k in ("ECE f32", "ECE int8", "Unfamiliar lab, f32",
                                                     "Unfamiliar lab, int8")})
    st.caption("`" + card.raw["openvino_int8"]["against_f32"].get("command", "python -m training.precision")
               + "`. Set `HEMATOVISION_PRECISION=f32` (or `--precision f32` on the command line) for the f32 network.")

# ---------------------------------------------------------------------------
# Training and data
# ---------------------------------------------------------------------------
st.header("How it was made")
training = card.training
st.subheader("Training")
facts = []
if card.input_size is not None:
    facts.append(f"Input: {card.input_size}×{card.input_size} pixels, RGB")
if card.framing:
    facts.append(f"Framing: {card.framing}")
if training.colour_normalisation in NORMALISATION_TEXT:
    facts.append(NORMALISATION_TEXT[training.colour_normalisation])
if training.imagenet_weights:
    facts.append(f"Starting weights: {training.imagenet_weights}")
if training.seconds is not None:
    cache = training.activation_cache_seconds
    facts.append(f"Training time: {format_seconds(float(training.seconds))} on a 2-core CPU"
                 + (f" (activation caches: {format_seconds(float(cache))})" if cache else ""))
if training.validation:
    facts.append(f"Validation (held-out images of the training sources, {_or_unknown(training.validation.images)} "
                 f"images): accuracy {format_percent(training.validation.accuracy)}")
for fact in facts:
    st.markdown(f"- {fact}")
if training.settings:
    with st.expander("All training settings"):
        show_setting_table(training.settings)

st.subheader("Data")
source_rows = [{"Source": source.name, "Licence": _or_unknown(source.licence),
                "Counts": ", ".join(f"{count:,} {name.replace('_', ' ')}" for name, count in source.counts.items()),
                "Split": source.split or "by cell, TRAIN_SOURCES.csv"}
               for source in card.data.values()]
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
if training.command:
    commands.append(("Train", training.command))
quantised = card.raw.get("openvino_int8") or {}
commands += trust_commands(card.trust)
if quantised.get("command"):
    commands.append(("int8: quantise the network", quantised["command"]))
commands += trust_commands(card.trust_int8, "int8: ")
if (quantised.get("against_f32") or {}).get("command"):
    commands.append(("Measure int8 against f32", quantised["against_f32"]["command"]))
if evaluation.command:
    commands.append(("Evaluate", evaluation.command))
if profiles and profiles.command:
    commands.append(("Measure lab profiles", profiles.command))
for title, command in commands:
    st.markdown(f"**{title}**")
    st.code(command, language="bash", wrap_lines=True)
    if title == "Train" and "--output" in command:
        st.caption("The shipped file is that run's output, copied into models/ before calibrating "
                   "(training/README.md lists every step).")
st.markdown(f"**Model file** `{_or_unknown(card.model_file)}`")
st.code(f"sha256 {_or_unknown(card.model_sha256)}", language=None)

widgets.decision_support_note()
