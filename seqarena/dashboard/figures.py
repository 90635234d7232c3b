"""Plotly figures of the dashboard (and of `seqarena trace`'s HTML report); no Streamlit here.

`seqarena.dashboard.display.show` puts them on a page, downloadable as PNG and CSV.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from seqarena import cells
from seqarena.workers.trace import Trace

_LINE_STYLES = ("solid", "dash", "dot", "dashdot", "longdash")
SEQ_LEN_TITLE = "sequence length T (time steps)"
NOT_SOLVED_COLOR = "#bbbbbb"
"""Points that do not solve the task (`Task.solved_when`): greyed, never on a Pareto front."""
LOG_TICKS = "~g"
"""d3 format of every log axis's tick labels: the whole number (0.002, 20000), never the bare leading digit
("2") that Plotly prints between decades by default."""


def model_colors(models: list[str]) -> dict[str, str]:
    """A fixed colour per model name (the registry's order), the same on every page."""
    palette = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
               "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5")  # D3's category20: a colour per registered model
    known = cells.names()
    order = known + sorted(set(models) - set(known))
    return {name: palette[i % len(palette)] for i, name in enumerate(order)}


def log_axes(figure: go.Figure, x: bool = False, y: bool = False) -> go.Figure:
    """Make the chosen axes logarithmic, labelled with whole numbers (`LOG_TICKS`)."""
    if x:
        figure.update_xaxes(type="log", tickformat=LOG_TICKS)
    if y:
        figure.update_yaxes(type="log", tickformat=LOG_TICKS)
    return figure


def hover(name: str, x_title: str, y_title: str, extra: str = "") -> str:
    """A hover label: the trace's name, then each axis's title (with its unit) and its value to 4 significant
    digits (`display.SIGNIFICANT`)."""
    return f"<b>{name}</b><br>{x_title}: %{{x:.4g}}<br>{y_title}: %{{y:.4g}}{extra}<extra></extra>"


def versus_seq_len(frame: pd.DataFrame, y: str, title: str, y_title: str, *, spread: str | None = None,
                   log_y: bool = False, baseline: pd.DataFrame | None = None, dash_by: str | None = None,
                   marked: pd.DataFrame | None = None, details: str | None = None) -> go.Figure:
    """One line per model (and per `dash_by` value, by line style) of `y` against the sequence length on a log axis.

    One legend entry per model (its colour, `model_colors`); the line styles of `dash_by` are for the title to
    explain once. `spread`: a column drawn as error bars (± std over repeats). `baseline`: columns seq_len and
    baseline, drawn as a dashed black line. `marked`: arms without a result (columns model, seq_len,
    baseline, failure), drawn as ✕ on the baseline in the model's colour, labelled "oom at T = 5000".
    `details`: a text column added to each point's hover label (where it was measured).
    """
    figure = go.Figure()
    colors = model_colors(sorted(frame["model"].unique()))
    groups = [(None, frame)] if dash_by is None else list(frame.groupby(dash_by, sort=False))
    shown: set[str] = set()
    for style_index, (style_value, group) in enumerate(groups):
        for model, rows in group.groupby("model", sort=True):
            rows = rows.sort_values("seq_len")
            label = model if style_value is None else f"{model} ({style_value})"
            error = None
            if spread is not None and rows[spread].notna().any():
                error = {"type": "data", "array": rows[spread].fillna(0).tolist(), "visible": True}
            extra = "" if details is None else "<br>%{customdata}"
            figure.add_trace(go.Scatter(
                x=rows["seq_len"], y=rows[y], mode="lines+markers", name=model, legendgroup=model,
                showlegend=model not in shown, error_y=error,
                customdata=None if details is None else rows[details].tolist(),
                hovertemplate=hover(label, "T", y_title, extra),
                line={"color": colors[model], "dash": _LINE_STYLES[style_index % len(_LINE_STYLES)]}))
            shown.add(model)
    if baseline is not None and not baseline.empty:
        line = baseline.drop_duplicates("seq_len").sort_values("seq_len")
        figure.add_trace(go.Scatter(x=line["seq_len"], y=line["baseline"], mode="lines", name="trivial baseline",
                                    hovertemplate=hover("trivial baseline", "T", y_title),
                                    line={"color": "black", "dash": "dash"}))
    if marked is not None and not marked.empty:
        _add_marked(figure, marked, model_colors(sorted(set(frame["model"]) | set(marked["model"]))), shown)
    figure.update_layout(title=title, xaxis_title=SEQ_LEN_TITLE, yaxis_title=y_title, legend_title="model",
                         margin={"t": 60})
    return log_axes(figure, x=True, y=log_y)


