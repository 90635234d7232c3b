"""Helpers shared by unit and integration tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from seqarena.platform import database, searches


def record_from_threads(engine: Engine, search_id: str, arm_key: str, row: Mapping[str, Any],
                        threads: int = 4) -> tuple[list[bool], list[BaseException]]:
    """Record the same trial from `threads` threads released at once; return results and errors."""
    barrier, results, errors = threading.Barrier(threads), [], []

    def record() -> None:
        barrier.wait()
        try:
            results.append(searches.record_trial(engine, search_id, arm_key, row))
        except Exception as error:
            errors.append(error)

    workers = [threading.Thread(target=record) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, errors


def claim_until_empty(url: str, worker_id: str, barrier: Any, work_s: float = 0.02) -> list[str]:
    """Claim jobs of the database at `url` until none is left (a worker process); return their ids in order.

    Module-level (and light to import) so that a spawned process can run it; each claim is followed
    by `work_s` of "work" so that concurrent workers interleave.
    """
    import time

    from seqarena.platform import jobs

    engine = database.get_engine(url)
    barrier.wait()
    taken = []
    while (job := jobs.claim(engine, worker_id, 60)) is not None:
        taken.append(job.id)
        time.sleep(work_s)
    return taken


#: A tiny adding trial (GRU, T = 20) for `recorded_run`.
ADDING_RUN = {"model": "gru", "task": "adding", "seq_len": 20, "task_options": {"n_val": 16, "n_test": 16},
              "hparams": {"hidden_size": 8, "batch_size": 16}, "steps": 20, "eval_every": 10}


def recorded_run(home: Any, trial: Mapping[str, Any]) -> str:
    """Train `trial` (TrialConfig fields) for real and record it as a search records a finished trial:
    a search with one arm in the database, an MLflow parent and child run, the checkpoint as the
    child's `checkpoint/` artifact. Returns the child run's id."""
    from seqarena.platform.tracking import SEARCH_TAG, TRIAL_TAG, Tracker
    from seqarena.workers.config import make_config
    from seqarena.workers.trial import run_trial

    name = f"recorded-{trial['model']}-{trial['task']}"
    spec = (f"name: {name}\ntask: {trial['task']}\ntask_options: {dict(trial['task_options'])}\n"
            f"seq_lens: [{trial['seq_len']}]\nmodels: [{trial['model']}]\n")
    result = run_trial(make_config(**trial, checkpoint_dir=home / "ckpt"))
    engine, tracker = database.get_engine(), Tracker()
    experiment = tracker.experiment_id(f"seqarena/{name}")
    key = f"{trial['task']}/T={trial['seq_len']}/{trial['model']}"
    arm = {"task": trial["task"], "seq_len": trial["seq_len"], "model": trial["model"], "key": key,
           "metric_name": result.metric_name, "higher_is_better": result.higher_is_better,
           "baseline": result.baseline}
    search_id = searches.create_search(engine, name=name, spec_yaml=spec, spec_hash=name,
                                       mlflow_experiment_id=experiment,
                                       arms=[arm])
    parent = tracker.start_parent(experiment, search_id, name, spec)
    run_id = tracker.start_child(experiment, parent, "t0", {SEARCH_TAG: search_id, TRIAL_TAG: "t0"}, {})
    tracker.log_artifacts(run_id, home / "ckpt", "checkpoint")
    row = {"trial_id": "t0", "seed": 0, "hparams": result.hparams, "status": "completed", "steps": result.steps,
           "metric": result.metric, "mlflow_run_id": run_id}
    searches.record_trial(engine, search_id, key, row)
    return run_id


def assert_stream_resumes(task: Any, seed: int, batch_size: int, advance: int = 1) -> None:
    """Take `advance` batches from `task`'s training stream, save its state, and check that a stream
    of another seed loaded from that state yields exactly the batch the original yields next."""
    import torch

    stream = task.train_stream(seed)
    for _ in range(advance):
        stream.next(batch_size)
    saved = stream.state_dict()
    expected = stream.next(batch_size)
    fresh = task.train_stream(seed + 1)
    fresh.load_state_dict(saved)
    assert all(torch.equal(a, b) for a, b in zip(fresh.next(batch_size), expected, strict=True))
