"""Searches against real services started by the test: an MLflow tracking server, a two-node Ray cluster."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seqarena.platform import database, searches
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import TRIAL_TAG

from .conftest import seqarena_cli, tiny_spec
from .test_search import check_records, child_runs

pytestmark = pytest.mark.integration


@pytest.fixture
def mlflow_server(mlflow_server_factory, tmp_path: Path) -> str:
    """An MLflow server with a SQLite backend store."""
    store = tmp_path / "mlflow-server"
    store.mkdir()
    return mlflow_server_factory(f"sqlite:///{store / 'mlflow.db'}")


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


def test_a_search_runs_on_a_two_node_cluster_with_token_auth(home: Path, tmp_path: Path,
                                                             ray_cluster: dict[str, str]) -> None:
    spec_path = tiny_spec(tmp_path, name="on-cluster")
    env = {**ray_cluster, "SEQARENA_HOME": str(home)}
    done = seqarena_cli("run", str(spec_path), "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    uri = f"sqlite:///{home / 'mlflow.db'}"
    search = searches.get_search(database.get_engine(), outcome["search_id"])
    runs = child_runs(uri, search.mlflow_parent_run_id)
    assert len(runs) == load_spec(spec_path).trial_count()
    nodes = {run.data.tags["node_id"] for run in runs}
    assert len(nodes) == 2, nodes  # trials ran on both nodes
    assert all(TRIAL_TAG in run.data.tags for run in runs)

    wrong = {**env, "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    refused = seqarena_cli("run", str(spec_path), env=wrong, timeout=300)
    assert refused.returncode != 0  # a client with the wrong token is refused
