"""`seqarena worker` processes taking jobs from the store: exactly once, takeover, stop, cancel."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seqarena.platform import database, jobs, searches
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.tracking import PARENT_TAG, TRIAL_TAG

from .conftest import child_env, seqarena_cli, wait_for
from .test_search import child_runs

pytestmark = pytest.mark.integration

JOB_SPEC = """
name: {name}
task: adding
task_options: {{n_val: 32, n_test: 32}}
seq_lens: [20]
models: [gru]
budget: {{max_steps: {steps}, eval_every: {eval_every}}}
search: {{algorithm: random, num_samples: {samples}, scheduler: none, seed: 0}}
fixed: {{all: {{hidden_size: 8, batch_size: 16}}}}
"""


def job_spec(tmp: Path, name: str, steps: int = 20, samples: int = 2) -> Path:
    path = tmp / f"{name}.yaml"
    path.write_text(JOB_SPEC.format(name=name, steps=steps, samples=samples, eval_every=min(10, steps)))
    return path


@pytest.fixture
def env(home: Path, ray_tmp: Path) -> dict[str, str]:
    return child_env(SEQARENA_HOME=str(home), RAY_TMPDIR=str(ray_tmp))


def start_worker(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "seqarena.cli", "worker", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def submit(env: dict[str, str], spec: Path) -> str:
    done = seqarena_cli("submit", str(spec), env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


def job(job_id: str) -> jobs.Job:
    return jobs.get_job(database.get_engine(), job_id)


@pytest.mark.parametrize("backend, n_workers", [("sqlite", 2), ("postgresql", 3)])
def test_workers_run_each_of_twenty_jobs_exactly_once(backend: str, n_workers: int, tmp_path: Path,
                                                      env: dict[str, str], workers: list[subprocess.Popen],
                                                      request: pytest.FixtureRequest) -> None:
    if backend == "postgresql":
        env["SEQARENA_DB_URL"] = request.getfixturevalue("pg_url")
    url = env.get("SEQARENA_DB_URL") or f"sqlite:///{Path(env['SEQARENA_HOME']) / 'seqarena.db'}"
    engine = database.get_engine(url)
    spec = JOB_SPEC.format(name="once", steps=2, samples=1, eval_every=1)
    ids = [jobs.submit(engine, spec, priority=number % 3) for number in range(20)]
    workers.extend(start_worker(env, "--once", "--poll", "0.5") for _ in range(n_workers))
    for process in workers:
        assert process.wait(timeout=900) == 0, process.stderr.read()[-3000:]
    finished = [jobs.get_job(engine, job_id) for job_id in ids]
    assert [(job.state, job.attempts) for job in finished] == [("succeeded", 1)] * 20
    client = MlflowClient(f"sqlite:///{Path(env['SEQARENA_HOME']) / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("seqarena/once").experiment_id
    runs = client.search_runs([experiment], max_results=1000)
    parents = {run.info.run_id for run in runs if PARENT_TAG not in run.data.tags}
    assert parents == {job.mlflow_parent_run_id for job in finished}  # one MLflow parent run per job
    assert len(runs) == 40 and len(trials_frame(engine)) == 20  # and one trial in each, recorded once
    assert len({job.search_id for job in finished}) == 20


def test_a_killed_worker_s_job_is_taken_over_and_finished_once(tmp_path: Path, env: dict[str, str],
                                                                workers: list[subprocess.Popen]) -> None:
    job_id = submit(env, job_spec(tmp_path, "crash", steps=200, samples=4))
    first = start_worker(env, "--once", "--lease", "4")
    workers.append(first)
    wait_for(lambda: job(job_id).search_id is not None and
             len(trials_frame(database.get_engine(), job(job_id).search_id)) >= 1, 300, "a finished trial")
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    recorded_before = set(trials_frame(database.get_engine(), job(job_id).search_id)["trial_id"])

    second = start_worker(env, "--once", "--lease", "4", "--poll", "0.5")
    workers.append(second)
    assert second.wait(timeout=600) == 0, second.stderr.read()[-3000:]
    finished = job(job_id)
    assert (finished.state, finished.attempts) == ("succeeded", 2)
    frame = trials_frame(database.get_engine(), finished.search_id)
    assert len(frame) == 4 and frame["trial_id"].is_unique and recorded_before <= set(frame["trial_id"])
    runs = child_runs(f"sqlite:///{Path(env['SEQARENA_HOME']) / 'mlflow.db'}", finished.mlflow_parent_run_id)
    assert sorted(r.data.tags[TRIAL_TAG] for r in runs) == sorted(frame["trial_id"])


def test_sigterm_interrupts_and_resume_finishes(tmp_path: Path, env: dict[str, str],
                                                workers: list[subprocess.Popen]) -> None:
    job_id = submit(env, job_spec(tmp_path, "graceful", steps=300, samples=4))
    process = start_worker(env, "--once")
    workers.append(process)
    wait_for(lambda: job(job_id).search_id is not None and
             len(trials_frame(database.get_engine(), job(job_id).search_id)) >= 1, 300, "a finished trial")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=120) == 0, process.stderr.read()[-3000:]
    assert job(job_id).state == "interrupted"
    assert searches.get_search(database.get_engine(), job(job_id).search_id).status == "interrupted"

    done = seqarena_cli("resume", job_id, env=env)
    assert done.returncode == 0, done.stderr
    again = start_worker(env, "--once")
    workers.append(again)
    assert again.wait(timeout=600) == 0, again.stderr.read()[-3000:]
    frame = trials_frame(database.get_engine(), job(job_id).search_id)
    assert job(job_id).state == "succeeded" and len(frame) == 4 and frame["trial_id"].is_unique


def test_cancel_a_running_job_then_resume_it(tmp_path: Path, env: dict[str, str],
                                             workers: list[subprocess.Popen]) -> None:
    job_id = submit(env, job_spec(tmp_path, "cancelled", steps=300, samples=4))
    process = start_worker(env, "--once", "--lease", "3")
    workers.append(process)
    wait_for(lambda: job(job_id).search_id is not None, 300, "the job's search to start")
    done = seqarena_cli("cancel", job_id, env=env)
    assert done.returncode == 0 and "cancel requested" in done.stdout
    assert process.wait(timeout=300) == 0, process.stderr.read()[-3000:]
    assert job(job_id).state == "cancelled"
    kept = set(trials_frame(database.get_engine(), job(job_id).search_id)["trial_id"])

    assert seqarena_cli("resume", job_id, env=env).returncode == 0
    again = start_worker(env, "--once")
    workers.append(again)
    assert again.wait(timeout=600) == 0, again.stderr.read()[-3000:]
    frame = trials_frame(database.get_engine(), job(job_id).search_id)
    assert job(job_id).state == "succeeded" and len(frame) == 4 and kept <= set(frame["trial_id"])

    refused = seqarena_cli("cancel", job_id, env=env)
    assert refused.returncode == 2 and "state" in refused.stderr  # a finished job cannot be cancelled