def _add_marked(figure: go.Figure, marked: pd.DataFrame, colors: dict[str, str], shown: set[str]) -> None:
    """One ✕ per arm without a result, on the baseline, in its model's colour, labelled how it ended (in its
    model's legend entry)."""
    for model, rows in marked.groupby("model", sort=True):
        ends = zip(rows["failure"], rows["seq_len"], strict=True)
        labels = [f"{model}: {failure} at T = {seq_len}" for failure, seq_len in ends]
        figure.add_trace(go.Scatter(x=rows["seq_len"], y=rows["baseline"], mode="markers+text",
                                    name=model, legendgroup=model, showlegend=model not in shown,
                                    marker={"symbol": "x", "size": 11, "color": colors[model]}, text=labels,
                                    textposition="top center", hovertemplate="%{text}<extra></extra>"))


def versus_other_lengths(points: pd.DataFrame, title: str, y_title: str, log_y: bool = False) -> go.Figure:
    """Length generalisation: one line per (model, trained T) of the metric against the length T′ it was
    tested at (log axis), the trained T a star and a line style per trained T (one legend entry per model),
    points without a metric (oom, failed) ✕ at the top of the plot labelled how they ended.
    `points`: `seqarena.platform.lengths.points_frame`."""
    figure = go.Figure()
    colors = model_colors(sorted(points["model"].unique()))
    top = points["mean"].max() if points["mean"].notna().any() else 1.0
    shown: set[str] = set()
    for (model, trained), rows in points.groupby(["model", "trained_seq_len"], sort=True):
        rows = rows.sort_values("seq_len")
        style = sorted(points.loc[points["model"] == model, "trained_seq_len"].unique()).index(trained)
        measured = rows[rows["mean"].notna()]
        figure.add_trace(go.Scatter(
            x=measured["seq_len"], y=measured["mean"], mode="lines+markers", name=model, legendgroup=model,
            showlegend=model not in shown,
            marker={"symbol": ["star" if t else "circle" for t in measured["trained"]],
                    "size": [14 if t else 7 for t in measured["trained"]]},
            line={"color": colors[model], "dash": _LINE_STYLES[style % len(_LINE_STYLES)]},
            customdata=measured[["n", "mark"]].fillna("").values,
            hovertemplate=f"<b>{model} trained at T = {trained}</b><br>T′: %{{x}}<br>{y_title}: %{{y:.4g}} "
                          "(n = %{customdata[0]}) %{customdata[1]}<extra></extra>"))
        shown.add(model)
        missing = rows[rows["mean"].isna()]
        if not missing.empty:
            figure.add_trace(go.Scatter(
                x=missing["seq_len"], y=[top] * len(missing), mode="markers+text", name=model, legendgroup=model,
                showlegend=False, marker={"symbol": "x", "size": 11, "color": colors[model]},
                text=[f"{model}: {mark}" for mark in missing["mark"]], textposition="top center",
                hovertemplate="%{text}<extra></extra>"))
    figure.update_layout(title=title, xaxis_title="length T′ tested at (time steps; ★ the trained T, one line "
                         "style per trained T)", yaxis_title=y_title, legend_title="model", margin={"t": 60})
    return log_axes(figure, x=True, y=log_y)


