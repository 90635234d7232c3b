"""What a trial reports: per-evaluation reports while it runs, and its final result.

`finite` and `plain` are the one home of float cleaning (NaN and infinities become None).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from pydantic import BaseModel

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

    @classmethod
    def build(cls, setup: Setup, state: TrialState, test: dict[str, float], params: int,
              extra: dict[str, Any]) -> TrialResult:
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
            curve=state.curve,
        )

    def to_json(self) -> str:
        """One line of JSON; non-finite floats become null (JSON has no NaN)."""
        return json.dumps(plain(self.model_dump(mode="json")), sort_keys=False)


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
