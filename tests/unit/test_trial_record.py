"""A trial's record is one typed value: its database row and MLflow numbers are views of it, and a
field added to the types travels from the trial's report through Tune (as JSON) into the row."""

from __future__ import annotations

import json
import math

import pytest

from seqarena.errors import BadInput
from seqarena.workers.config import SearchTrial, TrialConfig
from seqarena.workers.results import TrialRecord, TrialResult, finite, plain
from seqarena.workers.tune_trainable import final_metrics

IDENTITY = {"trial_id": "t7", "role": "repeat", "seed": 2, "hparams": {"lr": 0.01, "hidden_size": 8},
            "config_key": "k"}


def result(**changes: object) -> dict:
    fields = dict(model="gru", task="adding", seq_len=50, hparams={"lr": 0.01, "hidden_size": 8}, task_options={},
                  metric_name="mse", metric=0.012, higher_is_better=False, baseline=0.167,
                  test_metrics={"mse": 0.012}, best_val_metric=0.011, best_step=40, params=1234,
                  train_seq_per_s=512.0, infer_seq_per_s=4096.0, peak_mem_mb=None, peak_mem_method="cpu:rss",
                  wall_s=3.5, steps=60, status="completed", seed=2, device="cpu", torch_version="2", extra={},
                  curve=[{"step": 20.0, "val_mse": 0.05}])
    return {**fields, **changes}


def through_tune(report: dict) -> dict:
    """A report as the driver reads it back: Tune stores results as JSON."""
    return json.loads(json.dumps(report))


def test_a_finished_trial_s_row_and_mlflow_numbers_come_from_its_result() -> None:
    report = through_tune(final_metrics(TrialResult(**result(wall_s=float("nan")))))
    record = TrialRecord.from_result(json.loads(report["trial_result"]), **IDENTITY)
    row = record.row()
    assert row == {**IDENTITY, "status": "completed", "steps": 60, "metric": 0.012, "best_val_metric": 0.011,
                   "test_metrics": {"mse": 0.012}, "params": 1234, "train_seq_per_s": 512.0,
                   "infer_seq_per_s": 4096.0, "peak_mem_mb": None, "wall_s": None, "mlflow_run_id": None,
                   "curve": [{"step": 20.0, "val_mse": 0.05}], "facts": None}  # the curve: steps to solve
    assert record.numbers() == {"steps": 60, "metric": 0.012, "best_val_metric": 0.011, "params": 1234,
                                "train_seq_per_s": 512.0, "infer_seq_per_s": 4096.0, "test_mse": 0.012}


def test_a_field_added_to_the_types_reaches_the_row_through_tune_s_json() -> None:
    class PlannedTrial(SearchTrial):
        energy_budget_j: float = 0.0

    class EnergyResult(TrialResult):
        energy_j: float

    class EnergyRecord(TrialRecord):
        energy_j: float | None = None

    planned = PlannedTrial(arm="adding/T=50/gru", role="search", metric_name="mse", higher_is_better=False,
                           trial=TrialConfig(model="gru", task="adding", seq_len=50), energy_budget_j=9.5)
    assert PlannedTrial.from_tune(through_tune(planned.to_tune())).energy_budget_j == 9.5

    report = through_tune(final_metrics(EnergyResult(**result(), energy_j=42.5)))
    record = EnergyRecord.from_result(json.loads(report["trial_result"]), **IDENTITY)
    assert record.row()["energy_j"] == 42.5 and record.numbers()["energy_j"] == 42.5


@pytest.mark.parametrize(("change", "field"), [({"status": "running"}, "status"), ({"role": "extra"}, "role"),
                                               ({"lossy": 1}, "lossy"), ({"steps": -1}, "steps")])
def test_a_bad_record_names_its_field(change: dict, field: str) -> None:
    with pytest.raises(BadInput) as caught:
        TrialRecord.checked({**IDENTITY, "status": "stopped", "steps": 3, **change})
    assert caught.value.field == field


def test_a_missing_field_is_named_without_echoing_the_whole_row() -> None:
    with pytest.raises(BadInput) as caught:
        TrialRecord.checked({"trial_id": "t1", "hparams": {}, "status": "stopped", "steps": 0})
    assert caught.value.field == "seed" and caught.value.value is None


def test_float_cleaning_turns_nan_and_infinities_into_none_and_unwraps_numpy() -> None:
    np = pytest.importorskip("numpy")
    assert finite(np.float32(0.5)) == 0.5 and finite(float("inf")) is None and finite(True) is None
    assert finite(None) is None and finite("2.5") == 2.5
    cleaned = plain({1: [np.int64(3), float("nan"), (np.float64(0.25),)], "ok": "x"})
    assert cleaned == {"1": [3, None, [0.25]], "ok": "x"} and type(cleaned["1"][0]) is int
    assert not any(isinstance(v, float) and math.isnan(v) for v in cleaned["1"])
