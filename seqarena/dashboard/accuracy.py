"""Metric vs sequence length page: one line per model, the test metric against T on a log axis.

Points are each arm's best configuration (mean over its runs, ± std as error bars where repeats
exist), the task's trivial baseline is the dashed black line: a model on that line has learnt
nothing (e.g. adding MSE 0.167, sMNIST accuracy 0.1). An arm whose trials all ran out of memory,
diverged or failed is a marked point (✕) on the baseline, labelled how it ended ("oom at T = 5000").

Below it, where the spec named `length_generalisation`: each model's best configuration, trained at T (★),
tested at other lengths T′ (`seqarena.platform.lengths`), points without a metric marked ✕ ("oom at T′ = …").
"""

from __future__ import annotations

import streamlit as st

from seqarena.dashboard import data, display, figures, filters
from seqarena.platform.leaderboard import board_frame


def render() -> None:
    st.title("Metric vs sequence length")
    current = filters.current()
    rows = current.board()
    every = board_frame(rows)
    frame = every[every["mean"].notna()]
    if frame.empty:
        filters.no_results()
        return
    metric = rows[0].metric_name
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    log_y = st.toggle("log scale for the metric", value=False, key="accuracy_log_y")
    figure = figures.versus_seq_len(frame, "mean", f"{current.task}: test {metric} against T ({direction})",
                                    f"test {metric}", spread="std", log_y=log_y,
                                    baseline=frame[["seq_len", "baseline"]], marked=every[every["failure"].notna()])
    display.show(figure, every[["model", "seq_len", "mean", "std", "n", "baseline", "solved", "seeds", "failure"]],
                 f"{current.task} {metric} vs T")
    _other_lengths(current, metric, log_y)


def _other_lengths(current: filters.Filters, metric: str, log_y: bool) -> None:
    """Length generalisation: the metric at the other lengths T′ the trained models were tested at."""
    if current.task is None:
        return
    points = data.length_points(current.url, current.task, current.search_ids, current.models)
    st.subheader("At other lengths T′ (length generalisation)")
    if points.empty:
        st.caption("No trial of this task was tested at other lengths (spec field length_generalisation).")
        return
    figure = figures.versus_other_lengths(points, f"{current.task}: test {metric} at the length T′ tested at",
                                          f"test {metric}", log_y=log_y)
    display.show(figure, points, f"{current.task} {metric} at other lengths")


if __name__ == "__main__":
    render()
