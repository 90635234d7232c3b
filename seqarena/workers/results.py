"""What a trial reports: per-evaluation reports while it runs, its final result, and its record.

`TrialResult` is what a finished trial computed. `TrialRecord` is what the platform keeps of any
trial of a search, finished or not: the row of the results database and the final numbers of its
MLflow run are views of it (`row`, `numbers`), and its numbers are taken from a `TrialResult` by
field name (`TrialRecord.from_result`), so a field added to both types reaches the database row
and MLflow with no other change. `finite` and `plain` are the one home of float cleaning.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from seqarena.workers.config import TrialRole, bad_input

if TYPE_CHECKING:
    from seqarena.workers.config import Setup
    from seqarena.workers.trial import TrialState


@dataclass(frozen=True)
class EvalReport:
    """One validation evaluation: the step, its curve point, the checkpoint written after it."""

    step: int
    metrics: dict[str, float]
    checkpoint: Path | None
    best_value: float | None


#: How a test at another length T′ ended: its numbers, a non-finite headline metric, out of memory at T′,
#: or any other error (a model that cannot run at T′).
LengthStatus = Literal["completed", "diverged", "oom", "failed"]


class LengthResult(BaseModel):
    """The trained model (its best weights) tested at another length T′: the task's test set built at T′ with
    the trial's task options (the same data seed), every metric of the task (length generalisation).

    `note` says what limits the point: the error of a failed or oom test, or a model that sees less than the
    input at T′ (a TCN whose receptive field is shorter than the sequence).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    seq_len: int = Field(gt=0, description="the length T′ tested at")
    status: LengthStatus = Field(description="how the test at T′ ended")
    metric: float | None = Field(None, description="the task's headline test metric at T′")
    test_metrics: dict[str, float | None] = Field(default_factory=dict, description="every test metric at T′")
    note: str | None = Field(None, description="what limits the point (an error, a receptive field)")

    @field_validator("metric", mode="before")
    @classmethod
    def _finite(cls, value: Any) -> float | None:
        return finite(value)

    @field_validator("test_metrics", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return plain(value)

    def number_name(self, metric_name: str) -> str:
        """Its headline metric's name among the trial's numbers (MLflow): `test_<metric>_at_T<T′>`."""
        return f"test_{metric_name}_at_T{self.seq_len}"


class TrialResult(BaseModel):
    """The final numbers of a trial (the JSON object that `seqarena train --json` prints).

    `metric` is the test-set value of the task's headline metric at the best validation step
    (None when the trial diverged before its first evaluation); `test_metrics` holds every
    per-sample metric of the task at that step. Throughputs are sequences per second; training
    throughput covers forward, backward and optimiser step, inference throughput the evaluation
    forward passes. `peak_mem_method` says how `peak_mem_mb` was measured.
    """

    model: str
    task: str
    seq_len: int
    hparams: dict[str, Any]
    task_options: dict[str, Any]
    metric_name: str
    metric: float | None
    higher_is_better: bool
    baseline: float
    test_metrics: dict[str, float]
    best_val_metric: float | None
    best_step: int
    params: int
    train_seq_per_s: float
    infer_seq_per_s: float
    peak_mem_mb: float | None
    peak_mem_method: str
    wall_s: float
    steps: int
    status: str
    seed: int
    device: str
    torch_version: str
    extra: dict[str, Any]
    curve: list[dict[str, float]]
    protocol: str | None = None
    """the task's data protocol the trial followed (`Setup.protocol`; its values are in `task_options`)"""
    lengths: list[LengthResult] = Field(default_factory=list)
    """the trained model tested at the other lengths of `TrialConfig.eval_lengths` (length generalisation)"""

    @classmethod
    def build(cls, setup: Setup, state: TrialState, test: dict[str, float], params: int,
              extra: dict[str, Any], lengths: list[LengthResult] | None = None) -> TrialResult:
        """Assemble the result of a finished trial."""
        task = setup.task
        return cls(
            model=setup.config.model, task=task.name, seq_len=task.seq_len, hparams=dict(setup.hparams),
            task_options=task.options.model_dump(mode="json"), metric_name=task.metric_name,
            metric=test.get(task.metric_name), higher_is_better=task.higher_is_better,
            baseline=task.baseline, test_metrics=test, best_val_metric=state.best_value,
            best_step=state.best_step, params=params, train_seq_per_s=state.train_watch.rate(),
            infer_seq_per_s=state.infer_watch.rate(), peak_mem_mb=state.peak_mem_mb,
            peak_mem_method=state.peak_mem_method, wall_s=state.elapsed_s, steps=state.step,
            status=state.status, seed=setup.config.seed, device=str(setup.device),
            torch_version=torch.__version__, extra={"input_length": task.length, **extra},
            curve=state.curve, protocol=setup.protocol, lengths=lengths or [],
        )

    def to_json(self) -> str:
        """One line of JSON; non-finite floats become null (JSON has no NaN)."""
        return json.dumps(plain(self.model_dump(mode="json")), sort_keys=False)


#: How a recorded trial ended: ran to its budget, stopped early by the scheduler, its loss became
#: NaN or infinite, out of memory, or failed with an error.
TrialStatus = Literal["completed", "stopped", "diverged", "oom", "failed"]
#: The fields of a `TrialRecord` that the platform supplies; every other field is a number of the trial.
_IDENTITY = ("trial_id", "role", "seed", "hparams", "config_key", "mlflow_run_id", "facts")


class TrialRecord(BaseModel):
    """One trial of a search as the platform keeps it (one database row, one MLflow run's numbers).

    `hparams` holds every hyperparameter the trial ran with (the declared defaults resolved);
    `config_key` identifies a configuration across seeds (filled in by the database when None).
    `metric` is the test value of the task's headline metric at the best validation step; a trial
    that did not complete keeps None there and, when it was evaluated, its best validation value
    in `best_val_metric`. `curve` is the trial's learning curve as `TrialResult.curve` holds it (empty
    for a trial that ended without a result: stopped early, failed); steps to solve are read from it
    (`seqarena.platform.solving`). NaN and infinities are stored as None (JSON and SQL have no NaN).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    trial_id: str = Field(min_length=1, description="Ray Tune's trial id")
    role: TrialRole = Field("search", description="search (a searched configuration) or repeat")
    seed: int = Field(description="the trial's seed")
    hparams: dict[str, Any] = Field(description="every hyperparameter, defaults resolved")
    config_key: str | None = Field(None, description="sha256 of the configuration (seed left out)")
    status: TrialStatus = Field(description="how the trial ended")
    steps: int = Field(ge=0, description="training steps run")
    metric: float | None = Field(None, description="test metric at the best validation step")
    best_val_metric: float | None = Field(None, description="best validation metric")
    test_metrics: dict[str, float | None] = Field(default_factory=dict, description="every test metric")
    params: int | None = Field(None, ge=0, description="trainable parameters")
    train_seq_per_s: float | None = Field(None, description="training throughput, sequences per second")
    infer_seq_per_s: float | None = Field(None, description="inference throughput, sequences per second")
    peak_mem_mb: float | None = Field(None, description="peak memory of a training step, MB")
    wall_s: float | None = Field(None, description="wall-clock seconds of the trial")
    mlflow_run_id: str | None = Field(None, description="the trial's MLflow run")
    curve: list[dict[str, float | None]] = Field(
        default_factory=list, description="one point per evaluation: step, train_loss and every val_<metric>")
    metric_name: str | None = Field(None, description="the task's headline metric (names the numbers at T′)")
    lengths: list[LengthResult] = Field(
        default_factory=list, description="the trained model tested at other lengths T′ (its own table's rows)")
    facts: dict[str, str] | None = Field(
        None, description="where and how it ran and the versions that ran and recorded it "
                          "(`seqarena.platform.run_record.recorded_facts`); None: not recorded")

    @field_validator("metric", "best_val_metric", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb", "wall_s",
                     mode="before")
    @classmethod
    def _finite(cls, value: Any) -> float | None:
        return finite(value)

    @field_validator("hparams", "test_metrics", "seed", "steps", "params", "curve", mode="before")
    @classmethod
    def _plain(cls, value: Any) -> Any:
        return plain(value)

    @classmethod
    def number_fields(cls) -> tuple[str, ...]:
        """The fields that hold what the trial produced (all but its identity)."""
        return tuple(name for name in cls.model_fields if name not in _IDENTITY)

    @classmethod
    def checked(cls, row: Mapping[str, Any]) -> TrialRecord:
        """Validate a row; the first problem becomes a `BadInput` naming its field."""
        try:
            return cls.model_validate(dict(row))
        except ValidationError as error:
            raise bad_input(error) from None

    @classmethod
    def from_result(cls, result: Mapping[str, Any], **identity: Any) -> TrialRecord:
        """The record of a finished trial: its numbers from `result` (a `TrialResult` as JSON), by name."""
        numbers = {name: result[name] for name in cls.number_fields() if name in result}
        return cls.checked({**numbers, **identity})

    def row(self) -> dict[str, Any]:
        """The trial as a database row (column name -> value); its tests at other lengths are rows of their own
        (`seqarena.platform.searches.record_trial`)."""
        return self.model_dump(exclude={"lengths", "metric_name"})

    def numbers(self) -> dict[str, float]:
        """The trial's final numbers (absent ones left out), test metrics as `test_<name>`, the headline metric
        at each other length T′ as `test_<metric>_at_T<T′>`."""
        values = {name: getattr(self, name) for name in self.number_fields()}
        numbers = {name: value for name, value in values.items()
                   if isinstance(value, int | float) and not isinstance(value, bool)}
        numbers.update({f"test_{name}": value for name, value in self.test_metrics.items() if value is not None})
        numbers.update({point.number_name(self.metric_name): point.metric for point in self.lengths
                        if point.metric is not None and self.metric_name})
        return numbers


def finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, a bool, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN and infinities as None (JSON has neither,
    and PostgreSQL rejects NaN in JSON columns)."""
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    if not isinstance(value, str | int | float | None) and callable(getattr(value, "item", None)):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
