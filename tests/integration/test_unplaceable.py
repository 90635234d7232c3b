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


@ray.remote(num_cpus=1)
class _Holder:
    """Holds one CPU of the local Ray for as long as it lives."""

    def ready(self) -> bool:
        return True


def test_a_search_that_cannot_place_a_trial_for_the_timeout_ends_failed(home: Path, local_ray: None,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Two CPUs per trial fit the node, but another holder keeps one of its two: Tune waited for ever."""
    from seqarena.platform.search import run_search
    from seqarena.platform.spec import load_spec

    monkeypatch.setenv("SEQARENA_PLACEMENT_TIMEOUT_S", "4")
    holder = _Holder.remote()
    assert ray.get(holder.ready.remote())
    spec = load_spec(_spec(tmp_path, "held", "{cpus_per_trial: 2}"))
    started = time.monotonic()
    with pytest.raises(Exception, match="no trial could be placed for 4 s"):
        run_search(spec)
    assert time.monotonic() - started < 90
    engine = database.get_engine()
    search = searches.find_search(engine, "held")
    assert search.status == "failed" and "2 CPUs and 0 GPUs per trial" in (search.error or "")
    assert "free now: 1 CPUs" in (search.error or "")
    ray.kill(holder)