def pareto(points: pd.DataFrame, front: pd.Series, x: str, x_title: str, metric_title: str, log_x: bool,
           solves: pd.Series | None = None) -> go.Figure:
    """Every trial as a point in its model's colour, the Pareto front as a black line through its points (which
    keep their model's colour, drawn larger as stars). `solves` (per point): points that do not solve the task
    are grey (`NOT_SOLVED_COLOR`) and never on the front; trials ASHA stopped (`status` `stopped`) are open
    circles. One legend entry per model."""
    figure = go.Figure()
    colors = model_colors(sorted(points["model"].unique()))
    solving = pd.Series(True, index=points.index) if solves is None else solves
    stopped = points["status"].eq("stopped") if "status" in points else pd.Series(False, index=points.index)
    extra = "<br>trial %{text}"
    for model, rows in points.groupby("model", sort=True):
        solved = solving.loc[rows.index]
        for solves_it, part in ((True, rows[solved]), (False, rows[~solved])):
            if part.empty:
                continue
            open_ = stopped.loc[part.index]
            figure.add_trace(go.Scatter(
                x=part[x], y=part["metric"], mode="markers", name=model, legendgroup=model,
                showlegend=solves_it or not solved.any(), opacity=0.7 if solves_it else 0.5,
                marker={"color": colors[model] if solves_it else NOT_SOLVED_COLOR, "size": 8,
                        "symbol": ["circle-open" if s else "circle" for s in open_],
                        "line": {"color": colors[model], "width": 1.5}},
                text=part["trial_id"],
                hovertemplate=hover(model + ("" if solves_it else " (does not solve)"), x_title, metric_title,
                                    extra)))
    on_front = points[front & solving].sort_values(x)
    if not on_front.empty:
        figure.add_trace(go.Scatter(x=on_front[x], y=on_front["metric"], mode="lines+markers", name="Pareto front",
                                    line={"color": "black", "width": 2}, text=on_front["trial_id"],
                                    marker={"size": 14, "symbol": "star",
                                            "color": [colors[m] for m in on_front["model"]],
                                            "line": {"color": "black", "width": 1}},
                                    hovertemplate=hover("Pareto front", x_title, metric_title, extra)))
    figure.update_layout(title=f"{metric_title} against {x_title}", xaxis_title=x_title, yaxis_title=metric_title,
                         legend_title="model", margin={"t": 60})
    return log_axes(figure, x=log_x)


def trace_figure(trace: Trace) -> go.Figure:
    """`seqarena trace`'s four panels against the time step: gradient norms (log axis), state norms,
    gate means, and the first units of the last layer's features for one sequence."""
    steps = list(range(1, trace.seq_len + 1))
    figure = make_subplots(rows=4, cols=1, shared_xaxes=True, vertical_spacing=0.06, subplot_titles=(
        "gradient of the loss: ‖∂L/∂s_t‖ per recurrent layer, ‖∂L/∂u_t‖ of the input",
        "state norm ‖h_t‖ per layer", "gates (mean over batch and units), last layer" if trace.gates else
        f"gates: none, {trace.model} has no gates (its state norms and features are above and below)",
        "features h_t of the last layer, first units, first sequence"))
    for layer, curve in enumerate(trace.grad_state):
        figure.add_trace(go.Scatter(x=steps, y=curve, name=f"‖∂L/∂s_t‖ layer {layer + 1}"), row=1, col=1)
    figure.add_trace(go.Scatter(x=steps, y=trace.grad_input, name="‖∂L/∂u_t‖", line={"dash": "dot"}), row=1, col=1)
    for layer, curve in enumerate(trace.state_norm):
        figure.add_trace(go.Scatter(x=steps, y=curve, name=f"‖h_t‖ layer {layer + 1}"), row=2, col=1)
    for name, curve in trace.gates.items():
        figure.add_trace(go.Scatter(x=steps, y=curve, name=f"gate {name}"), row=3, col=1)
    for unit in range(len(trace.states[0]) if trace.states else 0):
        figure.add_trace(go.Scatter(x=steps, y=[step[unit] for step in trace.states], name=f"unit {unit}",
                                    line={"width": 1}, showlegend=False), row=4, col=1)
    figure.update_yaxes(type="log", tickformat=LOG_TICKS, title_text="gradient norm", row=1, col=1)
    figure.update_xaxes(title_text="time step t", row=4, col=1)
    figure.update_layout(height=1100, title=f"{trace.model} on {trace.task} (T = {trace.seq_len}): "
                                             f"loss {trace.loss:.4g}, batch of {trace.batch_size}")
    return figure
