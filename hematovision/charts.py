"""Every chart HematoVision draws, for the app, the reports and the ``compare`` outputs.

Pure functions from numbers to figures: plotly for the pages and ``figures.html``, and
matplotlib PNGs where a static picture is needed (the PDF and HTML reports, ``curves.png``).
A chart drawn both ways takes its values, colours and words from one helper here, so the
app and a report never disagree. Sits beside the four layers and imports only ``model``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hematovision.model.classifier import CLASS_NAMES, Prediction, display_name

PRIMARY = "#1f6f8b"  # keep in step with .streamlit/config.toml
MUTED = "#a9bac6"
# Red = evidence for the class, blue = against, white = nothing: the usual reading of
# signed attribution maps, and distinct from the stain's own pinks and purples.
DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
MAP_COLUMNS = 5
# ColorBrewer Dark2: eight colours that stay distinct from each other, one per method.
METHOD_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
DISPLAY_SIDE = 112  # maps are shown at half the model's 224 px: plenty on screen, 4x less data
CURVE_TITLES = ("Deletion: lower is better", "Insertion: higher is better")
CURVE_X_TITLE = "share of pixels removed / revealed, most attributed first"


# -- class probabilities (Classify page; single-image report) ---------------------------

def _probability_bars(prediction: Prediction) -> tuple[list[str], list[float], list[str], list[str]]:
    """Bar labels, percentages, colours and value texts, bottom bar first (both renderers
    draw the first bar at the bottom, so the classes read top-down in CLASS_NAMES order)."""
    names = list(CLASS_NAMES)[::-1]
    values = [100 * prediction.probabilities.get(name, 0.0) for name in names]
    colours = [PRIMARY if name == prediction.label else MUTED for name in names]
    texts = [f"{v:.1f}%" if v >= 0.05 else "<0.1%" for v in values]
    return [display_name(n) for n in names], values, colours, texts


def probability_figure(prediction: Prediction) -> go.Figure:
    """Horizontal bars of all class probabilities; the predicted class is highlighted."""
    labels, values, colours, texts = _probability_bars(prediction)
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            marker_color=colours,
            text=texts,
            textposition="outside",
            cliponaxis=False,
            hovertemplate="%{y}: %{x:.2f}%<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text="Class probabilities", x=0, font=dict(size=15)),
        xaxis=dict(range=[0, 112], title="Probability (%)", ticksuffix="%", dtick=25),
        yaxis=dict(title=None),
        height=260,
        margin=dict(l=10, r=10, t=40, b=40),
        showlegend=False,
    )
    return figure


def probability_png(prediction: Prediction) -> bytes:
    """The same bars as ``probability_figure``, as a small PNG for reports."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    labels, values, colours, texts = _probability_bars(prediction)
    figure = Figure(figsize=(4.2, 1.9), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.barh(labels, values, color=colours)
    for y, (value, text) in enumerate(zip(values, texts)):
        axes.text(min(value + 1.5, 100), y, text, va="center", fontsize=8)
    axes.set_xlim(0, 115)
    axes.set_xlabel("calibrated probability (%)", fontsize=8)
    axes.tick_params(labelsize=8)
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()

# -- the model card (Model page) ---------------------------------------------------------

def confusion_figure(matrix: list[list[float]], class_names: list[str], title: str) -> go.Figure:
    """Confusion matrix heatmap: rows are the true class, columns the predicted one.

    Colour shows the share of each true class (row-normalised), text shows the counts,
    so a rare class's errors are as visible as a common class's.
    """
    counts = np.asarray(matrix, dtype=float)
    totals = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    labels = [display_name(c) for c in class_names]
    text = [[f"{int(round(v))}" for v in row] for row in counts]
    figure = go.Figure(
        go.Heatmap(
            z=shares,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1,
            colorbar=dict(title="Row share", tickformat=".0%"),
            hovertemplate="True %{y}, predicted %{x}: %{text} (%{z:.1%} of row)<extra></extra>",
        )
    )
    figure.update_layout(
        title=dict(text=title, x=0, font=dict(size=14)),
        xaxis=dict(title="Predicted class", side="bottom"),
        yaxis=dict(title="True class", autorange="reversed"),
        height=360,
        margin=dict(l=10, r=10, t=40, b=10),
    )
    return figure


def reliability_figure(before: list[dict], after: list[dict], title: str) -> go.Figure:
    """Accuracy against confidence per bin, before and after temperature scaling.

    A calibrated model sits on the diagonal; marker size shows how many predictions a bin holds.
    """
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Perfect calibration",
                                line=dict(color=MUTED, dash="dash"), hoverinfo="skip"))
    for name, bins, colour in (("Raw softmax", before, "#c8553d"), ("Calibrated", after, PRIMARY)):
        filled = [b for b in bins if b.get("count")]
        total = sum(b["count"] for b in filled) or 1
        figure.add_trace(go.Scatter(
            x=[b["confidence"] for b in filled], y=[b["accuracy"] for b in filled], mode="lines+markers",
            name=name, line=dict(color=colour),
            marker=dict(size=[6 + 24 * (b["count"] / total) ** 0.5 for b in filled], color=colour),
            customdata=[b["count"] for b in filled],
            hovertemplate="confidence %{x:.1%}, accuracy %{y:.1%}, %{customdata} predictions<extra></extra>",
        ))
    figure.update_layout(
        title=dict(text=title, x=0, font=dict(size=14)), height=340, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="Confidence (15 bins)", range=[0.2, 1.02], tickformat=".0%"),
        yaxis=dict(title="Accuracy in the bin", range=[0, 1.02], tickformat=".0%"),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


