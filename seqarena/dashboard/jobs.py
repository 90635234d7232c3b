"""Jobs page: the queue, the running jobs' per-arm progress, a spec form that submits, and cancel.

Jobs change only through `seqarena.platform.jobs` (the API the CLI uses).
An invalid spec is refused inline with the field and the allowed values and queues
nothing. When `SEQARENA_DASHBOARD_TOKEN` is set, submitting and cancelling ask for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from seqarena.dashboard import data, filters
from seqarena.dashboard.safety import redact, token_ok, token_required
from seqarena.errors import BadInput
from seqarena.platform import jobs
from seqarena.platform.spec import Spec, describe, load_spec

EXAMPLE = Path(__file__).resolve().parents[1] / "platform" / "demo.yaml"
ACTIVE = ("queued", "running")
SUBMITTER = "dashboard"
_FLASH = "jobs_flash"


def as_text(spec_text: str) -> str:
    """The form's text as YAML text, never as the name of a file on the server."""
    return spec_text if spec_text.endswith("\n") else spec_text + "\n"


def render() -> None:
    st.title("Jobs")
    if flash := st.session_state.pop(_FLASH, None):
        st.success(flash)
    url = filters.current().url
    engine = data.engine(url)
    frame = data.jobs_frame(url)
    _workers(jobs.workers_seen(engine))
    _queue(frame)
    _progress(engine, frame)
    _submit_form(engine)
    _cancel_form(engine, frame)


#: The command that starts a worker (same SEQARENA_HOME or SEQARENA_DB_URL; RAY_ADDRESS for a cluster).
START_WORKER = "seqarena worker"


def workers_line(seen: jobs.WorkersSeen) -> tuple[str, str]:
    """("success" | "warning" | "info", the sentence) on whether a worker is alive and how to start one."""
    how = (f"start one with `{START_WORKER}` on a machine that sees this database (the same SEQARENA_HOME or "
           "SEQARENA_DB_URL; RAY_ADDRESS to run on a Ray cluster)")
    if seen.alive:
        return "success", (f"Workers alive: {len(seen.alive)} ({len(seen.busy)} running a job, {len(seen.idle)} "
                           f"idle): {', '.join(seen.alive)}.")
    if seen.queued:
        return "warning", (f"No worker is alive: {seen.queued} job(s) wait, the oldest for "
                           f"{seen.oldest_wait_s:,.0f} s; {how}.")
    return "info", f"No worker is alive; to run jobs, {how}."


def _workers(seen: jobs.WorkersSeen) -> None:
    kind, line = workers_line(seen)
    getattr(st, kind)(line)


def _queue(frame: pd.DataFrame) -> None:
    if frame.empty:
        st.info("No jobs yet: submit a spec below, or `seqarena submit SPEC`.")
        return
    counts = frame["state"].value_counts().to_dict()
    st.caption(" · ".join(f"{state}: {counts[state]}" for state in jobs.STATES if state in counts))
    if line := queue_line(frame):
        st.markdown(line)
    shown = frame.assign(error=frame["error"].map(lambda text: redact(text) if isinstance(text, str) else text))
    st.dataframe(shown, hide_index=True, key="jobs_table")


def queue_line(frame: pd.DataFrame) -> str | None:
    """The queued jobs in the order workers take them ("Next: 1. name (id) · 2. ..."), None if none is queued."""
    queued = frame[frame["queue_position"].notna()].sort_values("queue_position")
    if queued.empty:
        return None
    return "Next in the queue: " + " · ".join(f"{int(job.queue_position)}. {job.name} ({job.id[:8]})"
                                              for job in queued.itertuples())


def _progress(engine: object, frame: pd.DataFrame) -> None:
    running = frame[frame["state"] == "running"] if not frame.empty else frame
    for job in running.itertuples():
        with st.expander(f"running: {job.name} ({job.id[:8]}), attempt {job.attempts}", expanded=True):
            progress = jobs.arm_progress(engine, job.search_id, jobs.get_job(engine, job.id).spec_yaml)
            for arm in progress:
                st.progress(min(arm.done / max(arm.total, 1), 1.0),
                            text=f"{arm.key}: {arm.done}/{arm.total} trials · best {arm.best}")


def _submit_form(engine: object) -> None:
    st.subheader("Submit a search")
    with st.form("submit_job"):
        text = st.text_area("Spec (YAML)", value=EXAMPLE.read_text(), height=320, key="submit_spec")
        priority = st.number_input("Priority (higher runs first)", value=0, step=1, key="submit_priority")
        token = st.text_input("Dashboard token", type="password", key="submit_token") if token_required() else None
        validate_only = st.checkbox("Only validate", key="submit_validate_only")
        sent = st.form_submit_button("Submit")
    if not sent:
        return
    if not token_ok(token):
        st.error("token: the dashboard token is wrong; nothing was queued")
        return
    try:
        sent_spec = submit_text(engine, text, int(priority), validate_only)
    except BadInput as error:
        st.error(redact(str(error)))
        return
    if sent_spec.arms is not None:
        arms = sent_spec.arms
        st.success(f"valid: {len(arms)} arms, {sum(arm['trials'] for arm in arms)} trials")
        st.dataframe(pd.DataFrame(arms), hide_index=True, key="submit_arms")
        return
    _done(f"queued job {sent_spec.job_id} ({sent_spec.spec.name})")


@dataclass(frozen=True)
class SentSpec:
    """What the submit form did: the spec, and its arms (validate only) or the queued job's id."""

    spec: Spec
    arms: list[dict[str, Any]] | None = None
    job_id: str | None = None


def submit_text(engine: Any, text: str, priority: int, validate_only: bool) -> SentSpec:
    """The submit form's action without the page: validate the form's `text` (YAML text, never a file
    name on the server) and, unless `validate_only`, queue it as a job of `SUBMITTER`.

    Raises:
        BadInput: the spec or the priority, in one line; nothing is queued.
    """
    spec = load_spec(as_text(text))
    if validate_only:
        return SentSpec(spec, arms=describe(spec))
    return SentSpec(spec, job_id=jobs.submit(engine, as_text(text), priority=priority, submitted_by=SUBMITTER))


def _cancel_form(engine: object, frame: pd.DataFrame) -> None:
    active = frame[frame["state"].isin(ACTIVE)] if not frame.empty else frame
    if active.empty:
        return
    st.subheader("Cancel a job")
    with st.form("cancel_job"):
        labels = {f"{row.name} ({row.id[:8]}, {row.state})": row.id for row in active.itertuples()}
        choice = st.selectbox("Job", list(labels), key="cancel_choice")
        token = st.text_input("Dashboard token", type="password", key="cancel_token") if token_required() else None
        sent = st.form_submit_button("Cancel job")
    if not sent:
        return
    if not token_ok(token):
        st.error("token: the dashboard token is wrong; nothing was cancelled")
        return
    try:
        outcome = jobs.cancel(engine, labels[choice])
    except BadInput as error:
        st.error(redact(str(error)))
        return
    _done(f"job {labels[choice][:8]}: {outcome}")


def _done(message: str) -> None:
    """Show `message` at the top of the page, redrawn so the queue shows the change."""
    st.session_state[_FLASH] = message
    st.rerun()


if __name__ == "__main__":
    render()
