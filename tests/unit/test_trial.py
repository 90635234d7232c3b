"""One training trial: its numbers, resume from a checkpoint, divergence, memory, real learning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqarena.errors import BadInput
from seqarena.workers import EvalReport, Observer, TrialConfig, make_config, run_trial

REQUIRED_KEYS = {"model", "task", "seq_len", "hparams", "metric_name", "metric", "higher_is_better",
                 "baseline", "params", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb", "wall_s",
                 "steps", "status"}


def tiny(**overrides: object) -> TrialConfig:
    fields = {"model": "lstm", "task": "adding", "seq_len": 20, "steps": 12, "eval_every": 4,
              "hparams": {"hidden_size": 8, "batch_size": 8}, "task_options": {"n_val": 32, "n_test": 48}}
    return make_config(**{**fields, **overrides})


def test_result_holds_the_documented_numbers() -> None:
    result = run_trial(tiny())
    data = json.loads(result.to_json())
    assert set(data) >= REQUIRED_KEYS
    assert data["status"] == "completed" and data["steps"] == 12
    assert data["metric_name"] == "mse" and data["higher_is_better"] is False
    assert data["baseline"] == pytest.approx(1 / 6)
    assert data["params"] == 4 * 8 * (2 + 8) + 8 * 8 + (8 + 1)  # LSTM + Linear(8, 1) readout
    assert data["hparams"]["lr"] == 1e-3 and data["hparams"]["optimizer"] == "adam"
    assert [point["step"] for point in data["curve"]] == [4, 8, 12]
    assert data["train_seq_per_s"] > 0 and data["infer_seq_per_s"] > 0 and data["peak_mem_mb"] > 0


def test_test_metric_is_taken_at_the_best_validation_step() -> None:
    result = run_trial(tiny(steps=30, eval_every=5, hparams={"hidden_size": 8, "lr": 0.05}))
    values = [point["val_mse"] for point in result.curve]
    assert result.best_val_metric == min(values)
    assert result.best_step == result.curve[values.index(min(values))]["step"]
    assert result.test_metrics["mse"] == result.metric


@pytest.mark.slow  # trains coRNN: its C++ kernel builds on a cold cache
def test_authors_defaults_per_task_are_used() -> None:
    result = run_trial(make_config(model="cornn", task="adding", seq_len=10, steps=1, eval_every=1,
                                   hparams={"hidden_size": 4}, task_options={"n_val": 4, "n_test": 4}))
    assert (result.hparams["dt"], result.hparams["gamma"], result.hparams["epsilon"]) == (0.06, 66.0, 15.0)
    assert result.hparams["lr"] == 2e-2 and result.hparams["batch_size"] == 50


class _Killed(Exception):
    pass


@pytest.mark.parametrize(
    ("model", "task", "hparams"),
    [
        ("unicornn", "adding", {"hidden_size": 8, "num_layers": 2, "dropout": 0.2, "batch_size": 8}),
        ("tcn", "copy", {"hidden_size": 6, "num_layers": 3, "kernel_size": 3, "dropout": 0.1,
                         "batch_size": 8}),
    ],
)
def test_a_resumed_trial_ends_with_the_numbers_of_a_straight_run(tmp_path: Path, model: str, task: str,
                                                                  hparams: dict) -> None:
    config = tiny(model=model, task=task, hparams=hparams, steps=20, eval_every=5, seed=3,
                  checkpoint_dir=tmp_path / "ckpt")
    straight = run_trial(config.model_copy(update={"checkpoint_dir": None}))

    def stop_after_step_10(report: EvalReport) -> None:
        if report.step == 10:
            raise _Killed

    with pytest.raises(_Killed):
        run_trial(config, Observer(on_eval=stop_after_step_10))
    assert (tmp_path / "ckpt" / "checkpoint.pt").exists()
    steps_after_resume: list[int] = []
    resumed = run_trial(config, Observer(on_step=lambda step, loss: steps_after_resume.append(step)))
    assert steps_after_resume[0] == 11
    compared = ("metric", "test_metrics", "best_val_metric", "best_step", "curve", "params", "steps",
                "status")
    for key in compared:
        assert getattr(resumed, key) == getattr(straight, key), key


def test_a_checkpoint_of_another_trial_is_refused(tmp_path: Path) -> None:
    run_trial(tiny(checkpoint_dir=tmp_path))
    with pytest.raises(BadInput, match="checkpoint_dir"):
        run_trial(tiny(checkpoint_dir=tmp_path, seed=1))


@pytest.mark.slow  # trains coRNN: its C++ kernel builds on a cold cache
def test_a_nan_loss_ends_the_trial_as_diverged() -> None:
    config = tiny(model="cornn", hparams={"hidden_size": 8, "dt": 2.0, "gamma": 1000.0, "epsilon": 0.0})
    result = run_trial(config)
    assert result.status == "diverged"
    assert result.steps < config.steps
    assert json.loads(result.to_json())["status"] == "diverged"


def _peak(model: str, seq_len: int, hidden: int) -> float:
    config = tiny(model=model, seq_len=seq_len, steps=1, eval_every=1,
                  hparams={"hidden_size": hidden, "batch_size": 16})
    return run_trial(config).peak_mem_mb


@pytest.mark.parametrize("model", ["lem", "lstm", "tcn"])
def test_peak_memory_grows_with_sequence_length_and_hidden_size(model: str) -> None:
    short, long = _peak(model, 50, 16), _peak(model, 200, 16)
    assert long > 2.0 * short  # activations are stored per step: about linear in T
    assert _peak(model, 50, 64) > 1.5 * short


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_trial_on_cuda_reports_torch_memory_counters() -> None:
    result = run_trial(tiny(device="cuda"))
    assert result.device.startswith("cuda") and result.peak_mem_method.startswith("cuda")
    assert result.status == "completed" and result.peak_mem_mb > 0


@pytest.mark.slow
def test_a_recurrent_model_learns_the_adding_problem() -> None:
    config = make_config(model="gru", task="adding", seq_len=50, steps=400, eval_every=100, seed=0,
                         hparams={"hidden_size": 32, "lr": 1e-2, "batch_size": 50},
                         task_options={"n_val": 200, "n_test": 1000})
    result = run_trial(config)
    assert result.curve[0]["val_mse"] > 0.1  # starts near the 1/6 baseline
    assert result.metric < 0.05


@pytest.mark.slow
def test_a_small_model_beats_chance_on_smnist(small_data: Path) -> None:
    config = make_config(model="tcn", task="smnist", seq_len=784, steps=200, eval_every=100, seed=0,
                         hparams={"hidden_size": 16, "num_layers": 7, "kernel_size": 7, "dropout": 0.0,
                                  "batch_size": 32},
                         task_options={"n_val": 300, "n_test": 500})
    result = run_trial(config)
    assert result.baseline < 0.15
    assert result.metric > 0.5


def test_a_trial_whose_data_is_missing_on_its_node_fails_with_one_line(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """What the Tune trainable reports when `prepare` finds no data (offline), and the row it becomes."""
    from types import SimpleNamespace

    from seqarena.errors import DataError
    from seqarena.platform.recorder import trial_record
    from seqarena.workers.config import SearchTrial, prepare
    from seqarena.workers.tune_trainable import OBJECTIVE, failed_metrics

    monkeypatch.setenv("SEQARENA_DATA", str(tmp_path))
    fields = {"model": "lstm", "task": "smnist", "seq_len": 784, "seed": 0, "hparams": {"hidden_size": 8}}
    with pytest.raises(DataError) as caught:
        prepare(make_config(**fields, steps=2, eval_every=1))
    last = failed_metrics(caught.value)
    assert last["status"] == "failed" and last["final"] == 1 and last[OBJECTIVE] == float("-inf")
    assert "\n" not in last["error"] and "train-images-idx3-ubyte.gz" in last["error"]
    assert "missing file" in last["error"] and list(tmp_path.iterdir()) == []
    planned = SearchTrial(arm="smnist/T=784/lstm", role="search", metric_name="accuracy", higher_is_better=True,
                          trial=make_config(**fields))
    trial = SimpleNamespace(trial_id="t1", config=planned.to_tune())
    assert trial_record(trial, last, error=None).status == "failed"


def test_throughput_and_memory_come_from_steady_steps_not_the_warm_up(monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 19: the first steps (kernel builds, caches, the optimiser's state) and the memory step are left out
    of the training throughput, the first evaluation batch out of the inference throughput, and peak memory is
    measured on the first step after the warm-up. 7 steps of 8 sequences: 2 warm-up steps and the memory step
    (24 sequences) left out, 4 steps (32) timed. Evaluations in batches of 16: validation (32) at steps 4 and 7,
    then test (48): 7 batches, 112 sequences, the first batch (16) left out, 96 timed."""
    from seqarena.workers import trial as trial_module
    from seqarena.workers.measure import STEADY, WARMUP_STEPS
    from seqarena.workers.placement import run_facts

    trainer = trial_module.Trainer(trial_module.prepare(tiny(steps=7, eval_every=4, eval_batch_size=16)))
    measured_at: list[int] = []
    real = trial_module.measure_step_memory

    def spy(*args: object) -> object:
        measured_at.append(trainer.state.step)
        return real(*args)

    monkeypatch.setattr(trial_module, "measure_step_memory", spy)
    result = trainer.run()
    train, infer = trainer.state.train_watch, trainer.state.infer_watch
    assert WARMUP_STEPS == 2 and measured_at == [2]
    assert (train.warm_items, train.items) == (24, 32)
    assert (infer.warm_items, infer.items) == (16, 96)
    assert result.train_seq_per_s == pytest.approx(32 / train.seconds)
    assert result.infer_seq_per_s == pytest.approx(96 / infer.seconds)
    assert run_facts(torch.device("cpu"), "eager").timing == STEADY


def test_a_trial_shorter_than_its_warm_up_still_reports_memory_and_throughput() -> None:
    result = run_trial(tiny(steps=1, eval_every=1))
    assert result.peak_mem_mb > 0 and result.train_seq_per_s > 0 and result.infer_seq_per_s > 0
