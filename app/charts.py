"""The plotly charts the pages draw: probabilities, confusion matrix, calibration, coverage, differential."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from hematovision.workflows.batch import DifferentialRow
from hematovision.model.classifier import CLASS_NAMES, Prediction, display_name

PRIMARY = "#1f6f8b"  # keep in step with .streamlit/config.toml
MUTED = "#a9bac6"


def probability_figure(prediction: Prediction) -> go.Figure:
    """Horizontal bars of all class probabilities; the predicted class is highlighted."""
    names = list(CLASS_NAMES)[::-1]  # plotly draws the first bar at the bottom
    values = [100 * prediction.probabilities.get(name, 0.0) for name in names]
    colours = [PRIMARY if name == prediction.label else MUTED for name in names]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=[display_name(n) for n in names],
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1f}%" if v >= 0.05 else "<0.1%" for v in values],
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


def differential_figure(rows: list[DifferentialRow]) -> go.Figure:
    """This sample's share of each type over the adult reference range; out-of-range shares in red."""
    names = [display_name(r.cell_type) for r in rows]
    figure = go.Figure()
    figure.add_trace(go.Bar(x=names, y=[r.reference[1] - r.reference[0] for r in rows],
                            base=[r.reference[0] for r in rows], name="adult reference range",
                            marker_color="rgba(42,157,143,0.25)", width=0.8,
                            customdata=[f"{r.reference[0]:g}–{r.reference[1]:g}%" for r in rows],
                            hovertemplate="%{x}: adult reference %{customdata}<extra></extra>"))
    figure.add_trace(go.Bar(x=names, y=[r.percent or 0 for r in rows], name="this sample", width=0.4,
                            marker_color=["#b2182b" if r.flag in ("low", "high") else PRIMARY for r in rows],
                            text=[f"{r.percent:.1f}%" if r.percent is not None else "" for r in rows],
                            textposition="outside", hovertemplate="%{x}: %{y:.1f}%<extra></extra>"))
    figure.update_layout(barmode="overlay", height=300, margin={"l": 10, "r": 10, "t": 30, "b": 10},
                         yaxis={"title": "% of counted cells", "range": [0, 105]},
                         legend={"orientation": "h", "y": 1.15})
    return figure
