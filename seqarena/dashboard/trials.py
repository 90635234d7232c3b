"""Trials page: every trial of one arm, its learning curves, and its hyperparameters against the metric.

- The status of each trial: completed, stopped (early-stopped by ASHA), diverged, oom, failed
  (from the database) and running (MLflow child runs still RUNNING).
- Learning curves of the chosen trials (validation metric and training loss per step, from
  MLflow). While the arm's search runs, the curves refresh every few seconds, so a researcher sees
  early whether it learns.
- The importance of each searched hyperparameter for the test metric (Optuna's fANOVA over the arm's
  ranked search trials: `seqarena.platform.importance`, what `seqarena importance` prints).
- A parallel-coordinates plot of the searched hyperparameters against the test metric.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from seqarena.dashboard import data, display, filters
from seqarena.dashboard.filters import Filters
from seqarena.errors import BadInput
from seqarena.platform.importance import ArmImportance
from seqarena.platform.leaderboard import ArmBest
from seqarena.platform.schema import TRIAL_STATUSES
from seqarena.platform.tracking import tracking_uri

REFRESH_S = 5
#: A trial still running (MLflow), then the statuses of recorded trials. (Comments, not strings, at a page's top
#: level: Streamlit draws a page script's bare strings.)
STATUS_ORDER = ("running", *TRIAL_STATUSES)
DEFAULT_CURVES = 5


def with_hparams(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials with one `hp.<name>` column per hyperparameter."""
    if trials.empty:
        return trials
    hparams = pd.json_normalize(trials["hparams"].tolist()).add_prefix("hp.")
    return pd.concat([trials.drop(columns=["hparams"]).reset_index(drop=True), hparams], axis=1)


def varied(trials: pd.DataFrame) -> list[str]:
    """The `hp.` columns whose value differs between trials (the searched ones)."""
    return [c for c in trials.columns if c.startswith("hp.") and trials[c].astype(str).nunique() > 1]


def parallel_coordinates(trials: pd.DataFrame, columns: list[str], metric: str, higher: bool) -> go.Figure:
    """One line per ranked trial through its hyperparameters to its metric (colour = metric)."""
    ranked = trials[trials["metric"].notna()]
    dimensions: list[dict[str, Any]] = []
    for column in columns:
        values = ranked[column]
        if pd.api.types.is_numeric_dtype(values):
            dimensions.append({"label": column[3:], "values": values.astype(float)})
        else:
            codes, labels = pd.factorize(values.astype(str), sort=True)
            dimensions.append({"label": column[3:], "values": codes, "tickvals": list(range(len(labels))),
                               "ticktext": list(labels)})
    dimensions.append({"label": f"test {metric}", "values": ranked["metric"]})
    line = {"color": ranked["metric"], "colorscale": "Viridis", "reversescale": not higher, "showscale": True}
    figure = go.Figure(go.Parcoords(line=line, dimensions=dimensions))
    figure.update_layout(title=f"hyperparameters against test {metric}", margin={"t": 80, "l": 60, "r": 60})
    return figure


def curves_figure(curves: pd.DataFrame, names: dict[str, str], title: str, y_title: str) -> go.Figure:
    figure = go.Figure()
    for run_id, rows in curves.groupby("run_id", sort=False):
        figure.add_trace(go.Scatter(x=rows["step"], y=rows["value"], mode="lines+markers", name=names[run_id]))
    figure.update_layout(title=title, xaxis_title="training step", yaxis_title=y_title, legend_title="trial")
    return figure


def arm_choice(rows: list[ArmBest], current: Filters) -> ArmBest:
    labels = {f"{row.key} · {current.search(row.search_id).label}": row for row in rows
              if current.search(row.search_id) is not None}
    best_first = sorted(labels, key=lambda label: (labels[label].seq_len, labels[label].model))
    return labels[st.selectbox("Arm", best_first, key="trials_arm")]


def render() -> None:
    st.title("Trials of an arm")
    current = filters.current()
    rows = current.board()
    if not rows:
        filters.no_results()
        return
    arm = arm_choice(rows, current)
    search = current.search(arm.search_id)
    experiment = search.mlflow_experiment_id
    trials = with_hparams(data.arm_trials(current.url, arm.search_id, arm.key))
    running = data.running_runs(tracking_uri(), experiment, arm.search_id, arm.key) if search.status == "running" \
        else pd.DataFrame(columns=["trial_id", "mlflow_run_id", "role"])
    _status_line(trials, running)
    _table(trials, current, experiment)
    live = search.status == "running"
    st.fragment(run_every=REFRESH_S if live else None)(_curves)(trials, running, arm)
    _importance(current.url, arm)
    _parallel(trials, arm)


