"""Plotly figures of the dashboard and how they are shown: interactive, downloadable as PNG and CSV.

The PNG comes from Plotly's own toolbar (the camera button, rendered in the browser; no server-side
image engine needed); the CSV is the figure's data behind a download button.
"""

from __future__ import annotations

import re

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from seqarena import cells

_LINE_STYLES = ("solid", "dash", "dot", "dashdot", "longdash")


def model_colors(models: list[str]) -> dict[str, str]:
    """A fixed colour per model name (the registry's order), the same on every page."""
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf")
    known = cells.names()
    order = known + sorted(set(models) - set(known))
    return {name: palette[i % len(palette)] for i, name in enumerate(order)}


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "figure"


def show(figure: go.Figure, frame: pd.DataFrame, name: str) -> None:
    """Draw `figure` (PNG from its toolbar, named `name`) and offer `frame` as CSV."""
    config = {"displaylogo": False, "toImageButtonOptions": {"format": "png", "filename": slug(name), "scale": 2}}
    st.plotly_chart(figure, config=config, key=f"chart_{slug(name)}")
    st.download_button(f"Download {name} data (CSV)", frame.to_csv(index=False).encode(), file_name=f"{slug(name)}.csv",
                       mime="text/csv", key=f"csv_{slug(name)}")


def versus_seq_len(frame: pd.DataFrame, y: str, title: str, y_title: str, *, spread: str | None = None,
                   log_y: bool = False, baseline: pd.DataFrame | None = None, dash_by: str | None = None) -> go.Figure:
    """One line per model (and per `dash_by` value) of `y` against the sequence length on a log axis.

    `spread`: a column drawn as error bars (± std over repeats). `baseline`: columns seq_len and
    baseline, drawn as a dashed black line.
    """
    figure = go.Figure()
    colors = model_colors(sorted(frame["model"].unique()))
    groups = [(None, frame)] if dash_by is None else list(frame.groupby(dash_by, sort=False))
    for style_index, (style_value, group) in enumerate(groups):
        for model, rows in group.groupby("model", sort=True):
            rows = rows.sort_values("seq_len")
            label = model if style_value is None else f"{model} ({style_value})"
            error = None
            if spread is not None and rows[spread].notna().any():
                error = {"type": "data", "array": rows[spread].fillna(0).tolist(), "visible": True}
            figure.add_trace(go.Scatter(
                x=rows["seq_len"], y=rows[y], mode="lines+markers", name=label, error_y=error,
                line={"color": colors[model], "dash": _LINE_STYLES[style_index % len(_LINE_STYLES)]}))
    if baseline is not None and not baseline.empty:
        line = baseline.drop_duplicates("seq_len").sort_values("seq_len")
        figure.add_trace(go.Scatter(x=line["seq_len"], y=line["baseline"], mode="lines", name="trivial baseline",
                                    line={"color": "black", "dash": "dash"}))
    figure.update_layout(title=title, xaxis_title="sequence length T", yaxis_title=y_title, legend_title="model",
                         margin={"t": 60})
    figure.update_xaxes(type="log")
    if log_y:
        figure.update_yaxes(type="log")
    return figure


def pareto(points: pd.DataFrame, front: pd.Series, x: str, x_title: str, metric_title: str, log_x: bool) -> go.Figure:
    """Every trial as a point (colour = model), the Pareto front as a line through its points."""
    figure = go.Figure()
    colors = model_colors(sorted(points["model"].unique()))
    for model, rows in points.groupby("model", sort=True):
        figure.add_trace(go.Scatter(x=rows[x], y=rows["metric"], mode="markers", name=model, opacity=0.55,
                                    marker={"color": colors[model], "size": 7}, text=rows["trial_id"],
                                    hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra>" + model + "</extra>"))
    on_front = points[front].sort_values(x)
    figure.add_trace(go.Scatter(x=on_front[x], y=on_front["metric"], mode="lines+markers", name="Pareto front",
                                line={"color": "black", "width": 2}, text=on_front["model"],
                                marker={"size": 11, "symbol": "star", "color": "black"},
                                hovertemplate="%{text}<br>%{x:.4g}, %{y:.4g}<extra>front</extra>"))
    figure.update_layout(title=f"{metric_title} against {x_title}", xaxis_title=x_title, yaxis_title=metric_title,
                         legend_title="model", margin={"t": 60})
    if log_x:
        figure.update_xaxes(type="log")
    return figure
