"""Compare page: two models of the chosen task, T by T, over the seeds both ran (`seqarena compare`'s numbers).

Each model's arm at a T is the leaderboard's (the sidebar's searches and models); its runs are the runs
of its best configuration, one per seed. The table gives each model's mean with its percentile
bootstrap interval and n, the paired difference a − b over the shared seeds with its interval and the
sign-flip p-value, and the better model when that interval excludes 0
(`seqarena.platform.comparison`). The figure draws the paired difference against T with its interval.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from seqarena.dashboard import display, filters
from seqarena.platform.comparison import Comparison, Settings, pair, summary_frame, title
from seqarena.platform.statistics import level_text


def difference_figure(comparisons: Sequence[Comparison]) -> go.Figure:
    """The paired difference a − b against T (log axis), with its bootstrap interval as error bars."""
    paired = [each for each in comparisons if each.paired is not None]
    a, b = comparisons[0].a.model, comparisons[0].b.model
    x = [each.seq_len for each in paired]
    y = [each.paired.difference.mean for each in paired]
    figure = go.Figure(go.Scatter(
        x=x, y=y, mode="markers+lines", name=f"{a} − {b}",
        text=[f"n = {each.paired.difference.n}, p = {each.paired.p_value:.3g}" for each in paired],
        error_y={"type": "data", "symmetric": False,
                 "array": [each.paired.difference.high - each.paired.difference.mean for each in paired],
                 "arrayminus": [each.paired.difference.mean - each.paired.difference.low for each in paired]}))
    figure.add_hline(y=0, line_dash="dot", line_color="#999")
    level = level_text(paired[0].paired.difference.level) if paired else ""
    figure.update_layout(title=f"paired difference {a} − {b} of test {comparisons[0].metric_name} ({level} interval)",
                         xaxis_title="sequence length T", yaxis_title=f"{a} − {b}", xaxis_type="log")
    return figure


def render() -> None:
    st.title("Compare two models")
    current = filters.current()
    rows = current.board()
    models = sorted({row.model for row in rows})
    if len(models) < 2:
        if rows:
            st.info("Two models are needed: widen the model filter.")
        else:
            filters.no_results()
        return
    left, right = st.columns(2)
    a = left.selectbox("Model a", models, index=0, key="compare_a")
    b = right.selectbox("Model b", [model for model in models if model != a], index=0, key="compare_b")
    settings = Settings()
    comparisons = pair(rows, a, b, settings)
    st.caption(title(comparisons, settings))
    frame = summary_frame(comparisons)
    st.dataframe(frame, hide_index=True, key="compare_table")
    if any(each.paired is not None for each in comparisons):
        display.show(difference_figure(comparisons), _difference_data(comparisons), f"{a} minus {b}")


def _difference_data(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    return pd.DataFrame([{"T": each.seq_len, "mean": each.paired.difference.mean, "low": each.paired.difference.low,
                          "high": each.paired.difference.high, "n": each.paired.difference.n,
                          "p": each.paired.p_value} for each in comparisons if each.paired is not None])


if __name__ == "__main__":
    render()
