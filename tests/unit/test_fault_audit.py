"""The audit of `scripts/fault_check.py` (`platform/fault_audit.py`) catches what it is there to catch: on a real
SQLite platform database and a real MLflow store, a job recorded well passes every check, and each
hand-made bad state (a trial more than the spec has, a trial with two MLflow runs, a run left RUNNING, an
orphaned KILLED run, a job left running or failed with a traceback) fails the check named for it."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from seqarena.platform import jobs, searches
from seqarena.platform.fault_audit import JobAudit, audit_job
from seqarena.platform.tracking import SEARCH_TAG, TRIAL_TAG, Tracker

SPEC = """
name: audited
task: adding
seq_lens: [20]
models: [gru]
budget: {max_steps: 10, eval_every: 5}
search: {algorithm: random, num_samples: 2, scheduler: none, seed: 0}
"""
ARM = "adding/T=20/gru"


@pytest.fixture(scope="module")
def tracker(tmp_path_factory: pytest.TempPathFactory) -> Tracker:
    """One real MLflow store (SQLite) for the module: each test's job has its own parent run."""
    return Tracker(f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}")


def run_job(engine: Engine, tracker: Tracker, trials: list[str], *, state: str = "succeeded",
            error: str | None = None) -> tuple[str, str, dict[str, str]]:
    """A job claimed, its search registered, `trials` recorded (a FINISHED child run each) and the job
    ended in `state`; returns (job id, parent run id, run id by trial)."""
    job_id = jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 60)
    experiment = tracker.experiment_id("seqarena/audited")
    search_id = searches.create_search(engine, name="audited", spec_yaml=SPEC, spec_hash="h",
                                       mlflow_experiment_id=experiment, arms=[_arm()])
    parent = tracker.start_parent(experiment, search_id, "audited", SPEC)
    jobs.attach_search(engine, job_id, "w1", search_id, parent)
    runs = {trial: child_run(tracker, experiment, parent, search_id, trial) for trial in trials}
    for trial, run in runs.items():
        tracker.finish(run, "FINISHED")
        searches.record_trial(engine, search_id, ARM, _row(trial, run))
    tracker.finish(parent, "FINISHED" if state == "succeeded" else "FAILED")
    if state != "running":
        jobs.finish(engine, job_id, "w1", state, error=error)
    return job_id, parent, runs


def child_run(tracker: Tracker, experiment: str, parent: str, search_id: str, trial: str) -> str:
    return tracker.start_child(experiment, parent, f"{ARM} {trial}", {SEARCH_TAG: search_id, TRIAL_TAG: trial},
                               {"learning_rate": 0.01})


def _arm() -> dict:
    return {"task": "adding", "seq_len": 20, "model": "gru", "key": ARM, "metric_name": "mse",
            "higher_is_better": False, "baseline": 0.167}


def _row(trial: str, run: str) -> dict:
    return {"trial_id": trial, "role": "search", "seed": 0, "status": "completed", "metric": 0.1,
            "best_val_metric": 0.1, "hparams": {"learning_rate": 0.01}, "steps": 10, "params": 100,
            "wall_s": 1.0, "mlflow_run_id": run, "test_metrics": {"mse": 0.1}}


def failed(audit: JobAudit) -> dict[str, str]:
    return {check.name: check.detail for check in audit.failures()}


def test_a_job_recorded_well_passes_every_check(engine: Engine, tracker: Tracker) -> None:
    job_id, _, _ = run_job(engine, tracker, ["t1", "t2"])
    audit = audit_job(engine, tracker.uri, job_id)
    assert audit.ok, audit.failures()
    assert (audit.state, audit.expected_trials, audit.db_trials, audit.mlflow_trials) == ("succeeded", 2, 2, 2)


def test_a_trial_more_than_the_spec_has_is_caught(engine: Engine, tracker: Tracker) -> None:
    job_id, _, _ = run_job(engine, tracker, ["t1", "t2", "t3"])  # issue 18 §2: 5 trials for num_samples 4
    assert failed(audit_job(engine, tracker.uri, job_id)) == {"once": "3 trial rows for 2 trials"}


def test_a_trial_with_a_second_mlflow_run_is_caught(engine: Engine, tracker: Tracker) -> None:
    job_id, parent, _ = run_job(engine, tracker, ["t1", "t2"])
    search_id = jobs.get_job(engine, job_id).search_id
    experiment = tracker.client.get_run(parent).info.experiment_id
    tracker.finish(child_run(tracker, experiment, parent, search_id, "t2"), "FINISHED")
    assert failed(audit_job(engine, tracker.uri, job_id)) == {"agree": "trial t2: 2 MLflow runs"}


def test_a_run_left_running_is_caught(engine: Engine, tracker: Tracker) -> None:
    job_id, _, runs = run_job(engine, tracker, ["t1", "t2"])
    tracker.client.update_run(runs["t1"], status="RUNNING")
    found = failed(audit_job(engine, tracker.uri, job_id))
    assert found == {"runs closed": f"RUNNING: {runs['t1']}", "agree": "trial t1: completed in the database, "
                                                                       "RUNNING in MLflow"}


def test_an_orphaned_killed_run_is_caught(engine: Engine, tracker: Tracker) -> None:
    job_id, parent, _ = run_job(engine, tracker, ["t1", "t2"])
    search_id = jobs.get_job(engine, job_id).search_id
    experiment = tracker.client.get_run(parent).info.experiment_id
    orphan = child_run(tracker, experiment, parent, search_id, "t9")  # issue 18 §8: params only, then KILLED
    tracker.finish(orphan, "KILLED")
    found = failed(audit_job(engine, tracker.uri, job_id))
    assert found == {"runs closed": f"orphaned KILLED: {orphan}", "agree": "MLflow runs without a trial row: t9"}


def test_a_job_left_running_is_caught(engine: Engine, tracker: Tracker) -> None:
    job_id, _, _ = run_job(engine, tracker, ["t1"], state="running")
    assert failed(audit_job(engine, tracker.uri, job_id)) == {"ended": "still running"}


def test_a_failed_job_passes_with_one_line_and_fails_with_a_traceback(engine: Engine, tracker: Tracker) -> None:
    one_line, _, _ = run_job(engine, tracker, ["t1"], state="failed", error="OSError: [Errno 28] No space left")
    audit = audit_job(engine, tracker.uri, one_line)
    assert audit.ok, audit.failures()
    assert audit.checks[0].detail == "failed, resumable: OSError: [Errno 28] No space left"
    traceback, _, _ = run_job(engine, tracker, ["t1"], state="failed",
                              error="Traceback (most recent call last):\n  File ...\nOSError: boom")
    assert failed(audit_job(engine, tracker.uri, traceback)) == {"ended": "failed without a one-line error"}
