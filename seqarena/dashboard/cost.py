"""Memory and throughput vs sequence length: what each model's best configuration costs.

From the recorded figures of each arm's best trial: peak memory of a training step (MB; CUDA's
counters on GPU, bytes kept for backward plus parameters, gradients and optimiser state on CPU,
see `seqarena.workers.measure`), and sequences per second in training and in inference. Both
axes are logarithmic: a recurrence costs O(T) time, attention O(T²) memory.

Below them, when `seqarena profile` runs are recorded, the same two figures for a chosen run
(newest first): every model at the same batch and hidden size on random data.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, display, figures, filters
from seqarena.platform.leaderboard import board_frame


def render() -> None:
    st.title("Memory and throughput vs sequence length")
    current = filters.current()
    search_figures(current)
    profile_figures(current.url)


def search_figures(current: filters.Filters) -> None:
    """The figures of each arm's best search trial under the sidebar's filters."""
    frame = board_frame(current.board())
    frame = frame[frame["trial_id"].notna()]
    if frame.empty:
        filters.no_results()
        return
    memory = frame[frame["peak_mem_mb"].notna()]
    figure = figures.versus_seq_len(memory, "peak_mem_mb", f"{current.task}: peak memory of a training step",
                                    "peak memory (MB)", log_y=True)
    display.show(figure, memory[["model", "seq_len", "peak_mem_mb", "params", "trial_id"]],
                 f"{current.task} memory vs T")
    speed = pd.concat([
        frame.assign(phase="training", seq_per_s=frame["train_seq_per_s"]),
        frame.assign(phase="inference", seq_per_s=frame["infer_seq_per_s"]),
    ])
    speed = speed[speed["seq_per_s"].notna()]
    figure = figures.versus_seq_len(speed, "seq_per_s", f"{current.task}: throughput (solid: training, "
                                    "dashed: inference)", "sequences / s", log_y=True, dash_by="phase")
    display.show(figure, speed[["model", "seq_len", "phase", "seq_per_s", "trial_id"]],
                 f"{current.task} throughput vs T")


def profile_label(run: pd.Series) -> str:
    return f"{run['name']} · {run['created_at']:%Y-%m-%d %H:%M} · {run['id'][:8]}"


def profile_figures(url: str) -> None:
    """A chosen `seqarena profile` run's memory and throughput figures (nothing when none is recorded)."""
    runs = data.profile_runs(url)
    if runs.empty:
        return
    st.header("Profile runs (`seqarena profile`)")
    labels = {profile_label(run): run for _, run in runs.iterrows()}
    chosen = labels[st.selectbox("Profile run", list(labels), key="cost_profile_run")]
    st.caption(f"{chosen['device']}, torch {chosen['torch_version']}, batch {chosen['batch_size']}, "
               f"hidden {chosen['hidden']}; random data, each model at its declared depth")
    rows = data.profile_rows(url, str(chosen["id"]))
    measured = rows[rows["status"] == "ok"]
    missing = rows[rows["status"] != "ok"]
    if not missing.empty:
        st.caption("not measured: " + ", ".join(f"{r.model} T={r.seq_len} ({r.status})" for r in missing.itertuples()))
    if measured.empty:
        return
    name = f"profile {str(chosen['id'])[:8]}"
    figure = figures.versus_seq_len(measured, "peak_mem_mb", "profile: peak memory of a training step",
                                    "peak memory (MiB)", log_y=True)
    display.show(figure, measured[["model", "seq_len", "peak_mem_mb", "params"]], f"{name} memory vs T")
    speed = pd.concat([measured.assign(phase="training", seq_per_s=measured["train_seq_per_s"]),
                       measured.assign(phase="inference", seq_per_s=measured["infer_seq_per_s"])])
    figure = figures.versus_seq_len(speed, "seq_per_s", "profile: throughput (solid: training, dashed: inference)",
                                    "sequences / s", log_y=True, dash_by="phase")
    display.show(figure, speed[["model", "seq_len", "phase", "seq_per_s", "train_step_s", "infer_step_s"]],
                 f"{name} throughput vs T")


if __name__ == "__main__":
    render()
