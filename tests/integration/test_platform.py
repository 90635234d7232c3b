"""The whole platform on this machine: PostgreSQL, an MLflow server backed by PostgreSQL, a two-node
Ray cluster with token authentication, two `seqarena worker` processes, jobs submitted with the CLI."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seqarena.platform import database, jobs
from seqarena.platform.leaderboard import trials_frame

from .conftest import seqarena_cli, stop_process
from .test_search import child_runs
from .test_workers import job_spec

pytestmark = pytest.mark.integration
JOBS = 6


def test_jobs_submitted_with_the_cli_run_once_on_the_cluster(tmp_path: Path, home: Path,
                                                            pg_database: Callable[[], str],
                                                            mlflow_server_factory: Callable[[str], str],
                                                            ray_cluster: dict[str, str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    platform_db, mlflow_db = pg_database(), pg_database()
    tracking = mlflow_server_factory(mlflow_db)
    env = {**ray_cluster, "SEQARENA_HOME": str(home), "SEQARENA_DB_URL": platform_db,
           "MLFLOW_TRACKING_URI": tracking}
    monkeypatch.setenv("SEQARENA_DB_URL", platform_db)
    ids = []
    for number in range(JOBS):
        done = seqarena_cli("submit", str(job_spec(tmp_path, f"cluster-{number}", steps=10, samples=1)),
                            "--priority", str(number % 3), env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip().splitlines()[-1])

    workers = [subprocess.Popen([sys.executable, "-m", "seqarena.cli", "worker", "--once", "--poll", "0.5"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                start_new_session=True) for _ in range(2)]
    try:
        for worker in workers:
            assert worker.wait(timeout=900) == 0, worker.stderr.read()[-3000:]
    finally:
        for worker in workers:
            stop_process(worker)

    engine = database.get_engine(platform_db)
    finished = [jobs.get_job(engine, job_id) for job_id in ids]
    assert [(job.state, job.attempts) for job in finished] == [("succeeded", 1)] * JOBS, [
        job.error for job in finished]
    parents = {job.mlflow_parent_run_id for job in finished}
    assert len(parents) == JOBS  # one MLflow parent run per job, on the server
    client = MlflowClient(tracking)
    for job in finished:
        assert client.get_run(job.mlflow_parent_run_id).info.status == "FINISHED"
        runs = child_runs(tracking, job.mlflow_parent_run_id)
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert len(trials_frame(engine, job.search_id)) == 1
    assert not (home / "mlflow.db").exists() and not (home / "seqarena.db").exists()
