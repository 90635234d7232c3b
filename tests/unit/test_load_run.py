"""`seqarena.load_run`: a recorded trial's model with its head and best weights, tensors only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import seqarena
from seqarena import tasks
from seqarena.platform import database
from seqarena.platform.schema import Trial
from seqarena.workers import checkpoint
from seqarena.workers.trial import SequenceNet
from tests.helpers import ADDING_RUN, recorded_run


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


def test_the_loaded_model_has_the_best_weights_and_gives_the_recorded_test_metric(home: Path) -> None:
    run_id = recorded_run(home, ADDING_RUN)
    model = seqarena.load_run(run_id, tracking_uri=f"sqlite:///{home / 'mlflow.db'}")
    assert isinstance(model, SequenceNet) and not model.training
    saved = torch.load(home / "ckpt" / checkpoint.FILE_NAME, weights_only=True)["state"]["best_weights"]
    assert all(torch.equal(value, saved[name]) for name, value in model.state_dict().items())
    task = tasks.build("adding", 20, **ADDING_RUN["task_options"])
    inputs, targets = task.eval_set("test")
    with torch.no_grad():
        mse = float(task.metrics(model(inputs), targets)[task.metric_name].double().mean())
    with database.get_engine().connect() as conn:
        metric = conn.execute(Trial.__table__.select()).mappings().one()["metric"]
    assert mse == pytest.approx(metric, rel=1e-6)


def test_a_checkpoint_holding_an_object_is_refused_not_unpickled(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"state": {"best_weights": None}, "model": Path("/an/object")}, path)  # a class to unpickle
    from seqarena.platform.trained import best_weights

    with pytest.raises(checkpoint.CheckpointRefused, match="it holds objects that are not tensors"):
        best_weights(path, torch.device("cpu"))


def test_an_unknown_run_names_the_field(home: Path) -> None:
    with pytest.raises(seqarena.errors.BadInput, match="run"):
        seqarena.load_run("no-such-run")
