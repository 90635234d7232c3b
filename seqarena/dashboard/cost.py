"""Memory and throughput vs sequence length: what each model's best configuration costs.

From the recorded figures of each arm's best trial: peak memory of a training step (MB; CUDA's
counters on GPU, bytes kept for backward plus parameters, gradients and optimiser state on CPU,
see `seqarena.workers.measure`), and sequences per second in training and in inference. Both
axes are logarithmic: a recurrence costs O(T) time, attention O(T²) memory.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seqarena.dashboard import display, figures, filters
from seqarena.dashboard.queries import board_frame


def render() -> None:
    st.title("Memory and throughput vs sequence length")
    current = filters.current()
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


if __name__ == "__main__":
    render()
