"""Plotly figures for comparing explanation methods (the Compare page and ``compare`` CLI).

Pure functions from numbers to ``plotly.graph_objects.Figure``; nothing here draws on
screen or needs Streamlit.
"""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

# Red = evidence for the class, blue = against, white = nothing: the usual reading of
# signed attribution maps, and distinct from the stain's own pinks and purples.
DIVERGING = [[0.0, "#2166ac"], [0.25, "#92c5de"], [0.5, "#f7f7f7"], [0.75, "#f4a582"], [1.0, "#b2182b"]]
MAP_COLUMNS = 5
# ColorBrewer Dark2: eight colours that stay distinct from each other, one per method.
METHOD_PALETTE = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")
DISPLAY_SIDE = 112  # maps are shown at half the model's 224 px: plenty on screen, 4x less data


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
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Deletion: lower is better",
                                                           "Insertion: higher is better"))
    for number, (name, curve) in enumerate(curves.items()):
        colour = METHOD_PALETTE[number % len(METHOD_PALETTE)]
        for column, kind in enumerate(("deletion", "insertion"), 1):
            figure.add_trace(go.Scatter(x=curve["fractions"], y=curve[kind], mode="lines", name=name,
                                        legendgroup=name, showlegend=column == 1, line={"color": colour},
                                        hovertemplate=f"{name}<br>%{{x:.0%}} of pixels: %{{y:.3f}}<extra></extra>"),
                             row=1, col=column)
    figure.update_xaxes(title_text="share of pixels removed / revealed, most attributed first", tickformat=".0%")
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
    return curves_figure({entry.get("label", method): entry["mean_curves"]
                          for method, entry in summary["methods"].items() if "mean_curves" in entry},
                         y_title="mean probability of the predicted class")


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
