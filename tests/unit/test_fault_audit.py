"""The audit of `scripts/fault_check.py` (`platform/fault_audit.py`) catches what it is there to catch: on a real
SQLite platform database and a real MLflow store, a job recorded well passes every check, and each
hand-made bad state (a trial more than the spec has, a trial with two MLflow runs, a run left RUNNING, an
orphaned KILLED run, a job left running or failed with a traceback) fails the check named for it."""

from __future__ import annotations

import copy
import pickle
import sqlite3
import traceback
from pathlib import Path

import pytest
from sqlalchemy import Engine

from seqarena.errors import BadInput
from seqarena.platform import jobs, searches, worker
from seqarena.platform.fault_audit import JobAudit, audit_job
from seqarena.platform.tracking import SEARCH_TAG, TRIAL_TAG, Tracker
from seqarena.platform.worker import WorkerSettings
from seqarena.workers import checkpoint
from seqarena.workers.checkpoint import CheckpointRefused
from seqarena.workers.tune_trainable import one_line

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


def tune_error_of_a_full_disk() -> BaseException:
    """What Tune raises when the searcher's storage fails: a `TuneError` whose message is the whole traceback."""
    from ray.tune import TuneError

    try:
        try:
            raise sqlite3.OperationalError("database or disk is full")
        except sqlite3.OperationalError as cause:
            raise RuntimeError("the study could not commit") from cause
    except RuntimeError:
        return TuneError(traceback.format_exc())


def test_a_job_failed_by_a_traceback_records_its_cause_in_one_line(engine: Engine,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """The fault script's `home full` found a job `failed` with Tune's whole traceback as its error."""
    error = tune_error_of_a_full_disk()
    cause = "RuntimeError: the study could not commit (caused by sqlite3.OperationalError: database or disk is full)"
    assert one_line(error) == cause
    settings = WorkerSettings(lease_seconds=60, worker_id="w1")
    job_id = jobs.submit(engine, SPEC)
    job = jobs.claim(engine, settings.worker_id, settings.lease_seconds)

    def search_fails(*_: object) -> None:
        raise error

    monkeypatch.setattr(worker, "_search_of", search_fails)
    assert worker.run_job(engine, job, settings, worker.StopSignal()) == "failed"
    assert jobs.get_job(engine, job_id).error == f"TuneError: {cause}"


def test_a_refusal_raised_in_a_trial_survives_copy_and_pickle(tmp_path: Path) -> None:
    """The fault script's `checkpoint corrupt` found a trial restored from a corrupt checkpoint failing with
    `TypeError: CheckpointRefused.__init__() missing 2 required positional arguments`: Ray copies the error."""
    corrupt = tmp_path / "checkpoint.pt"
    corrupt.write_bytes(b"not a checkpoint " * 16)
    with pytest.raises(CheckpointRefused) as refused:
        checkpoint.read(corrupt)
    for error in (refused.value, BadInput("seq_len", 0, "a positive integer")):
        for again in (copy.copy(error), pickle.loads(pickle.dumps(error))):
            assert type(again) is type(error)
            assert (str(again), again.field, again.value, again.allowed) == (str(error), error.field, error.value,
                                                                             error.allowed)
    assert str(corrupt) in str(refused.value)
