"""Compare: every explanation method on one cell, scored for faithfulness, agreement,
seed stability and the model-randomisation sanity check; and the committed benchmark."""

import streamlit as st

from app import caches, state, widgets
from app.explanations import EXTRA_METHODS, METHOD_ORDER, METHOD_TITLES
from app.state import CELL_SELECT_COMPARE, COMPARE_SETTINGS
from app.texts import format_percent
from hematovision.charts import (
    agreement_figure,
    benchmark_curves_figure,
    curves_figure,
    maps_figure,
    sanity_figure,
    summary_agreement,
)
from hematovision.explanation.compare import DEFAULT_STABILITY_SEEDS
from hematovision.explanation.compare_tables import (
    benchmark_table,
    comparison_table,
    load_benchmark,
    most_faithful,
)
from hematovision.explanation.faithfulness import (
    CASCADE,
    DEFAULT_BASELINE,
    DEFAULT_KEEP_FRACTION,
    DEFAULT_STEPS,
)
from hematovision.model.classifier import CLASS_NAMES, display_name
from hematovision.workflows.samples import list_samples

state.init_state()
ALL_METHODS = METHOD_ORDER + EXTRA_METHODS
LAST_RANDOMISED = CASCADE[-1].rstrip("_")
DEFAULT_SETTINGS = {"methods": ALL_METHODS, "target": None, "seed": 0, "steps": DEFAULT_STEPS,
                    "baseline": DEFAULT_BASELINE, "stability_seeds": DEFAULT_STABILITY_SEEDS, "sanity": False}
BASELINES = (DEFAULT_BASELINE, "blur(32)", "constant(0)", "constant(128)", "constant(255)")
BASELINE_HELP = ("What a removed pixel becomes in the deletion and insertion curves: a box-blurred copy "
                 "of the crop (keeps colour, removes shape; the default) or a flat grey level.")

st.title("Compare explanation methods")
st.markdown(
    "Which map should you believe? This page scores every method on the current cell with the "
    "same tests: **deletion** (remove the most attributed pixels first; a faithful map makes the "
    "probability fall fast), **insertion** (reveal them first; it should rise fast), the **drop** "
    f"in confidence when only the top {DEFAULT_KEEP_FRACTION:.0%} of pixels are kept, how much the "
    "methods **agree**, whether a method gives the same map under another **seed**, and the "
    "**randomisation check** (Adebayo et al. 2018): a map that does not change when the network's "
    "weights are replaced by random ones is not explaining the model."
)
if caches.classifier().backend.precision == "int8":
    st.caption("The scores, LIME, SHAP, occlusion and Score-CAM's masked passes run on the int8 network "
               "that gives the app's answers; Grad-CAM, Grad-CAM++, Integrated Gradients and SmoothGrad "
               "need gradients and run on its full-precision original in TensorFlow. Set "
               "HEMATOVISION_PRECISION=f32 to put every method on one network.")

# ---------------------------------------------------------------------------
# The image
# ---------------------------------------------------------------------------
image = state.current_image()
with st.expander("Image", expanded=image is None):
    upload, sample_column = st.columns(2)
    with upload:
        widgets.image_uploader("compare")
    with sample_column:
        samples = list_samples()
        chosen = st.selectbox("…or a built-in sample", [s.key for s in samples], index=None,
                              format_func=lambda key: next(s.title for s in samples if s.key == key),
                              placeholder="Choose a sample", key="hv_compare_sample")
        st.button("Use this sample", disabled=chosen is None, on_click=widgets.use_sample, args=(chosen,),
                  key="hv_compare_use_sample")
error = state.upload_error()
if error:
    st.error(f"**This file cannot be used.** {error}", icon=":material/error:")
if image is None:
    st.info("Choose an image above (or on the Classify page) to compare the methods on it.",
            icon=":material/info:")

