"""Memory and throughput vs sequence length: what each model's best configuration costs.

Peak memory of a training step (MB; CUDA's counters on GPU, bytes kept for backward plus parameters,
gradients and optimiser state on CPU, see `seqarena.workers.measure`), and sequences per second in training
and in inference. Both axes are logarithmic: a recurrence costs O(T) time, attention O(T²) memory.

First, when `seqarena profile` runs are recorded (the demo records one), the steady-state figures of a chosen
run (newest first): every model alone, at the same batch and hidden size on random data, after warm-up runs.
Then the figures of each arm's best search trial (`seqarena.platform.comparison_table`), measured while the
search's other trials shared the machine, each point's hover saying the device, the implementation and how
it was timed; the page says when the arms were measured on different devices (or a model through different
implementations), and which
figures were recorded before the warm-up (kernel builds) was left out of them.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, display, figures, filters
from seqarena.platform.comparison_table import mixed_measurements

PHASES = "solid: training, dashed: inference"


def render() -> None:
    st.title("Memory and throughput vs sequence length")
    current = filters.current()
    profile_figures(current.url)
    search_figures(current)


def measured_frame(current: filters.Filters) -> pd.DataFrame:
    """Each arm's best trial's cost (the comparison table) with `seq_len` and a `where` text for the hover."""
    frame = data.comparison(current.url, current.task, current.search_ids, current.models)
    frame = frame[frame["trial_id"].notna()].rename(columns={"T": "seq_len"})
    where = [f"{device} / {impl}; timing: {timing}" for device, impl, timing
             in zip(frame["device"], frame["implementation"], frame["timing"], strict=True)]
    return frame.assign(where=where)


def measurement_notes(frame: pd.DataFrame) -> None:
    """Say when the figures were measured alike only in part: several devices or implementations, or
    records from before the warm-up was left out."""
    mixed = mixed_measurements(frame.rename(columns={"seq_len": "T"}))
    if mixed:
        st.warning(f"Not measured alike ({mixed}): compare only points measured alike (the hover says where each "
                   "was).")
    warm = frame[frame["timing"] != "steady state"]
    if not warm.empty:
        st.caption("Not known to be steady state (recorded before warm-up and kernel builds were left out, or "
                   "without facts): " + ", ".join(f"{r.model} T={r.seq_len} ({r.timing})" for r in warm.itertuples()))


def search_figures(current: filters.Filters) -> None:
    """The figures of each arm's best search trial under the sidebar's filters."""
    st.header("Each arm's best trial, measured during its search")
    frame = measured_frame(current)
    if frame.empty:
        filters.no_results()
        return
    st.caption("Timed while the search's other trials shared the machine: compare models within one search.")
    measurement_notes(frame)
    memory = frame[frame["peak memory (MB)"].notna()]
    figure = figures.versus_seq_len(memory, "peak memory (MB)", f"{current.task}: peak memory of a training step",
                                    "peak memory (MB)", log_y=True, details="where")
    display.show(figure, memory[["model", "seq_len", "peak memory (MB)", "params", "trial_id", "where"]],
                 f"{current.task} memory vs T")
    speed = pd.concat([frame.assign(phase="training", seq_per_s=frame["training seq/s"]),
                       frame.assign(phase="inference", seq_per_s=frame["inference seq/s"])])
    speed = speed[speed["seq_per_s"].notna()]
    figure = figures.versus_seq_len(speed, "seq_per_s", f"{current.task}: throughput ({PHASES})",
                                    "throughput (sequences/s)", log_y=True, dash_by="phase", details="where")
    display.show(figure, speed[["model", "seq_len", "phase", "seq_per_s", "trial_id", "where"]],
                 f"{current.task} throughput vs T")


def profile_label(run: pd.Series) -> str:
    return f"{run['name']} · {run['created_at']:%Y-%m-%d %H:%M} · {run['id'][:8]}"


def profile_figures(url: str) -> None:
    """A chosen `seqarena profile` run's memory and throughput figures (nothing when none is recorded)."""
    runs = data.profile_runs(url)
    st.header("Steady state, each model alone (`seqarena profile`)")
    if runs.empty:
        st.caption("No profile run recorded yet: `seqarena profile --models lstm,gru --seq-lens 100,1000` (the "
                   "demo records one).")
        return
    labels = {profile_label(run): run for _, run in runs.iterrows()}
    chosen = labels[st.selectbox("Profile run", list(labels), key="cost_profile_run")]
    st.caption(f"{chosen['device']}, torch {chosen['torch_version']}, batch {chosen['batch_size']}, "
               f"hidden {chosen['hidden']}; random data, each model at its declared depth; median of timed runs "
               "after untimed warm-up runs (kernel builds left out)")
    rows = data.profile_rows(url, str(chosen["id"]))
    measured = rows[rows["status"] == "ok"]
    missing = rows[rows["status"] != "ok"]
    if not missing.empty:
        st.caption("not measured: " + ", ".join(f"{r.model} T={r.seq_len} ({r.status})" for r in missing.itertuples()))
    if measured.empty:
        return
    name = f"profile {str(chosen['id'])[:8]}"
    measured = measured.assign(where=[f"{chosen['device']} / {path or 'default'}; timing: steady state"
                                      for path in measured["path"]])
    figure = figures.versus_seq_len(measured, "peak_mem_mb", "profile: peak memory of a training step",
                                    "peak memory (MB)", log_y=True, details="where")
    display.show(figure, measured[["model", "seq_len", "peak_mem_mb", "params"]], f"{name} memory vs T")
    speed = pd.concat([measured.assign(phase="training", seq_per_s=measured["train_seq_per_s"]),
                       measured.assign(phase="inference", seq_per_s=measured["infer_seq_per_s"])])
    figure = figures.versus_seq_len(speed, "seq_per_s", f"profile: throughput ({PHASES})",
                                    "throughput (sequences/s)", log_y=True, dash_by="phase", details="where")
    display.show(figure, speed[["model", "seq_len", "phase", "seq_per_s", "train_step_s", "infer_step_s", "where"]],
                 f"{name} throughput vs T")


if __name__ == "__main__":
    render()
