"""Exactly once through database outages (issue 18 §2), on a private PostgreSQL cluster that the test stops
and starts (never the shared server on 5432: other tests use it).

Two long-lived `seqarena worker` processes; one job of four trials; the database is stopped for 5 s (the
busy worker rides it out: its heartbeat and its recorder retry) and for 40 s (longer than the lease:
the busy worker stops its search before its lease can expire, and the job runs on under its next
claim). Either way the job ends `succeeded` with exactly four trial rows, four MLflow child runs and
four completed Optuna trials, and both workers are still alive.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState
from sqlalchemy import create_engine, text

from seqarena.platform import database, jobs
from seqarena.platform.arm_study import platform_storage
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.tracking import TRIAL_TAG
from tests.services import PrivatePostgres

from .conftest import wait_for
from .test_search import child_runs
from .test_workers import JOB_SPEC, submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
SAMPLES = 4


@pytest.fixture
def cluster() -> Iterator[PrivatePostgres]:
    own = PrivatePostgres.create(Path(tempfile.mkdtemp(prefix="sa-pg-", dir="/tmp")))
    yield own
    own.destroy()


def _job(url: str, job_id: str) -> jobs.Job | None:
    try:
        return jobs.get_job(database.get_engine(url), job_id)
    except Exception as error:  # the database is down: ask again later
        if database.unreachable(error):
            return None
        raise


def _recorded(url: str, job_id: str) -> int:
    job = _job(url, job_id)
    if job is None or job.search_id is None:
        return 0
    try:
        return len(trials_frame(database.get_engine(url), job.search_id))
    except Exception as error:
        if database.unreachable(error):
            return 0
        raise


@pytest.mark.parametrize(("outage_s", "lease_s"), [(5, 30), (40, 12)])
def test_a_job_runs_exactly_once_through_a_database_outage(outage_s: int, lease_s: int, cluster: PrivatePostgres,
                                                           tmp_path: Path, workers: list[subprocess.Popen],
                                                           ray_tmp: Path) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "SEQARENA_HOME": str(home), "SEQARENA_DB_URL": cluster.url, "RAY_TMPDIR": str(ray_tmp)}
    for name in ("MLFLOW_TRACKING_URI", "RAY_ADDRESS"):
        env.pop(name, None)
    spec = tmp_path / "outage.yaml"
    spec.write_text(JOB_SPEC.format(name="outage", steps=300, samples=SAMPLES, eval_every=50))
    job_id = submit(env, spec)
    logs = [tmp_path / f"worker{number}.log" for number in range(2)]
    workers.extend(subprocess.Popen([sys.executable, "-m", "seqarena.cli", "worker", "--lease", str(lease_s), "--poll",
                                     "0.5"], env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"),
                                    start_new_session=True) for log in logs)
    wait_for(lambda: _recorded(cluster.url, job_id) >= 1, 600, "the job's first recorded trial")
    cluster.stop()
    time.sleep(outage_s)
    cluster.start()
    wait_for(lambda: (job := _job(cluster.url, job_id)) is not None and job.state != "running", 900,
             "the job to end")
    engine = database.get_engine(cluster.url)
    finished = jobs.get_job(engine, job_id)
    assert finished.state == "succeeded", finished.error
    frame = trials_frame(engine, finished.search_id)
    assert len(frame) == SAMPLES and frame["trial_id"].is_unique
    runs = child_runs(f"sqlite:///{home / 'mlflow.db'}", finished.mlflow_parent_run_id)
    assert sorted(run.data.tags[TRIAL_TAG] for run in runs) == sorted(frame["trial_id"])
    assert {run.info.status for run in runs} == {"FINISHED"}
    storage = platform_storage(cluster.url)  # the studies live in the platform database (PostgreSQL: its schema optuna)
    studies = [name for name in optuna.get_all_study_names(storage) if name.startswith(finished.search_id)]
    complete = [t for name in studies for t in optuna.load_study(study_name=name, storage=storage).get_trials(
        deepcopy=False, states=(TrialState.COMPLETE,))]
    assert len(complete) == SAMPLES
    assert all(process.poll() is None for process in workers), [log.read_text()[-2000:] for log in logs]
    if outage_s > lease_s:  # the busy worker stopped its search before its lease expired; the job ran on
        assert finished.attempts >= 2
    with create_engine(cluster.url).connect() as conn:  # the cluster answers again
        assert conn.execute(text("select 1")).scalar() == 1