# ---------------------------------------------------------------------------
# One cell, every method
# ---------------------------------------------------------------------------
if image is not None:
    cells, cell_index, prediction = widgets.selected_cell_or_stop(image, "used")

    summary, form_column = st.columns([1, 2.2], gap="large")
    with summary:
        st.image(prediction.model_input, caption=f"{image.name}: the crop every method explains", width="stretch")
        if len(cells) > 1:
            widgets.cell_picker(st.selectbox, "White cell", cells, cell_index, CELL_SELECT_COMPARE)
        st.markdown(f"**Predicted:** {display_name(prediction.label)} ({format_percent(prediction.confidence)})")
        widgets.status_message(prediction)
    # The last settings run are kept in the session: Streamlit forgets a form's widgets when the
    # user visits another page, and coming back should show the same choices and result.
    chosen = st.session_state.setdefault(COMPARE_SETTINGS, DEFAULT_SETTINGS)
    with form_column, st.form("compare_settings"):
        methods = st.multiselect("Methods", ALL_METHODS, default=list(chosen["methods"]), format_func=METHOD_TITLES.get)
        left, right = st.columns(2)
        targets = [None, *CLASS_NAMES]
        target = left.selectbox("Class to explain", targets, index=targets.index(chosen["target"]),
                                format_func=lambda c: f"Predicted class ({display_name(prediction.label)})"
                                if c is None else display_name(c))
        seed = right.number_input("Random seed", min_value=0, max_value=2**31 - 1, value=chosen["seed"], step=1,
                                  help="The same seed and settings give the same numbers every time.")
        steps = left.select_slider("Deletion / insertion steps", options=[10, 20, 30, 50], value=chosen["steps"])
        baseline = right.selectbox("Removed pixels become", BASELINES, index=BASELINES.index(chosen["baseline"]),
                                   help=BASELINE_HELP)
        stability = left.checkbox(f"Seed stability ({DEFAULT_STABILITY_SEEDS} seeds)",
                                  value=chosen["stability_seeds"] > 0,
                                  help="Re-runs each method with two more seeds and compares the maps.")
        sanity = right.checkbox("Randomisation check (slow, ~2 min)", value=chosen["sanity"],
                                help=f"Re-initialises the network from the output down to {LAST_RANDOMISED}, in "
                                     f"{len(CASCADE)} steps, and re-runs every method on each network: about "
                                     "2 minutes with all eight methods on this CPU.")
        submitted = st.form_submit_button("Run the comparison", type="primary", icon=":material/play_arrow:")
    if submitted:
        chosen = {"methods": tuple(methods), "target": target, "seed": int(seed), "steps": int(steps),
                  "baseline": baseline, "stability_seeds": DEFAULT_STABILITY_SEEDS if stability else 0,
                  "sanity": bool(sanity)}
        st.session_state[COMPARE_SETTINGS] = chosen

    key = (image.digest, cell_index, state.lab_profile_id(), *sorted(chosen.items()))
    result = caches.cached_comparison(key)
    if submitted and not methods:
        st.warning("Choose at least one method.", icon=":material/warning:")
    elif submitted and result is None:
        bar = st.progress(0.0, text="Starting…")
        try:
            result = caches.run_comparison(key, prediction.model_input, chosen,
                                            lambda share, text: bar.progress(share, text=text))
        except Exception as exc:  # a failing method must not take the page down
            st.error(f"The comparison failed: {exc}", icon=":material/error:")
        bar.empty()

    if result is None:
        st.caption("Set the options and press **Run the comparison**. Results are kept for this session, per "
                   "image and settings, so coming back costs nothing.")
    else:
        titles = {m: entry["label"] for m, entry in result.methods.items()}
        st.subheader(f"Explaining {display_name(result.target)} (probability {format_percent(result.probability)})")
        ranking = most_faithful(result.methods)
        if ranking:
            best, second, margin = ranking
            st.markdown(f"On this cell **{titles[best]}** is the most faithful by deletion AUC, "
                        f"{margin:.3f} below {titles[second]}. One cell is an anecdote: the benchmark below "
                        "averages 71.")
        st.plotly_chart(maps_figure(prediction.model_input, result.maps, titles), key="compare_maps")
        st.caption("Every map is divided by its own largest absolute value, so all share one scale: +1 (red) is "
                   "a method's strongest evidence for the class, −1 (blue) its strongest evidence against. "
                   "Grad-CAM, Grad-CAM++, Score-CAM and SmoothGrad have no negative values.")
        st.dataframe(comparison_table(result), hide_index=True, width="stretch")
        curves = {titles[m]: entry["curves"] for m, entry in result.methods.items()}
        st.plotly_chart(curves_figure(curves), key="compare_curves")
        if result.agreement:
            st.markdown("**Agreement between methods**")
            st.plotly_chart(agreement_figure(result.agreement, titles), key="compare_agreement")
        checks = {m: entry["sanity"] for m, entry in result.methods.items() if entry["sanity"]}
        if checks:
            st.markdown("**Randomisation check**")
            for method, check in checks.items():
                if check["passed"] is None:
                    st.info(f"**{titles[method]} cannot be judged here:** its map of this cell is empty (constant), "
                            "so there is nothing to compare.", icon=":material/help:")
                elif check["passed"]:
                    st.success(f"**{titles[method]} passes.** Once the layers down to {LAST_RANDOMISED} are random, "
                               f"its map's rank correlation with the original is {check['final_spearman']:.2f}.",
                               icon=":material/check_circle:")
                else:
                    st.error(f"**{titles[method]} fails.** With the layers down to {LAST_RANDOMISED} random, its map "
                             f"still correlates {check['final_spearman']:.2f} with the original: it shows the "
                             "image more than what the model learned.", icon=":material/block:")
            st.plotly_chart(sanity_figure(checks, titles), key="compare_sanity")
        stem = f"hematovision-compare-{image.short_id}-cell{cell_index + 1}-{result.target.lower()}"
        left, right = st.columns(2)
        left.download_button("Download CSV", result.to_csv(), file_name=f"{stem}.csv", mime="text/csv",
                             icon=":material/download:", on_click="ignore", width="stretch")
        right.download_button("Download JSON (with curves and parameters)", result.to_json(),
                              file_name=f"{stem}.json", mime="application/json", icon=":material/download:",
                              on_click="ignore", width="stretch")
        with st.expander("Exact parameters"):
            st.json({"settings": result.settings, **{titles[m]: e["params"] for m, e in result.methods.items()}})

