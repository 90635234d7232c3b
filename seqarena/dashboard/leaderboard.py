"""Leaderboard page: models × sequence lengths, the best metric per arm, linked to its MLflow run.

Each cell is the arm's best search trial's test metric, or `mean ± std` over the runs of that
configuration when repeats exist (rules: `seqarena.platform.leaderboard`). The task's trivial
baseline is a row of its own; the best model of each column is starred; under each number, how many
seeds of that configuration solved the task (the task's `solved_when`) and the median and range of their
steps to solve; an arm no seed solved is greyed and marked "not solved: 0 / n within N steps"; an arm
without a result says how its trials ended ("oom"). Every number links to the MLflow run of
its best trial. The task's data protocol (`seqarena.tasks.protocols`) is stated once in the caption
when every arm shares it (a comparison), else beside each model (a reproduction: each paper's own).

Below it, the comparison table (`seqarena.platform.comparison_table`): one row per (model, T) with the metric,
solved k / n, steps to solve, parameters, peak memory, training and inference throughput and where they were
measured; sortable by any column, each row one click from its MLflow run, downloadable as CSV.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, display, filters
from seqarena.dashboard.filters import Filters
from seqarena.platform.comparison_table import mixed_measurements
from seqarena.platform.leaderboard import ArmBest, best_at, board_frame, cell, table
from seqarena.platform.solving import reach
from seqarena.platform.statistics import LEVEL, RESAMPLES, interval_text, level_text

NOT_SOLVED = "not solved"


def winners(rows: Sequence[ArmBest]) -> dict[int, str]:
    """The best model per sequence length (`seqarena.platform.leaderboard.best_at`: the CLI's rule)."""
    return {seq_len: row.model for (_, seq_len), row in best_at(rows).items()}


def board_html(rows: Sequence[ArmBest], current: Filters) -> str:
    """The leaderboard as an HTML table (models × T), each number a link to its MLflow run."""
    seq_lens = sorted({row.seq_len for row in rows})
    models = list(dict.fromkeys(row.model for row in sorted(rows, key=lambda r: r.model)))
    by_arm = {(row.model, row.seq_len): row for row in rows}
    won = winners(rows)
    metric = rows[0].metric_name
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    head = "".join(f"<th>T = {seq_len}</th>" for seq_len in seq_lens)
    shared = protocol_text({row.protocol for row in rows})
    lines = [f'<table class="seqarena-board"><caption>test {html.escape(metric)} ({direction}); '
             f"★ best at its T; mean ± std over the runs of the best configuration"
             f"{'; data protocol ' + html.escape(shared) if shared else ''}</caption>",
             f"<thead><tr><th>model</th>{head}</tr></thead><tbody>"]
    for model in models:
        cells_html = "".join(_cell_html(by_arm.get((model, seq_len)), won.get(seq_len) == model, current)
                             for seq_len in seq_lens)
        own = "" if shared else protocol_text({row.protocol for row in rows if row.model == model})
        label = html.escape(model) + (f" <small>(protocol {html.escape(own)})</small>" if own else "")
        lines.append(f"<tr><th>{label}</th>{cells_html}</tr>")
    baselines = {row.seq_len: row.baseline for row in rows}
    base_cells = "".join(f"<td><i>{baselines[seq_len]:.4g}</i></td>" for seq_len in seq_lens)
    lines.append(f'<tr class="baseline"><th><i>trivial baseline</i></th>{base_cells}</tr></tbody></table>')
    return "\n".join(lines)


def protocol_text(names: set[str | None]) -> str:
    """One data protocol's name when `names` holds exactly one, "" otherwise ("unrecorded" for None)."""
    if len(names) != 1:
        return ""
    (name,) = names
    return name or "unrecorded"


def _cell_html(row: ArmBest | None, winner: bool, current: Filters) -> str:
    if row is None:
        return "<td></td>"
    if row.mean is None:
        return f'<td title="{row.trials} trials, none ranked">{html.escape(row.failure or "—")}</td>'
    text = html.escape(cell(row))
    link = data.run_link(current.experiment_of(row.search_id), row.mlflow_run_id)
    if link:
        text = f'<a href="{html.escape(link)}" target="_blank" rel="noopener">{text}</a>'
    if winner:
        text = f"<b>★ {text}</b>"
    if row.solve is not None and row.solve.solved == 0:
        text = f'<span style="color:#999">{text} <small>({NOT_SOLVED}: {html.escape(row.solve.cell())})</small></span>'
    elif row.solve is not None:
        text = f"{text}<br><small>solved {html.escape(row.solve.cell())}</small>"
    rerun = f"; re-run winner: #{row.search_place} of {row.rerun_configs} configurations" if row.rerun_configs else ""
    title = (f"{row.trials} trials; {level_text(LEVEL)} CI {interval_cell(row)}; search {row.search_id[:8]}; "
             f"trial {row.trial_id}; data protocol {row.protocol or 'unrecorded'}{rerun}")
    return f'<td title="{html.escape(title)}">{text}</td>'


def reach_frame(rows: Sequence[ArmBest]) -> pd.DataFrame:
    """Per model: its lengths, the longest T it solved, the area under metric vs log T, its marked arms."""
    return pd.DataFrame([{"model": line.model, "T": ", ".join(str(t) for t in line.seq_lens),
                          "max T solved": line.max_t_solved, "AUC (metric vs log10 T)": line.auc,
                          "marked": "; ".join(line.marked)} for line in reach(rows)])


def render() -> None:
    st.title("Leaderboard")
    current = filters.current()
    rows = current.board()
    if not rows:
        filters.no_results()
        return
    st.caption(f"task **{current.task}** · {len(rows)} arms · "
               f"{'all searches (each arm from its latest)' if current.search_ids is None else 'chosen searches'}")
    st.markdown(board_html(rows, current), unsafe_allow_html=True)
    comparison_section(rows, current)
    frame = board_frame(rows)
    won = winners(rows)
    summary = pd.DataFrame([{"T": seq_len, "best model": model} for seq_len, model in sorted(won.items())])
    if not summary.empty:
        st.dataframe(summary, hide_index=True, key="winners")
    st.dataframe(reach_frame(rows), hide_index=True, key="reach")
    display.csv_download("Download leaderboard (CSV)", frame, f"leaderboard_{current.task}.csv", key="csv_leaderboard")
    intervals_section(rows)


RUN_COLUMN = "MLflow run"


def comparison_frame(rows: Sequence[ArmBest], current: Filters) -> pd.DataFrame:
    """The comparison table under the current filters, each row with its MLflow run's address."""
    frame = data.comparison(current.url, current.task, current.search_ids, current.models)
    links = [data.run_link(current.experiment_of(search), run) if isinstance(run, str) else None
             for search, run in zip(frame["search_id"], frame["mlflow_run_id"], strict=True)]
    return frame.assign(**{RUN_COLUMN: links})


def comparison_caption(rows: Sequence[ArmBest], frame: pd.DataFrame) -> str:
    rule = next((row.solve.rule for row in rows if row.solve is not None), None)
    direction = "higher is better" if rows[0].higher_is_better else "lower is better"
    solved = (f"solved: seeds whose test metric meets the task's rule ({rule}); steps to solve: median over them of "
              "the first evaluation that met it" if rule else "solved: the task declares no rule")
    stopped = int(frame["stopped by ASHA"].sum())
    return (f"One row per (model, T); test {rows[0].metric_name} ({direction}): mean and std over the n seeds of the "
            f"arm's best configuration; {solved}. Cost of the best trial: peak memory of a training step, sequences/s "
            "in training and in inference, timed in steady state (warm-up and kernel builds left out) while the "
            "search's other trials shared the machine (the profile runs on Memory & throughput run alone). "
            f"{stopped} trial(s) stopped early by ASHA are counted in 'trials' (ranked only where they recorded a "
            "test metric; one stopped before its test has none and is left out of mean, solved and cost). "
            "Click a header to sort; 'open' opens the row's MLflow run.")


def comparison_section(rows: Sequence[ArmBest], current: Filters) -> None:
    """The comparison table: sortable, every row linked to its MLflow run, downloadable as CSV."""
    frame = comparison_frame(rows, current)
    if frame.empty:
        return
    st.subheader("Comparison table")
    st.caption(comparison_caption(rows, frame))
    mixed = mixed_measurements(frame)
    if mixed:
        st.warning(f"Cost not measured alike ({mixed}): compare memory and throughput only between rows measured "
                   "alike.")
    shown = display.rounded(frame.drop(columns=["search_id", "mlflow_run_id"]))
    config = {RUN_COLUMN: st.column_config.LinkColumn(RUN_COLUMN, display_text="open"),
              **{name: st.column_config.NumberColumn(name, format=display.NUMBER_FORMAT) for name in shown.columns
                 if pd.api.types.is_float_dtype(shown[name])}}
    st.dataframe(shown, hide_index=True, column_config=config, key="comparison")
    display.csv_download("Download comparison table (CSV)", frame, f"comparison_{current.task}.csv",
                         key="csv_comparison")


def interval_cell(row: ArmBest) -> str:
    """`mean [low, high] n = k` over the runs of the arm's best configuration, "—" without a ranked trial."""
    return interval_text(row.interval, compact=True)


def intervals_section(rows: Sequence[ArmBest]) -> None:
    """Each arm's mean with its bootstrap interval and n (models × T), and where to compare two models."""
    st.subheader("Intervals over seeds")
    st.caption(f"mean [{level_text(LEVEL)} percentile bootstrap interval] over the n seeds of each arm's best "
               f"configuration ({RESAMPLES} resamples); the Compare page pairs two models seed by seed")
    intervals = table(list(rows), interval_cell)
    intervals.columns = [f"T = {column}" for column in intervals.columns]
    st.dataframe(intervals.reset_index(), hide_index=True, key="intervals")


if __name__ == "__main__":
    render()
