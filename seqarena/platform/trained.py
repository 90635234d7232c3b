"""A recorded trial's trained model, found by its MLflow run id (for `seqarena trace` and `sample`).

The trial's row in the platform database gives its arm (task, seq_len, model), its resolved
hyperparameters and seed, and its search's spec (task options); its weights are the best
validation weights of its checkpoint: the `checkpoint/` artifact of the MLflow run (kept for each
arm's best trial), else the trial's last Ray Tune checkpoint under the search's storage.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow.exceptions import MlflowException
from sqlalchemy import select

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import database
from seqarena.platform.schema import Arm, Search, Trial
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import tracking_uri
from seqarena.workers.checkpoint import FILE_NAME
from seqarena.workers.config import Setup, TrialConfig, make_config, prepare
from seqarena.workers.trace import Trace, trace
from seqarena.workers.trial import SequenceNet, build_model


@dataclass
class TrainedRun:
    """A recorded trial rebuilt with its trained weights."""

    run_id: str
    trial_id: str
    config: TrialConfig
    setup: Setup
    net: SequenceNet
    checkpoint: str
    """where the weights came from (an MLflow artifact or a Tune checkpoint path)"""


def load_run(run_id: str) -> TrainedRun:
    """Rebuild the trial recorded with MLflow run `run_id`, loaded with its best weights.

    Raises:
        BadInput: no recorded trial has this run id, or no checkpoint of it is kept.
    """
    engine = database.get_engine()
    stmt = (select(Trial.trial_id, Trial.hparams, Trial.seed, Arm.task, Arm.seq_len, Arm.model,
                   Arm.key, Search.spec_yaml, Search.storage_path)
            .join(Arm, Arm.id == Trial.arm_id).join(Search, Search.id == Trial.search_id)
            .where(Trial.mlflow_run_id == run_id))
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise BadInput("run", run_id, "the MLflow run id of a recorded trial (seqarena leaderboard --json "
                                      "lists them as mlflow_run_id)")
    config = make_config(model=row["model"], task=row["task"], seq_len=row["seq_len"], hparams=dict(row["hparams"]),
                         task_options=dict(load_spec(row["spec_yaml"]).task_options), seed=row["seed"])
    setup = prepare(config)
    net = build_model(setup)
    with tempfile.TemporaryDirectory() as scratch:
        path, source = _checkpoint_file(run_id, row["trial_id"], row["key"], row["storage_path"], Path(scratch))
        payload = torch.load(path, map_location=setup.device, weights_only=False)
        net.load_state_dict(payload["state"].get("best_weights") or payload["model"])
    net.eval()
    return TrainedRun(run_id, row["trial_id"], config, setup, net, source)


def _checkpoint_file(run_id: str, trial_id: str, arm_key: str, storage_path: str | None,
                     scratch: Path) -> tuple[Path, str]:
    """The run's `checkpoint/` artifact, else the newest Tune checkpoint of the trial; and where it came from."""
    import mlflow.artifacts

    try:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint",
                                                     tracking_uri=tracking_uri(), dst_path=str(scratch))
        found = Path(folder) / FILE_NAME
        if found.exists():
            return found, f"MLflow run {run_id}, artifact checkpoint/{FILE_NAME}"
    except (MlflowException, OSError):
        pass
    if storage_path:
        trial_dir = Path(storage_path) / f"{arm_key.replace('/', '_')}_{trial_id}"
        candidates = sorted(trial_dir.glob(f"checkpoint_*/{FILE_NAME}"))
        if candidates:
            return candidates[-1], str(candidates[-1])
    raise BadInput("run", run_id, "a trial whose checkpoint is kept (each arm's best trial has one in MLflow; "
                                  "others only while the search's Tune storage holds it)")


def trace_run(run_id: str, *, task: str | None = None, seq_len: int | None = None, batch_size: int = 32) -> Trace:
    """`seqarena trace`: the per-step diagnostics of a recorded trial's trained model on a validation
    batch of its task (or of `task` / `seq_len`, when their input and output sizes match)."""
    if batch_size < 1:
        raise BadInput("batch_size", batch_size, "a positive integer")
    trained = load_run(run_id)
    own = trained.setup.task
    name = task or own.name
    options = trained.config.task_options if name == own.name else {}
    target = tasks.build(name, seq_len or trained.config.seq_len, **options)
    if (target.input_size, target.output_size) != (own.input_size, own.output_size):
        raise BadInput("task", name, f"a task with input size {own.input_size} and {own.output_size} outputs, "
                                     f"as the run's {own.name}")
    inputs, targets = target.eval_set("val")
    batch = (inputs[:batch_size].to(trained.setup.device), targets[:batch_size].to(trained.setup.device))
    return trace(trained.net, target, batch, model=trained.config.model)