def coverage_figure(curves: dict[str, list[dict]], threshold_points: dict[str, tuple[float, float]]) -> go.Figure:
    """Accuracy on the cells the model keeps, against the share it keeps, one line per data set."""
    figure = go.Figure()
    palette = [PRIMARY, "#c8553d", "#2a9d8f", "#6a4c93", "#e9a03b"]
    for (name, curve), colour in zip(curves.items(), palette):
        figure.add_trace(go.Scatter(
            x=[row["coverage"] for row in curve], y=[row["accuracy"] for row in curve], mode="lines",
            name=name, line=dict(color=colour),
            customdata=[row["threshold"] for row in curve],
            hovertemplate="keeps %{x:.1%}: accuracy %{y:.1%} (confidence ≥ %{customdata:.2f})<extra></extra>",
        ))
        if name in threshold_points:
            coverage, accuracy = threshold_points[name]
            figure.add_trace(go.Scatter(x=[coverage], y=[accuracy], mode="markers", showlegend=False,
                                        marker=dict(color=colour, size=11, symbol="diamond"),
                                        hovertemplate=f"{name} at the chosen threshold: keeps %{{x:.1%}}, "
                                                      "accuracy %{y:.1%}<extra></extra>"))
    figure.update_layout(
        title=dict(text="Coverage and accuracy (diamonds: the chosen threshold)", x=0, font=dict(size=14)),
        height=380, margin=dict(l=10, r=10, t=40, b=10),
        xaxis=dict(title="Share of cells the model keeps (the rest: 'check this cell')", tickformat=".0%",
                   autorange="reversed"),
        yaxis=dict(title="Accuracy on the kept cells", tickformat=".0%"),
        legend=dict(orientation="h", y=-0.25),
    )
    return figure


# -- the differential (Batch page) ------------------------------------------------------

FINDING = "#b2182b"  # the whole interval outside the range
UNSURE = "#e08214"  # only the point outside: count more cells


