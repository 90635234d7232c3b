"""Storage that several machines share (issue 20): the Tune experiment and checkpoints in an
S3-compatible bucket (moto's server on 127.0.0.1), the Optuna studies in the platform database
(PostgreSQL), and the start probe that refuses a store it cannot write to."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient
from sqlalchemy import create_engine, text

from seqarena.errors import BadInput
from seqarena.platform import database, searches, storage
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.tracking import TRIAL_TAG, tracking_uri
from seqarena.platform.trained import load_run

from .conftest import child_env, s3_keys, seqarena_cli, tiny_spec, wait_for
from .test_search import check_records, child_runs

pytestmark = pytest.mark.integration


@pytest.fixture
def s3_env(s3_server: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """This process pointed at the S3 server, storage `s3://seqarena/experiments`."""
    for name, value in {**s3_server, "SEQARENA_STORAGE": "s3://seqarena/experiments"}.items():
        monkeypatch.setenv(name, value)
    return {**s3_server, "SEQARENA_STORAGE": "s3://seqarena/experiments"}


def test_the_probe_writes_and_deletes_one_object_in_the_bucket(s3_env: dict[str, str]) -> None:
    store = storage.storage()
    assert (store.bucket, store.root) == ("seqarena", "seqarena/experiments")
    store.check()
    # written, then deleted (pyarrow leaves the empty "folder" marker of the prefix behind)
    assert [key for key in s3_keys(s3_env) if storage.PROBE_PREFIX in key] == []


def test_a_missing_bucket_or_a_silent_endpoint_is_refused_in_one_line(s3_env: dict[str, str],
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadInput) as refused:
        storage.parse("s3://no-such-bucket/x").check()
    message = str(refused.value)
    assert message.startswith("SEQARENA_STORAGE: got 's3://no-such-bucket/x'") and "\n" not in message
    assert s3_env["AWS_SECRET_ACCESS_KEY"] not in message
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(BadInput, match=r"^AWS_ENDPOINT_URL: .*nothing answers at 127\.0\.0\.1:9"):
        storage.storage().check()


def test_worker_and_submit_refuse_a_storage_they_cannot_write(s3_env: dict[str, str], home: Path,
                                                              tmp_path: Path) -> None:
    env = child_env(SEQARENA_HOME=str(home), SEQARENA_STORAGE="s3://no-such-bucket/x")
    for args in (["worker", "--once"], ["submit", str(tiny_spec(tmp_path))]):
        done = seqarena_cli(*args, env=env, timeout=120)
        assert done.returncode == 2, done.stderr[-2000:]
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: SEQARENA_STORAGE: got 's3://no-such-bucket/x'")
    assert not (home / "seqarena.db").exists() or not database.get_engine().connect().execute(
        text("select count(*) from jobs")).scalar()


def optuna_studies(url: str) -> dict[str, int]:
    """Study name -> its number of trials, read from the `optuna` schema of the PostgreSQL database."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("select s.study_name, count(t.trial_id) from optuna.studies s "
                                     "left join optuna.trials t on t.study_id = s.study_id group by s.study_name"))
            return dict(rows.all())
    finally:
        engine.dispose()


def test_a_killed_driver_resumes_from_s3_with_nothing_rerun(home: Path, tmp_path: Path, ray_tmp: Path,
                                                            s3_env: dict[str, str],
                                                            pg_database: Callable[[], str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    db_url = pg_database()
    monkeypatch.setenv("SEQARENA_DB_URL", db_url)
    spec_path = tiny_spec(tmp_path, name="s3-resumable", steps=40, samples=2)
    env = child_env(SEQARENA_HOME=str(home), RAY_TMPDIR=str(ray_tmp), SEQARENA_DB_URL=db_url, **s3_env)
    driver = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "run", str(spec_path)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_for(lambda: len(trials_frame(database.get_engine())) >= 2, timeout=300, what="two finished trials")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    before = trials_frame(database.get_engine())
    search = searches.find_search(database.get_engine(), "s3-resumable")
    assert search.storage_path == f"s3://seqarena/experiments/{search.id}"
    before_runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(tracking_uri(), search.mlflow_parent_run_id)}

    done = seqarena_cli("-v", "run", str(spec_path), "--resume", "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["search_id"] == search.id
    check_records(search.id, tracking_uri(), expected_trials=6, steps=40)  # 2 arms x (2 searched + 1 repeat)
    after = trials_frame(database.get_engine(), search.id)
    after_runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(tracking_uri(), search.mlflow_parent_run_id)}
    for trial_id in before["trial_id"]:  # finished before the kill: the same run, not trained again
        assert after_runs[trial_id].info.run_id == before_runs[trial_id].info.run_id
        row_before, row_after = (frame[frame["trial_id"] == trial_id].iloc[0] for frame in (before, after))
        for column in ("wall_s", "metric", "status"):
            assert row_after[column] == row_before[column] or (pd.isna(row_after[column])
                                                               and pd.isna(row_before[column]))

    keys = s3_keys(s3_env, f"experiments/{search.id}/")
    assert f"experiments/{search.id}/tuner.pkl" in keys
    assert any(key.endswith("/checkpoint.pt") for key in keys), keys[:20]
    # nothing of Tune's under SEQARENA_HOME (its MLflow store keeps each arm's best checkpoint as an artifact)
    assert not (home / "ray_results").exists() and not list(home.rglob("tuner.pkl"))
    assert not list(home.rglob("checkpoint_0*")) and not list(home.rglob("*optuna*.db"))
    # a trial whose MLflow run keeps no checkpoint (not its arm's best) loads from its Tune checkpoint in S3
    client = MlflowClient(tracking_uri())
    plain = [row.mlflow_run_id for row in after.itertuples() if not client.list_artifacts(row.mlflow_run_id,
                                                                                            "checkpoint")]
    assert plain, "every trial kept a checkpoint in MLflow"
    loaded = load_run(plain[0])
    assert loaded.checkpoint.startswith(f"s3://seqarena/experiments/{search.id}/") and loaded.checkpoint.endswith(
        "/checkpoint.pt")
    studies = optuna_studies(db_url)  # the arms' studies, in the platform database
    assert set(studies) == {f"{search.id}/adding/T=20/lstm", f"{search.id}/adding/T=20/gru"}
    assert all(count >= 2 for count in studies.values()), studies
