"""Length generalisation (issue 17 §3): a trained trial tested at other lengths T′, its points recorded."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.workers import TrialConfig, make_config, run_trial
from seqarena.workers.config import prepare
from seqarena.workers.results import LengthResult, TrialRecord
from seqarena.workers.trial import build_model


def tiny(**overrides: object) -> TrialConfig:
    fields = {"model": "gru", "task": "adding", "seq_len": 12, "steps": 8, "eval_every": 4, "seed": 3,
              "hparams": {"hidden_size": 6, "batch_size": 8, "lr": 0.01}, "task_options": {"n_val": 16, "n_test": 24},
              "eval_lengths": (6, 30)}
    return make_config(**{**fields, **overrides})


def test_metric_at_other_length_is_the_best_weights_on_the_task_built_there(tmp_path: Path) -> None:
    """The trial's MSE at T′ = 30 equals an independent evaluation: the best weights read from the trial's
    checkpoint, the adding test set built at T = 30 with the same options, MSE computed by hand."""
    config = tiny(checkpoint_dir=tmp_path)
    result = run_trial(config)
    assert [point.seq_len for point in result.lengths] == [6, 30]
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)["state"]["best_weights"]
    model = build_model(prepare(config))
    model.load_state_dict(saved)
    model.eval()
    for point in result.lengths:
        inputs, targets = tasks.build("adding", point.seq_len, n_val=16, n_test=24).eval_set("test")
        assert inputs.shape == (24, point.seq_len, 2)
        with torch.no_grad():
            by_hand = float(((model(inputs) - targets) ** 2).mean())
        assert point.status == "completed" and point.note is None
        assert point.metric == pytest.approx(by_hand, rel=1e-6)
        assert point.test_metrics == {"mse": pytest.approx(by_hand, rel=1e-6)}
    assert result.lengths[0].metric != result.lengths[1].metric  # two sets, two numbers


def test_points_reach_the_record_and_its_numbers() -> None:
    """The record of the result keeps each point; MLflow's numbers name them test_<metric>_at_T<T′>."""
    result = run_trial(tiny(eval_lengths=(24,)))
    record = TrialRecord.from_result(result.model_dump(mode="json"), trial_id="t1", seed=3, hparams={})
    assert record.lengths == result.lengths
    assert record.numbers()["test_mse_at_T24"] == result.lengths[0].metric
    assert "lengths" not in record.row() and "metric_name" not in record.row()


def test_a_tcn_that_cannot_see_the_whole_input_at_t_prime_is_marked() -> None:
    """TCN with kernel 2 and 2 levels sees 1 + 2·(2 − 1)·(1 + 2) = 7 steps: fine at T = 6, marked at 30."""
    result = run_trial(tiny(model="tcn", hparams={"hidden_size": 6, "batch_size": 8, "num_layers": 2,
                                                  "kernel_size": 2}))
    notes = {point.seq_len: point.note for point in result.lengths}
    assert notes[6] is None
    assert notes[30] == "receptive field 7 < input length 30"


def test_a_task_of_fixed_length_refuses_other_lengths_in_one_line() -> None:
    with pytest.raises(BadInput) as caught:
        prepare(make_config(model="gru", task="smnist", seq_len=784, eval_lengths=(392,)))
    message = str(caught.value)
    assert "\n" not in message and message.startswith("eval_lengths: got [392]")
    assert "smnist" in message and "adding, copy, char" in message


def test_a_length_the_task_refuses_names_its_index() -> None:
    with pytest.raises(BadInput, match=r"^eval_lengths\[1\]: got 1; allowed: at least 2"):
        prepare(tiny(eval_lengths=(30, 1)))


def test_a_point_is_a_typed_value_with_clean_floats() -> None:
    point = LengthResult(seq_len=30, status="diverged", metric=float("nan"), test_metrics={"mse": float("inf")})
    assert point.metric is None and point.test_metrics == {"mse": None}
    with pytest.raises(ValueError):
        LengthResult(seq_len=30, status="lost")


def test_no_other_lengths_leaves_the_checkpoint_fingerprint_as_before() -> None:
    """Trials without eval_lengths keep the fingerprint they had (their checkpoints still resume)."""
    plain = tiny(eval_lengths=())
    data = plain.model_dump(mode="json", exclude={"checkpoint_dir", "protocol", "eval_lengths"})
    assert plain.fingerprint() == hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]
    assert tiny().fingerprint() != plain.fingerprint()