def _differential_bars(rows: Sequence) -> dict:
    """Names, shares, 95% interval arms, colours and texts for both renderers.

    ``rows`` are ``hematovision.workflows.differential.DifferentialRow`` (not imported: charts
    sit below the workflows), read through ``cell_type``, ``percent``, ``ci95``, ``reference``,
    ``flag`` and ``finding``."""
    shares = [r.percent or 0.0 for r in rows]
    intervals = [(100 * r.ci95[0], 100 * r.ci95[1]) if r.ci95 else (share, share) for r, share in zip(rows, shares)]
    return {
        "names": [display_name(r.cell_type) for r in rows],
        "shares": shares,
        "above": [max(0.0, high - share) for share, (_, high) in zip(shares, intervals)],
        "below": [max(0.0, share - low) for share, (low, _) in zip(shares, intervals)],
        "colours": [FINDING if r.finding else UNSURE if r.flag in ("low", "high") else PRIMARY for r in rows],
        "texts": [f"{r.percent:.1f}%" if r.percent is not None else "" for r in rows],
        "reference_low": [r.reference[0] for r in rows],
        "reference_span": [r.reference[1] - r.reference[0] for r in rows],
        "intervals": [f"{low:.1f}–{high:.1f}%" for low, high in intervals],
    }


DIFFERENTIAL_LEGEND = ("Bars: this sample's share; whiskers: its exact 95% interval; band: the adult reference "
                       "range. Red: the whole interval is outside the range; orange: only the share is, so count "
                       "more cells.")


def differential_figure(rows: Sequence) -> go.Figure:
    """This sample's share of each type with its 95% interval, over the adult reference range."""
    bars = _differential_bars(rows)
    figure = go.Figure()
    figure.add_trace(go.Bar(x=bars["names"], y=bars["reference_span"], base=bars["reference_low"],
                            name="adult reference range", marker_color="rgba(42,157,143,0.25)", width=0.8,
                            customdata=[f"{low:g}–{low + span:g}%" for low, span
                                        in zip(bars["reference_low"], bars["reference_span"])],
                            hovertemplate="%{x}: adult reference %{customdata}<extra></extra>"))
    figure.add_trace(go.Bar(x=bars["names"], y=bars["shares"], name="this sample (95% interval)", width=0.4,
                            marker_color=bars["colours"], text=bars["texts"], textposition="outside",
                            error_y={"type": "data", "symmetric": False, "array": bars["above"],
                                     "arrayminus": bars["below"], "color": "#333", "thickness": 1.5, "width": 6},
                            customdata=bars["intervals"],
                            hovertemplate="%{x}: %{y:.1f}% (95% interval %{customdata})<extra></extra>"))
    figure.update_layout(barmode="overlay", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis={"title": "% of counted cells", "range": [0, 105]},
                         legend={"orientation": "h", "y": 1.15})
    return figure


