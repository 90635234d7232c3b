"""Trials no node can hold, on a real local Ray (issue 18 §6): refused at submit when the cluster is
reachable, and a job that reaches a worker ends `failed` with the reason instead of waiting for ever."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import ray

from seqarena.platform import database, jobs, searches
from seqarena.platform.worker import WorkerSettings, serve

SPEC = ("name: {name}\ntask: adding\ntask_options: {{n_val: 8, n_test: 8}}\nseq_lens: [10]\nmodels: [gru]\n"
        "budget: {{max_steps: 4, eval_every: 2}}\nsearch: {{num_samples: 1}}\nresources: {resources}\n")


def _spec(tmp_path: Path, name: str, resources: str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SPEC.format(name=name, resources=resources))
    return path


def test_submit_to_a_reachable_cluster_refuses_what_no_node_holds(home: Path, local_ray: None, tmp_path: Path,
                                                                   run_cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", ray.get_runtime_context().gcs_address)
    for name, resources, field in (("cpus", "{cpus_per_trial: 1000}", "resources.cpus_per_trial: got 1000.0"),
                                   ("gpus", "{gpus_per_trial: 1}", "resources.gpus_per_trial: got 1.0")):
        code, out, err = run_cli(["submit", str(_spec(tmp_path, name, resources))])
        lines = err.strip().splitlines()
        assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith(f"error: {field}"), err
        assert "2 CPUs 0 GPUs" in lines[0]
    code, out, err = run_cli(["submit", str(_spec(tmp_path, "fits", "{cpus_per_trial: 2}"))])
    assert code == 0, err
    assert [job.name for job in jobs.list_jobs(database.get_engine())] == ["fits"]


def test_a_job_no_node_can_hold_fails_with_the_reason(home: Path, local_ray: None, tmp_path: Path) -> None:
    """Submitted without RAY_ADDRESS (the worker's cluster is not known there), taken by a worker."""
    engine = database.get_engine()
    job_id = jobs.submit(engine, _spec(tmp_path, "big", "{cpus_per_trial: 1000}"))
    started = time.monotonic()
    assert serve(WorkerSettings(lease_seconds=30, poll_seconds=0.2, once=True), engine) == 1
    assert time.monotonic() - started < 60
    job = jobs.get_job(engine, job_id)
    assert job.state == "failed" and "resources.cpus_per_trial: got 1000.0" in (job.error or "")
    search = searches.find_search(engine, job.search_id)
    assert search.status == "failed" and "a reservation one node of" in (search.error or "")
    assert searches.recorded_trials(engine, search.id) == []