# ---------------------------------------------------------------------------
# The committed benchmark
# ---------------------------------------------------------------------------
st.divider()
st.header("Benchmark: 71 held-out cells")
benchmark = load_benchmark()
if benchmark is None:
    st.info("The benchmark files (docs/xai-benchmark/) are not part of this installation.", icon=":material/info:")
else:
    info = benchmark["settings"]
    st.markdown(
        f"Every method on all {info['images']} TEST_SIMPLE images (held-out cells, one image each), for the "
        f"predicted class, seed {info['seed']}: {info['steps']} deletion/insertion steps, removed pixels become "
        f"`{info['baseline']}`, drop keeps the top {info['keep_fraction']:.0%}. Means with Student-t 95% intervals. "
        f"Seed stability on the first {info.get('stability_per_class', '?')} images of each class, the "
        f"randomisation check on the first {info.get('sanity_per_class', '?')}. Command and discussion: "
        "`docs/xai-benchmark/README.md`.")
    st.dataframe(benchmark_table(benchmark), hide_index=True, width="stretch")
    if any("mean_curves" in entry for entry in benchmark["methods"].values()):
        st.plotly_chart(benchmark_curves_figure(benchmark), key="benchmark_curves")
    if benchmark["agreement"]:
        labels = {m: entry.get("label", m) for m, entry in benchmark["methods"].items()}
        st.plotly_chart(agreement_figure(summary_agreement(benchmark), labels), key="benchmark_agreement")

widgets.decision_support_note()
