"""A recorded trial's trained model, found by its MLflow run id (`seqarena.load_run`, `trace`, `sample`).

The trial's configuration (model, task, T, task options, every hyperparameter, seed) comes from its
MLflow run when the run records it (the `seqarena.trial_config` tag), else from its row in the
platform database (its arm, resolved hyperparameters and seed, and its search's spec for the task
options). Its weights are the best validation weights of its checkpoint: the `checkpoint/` artifact
of the MLflow run (kept for each arm's best trial), else the trial's last Ray Tune checkpoint under
the search's storage.

Why our own loader rather than MLflow's PyTorch flavour: the flavour stores the whole module
pickled, and loading it unpickles code from the store; here a model is rebuilt from the registry
(`seqarena.cells`, the task's head) and only tensors are read (`torch.load(weights_only=True)`),
so a checkpoint from a shared store cannot run code, and one checkpoint serves resuming, tracing
and loading alike.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch
from mlflow.exceptions import MlflowException
from sqlalchemy import select

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import database, storage
from seqarena.platform.schema import ArmRow, Search, Trial
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import CONFIG_TAG, TRIAL_TAG
from seqarena.platform.tracking import tracking_uri as default_tracking_uri
from seqarena.workers import checkpoint
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


@dataclass(frozen=True)
class RecordedTrial:
    """Where a recorded trial's configuration and checkpoint are found."""

    config: TrialConfig
    trial_id: str
    arm_key: str
    storage_path: str | None


def load_run(run_id: str, tracking_uri: str | None = None) -> TrainedRun:
    """Rebuild the trial recorded with MLflow run `run_id`, loaded with its best weights, in eval mode.

    Raises:
        BadInput: no recorded trial has this run id, or no checkpoint of it is kept.
    """
    uri = tracking_uri or default_tracking_uri()
    recorded = _recorded_trial(run_id, uri)
    setup = prepare(recorded.config)
    net = build_model(setup)
    with tempfile.TemporaryDirectory() as scratch:
        path, source = _checkpoint_file(run_id, recorded, uri, Path(scratch))
        net.load_state_dict(best_weights(path, setup.device))
    net.eval()
    return TrainedRun(run_id, recorded.trial_id, recorded.config, setup, net, source)


def best_weights(path: Path, device: torch.device) -> dict[str, torch.Tensor]:
    """The best validation weights in a trial checkpoint (its last weights if it has no best yet);
    read as tensors only (`checkpoint.read`: nothing in the file is unpickled as an object)."""
    payload = checkpoint.read(path, device, field="checkpoint")
    return payload["state"].get("best_weights") or payload["model"]


def _recorded_trial(run_id: str, uri: str) -> RecordedTrial:
    """The trial's configuration from its MLflow run's tag, else from the platform database."""
    from mlflow.tracking import MlflowClient

    try:
        run = MlflowClient(uri).get_run(run_id)
    except MlflowException:
        run = None
    if run is not None and CONFIG_TAG in run.data.tags:
        tags = run.data.tags
        config = make_config(**{**json.loads(tags[CONFIG_TAG]), "device": "cpu"})  # loaded on the CPU
        return RecordedTrial(config, tags.get(TRIAL_TAG, ""), tags.get("arm", ""), tags.get("storage_path"))
    return _database_trial(run_id)


def _database_trial(run_id: str) -> RecordedTrial:
    engine = database.get_engine()
    stmt = (select(Trial.trial_id, Trial.hparams, Trial.seed, ArmRow.task, ArmRow.seq_len, ArmRow.model,
                   ArmRow.key, ArmRow.protocol, Search.spec_yaml, Search.storage_path)
            .join(ArmRow, ArmRow.id == Trial.arm_id).join(Search, Search.id == Trial.search_id)
            .where(Trial.mlflow_run_id == run_id))
    with engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None:
        raise BadInput("run", run_id, "the MLflow run id of a recorded trial (seqarena leaderboard --json "
                                      "lists them as mlflow_run_id)")
    config = make_config(model=row["model"], task=row["task"], seq_len=row["seq_len"], hparams=dict(row["hparams"]),
                         task_options=dict(load_spec(row["spec_yaml"]).task_options), protocol=row["protocol"],
                         seed=row["seed"])
    return RecordedTrial(config, row["trial_id"], row["key"], row["storage_path"])