def differential_png(rows: Sequence) -> bytes:
    """The same chart as ``differential_figure``, as a PNG for the reports."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    bars = _differential_bars(rows)
    figure = Figure(figsize=(5.2, 2.6), dpi=150, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = range(len(bars["names"]))
    axes.bar(positions, bars["reference_span"], bottom=bars["reference_low"], width=0.8,
             color=(42 / 255, 157 / 255, 143 / 255, 0.25), label="adult reference range")
    axes.bar(positions, bars["shares"], width=0.4, color=bars["colours"], label="this sample (95% interval)",
             yerr=[bars["below"], bars["above"]], error_kw={"ecolor": "#333", "capsize": 3, "elinewidth": 1})
    for x, (share, text) in enumerate(zip(bars["shares"], bars["texts"])):
        axes.text(x + 0.22, share + 1.5, text, fontsize=7)
    axes.set_xticks(list(positions), bars["names"], fontsize=8)
    axes.set_ylim(0, 105)
    axes.set_ylabel("% of counted cells", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.legend(fontsize=7, loc="upper left", frameon=False)
    axes.spines[["top", "right"]].set_visible(False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


# -- explanation maps and their numbers (Compare page, ``compare`` outputs) -------------

def scaled_map(attribution: np.ndarray, side: int = DISPLAY_SIDE) -> np.ndarray:
    """The map block-averaged down to ``side`` pixels for display, then divided by its
    largest absolute value (so +1 is the method's strongest support as shown)."""
    values = np.asarray(attribution, np.float64)
    factor = max(1, values.shape[0] // side)
    height, width = (values.shape[0] // factor) * factor, (values.shape[1] // factor) * factor
    values = values[:height, :width].reshape(height // factor, factor, width // factor, factor).mean(axis=(1, 3))
    peak = float(np.abs(values).max())
    return values / peak if peak > 0 else values


def maps_figure(image: np.ndarray, maps: dict[str, np.ndarray], titles: dict[str, str] | None = None) -> go.Figure:
    """The model input, then every method's map on one shared -1..+1 colour scale."""
    titles = titles or {}
    panels = ["Model input", *(titles.get(name, name) for name in maps)]
    columns = min(MAP_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    figure = make_subplots(rows=rows, cols=columns, subplot_titles=panels, horizontal_spacing=0.02,
                           vertical_spacing=0.08)
    small = np.asarray(image, np.uint8)[::2, ::2]
    figure.add_trace(go.Image(z=small, hoverinfo="skip"), row=1, col=1)
    for number, (name, attribution) in enumerate(maps.items(), 1):
        figure.add_trace(
            go.Heatmap(z=scaled_map(attribution), coloraxis="coloraxis", name=titles.get(name, name),
                       hovertemplate="%{z:.2f}<extra>" + titles.get(name, name) + "</extra>"),
            row=number // columns + 1, col=number % columns + 1)
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", scaleanchor="x", constrain="domain")
    for axis in range(2, len(panels) + 1):  # every panel square, like the image
        figure.update_yaxes(scaleanchor=f"x{axis}", row=(axis - 1) // columns + 1, col=(axis - 1) % columns + 1)
    figure.update_layout(
        coloraxis={"colorscale": DIVERGING, "cmin": -1, "cmax": 1,
                   "colorbar": {"title": {"text": "share of<br>peak"}, "tickvals": [-1, 0, 1],
                                "ticktext": ["−1 against", "0", "+1 for"], "len": 0.8}},
        height=230 * rows + 40, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def curves_figure(curves: dict[str, dict], y_title: str = "probability of the target class") -> go.Figure:
    """Deletion and insertion curves side by side, one line per method (same colour in both)."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=CURVE_TITLES)
    for number, (name, curve) in enumerate(curves.items()):
        colour = METHOD_PALETTE[number % len(METHOD_PALETTE)]
        for column, kind in enumerate(("deletion", "insertion"), 1):
            figure.add_trace(go.Scatter(x=curve["fractions"], y=curve[kind], mode="lines", name=name,
                                        legendgroup=name, showlegend=column == 1, line={"color": colour},
                                        hovertemplate=f"{name}<br>%{{x:.0%}} of pixels: %{{y:.3f}}<extra></extra>"),
                             row=1, col=column)
    figure.update_xaxes(title_text=CURVE_X_TITLE, tickformat=".0%")
    figure.update_yaxes(title_text=y_title, range=[0, 1.02], row=1, col=1)
    figure.update_yaxes(range=[0, 1.02], row=1, col=2)
    figure.update_layout(height=380, margin={"l": 10, "r": 10, "t": 40, "b": 10}, legend={"orientation": "h", "y": -0.25})
    return figure


def agreement_figure(agreement: dict, titles: dict[str, str] | None = None) -> go.Figure:
    """Pairwise Spearman correlation and top-k% IoU as two heatmaps with the values written in."""
    titles = titles or {}
    names = [titles.get(m, m) for m in agreement["methods"]]
    fraction = agreement.get("params", {}).get("top_fraction", 0.2)
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.15,
                           subplot_titles=("Spearman rank correlation", f"IoU of the top {fraction:.0%} pixels"))
    for column, (key, low) in enumerate((("spearman", -1), ("top_iou", 0)), 1):
        values = np.asarray(agreement[key], float)
        figure.add_trace(go.Heatmap(z=values, x=names, y=names, zmin=low, zmax=1, colorscale="Blues" if low == 0 else
                                    DIVERGING, text=np.round(values, 2), texttemplate="%{text}", showscale=False,
                                    hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"), row=1, col=column)
    figure.update_yaxes(autorange="reversed")
    side = 60 * len(names) + 140
    figure.update_layout(height=side, margin={"l": 10, "r": 10, "t": 40, "b": 10})
    return figure


def summary_agreement(summary: dict) -> dict:
    """The benchmark summary's pair table turned back into matrices for ``agreement_figure``."""
    methods = list(summary["methods"])
    spearman, iou = np.eye(len(methods)), np.eye(len(methods))
    for pair, values in summary["agreement"].items():
        first, second = pair.split(" vs ")
        i, j = methods.index(first), methods.index(second)
        spearman[i, j] = spearman[j, i] = values["spearman"]
        iou[i, j] = iou[j, i] = values["top20_iou"]
    return {"methods": methods, "spearman": spearman.tolist(), "top_iou": iou.tolist(),
            "params": {"top_fraction": 0.2}}


def benchmark_curves_figure(summary: dict) -> go.Figure:
    """Mean deletion and insertion curves of a ``compare`` run, one line per method."""
    return curves_figure(_benchmark_curves(summary), y_title="mean probability of the predicted class")

def _benchmark_curves(summary: dict) -> dict[str, dict]:
    return {entry.get("label", method): entry["mean_curves"]
            for method, entry in summary["methods"].items() if "mean_curves" in entry}


def curves_png(curves: dict[str, dict], y_title: str = "probability of the target class") -> bytes:
    """The same curves as ``curves_figure``, side by side in a PNG (``compare``'s ``curves.png``)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(10, 4), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, 2)
    for number, (name, curve) in enumerate(curves.items()):
        colour = METHOD_PALETTE[number % len(METHOD_PALETTE)]
        for axis, kind in zip(axes, ("deletion", "insertion")):
            axis.plot(curve["fractions"], curve[kind], label=name, color=colour)
    for axis, title in zip(axes, CURVE_TITLES):
        axis.set_title(title)
        axis.set_xlabel(CURVE_X_TITLE)
        axis.set_ylim(0, 1.02)
        axis.xaxis.set_major_formatter(lambda value, _: f"{value:.0%}")
    axes[0].set_ylabel(y_title)
    axes[1].legend(fontsize=8)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def benchmark_curves_png(summary: dict) -> bytes:
    """``benchmark_curves_figure`` as a PNG."""
    return curves_png(_benchmark_curves(summary), y_title="mean probability of the predicted class")


def sanity_figure(checks: dict[str, dict], titles: dict[str, str] | None = None) -> go.Figure:
    """Similarity of each method's map to its original as the network is randomised top-down."""
    titles = titles or {}
    figure = go.Figure()
    threshold = None
    for name, check in checks.items():
        threshold = check["params"]["pass_if_final_spearman_below"]
        figure.add_trace(go.Scatter(
            x=[step["randomised_down_to"] for step in check["steps"]], y=[step["spearman"] for step in check["steps"]],
            mode="lines+markers", name=titles.get(name, name),
            hovertemplate=f"{titles.get(name, name)}<br>random down to %{{x}}: ρ %{{y:.2f}}<extra></extra>"))
    if threshold is not None:
        figure.add_hline(y=threshold, line_dash="dash", line_color="#888",
                         annotation_text=f"pass below {threshold}", annotation_position="top right")
    figure.update_layout(height=340, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         xaxis_title="layers re-initialised (cumulative, from the output down)",
                         yaxis={"title": "Spearman ρ with the original map", "range": [-1, 1.05]},
                         legend={"orientation": "h", "y": -0.35})
    return figure
