"""The Ray Tune trainable: one trial of a search, as a thin adapter over `seqarena.workers.trial`.

Tune passes a `SearchTrial` as its config (`SearchTrial.to_tune`), validated here first.
The trainable only computes and reports: after every validation
evaluation it calls `tune.report` with the curve point, the ASHA objective and the checkpoint
written by the trainer; at the end it reports the final result (`final = 1`) with the whole
`TrialResult` as JSON. A trial restarted by Tune continues from `tune.get_checkpoint()`.

`objective` is the validation metric signed so that higher is better for every task, so that a
search and its schedulers always maximise. A trial whose setup fails (its task's data missing on
this node, say) ends at once with status `failed` and the problem in one line (`failed_metrics`); a
CUDA out-of-memory error ends the trial with status `oom`; whatever way a trial ends, its memory is
released before the worker runs the next one. The device follows the trial's resources: `cuda`
when Ray assigned it GPUs, else `cpu` (`placed`); a trial given GPUs where torch cannot use CUDA
fails with that one line instead of training on the CPU. The final report carries `run_facts`
(device, GPU, implementation, versions: `seqarena.workers.placement.RunFacts`).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import ray
import torch
from ray import tune

from seqarena.errors import BadInput
from seqarena.workers.config import SearchTrial, prepare
from seqarena.workers.memory import is_out_of_memory, release_memory
from seqarena.workers.placement import assigned_gpus, implementation_of, run_facts, trial_device
from seqarena.workers.results import EvalReport, TrialResult
from seqarena.workers.trial import Observer, Trainer

log = logging.getLogger(__name__)

OBJECTIVE = "objective"
STEP = "step"


def signed(value: float | None, higher_is_better: bool) -> float | None:
    """The metric signed so that higher is always better (None stays None)."""
    if value is None:
        return None
    return value if higher_is_better else -value


def _restore_into(directory: Path) -> None:
    checkpoint = tune.get_checkpoint()
    if checkpoint is None:
        return
    with checkpoint.as_directory() as restored:
        for item in Path(restored).iterdir():
            shutil.copy2(item, directory / item.name)


def _reporter(higher_is_better: bool, metric_name: str) -> Callable[[EvalReport], None]:
    def report(evaluation: EvalReport) -> None:
        metrics: dict[str, Any] = {STEP: evaluation.step, **evaluation.metrics, "node_id": node_id()}
        metrics[OBJECTIVE] = signed(evaluation.metrics[f"val_{metric_name}"], higher_is_better)
        checkpoint = None
        if evaluation.checkpoint is not None:
            checkpoint = tune.Checkpoint.from_directory(str(evaluation.checkpoint.parent))
        tune.report(metrics, checkpoint=checkpoint)

    return report


def node_id() -> str:
    """The Ray node this trial runs on (recorded with every report)."""
    return ray.get_runtime_context().get_node_id()


def final_metrics(result: TrialResult) -> dict[str, Any]:
    """The last report of a trial: its status, objective and the whole result as JSON."""
    objective = signed(result.best_val_metric, result.higher_is_better)
    return {
        STEP: result.steps, "final": 1, "status": result.status, "trial_result": result.to_json(),
        OBJECTIVE: objective if objective is not None else float("-inf"),
    }


def failed_metrics(error: BadInput) -> dict[str, Any]:
    """The one report of a trial that could not start (its data missing or corrupt on this node, an
    option its task refuses): status `failed` and the problem as one line."""
    return {STEP: 0, "final": 1, "status": "failed", "error": one_line(error),
            OBJECTIVE: float("-inf")}


def placed(planned: SearchTrial, gpu_ids: list[object]) -> SearchTrial:
    """The trial with the device its resources give it: `cuda` when Ray assigned it GPUs (Ray has set
    `CUDA_VISIBLE_DEVICES` to them), else `cpu` (`seqarena.workers.placement`)."""
    return planned.model_copy(update={"trial": planned.trial.model_copy(update={"device": trial_device(gpu_ids)})})


_RAISED = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Exit|Interrupt)\b:? ?.*")


def one_line(error: BaseException) -> str:
    """An error as one line of at most 500 characters: its message's first line, or, when the message is a
    whole traceback (Tune's `TuneError` carries one), the line of the exception raised last in it and, when
    it had a cause, the line of the first ("... (caused by sqlite3.OperationalError: database or disk is full)")."""
    lines = str(error).strip().splitlines()
    if lines and lines[0].startswith("Traceback (most recent call last)"):
        raised = [line for line in lines if _RAISED.match(line)] or lines[-1:]
        lines = [raised[-1] if raised[0] == raised[-1] else f"{raised[-1]} (caused by {raised[0]})"]
    return (lines[0] if lines else type(error).__name__)[:500]


def run_tune_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: train one trial, reporting every evaluation and the final result."""
    workdir = Path(tempfile.mkdtemp(prefix="seqarena-trial-"))
    trainer = None
    try:
        _restore_into(workdir)
        planned = placed(SearchTrial.from_tune(config), assigned_gpus())
        try:
            setup = prepare(planned.trial.model_copy(update={"checkpoint_dir": workdir}))
        except BadInput as error:  # e.g. the task's data is missing on this node while offline
            log.error("%s: %s", planned.arm, error)
            tune.report({**failed_metrics(error), "node_id": node_id()})
            return
        task = setup.task
        trainer = Trainer(setup, Observer(on_eval=_reporter(task.higher_is_better, task.metric_name)))
        try:
            result = trainer.run()
        except (torch.OutOfMemoryError, RuntimeError) as error:
            if not is_out_of_memory(error):
                raise
            tune.report({STEP: trainer.state.step, "final": 1, "status": "oom", "error": one_line(error),
                         OBJECTIVE: float("-inf"), "node_id": node_id()})
            return
        facts = run_facts(setup.device, implementation_of(result.extra, setup.device))
        tune.report({**final_metrics(result), "node_id": node_id(), "run_facts": json.dumps(asdict(facts))})
    finally:
        del trainer
        release_memory()
        shutil.rmtree(workdir, ignore_errors=True)
