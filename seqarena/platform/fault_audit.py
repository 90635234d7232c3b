"""After a fault: did a job keep the platform's promises? Read from its database rows and MLflow runs alone
(`scripts/fault_check.py` audits every job it injected a fault into; docs/RELIABILITY.md).

The checks of one job, each a `Check` with a one-line detail:

- `ended`: the job is `succeeded`, or `failed` / `interrupted` / `cancelled` with a one-line error and
  resumable (`jobs.TRANSITIONS` lets it go back to `queued`); never left `queued` or `running`.
- `once`: no trial recorded twice (trial ids unique among the search's rows), never more rows than the
  spec's trials (`Spec.trial_count`), and exactly that many when the job succeeded.
- `runs closed`: no run of the search (its parent or a child) left `RUNNING`, and no orphaned `KILLED`
  child run (one whose trial has no row: a trial started, then abandoned by a dead driver).
- `agree`: the database and MLflow hold the same trials, one child run per trial: each row's
  `mlflow_run_id` is a child run tagged with that trial id, in the MLflow status of the row's status
  (`tracking.FINAL_STATUS`), and every child run is some row's run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mlflow.entities import Run
from mlflow.tracking import MlflowClient
from sqlalchemy import Engine

from seqarena.platform import jobs
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import FINAL_STATUS, PARENT_TAG, TRIAL_TAG

ERROR_LINE_MAX = 2000
"""The longest job error that still counts as one line (what `seqarena worker` stores at most)."""


@dataclass(frozen=True)
class Check:
    """One promise checked: its name, whether it held, and a one-line detail."""

    name: str
    ok: bool
    detail: str = ""


@dataclass(frozen=True)
class TrialRow:
    """What the database recorded of one trial."""

    trial_id: str
    status: str
    mlflow_run_id: str | None


@dataclass(frozen=True)
class RunInfo:
    """What MLflow holds of one child run."""

    run_id: str
    trial_id: str | None
    status: str


@dataclass(frozen=True)
class JobAudit:
    """The audit of one job: its state and error, the trial counts and the checks."""

    job_id: str
    state: str
    error: str | None
    expected_trials: int
    db_trials: int
    mlflow_trials: int
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def failures(self) -> list[Check]:
        return [check for check in self.checks if not check.ok]


def audit_job(engine: Engine, tracking_uri: str, job_id: str) -> JobAudit:
    """Audit job `job_id` of the database `engine` against the MLflow store at `tracking_uri`."""
    job = jobs.get_job(engine, job_id)
    expected = load_spec(job.spec_yaml).trial_count()
    rows = _rows(engine, job.search_id)
    parent, children = _runs(tracking_uri, job.mlflow_parent_run_id)
    checks = (check_ended(job.state, job.error), check_once(rows, expected, job.state),
              check_runs_closed(parent, children, rows), check_agree(rows, children))
    return JobAudit(job.id, job.state, job.error, expected, len(rows), len(children), checks)


def check_ended(state: str, error: str | None) -> Check:
    """`succeeded`, or ended with one line and resumable."""
    if state == "succeeded":
        return Check("ended", True, "succeeded")
    if state in ("queued", "running"):
        return Check("ended", False, f"still {state}")
    if not error or "\n" in error.strip() or len(error) > ERROR_LINE_MAX:
        return Check("ended", False, f"{state} without a one-line error")
    if "queued" not in jobs.TRANSITIONS[state]:
        return Check("ended", False, f"{state} and not resumable")
    return Check("ended", True, f"{state}, resumable: {error[:120]}")


def check_once(rows: list[TrialRow], expected: int, state: str) -> Check:
    """No trial id twice; at most `expected` rows, exactly `expected` for a succeeded job."""
    twice = sorted(trial for trial, n in Counter(row.trial_id for row in rows).items() if n > 1)
    if twice:
        return Check("once", False, f"recorded twice: {', '.join(twice)}")
    if len(rows) > expected or (state == "succeeded" and len(rows) != expected):
        return Check("once", False, f"{len(rows)} trial rows for {expected} trials")
    return Check("once", True, f"{len(rows)}/{expected} trials")


def check_runs_closed(parent: RunInfo | None, children: list[RunInfo], rows: list[TrialRow]) -> Check:
    """No RUNNING run of the search, no KILLED child run without a trial row."""
    running = [run.run_id for run in ([parent] if parent else []) + children if run.status == "RUNNING"]
    if running:
        return Check("runs closed", False, f"RUNNING: {', '.join(running)}")
    recorded = {row.trial_id for row in rows}
    orphans = [run.run_id for run in children if run.status == "KILLED" and run.trial_id not in recorded]
    if orphans:
        return Check("runs closed", False, f"orphaned KILLED: {', '.join(orphans)}")
    return Check("runs closed", True)


def check_agree(rows: list[TrialRow], children: list[RunInfo]) -> Check:
    """The same trials in the database and in MLflow, one child run each, in matching statuses."""
    by_run = {run.run_id: run for run in children}
    per_trial = Counter(run.trial_id for run in children)
    for row in rows:
        run = by_run.get(row.mlflow_run_id or "")
        if run is None or run.trial_id != row.trial_id:
            return Check("agree", False, f"trial {row.trial_id}: no MLflow child run {row.mlflow_run_id}")
        if per_trial[row.trial_id] > 1:
            return Check("agree", False, f"trial {row.trial_id}: {per_trial[row.trial_id]} MLflow runs")
        if run.status != FINAL_STATUS.get(row.status):
            return Check("agree", False, f"trial {row.trial_id}: {row.status} in the database, {run.status} in MLflow")
    extra = sorted({run.trial_id or run.run_id for run in children} - {row.trial_id for row in rows})
    if extra:
        return Check("agree", False, f"MLflow runs without a trial row: {', '.join(extra)}")
    return Check("agree", True)


def _rows(engine: Engine, search_id: str | None) -> list[TrialRow]:
    if search_id is None:
        return []
    frame = trials_frame(engine, search_id)
    return [TrialRow(str(trial), str(status), run or None)
            for trial, status, run in zip(frame["trial_id"], frame["status"], frame["mlflow_run_id"], strict=True)]


def _runs(tracking_uri: str, parent_id: str | None) -> tuple[RunInfo | None, list[RunInfo]]:
    """The search's parent run and its child runs (none when the job never started its search)."""
    if parent_id is None:
        return None, []
    client = MlflowClient(tracking_uri)
    parent = client.get_run(parent_id)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
                                  max_results=50_000)
    return _info(parent), [_info(run) for run in children]


def _info(run: Run) -> RunInfo:
    return RunInfo(run.info.run_id, run.data.tags.get(TRIAL_TAG), run.info.status)


__all__ = ["Check", "JobAudit", "RunInfo", "TrialRow", "audit_job", "check_agree", "check_ended", "check_once",
           "check_runs_closed"]
