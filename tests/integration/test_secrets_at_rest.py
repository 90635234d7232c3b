"""Secrets never at rest or in output (issue 18 §3): a search (`seqarena run`) and a job (`submit`, a
`worker`) run with every secret set — the platform database's password inside `SEQARENA_DB_URL` (the
local PostgreSQL, trust authentication: any password is accepted), a token inside
`MLFLOW_TRACKING_URI` (an MLflow server), the dashboard token, the S3 store's secret key (the
experiments go to `SEQARENA_STORAGE=s3://...`, moto's server) — and none of them is found in any
file under `SEQARENA_HOME`, in any object of the bucket (Tune's `tuner.pkl`, experiment state,
checkpoints), in Ray's session folder, in the MLflow server's store and artifacts, in any database
row (Optuna's studies among them), or in the output of the CLI commands that ran.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, make_url, select, table, text

from .conftest import child_env, s3_client, s3_keys, seqarena_cli
from .test_workers import job_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def leaks_in_files(roots: list[Path], needles: list[bytes]) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                try:
                    content = path.read_bytes()
                except OSError:
                    continue
                found += [f"{path}: {needle.decode()}" for needle in needles if needle in content]
    return found


def leaks_in_rows(url: str, needles: list[str]) -> list[str]:
    engine = create_engine(url)
    found = []
    try:
        with engine.connect() as conn:
            schemas = [None, *(["optuna"] if "optuna" in inspect(conn).get_schema_names() else [])]  # Optuna's studies
            for schema in schemas:
                for name in inspect(conn).get_table_names(schema=schema):
                    columns = [column["name"] for column in inspect(conn).get_columns(name, schema=schema)]
                    source = table(name, schema=schema)
                    rows = conn.execute(select(*(text(f'"{c}"') for c in columns)).select_from(source)).all()
                    dumped = repr(rows)
                    found += [f"table {schema or 'public'}.{name}: {needle}" for needle in needles if needle in dumped]
    finally:
        engine.dispose()
    return found


def leaks_in_bucket(env: dict[str, str], needles: list[bytes]) -> list[str]:
    client = s3_client(env)
    found = []
    for key in s3_keys(env):
        content = client.get_object(Bucket="seqarena", Key=key)["Body"].read()
        found += [f"s3://seqarena/{key}: {needle.decode()}" for needle in needles if needle in content]
    return found


def test_no_secret_at_rest_or_in_output(tmp_path: Path, pg_database: Callable[[], str],
                                       mlflow_server_factory: Callable[[str], str],
                                       s3_server: dict[str, str]) -> None:
    password, token, dashboard = (f"{kind}-{secrets.token_hex(8)}" for kind in ("pw", "tk", "dash"))
    db_url = make_url(pg_database()).set(password=password).render_as_string(hide_password=False)
    server_store = tmp_path / "mlflow-server.db"
    server = mlflow_server_factory(f"sqlite:///{server_store}")
    home, ray_tmp = tmp_path / "home", Path(tempfile.mkdtemp(prefix="sa-sec-", dir="/tmp"))
    env = child_env(SEQARENA_HOME=str(home), SEQARENA_DB_URL=db_url, RAY_TMPDIR=str(ray_tmp),
                    MLFLOW_TRACKING_URI=server.replace("http://", f"http://seqarena:{token}@"),
                    SEQARENA_DASHBOARD_TOKEN=dashboard, SEQARENA_STORAGE="s3://seqarena/runs", **s3_server)
    env.pop("RAY_ADDRESS", None)
    outputs = []

    def cli(*args: str) -> str:
        done = seqarena_cli(*args, env=env, timeout=900)
        outputs.extend([done.stdout, done.stderr])
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    try:
        cli("run", str(job_spec(tmp_path, "secret-search", steps=20, samples=2)))
        job_id = cli("submit", str(job_spec(tmp_path, "secret-job", steps=20, samples=2))).strip().splitlines()[-1]
        cli("worker", "--once", "--poll", "0.5")
        assert '"state": "succeeded"' in cli("status", job_id, "--json")
        cli("jobs", "--json")
        cli("leaderboard")
        needles = [password, token, dashboard, s3_server["AWS_SECRET_ACCESS_KEY"]]
        assert any(key.endswith("/tuner.pkl") for key in s3_keys(s3_server, "runs/"))
        assert any(ray_tmp.rglob("session_*")), "no Ray session folder to look into"
        leaks = leaks_in_files([home, ray_tmp, tmp_path], [n.encode() for n in needles])
        leaks += leaks_in_bucket(s3_server, [n.encode() for n in needles])
        leaks += leaks_in_rows(make_url(db_url).set(password=None).render_as_string(hide_password=False), needles)
        leaks += [f"CLI output: ...{output[max(output.index(n) - 300, 0):output.index(n) + 50]}"
                  for n in needles for output in outputs if n in output]
        assert not leaks, leaks[:20]
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)
