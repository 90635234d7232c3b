"""The search driver's recorder on a real (SQLite) MLflow store: a restarted driver completes what a kill left."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from seqarena.platform.progress import ArmCounts, SearchProgress
from seqarena.platform.recorder import RecorderTarget, SearchRecorder
from seqarena.platform.tracking import PARENT_TAG, SEARCH_TAG, TRIAL_TAG, Tracker
from seqarena.workers.config import SearchTrial, TrialConfig

ARM = "adding/T=20/gru"


def test_a_child_run_left_without_params_gets_them_when_the_driver_restarts(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    tracker = Tracker()
    experiment = tracker.experiment_id("seqarena/recorder")
    parent = tracker.start_parent(experiment, "s1", "recorder", "name: recorder\n")
    # what a driver killed between creating the run and logging its params leaves behind
    orphan = tracker.client.create_run(experiment, tags={PARENT_TAG: parent, SEARCH_TAG: "s1", TRIAL_TAG: "t1"})
    target = RecorderTarget("s1", experiment, parent)
    recorder = SearchRecorder(target, SearchProgress({ARM: ArmCounts(total=1, metric_name="mse",
                                                                     higher_is_better=False)}, title="t"))
    planned = SearchTrial(arm=ARM, role="search", metric_name="mse", higher_is_better=False,
                          trial=TrialConfig(model="gru", task="adding", seq_len=20,
                                            hparams={"lr": 0.01, "hidden_size": 8}))
    trial = SimpleNamespace(trial_id="t1", config=planned.to_tune())
    assert recorder._run_id(trial) == orphan.info.run_id
    assert tracker.client.get_run(orphan.info.run_id).data.params == {"lr": "0.01", "hidden_size": "8"}
    assert recorder._run_id(trial) == orphan.info.run_id  # asked again: nothing more to do, still one run
    assert list(tracker.child_runs(experiment, parent)) == ["t1"]
    assert tracker.log_missing_params(orphan.info.run_id, {"lr": 0.01, "hidden_size": 8}) == 0


def test_the_pickled_callback_holds_no_url_and_reads_the_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """The callback travels in Tune's `tuner.pkl`, on storage every node shares: no password in it."""
    import pickle

    secret = "s3cr3t-pw-in-url"
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    monkeypatch.setenv("SEQARENA_DB_URL", f"postgresql+psycopg://seqarena:{secret}@db.example:5432/seqarena")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"https://user:{secret}@mlflow.example")
    recorder = SearchRecorder(RecorderTarget("s1", "1", "p1"),
                              SearchProgress({ARM: ArmCounts(total=1, metric_name="mse", higher_is_better=False)},
                                             title="t"))
    saved = pickle.dumps(recorder)
    assert secret.encode() not in saved and b"db.example" not in saved and b"mlflow.example" not in saved
    assert pickle.loads(saved).target == RecorderTarget("s1", "1", "p1")
