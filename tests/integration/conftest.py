"""Fixtures for searches on real Ray, MLflow and databases, each isolated in its own folders."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from seqarena.platform import database
from tests.services import (
    BIN,
    answers,
    free_port,
    mlflow_server_command,
    mlflow_server_env,
    ray_active_nodes,
    ray_head_command,
    ray_worker_node_command,
)

ADMIN_URL = os.environ.get("SEQARENA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

TINY_SPEC = """
name: {name}
task: adding
task_options: {{n_val: 64, n_test: 64}}
seq_lens: [20]
models: [lstm, gru]
budget: {{max_steps: {steps}, eval_every: 10}}
search: {{algorithm: tpe, num_samples: {samples}, scheduler: asha, seed: 0}}
fixed: {{all: {{hidden_size: 8, batch_size: 16}}}}
repeats: 2
repeat_top_k: 1
resources: {{cpus_per_trial: 1}}
"""


def tiny_spec(tmp: Path, name: str = "tiny", steps: int = 30, samples: int = 3) -> Path:
    """A two-arm adding search small enough for a test; returns the YAML file."""
    path = tmp / f"{name}.yaml"
    path.write_text(TINY_SPEC.format(name=name, steps=steps, samples=samples))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SEQARENA_HOME; no tracking server, database URL or Ray cluster from outside."""
    home = tmp_path / "home"
    monkeypatch.setenv("SEQARENA_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "SEQARENA_DB_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def ray_tmp() -> Iterator[Path]:
    """A short private temp root for Ray (socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="sa-ray-", dir="/tmp"))
    yield path


@pytest.fixture
def local_ray(ray_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray in this process (2 CPUs, a small object store, the searches' worker environment),
    shut down after the test."""
    import ray

    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    from seqarena.platform import tune_adapter

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 1024 * 1024,
             runtime_env={"env_vars": tune_adapter.worker_env()})
    yield
    ray.shutdown()


def seqarena_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `seqarena ARGS` in a subprocess and wait for it."""
    return subprocess.run([sys.executable, "-m", "seqarena.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `condition()` until it is true, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: this one plus `extra`."""
    env = dict(os.environ)
    env.update(extra)
    return env


@pytest.fixture
def pg_database() -> Iterator[Callable[[], str]]:
    """A factory of new, empty PostgreSQL databases `seqarena_test_<random>`, dropped after the test."""
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    created: list[str] = []

    def create() -> str:
        name = f"seqarena_test_{uuid.uuid4().hex[:12]}"
        try:
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
        except Exception as error:  # the server is a prerequisite of this suite: fail, never skip silently
            pytest.fail(f"cannot create a database on {database.safe_url(ADMIN_URL)} ({error}); start PostgreSQL or "
                        "set SEQARENA_TEST_PG_URL")
        created.append(name)
        return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)

    yield create
    for name in created:
        url = make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        engine = database._engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen]]:
    """`seqarena worker` processes a test starts (append them); each still running is killed at the end."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)


@pytest.fixture
def pg_url(pg_database: Callable[[], str]) -> str:
    """The URL of one new, empty PostgreSQL database, dropped after the test."""
    return pg_database()


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM a process we started, then SIGKILL it if it does not end."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def mlflow_server_factory(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start `mlflow server` on 127.0.0.1 with a given backend store and proxied artifacts; returns its URL."""
    servers: list[subprocess.Popen] = []

    def start(backend_uri: str) -> str:
        port = free_port()
        artifacts = tmp_path / f"mlflow-artifacts-{port}"
        server = subprocess.Popen(mlflow_server_command(port, backend_uri, artifacts),
                                  env=mlflow_server_env(child_env()), stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL, start_new_session=True)
        servers.append(server)
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: answers(f"{url}/health") or server.poll() is not None, 120, "the MLflow server")
        assert server.poll() is None, "mlflow server exited"
        return url

    yield start
    for server in servers:
        stop_process(server)


@pytest.fixture
def ray_cluster(ray_tmp: Path) -> Iterator[dict[str, str]]:
    """A Ray head and a second node on this machine, token authentication on; yields the client env."""
    port = free_port()
    env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    env.pop("RAY_ADDRESS", None)
    quiet = {"env": env, "stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "start_new_session": True}
    nodes = [subprocess.Popen(ray_head_command(port, ray_tmp), **quiet)]
    try:
        wait_for(lambda: ray_active_nodes(port, env) >= 1, 90, "the Ray head", interval=1.0)
        nodes.append(subprocess.Popen(ray_worker_node_command(port), **quiet))
        wait_for(lambda: ray_active_nodes(port, env) >= 2, 90, "the second Ray node", interval=1.0)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        for node in reversed(nodes):
            stop_process(node)


@pytest.fixture
def s3_server() -> Iterator[dict[str, str]]:
    """An S3-compatible server on 127.0.0.1 (moto's server mode) with one empty bucket `seqarena`; yields
    the client environment: its endpoint, a region, and credentials made for the test."""
    port = free_port()
    server = subprocess.Popen([str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ACCESS_KEY_ID": f"AKIA{secrets.token_hex(8).upper()}",
           "AWS_SECRET_ACCESS_KEY": f"s3secret-{secrets.token_hex(12)}"}
    try:
        wait_for(lambda: answers(f"{env['AWS_ENDPOINT_URL']}/moto-api/") or server.poll() is not None, 60,
                 "the S3 server")
        assert server.poll() is None, "moto_server exited"
        s3_client(env).create_bucket(Bucket="seqarena")
        yield env
    finally:
        stop_process(server)


def s3_client(env: dict[str, str]):
    """A boto3 S3 client of the server in `env` (the `s3_server` fixture's)."""
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name=env["AWS_DEFAULT_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def s3_keys(env: dict[str, str], prefix: str = "") -> list[str]:
    """Every object key in the bucket `seqarena` under `prefix`."""
    pages = s3_client(env).get_paginator("list_objects_v2").paginate(Bucket="seqarena", Prefix=prefix)
    return [item["Key"] for page in pages for item in page.get("Contents", [])]