def _checkpoint_file(run_id: str, recorded: RecordedTrial, uri: str, scratch: Path) -> tuple[Path, str]:
    """The run's `checkpoint/` artifact, else the newest Tune checkpoint of the trial; and where it came from."""
    import mlflow.artifacts

    try:
        folder = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path="checkpoint",
                                                     tracking_uri=uri, dst_path=str(scratch))
        found = Path(folder) / FILE_NAME
        if found.exists():
            return found, f"MLflow run {run_id}, artifact checkpoint/{FILE_NAME}"
    except (MlflowException, OSError):
        pass
    location = recorded.storage_path or _recorded_storage(recorded.trial_id)
    if location and (found := _tune_checkpoint(location, recorded, scratch)) is not None:
        return found
    raise BadInput("run", run_id, "a trial whose checkpoint is kept (each arm's best trial has one in MLflow; "
                                  "others only while the search's Tune storage holds it)")


def _recorded_storage(trial_id: str) -> str | None:
    """Where the search of a recorded trial keeps its Tune experiment (its database row), or None."""
    stmt = select(Search.storage_path).join(Trial, Trial.search_id == Search.id).where(Trial.trial_id == trial_id)
    with database.get_engine().connect() as conn:
        return conn.execute(stmt).scalar()


def _tune_checkpoint(location: str, recorded: RecordedTrial, scratch: Path) -> tuple[Path, str] | None:
    """The trial's newest Tune checkpoint file in its search's storage at `location` (a folder, or S3:
    copied into `scratch` first), and where it came from; None when the storage holds none."""
    store, name = storage.at(location)
    trial_dir = f"{store.experiment(name)}/{recorded.arm_key.replace('/', '_')}_{recorded.trial_id}"
    candidates = sorted(folder for folder in _entries(store, trial_dir) if folder.rsplit("/", 1)[-1]
                        .startswith("checkpoint_"))
    for folder in reversed(candidates):
        source = f"{folder}/{FILE_NAME}"
        try:
            path = store.download(source, scratch / FILE_NAME) if store.is_s3 else Path(source)
        except OSError:
            continue
        if path.exists():
            return path, f"s3://{source}" if store.is_s3 else source
    return None


def _entries(store: storage.Storage, folder: str) -> list[str]:
    """The paths of the entries of `folder` in `store` (none when it is not there)."""
    try:
        return store.entries(folder)
    except OSError:
        return []


#: A trace runs at most this many times the sequence length the run trained at (`seqarena trace
#: --seq-len` and the dashboard's "Trace at T" alike): a trace keeps every step's state and its
#: gradient, so an unbounded T is an unbounded memory and time (issue 18 §4).
MAX_TRACE_FACTOR = 4


def max_trace_len(trained_len: int) -> int:
    """The longest T a run trained at `trained_len` may be traced at."""
    return min(MAX_TRACE_FACTOR * trained_len, tasks.MAX_SEQ_LEN)


def trace_run(run_id: str, *, task: str | None = None, seq_len: int | None = None, batch_size: int = 32) -> Trace:
    """`seqarena trace`: the per-step diagnostics of a recorded trial's trained model on a validation
    batch of its task (or of `task` / `seq_len`, when their input and output sizes match; `seq_len`
    at most `max_trace_len` of the run's)."""
    if batch_size < 1:
        raise BadInput("batch_size", batch_size, "a positive integer")
    trained = load_run(run_id)
    longest = max_trace_len(trained.config.seq_len)
    if seq_len is not None and not 0 < seq_len <= longest:
        raise BadInput("seq_len", seq_len, f"an integer from 1 to {longest:,} (at most {MAX_TRACE_FACTOR} "
                                           f"times the run's T = {trained.config.seq_len})")
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
