"""Inside the model page: a trained trial's hidden states, gates and gradient norms through time.

The diagnostics of `seqarena trace` (see `seqarena.workers.trace`): how far back the gradient of
the loss reaches (‖∂L/∂s_t‖ against t, log axis), the state norms, the gates, and a few units of
the features, for the best trial of an arm (its checkpoint is kept in MLflow) or any run id.
With a dashboard token set, tracing asks for it (it loads a checkpoint and runs the model); "Trace at
T" goes up to `max_trace_len` of the length the run trained at (`MAX_TRACE_FACTOR` times it, the bound
`seqarena trace --seq-len` has too).
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, display, figures, filters
from seqarena.dashboard.safety import token_ok, token_required
from seqarena.dashboard.trials import arm_choice
from seqarena.platform.leaderboard import ArmBest
from seqarena.platform.trained import max_trace_len, trace_run
from seqarena.tasks import MAX_SEQ_LEN
from seqarena.workers.trace import Trace


@st.cache_data(ttl=3600, show_spinner=False, max_entries=32)
def cached_trace(url: str, run_id: str, seq_len: int | None, batch_size: int) -> Trace:
    """A trace is a function of the run's stored weights: kept an hour (`url` keys it per database)."""
    return trace_run(run_id, seq_len=seq_len, batch_size=batch_size)


def per_step(trace: Trace) -> pd.DataFrame:
    """The trace's curves as one row per step, for the CSV download."""
    columns = {f"grad_state_layer{i + 1}": curve for i, curve in enumerate(trace.grad_state)}
    columns["grad_input"] = trace.grad_input
    columns.update({f"state_norm_layer{i + 1}": curve for i, curve in enumerate(trace.state_norm)})
    columns.update({f"gate_{name}": curve for name, curve in trace.gates.items()})
    return pd.DataFrame({"t": range(1, trace.seq_len + 1), **columns})


def trace_length(arm: ArmBest, run_id: str) -> tuple[str, int | None, int]:
    """Label, default and bound of "Trace at T": the arm's T for the arm's own run (at most
    `max_trace_len` of it); for a pasted run id, empty (the T it trained at; `trace_run` checks the bound).
    The widget is keyed by the run id, so it follows the arm and the pasted run."""
    if run_id == arm.mlflow_run_id:
        return "Trace at T", arm.seq_len, max_trace_len(arm.seq_len)
    return "Trace at T (empty: the T the run trained at)", None, MAX_SEQ_LEN


def render() -> None:
    st.title("Inside the model")
    current = filters.current()
    rows = [row for row in current.board() if row.mlflow_run_id]
    if not rows:
        filters.no_results()
        return
    arm = arm_choice(rows, current)
    left, middle, right = st.columns(3)
    run_id = left.text_input("MLflow run id (default: the arm's best trial)", value=arm.mlflow_run_id,
                             key=f"inside_run:{arm.search_id}:{arm.key}").strip()
    label, default, longest = trace_length(arm, run_id)
    seq_len = middle.number_input(label, min_value=1, max_value=longest, value=default, step=1,
                                  key=f"inside_seq_len:{run_id}")
    batch_size = right.number_input("Sequences", min_value=1, max_value=256, value=16, key="inside_batch")
    if token_required():
        token = st.text_input("Dashboard token (tracing loads a checkpoint and runs the model)", type="password",
                              key="inside_token")
        if not token_ok(token):
            st.info("token: enter the dashboard token to trace" if not token else
                    "token: the dashboard token is wrong; nothing was traced")
            return
    with st.spinner("tracing…"):
        trace = cached_trace(current.url, run_id, None if seq_len is None else int(seq_len), int(batch_size))
    reach = trace.reach()
    if reach is not None:
        st.caption(f"‖∂L/∂s_1‖ / ‖∂L/∂s_T‖ = {reach:.3g} (layer 1): the share of the last step's gradient that "
                   "reaches the first step")
    st.subheader(f"{trace.model} on {trace.task} at T = {trace.seq_len}")
    display.show(figures.trace_figure(trace), per_step(trace), f"trace {trace.model} T={trace.seq_len}")
    link = data.run_link(current.experiment_of(arm.search_id), run_id)
    if link:
        st.link_button("Open the run in MLflow", link)


if __name__ == "__main__":
    render()