def parallel_missing(trials: pd.DataFrame, columns: list[str]) -> str | None:
    """Why the arm has no parallel-coordinates plot (None: it has one): it needs two trials with a test
    metric and a hyperparameter whose value differs between trials."""
    ranked = int(trials["metric"].notna().sum()) if not trials.empty else 0
    if ranked < 2:
        return (f"Parallel coordinates: none for this arm, it needs two or more trials with a test metric "
                f"(it has {ranked}).")
    if not columns:
        return "Parallel coordinates: none for this arm, every trial ran the same hyperparameters."
    return None


def _parallel(trials: pd.DataFrame, arm: ArmBest) -> None:
    columns = varied(trials)
    if why := parallel_missing(trials, columns):
        st.caption(why)
        return
    figure = parallel_coordinates(trials, columns, arm.metric_name, arm.higher_is_better)
    display.show(figure, trials[["trial_id", *columns, "metric"]], f"{arm.key} hyperparameters")


def importance_figure(found: ArmImportance) -> go.Figure:
    """One bar per varied hyperparameter: its share of the test metric's variance (fANOVA), largest on top."""
    params = list(reversed(found.params))
    figure = go.Figure(go.Bar(x=[param.importance for param in params], y=[param.name for param in params],
                              orientation="h", text=[f"{param.importance:.2f}" for param in params]))
    figure.update_layout(title=f"hyperparameter importance for test {found.metric_name} (fANOVA over "
                               f"{found.n_trials} search trials)", xaxis_title="share of variance",
                         xaxis_range=[0, 1])
    return figure


def _importance(url: str, arm: ArmBest) -> None:
    try:
        found = data.importance(url, arm.search_id, arm.key)
    except BadInput as why:
        st.caption(f"Hyperparameter importance: needs {why.allowed}.")
        return
    frame = pd.DataFrame([{"hyperparameter": param.name, "importance": param.importance} for param in found.params])
    display.show(importance_figure(found), frame, f"{arm.key} importance")


def _status_line(trials: pd.DataFrame, running: pd.DataFrame) -> None:
    counts = trials["status"].value_counts().to_dict() if not trials.empty else {}
    counts["running"] = len(running)
    metrics = st.columns(len(STATUS_ORDER))
    for column, status in zip(metrics, STATUS_ORDER, strict=True):
        column.metric(status, int(counts.get(status, 0)))


def _table(trials: pd.DataFrame, current: Filters, experiment: str) -> None:
    if trials.empty:
        st.info("No trial of this arm has finished yet.")
        return
    shown = trials.assign(mlflow=[data.run_link(experiment, run) for run in trials["mlflow_run_id"]])
    shown = shown.drop(columns=["mlflow_run_id"])
    st.dataframe(shown, hide_index=True, key="trials_table", column_config={
        "mlflow": st.column_config.LinkColumn("MLflow run", display_text="open"),
        "metric": st.column_config.NumberColumn("test metric", format="%.4g"),
    })


def _curves(trials: pd.DataFrame, running: pd.DataFrame, arm: ArmBest) -> None:
    """Learning curves of the chosen trials (a fragment: reruns alone while the search runs)."""
    ranked = trials[trials["metric"].notna()] if not trials.empty else trials
    if not ranked.empty:
        ranked = ranked.sort_values("metric", ascending=not arm.higher_is_better)
    choices = {f"{row.trial_id} (running)": row.mlflow_run_id for row in running.itertuples()}
    if not trials.empty:
        choices.update({f"{row.trial_id} ({row.status})": row.mlflow_run_id for row in
                        pd.concat([ranked, trials[~trials.index.isin(ranked.index)]]).itertuples()
                        if row.mlflow_run_id})
    if not choices:
        return
    chosen = st.multiselect("Learning curves of", list(choices), default=list(choices)[:DEFAULT_CURVES],
                            key=f"trials_curves:{arm.search_id}:{arm.key}")  # per arm: its best trials first
    run_ids = tuple(choices[label] for label in chosen)
    if not run_ids:
        return
    names = {choices[label]: label for label in chosen}
    for key, title in ((f"val_{arm.metric_name}", f"validation {arm.metric_name}"), ("train_loss", "training loss")):
        curves = data.curves(tracking_uri(), run_ids, key)
        if not curves.empty:
            display.show(curves_figure(curves, names, f"{arm.key}: {title}", title),
                         curves.assign(trial=curves["run_id"].map(names)), f"{arm.key} {title}")


if __name__ == "__main__":
    render()
