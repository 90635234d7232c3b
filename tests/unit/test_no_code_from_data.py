"""No code from data (issue 18 §1): a crafted pickle placed wherever seqarena reads a checkpoint or
a searcher's saved state is refused in one line and never runs.

The payload is a real one: unpickling it would call `os.system("touch MARKER")`. Each reader —
`seqarena train --checkpoint-dir`, `seqarena.load_run` / `seqarena trace --run` (the checkpoint
artifact of an MLflow run), the dashboard's "Inside the model" page, and the searcher state a
resumed search reads from Tune's experiment folder — must refuse the file and leave no marker.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from seqarena.platform.arms import ArmSearcher, SearcherStateRefused
from seqarena.workers import checkpoint
from tests.helpers import ADDING_RUN, recorded_run


class Payload:
    """Unpickling this runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {self.marker}",)


def plant(path: Path, marker: Path) -> None:
    """Write a pickle whose loading would create `marker`, shaped like a checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps({"fingerprint": Payload(marker), "model": {}, "state": {}}))


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def one_refusal(err: str, path: Path | str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "not a file of tensors" in lines[0] and str(path) in lines[0] and "Traceback" not in err, err
    assert "weights_only` set to `False`" not in err  # torch's advice to load it unsafely is not passed on


def test_the_reader_refuses_a_pickle_payload_and_runs_nothing(tmp_path: Path) -> None:
    marker, path = tmp_path / "ran", tmp_path / "checkpoint.pt"
    plant(path, marker)
    with pytest.raises(checkpoint.CheckpointRefused, match="it holds objects that are not tensors"):
        checkpoint.read(path)
    assert not marker.exists()
    assert pickle.loads(path.read_bytes()) is not None and marker.exists()  # the payload is live: loading runs it


@pytest.mark.parametrize("content", [b"", b"fo", b"\x80\x04K\x01."])
def test_empty_corrupt_or_foreign_files_are_refused_naming_the_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(content)
    with pytest.raises(checkpoint.CheckpointRefused) as refused:
        checkpoint.read(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_train_refuses_a_planted_checkpoint(tmp_path: Path, run_cli) -> None:
    marker, folder = tmp_path / "ran", tmp_path / "ckpt"
    plant(folder / checkpoint.FILE_NAME, marker)
    code, _, err = run_cli(["train", "--model", "gru", "--task", "adding", "--seq-len", "10", "--steps", "2",
                            "--eval-every", "1", "--hidden", "4", "--checkpoint-dir", str(folder)])
    assert code == 2 and not marker.exists()
    one_refusal(err, folder / checkpoint.FILE_NAME)


def test_trace_and_the_inside_page_refuse_a_planted_run_artifact(home: Path, run_cli) -> None:
    """Anyone who can write to MLflow can replace a run's `checkpoint/checkpoint.pt`."""
    from mlflow.tracking import MlflowClient
    from streamlit.testing.v1 import AppTest

    from seqarena.dashboard.serve import APP

    run_id = recorded_run(home, ADDING_RUN)
    marker, evil = home / "ran", home / "evil" / checkpoint.FILE_NAME
    plant(evil, marker)
    MlflowClient(f"sqlite:///{home / 'mlflow.db'}").log_artifact(run_id, str(evil), "checkpoint")
    code, _, err = run_cli(["trace", "--run", run_id, "--out", str(home / "trace")])
    assert code == 2 and not marker.exists()
    errors = [line for line in err.splitlines() if line.startswith("error:")]  # (MLflow's download bar aside)
    assert len(errors) == 1 and "Traceback" not in err, err
    assert "checkpoint: got" in errors[0] and "it holds objects that are not tensors" in errors[0]
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.run()
    app.switch_page("inside.py")
    app.run()
    assert not marker.exists()
    assert any("it holds objects that are not tensors" in error.value for error in app.error)


def test_a_planted_searcher_state_is_refused(tmp_path: Path) -> None:
    """Tune's experiment folder (shared by every node) holds the searcher's saved state; a resumed
    search reads it back through `ArmSearcher.restore`."""
    marker, path = tmp_path / "ran", tmp_path / "searcher-state-2026.pkl"
    path.write_bytes(pickle.dumps({"plans": Payload(marker)}))
    searcher = ArmSearcher([], "random", f"sqlite:///{tmp_path / 'optuna.db'}", "s")
    with pytest.raises(SearcherStateRefused, match="refused") as refused:
        searcher.restore(str(path))
    assert not marker.exists() and "\n" not in str(refused.value)


def test_the_searcher_state_is_plain_json(tmp_path: Path) -> None:
    import json

    searcher = ArmSearcher([], "random", f"sqlite:///{tmp_path / 'optuna.db'}", "s", max_concurrent=2)
    searcher.save(str(tmp_path / "state"))
    assert json.loads((tmp_path / "state").read_text())["version"] == 1
