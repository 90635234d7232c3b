"""Pareto page: the test metric of every trial at one sequence length against its cost.

Cost is training throughput (higher is better), inference throughput, or parameter count (lower
is better). The front (trials no other trial beats in both metric and cost) is highlighted: the
models worth their price. Points are the ranked search trials of the arms on the leaderboard
(the chosen searches, or each arm's latest search), each in its model's colour.

Only trials that solve the task (`Task.solved_when`, the rule the leaderboard counts seeds by:
`seqarena.platform.solving.solves`) can be on the front; the others are greyed, and an arm nobody solved has
no point on it, said under the plot. Trials ASHA stopped early that recorded a test metric are drawn as open
circles at it; those stopped before one are left out, and both are counted under the plot.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, display, figures, filters
from seqarena.platform.solving import solves

COSTS = {  # label -> (column, higher is better, log axis)
    "training throughput (sequences/s)": ("train_seq_per_s", True, True),
    "inference throughput (sequences/s)": ("infer_seq_per_s", True, True),
    "parameter count": ("params", False, True),
}


def pareto_front(points: pd.DataFrame, metric_higher_is_better: bool, cost: str, cost_higher_is_better: bool) -> Any:
    """A boolean Series: the points no other point beats in both the metric and `cost`.

    A point is dominated when another is at least as good in both and strictly better in one.
    """
    metric = points["metric"] if metric_higher_is_better else -points["metric"]
    other = points[cost] if cost_higher_is_better else -points[cost]
    order = sorted(range(len(points)), key=lambda i: (-other.iloc[i], -metric.iloc[i]))
    front = pd.Series(False, index=points.index)
    best_metric = float("-inf")
    for i in order:  # walk from the best cost down: a point is on the front if it beats every better-cost one
        if metric.iloc[i] > best_metric:
            front.iloc[i] = True
            best_metric = metric.iloc[i]
    return front


def render() -> None:
    st.title("Pareto: metric against cost")
    current = filters.current()
    rows = current.board()
    seq_lens = sorted({row.seq_len for row in rows if row.mean is not None})
    if not seq_lens:
        filters.no_results()
        return
    left, right = st.columns(2)
    seq_len = left.selectbox("Sequence length T", seq_lens, index=len(seq_lens) - 1, key="pareto_seq_len")
    cost = right.radio("Cost", list(COSTS), horizontal=True, key="pareto_cost")
    column, cost_higher, log_x = COSTS[cost]
    search_ids = tuple(sorted({row.search_id for row in rows if row.seq_len == seq_len}))
    points = data.ranked_trials(current.url, current.task, seq_len, search_ids, current.models)
    points = points[points[column].notna()].reset_index(drop=True)
    if points.empty:
        st.info(f"No ranked trial at T = {seq_len} records its {cost}.")
        return
    higher = bool(points["higher_is_better"].iloc[0])
    solving = pd.Series(solves(str(current.task), points["metric"].tolist(), float(points["baseline"].iloc[0]),
                               higher), index=points.index)
    front = pd.Series(False, index=points.index)
    if solving.any():
        front.loc[solving] = pareto_front(points[solving], higher, column, cost_higher)
    metric = rows[0].metric_name
    figure = figures.pareto(points, front, column, cost, f"test {metric}", log_x, solves=solving)
    table = points.assign(solves=solving, on_front=front)[
        ["model", "trial_id", "status", "metric", column, "solves", "on_front", "mlflow_run_id"]]
    display.show(figure, table, f"{current.task} T={seq_len} {metric} vs {column}")
    st.caption(front_caption(points, solving, front, rows, seq_len))


def front_caption(points: pd.DataFrame, solving: pd.Series, front: pd.Series, rows: list[Any], seq_len: int) -> str:
    """What the plot holds: trials, those on the front, those greyed (do not solve), ASHA-stopped ones."""
    rule = next((row.solve.rule for row in rows if row.solve is not None), None)
    unsolved = sorted(set(points["model"]) - set(points.loc[solving, "model"]))
    stopped = int(points["status"].eq("stopped").sum())
    parts = [f"{len(points)} trials; {int(front.sum())} on the front: "
             + (", ".join(sorted(set(points.loc[front, "model"]))) or "none")]
    if rule is not None:
        parts.append(f"only trials that solve the task ({rule}) can be on the front; {int((~solving).sum())} "
                     "that do not are greyed")
    if unsolved:
        parts.append("no trial solved it for " + ", ".join(unsolved) + ": not on the front")
    parts.append(f"{stopped} stopped early by ASHA with a test metric (open circles, at the step they stopped at)")
    left_out = sum(row.stopped for row in rows if row.seq_len == seq_len) - stopped
    if left_out > 0:
        parts.append(f"{left_out} stopped by ASHA before a test metric: left out")
    return "; ".join(parts) + "."


if __name__ == "__main__":
    render()
