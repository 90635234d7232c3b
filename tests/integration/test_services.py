"""Searches against real services started by the test: an MLflow tracking server, a two-node Ray cluster."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seqarena.platform import db
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import TRIAL_TAG

from .conftest import child_env, free_port, seqarena_cli, tiny_spec, wait_for
from .test_search import check_records, child_runs

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and proxied artifacts; yields its URL."""
    port = free_port()
    store = tmp_path / "mlflow-server"
    store.mkdir()
    command = [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
               "--backend-store-uri", f"sqlite:///{store / 'mlflow.db'}",
               "--artifacts-destination", str(store / "artifacts"),
               "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]
    env = child_env(MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/health") or server.poll() is not None, 90, "the MLflow server")
        assert server.poll() is None, "mlflow server exited"
        yield url
    finally:
        _stop(server)


def test_a_search_records_into_an_mlflow_tracking_server(home: Path, local_ray: None, tmp_path: Path,
                                                         mlflow_server: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = load_spec(tiny_spec(tmp_path, name="on-server"))
    outcome = run_search(spec)
    check_records(outcome.search_id, mlflow_server, spec.trial_count())
    assert not (home / "mlflow.db").exists()  # nothing went to the embedded store
    parent = MlflowClient(mlflow_server).list_artifacts(outcome.parent_run_id)
    assert [item.path for item in parent] == ["spec.yaml"]


@pytest.fixture
def ray_cluster(tmp_path: Path, ray_tmp: Path) -> Iterator[dict[str, str]]:
    """A Ray head and a second node on this machine, token authentication on; yields the client env."""
    port = free_port()
    env = child_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    env.pop("RAY_ADDRESS", None)
    common = ["--num-cpus", "1", "--object-store-memory", str(100 * 1024 * 1024), "--block"]
    head = subprocess.Popen([str(BIN / "ray"), "start", "--head", "--port", str(port), "--include-dashboard",
                             "false", "--temp-dir", str(ray_tmp), *common], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    nodes = [head]
    try:
        status = [str(BIN / "ray"), "status", "--address", f"127.0.0.1:{port}"]

        def active_nodes() -> int:
            done = subprocess.run(status, env=env, capture_output=True, text=True, timeout=30, check=False)
            return done.stdout.count(" node_")

        wait_for(lambda: active_nodes() >= 1, 90, "the Ray head", interval=1.0)
        nodes.append(subprocess.Popen([str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}", *common],
                                      env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))
        wait_for(lambda: active_nodes() >= 2, 90, "the second Ray node", interval=1.0)
        yield {**env, "RAY_ADDRESS": f"127.0.0.1:{port}"}
    finally:
        for node in reversed(nodes):
            _stop(node)


def test_a_search_runs_on_a_two_node_cluster_with_token_auth(home: Path, tmp_path: Path,
                                                             ray_cluster: dict[str, str]) -> None:
    spec_path = tiny_spec(tmp_path, name="on-cluster")
    env = {**ray_cluster, "SEQARENA_HOME": str(home)}
    done = seqarena_cli("run", str(spec_path), "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    uri = f"sqlite:///{home / 'mlflow.db'}"
    search = db.get_search(db.get_engine(), outcome["search_id"])
    runs = child_runs(uri, search.mlflow_parent_run_id)
    assert len(runs) == load_spec(spec_path).trial_count()
    nodes = {run.data.tags["node_id"] for run in runs}
    assert len(nodes) == 2, nodes  # trials ran on both nodes
    assert all(TRIAL_TAG in run.data.tags for run in runs)

    wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    refused = seqarena_cli("run", str(spec_path), env=wrong, timeout=300)
    assert refused.returncode != 0  # a client with the wrong token is refused
