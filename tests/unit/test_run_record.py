"""A trial's MLflow run record: every key present, and its rerun command reproduces the trial."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from seqarena.platform.run_record import resolved_config, run_params, run_tags
from seqarena.platform.tracking import COMMAND_TAG, CONFIG_TAG, PROTOCOL_TAG, Tracker
from seqarena.workers.config import make_config
from seqarena.workers.placement import RunFacts, implementation_of, run_facts, trial_device
from seqarena.workers.trial import run_trial

ROOT = Path(__file__).resolve().parents[2]
#: TCN's adding protocol (markers anywhere, a fixed training set), its set cut to 64 sequences.
TRIAL = {"model": "gru", "task": "adding", "seq_len": 20, "task_options": {"n_val": 16, "n_test": 16, "train_size": 64},
         "protocol": "tcn", "hparams": {"hidden_size": 8, "batch_size": 16}, "steps": 12, "eval_every": 4, "seed": 3}
FACTS = ("device", "gpu_name", "implementation", "torch_version", "cuda_version", "seqarena_version", "git_commit")


@pytest.mark.parametrize(("gpu_ids", "device"), [([], "cpu"), ([0], "cuda"), (["3"], "cuda"), ([0, 1], "cuda")])
def test_a_trial_trains_on_cuda_exactly_when_it_was_given_gpus(gpu_ids: list, device: str) -> None:
    assert trial_device(gpu_ids) == device


def test_the_implementation_is_the_model_s_word_else_torch_s() -> None:
    assert implementation_of({"implementation": "fused-cuda"}, torch.device("cuda")) == "fused-cuda"
    assert implementation_of({}, torch.device("cuda")) == "torch-cudnn"
    assert implementation_of({"receptive_field": 9}, torch.device("cpu")) == "torch-cpu"


def _recorded(tmp_path: Path) -> tuple[str, MlflowClient, object]:
    """Train TRIAL and record it as a search's child run in a real MLflow store under tmp_path."""
    result = run_trial(make_config(**TRIAL))
    config = resolved_config(make_config(**TRIAL), result.hparams, result.task_options, result.protocol)
    device = torch.device(result.device)
    facts = run_facts(device, implementation_of(result.extra, device))
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment_id("seqarena/rerun")
    parent = tracker.start_parent(experiment, "s1", "rerun", "name: rerun\n")
    run_id = tracker.start_child(experiment, parent, "t0", run_tags(config, facts), run_params(config))
    tracker.log_metrics(run_id, {"metric": result.metric, "best_val_metric": result.best_val_metric}, step=12)
    return run_id, tracker.client, result


def test_a_run_records_every_hyperparameter_option_and_fact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    run_id, client, result = _recorded(tmp_path)
    run = client.get_run(run_id)
    params, tags = run.data.params, run.data.tags
    assert set(result.hparams) <= set(params)
    assert {"num_layers", "dropout", "optimizer", "grad_clip", "weight_decay", "lr", "batch_size"} <= set(params)
    assert params["hidden_size"] == "8" and params["task.n_val"] == "16"
    assert {"task.n_test", "model", "task", "seq_len", "seed", "steps", "eval_every", "eval_batch_size"} <= set(params)
    assert (params["seed"], params["steps"], params["eval_every"]) == ("3", "12", "4")
    assert set(FACTS) <= set(tags)
    assert tags["device"] == "cpu" and tags["gpu_name"] == "-" and tags["implementation"] == "torch-cpu"
    assert tags["torch_version"] == torch.__version__ and tags["seqarena_version"]
    assert tags["git_commit"] != "-"  # the tests run from a checkout
    assert json.loads(tags[CONFIG_TAG])["hparams"] == json.loads(json.dumps(result.hparams))
    assert tags[COMMAND_TAG].startswith("seqarena train --model gru --task adding --seq-len 20 ")
    assert params["protocol"] == tags[PROTOCOL_TAG] == "tcn" and "--protocol tcn" in tags[COMMAND_TAG]
    assert (params["task.markers"], params["task.train_size"]) == ("anywhere", "64")  # the explicit size over 50 000


def test_the_recorded_command_reruns_the_trial_with_the_same_numbers(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path))
    run_id, client, result = _recorded(tmp_path)
    argv = shlex.split(client.get_run(run_id).data.tags[COMMAND_TAG])
    assert argv[:2] == ["seqarena", "train"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SEQARENA_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "seqarena.cli", *argv[1:]], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rerun = json.loads(done.stdout.strip().splitlines()[-1])
    logged = {key: client.get_metric_history(run_id, key)[-1].value for key in ("metric", "best_val_metric")}
    assert rerun["metric"] == pytest.approx(logged["metric"], rel=1e-12)
    assert rerun["best_val_metric"] == pytest.approx(logged["best_val_metric"], rel=1e-12)
    assert rerun["curve"] == result.curve and rerun["hparams"] == json.loads(json.dumps(result.hparams))
    assert rerun["steps"] == 12 and rerun["seed"] == 3
    assert rerun["protocol"] == "tcn" and rerun["task_options"] == result.task_options


def test_facts_name_every_key_even_where_nothing_applies() -> None:
    facts = RunFacts(device="cpu", gpu_name="", implementation="eager", torch_version="2", cuda_version="",
                     seqarena_version="0.1.0", git_commit="")
    assert facts.tags() == {"device": "cpu", "gpu_name": "-", "implementation": "eager", "torch_version": "2",
                            "cuda_version": "-", "seqarena_version": "0.1.0", "git_commit": "-",
                            "timing": "-"}


def test_the_database_keeps_each_trial_s_facts_with_the_driver_s_versions(engine) -> None:
    from dataclasses import asdict
    from importlib import metadata

    from sqlalchemy import select

    from seqarena.platform import searches
    from seqarena.platform.run_record import FACTS_KEY, recorded_facts
    from seqarena.platform.schema import Trial
    from seqarena.workers.results import TrialRecord

    ran = RunFacts(device="cuda", gpu_name="NVIDIA H200", implementation="fused-cuda", torch_version="2.5",
                   cuda_version="12.4", seqarena_version="0.1.0", git_commit="abc123")
    facts = recorded_facts({FACTS_KEY: json.dumps(asdict(ran))})
    assert facts == {**ran.tags(), "ray_version": metadata.version("ray"),
                     "optuna_version": metadata.version("optuna"), "mlflow_version": metadata.version("mlflow")}
    assert set(recorded_facts({})) == {"ray_version", "optuna_version", "mlflow_version"}  # failed before training
    search = searches.create_search(engine, name="f", spec_yaml="name: f\n", spec_hash="h", mlflow_experiment_id="1",
                                    arms=[{"task": "adding", "seq_len": 20, "model": "gru", "key": "a",
                                           "metric_name": "mse", "higher_is_better": False, "baseline": 0.167}])
    record = TrialRecord.checked({"trial_id": "t", "seed": 0, "hparams": {}, "status": "completed", "steps": 1,
                                  "metric": 0.1, "facts": facts})
    assert "facts" not in record.numbers()
    searches.record_trial(engine, search, "a", record)
    with engine.connect() as conn:
        assert conn.scalar(select(Trial.facts)) == facts
