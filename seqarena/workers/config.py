"""The configuration of one trial, and its validation before anything is run or written.

`TrialConfig` is what a user (`seqarena train`) or a search (one Ray Tune trial) asks for;
`SearchTrial` is one trial of a search: its `TrialConfig` with its place in the search (arm, role,
the arm's metric) and the resources it reserves, the one value the search builds, Ray Tune carries
in its config (`to_tune` / `from_tune`) and the trainable validates. `prepare` checks all of it
(model, task and its data, hyperparameters against their declared ranges, device) and returns a
`Setup` of typed, resolved values. Nothing touches the disk or the RNG before `prepare` has
succeeded, so bad input leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from seqarena import cells, tasks
from seqarena.cells.space import Value, resolve
from seqarena.errors import BadInput
from seqarena.tasks.base import Task


class TrialConfig(BaseModel):
    """One training trial.

    `hparams` overrides the model's declared defaults for the task (model and training
    hyperparameters alike: `hidden_size`, `num_layers`, `dt`, `lr`, `batch_size`, ...).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(description="registry name of the model")
    task: str = Field(description="registry name of the task")
    seq_len: int = Field(gt=0, description="sequence length T (copy: blank length)")
    hparams: dict[str, Any] = Field(default_factory=dict, description="hyperparameter overrides")
    task_options: dict[str, Any] = Field(default_factory=dict, description="task options")
    protocol: str | None = Field(
        None, description="the task's data protocol (a name of tasks.protocols(task), or 'authors': the model's "
        "own); its option values apply under task_options. None: the task's default protocol")
    steps: int = Field(1000, gt=0, description="training steps (optimiser updates)")
    eval_every: int = Field(100, gt=0, description="steps between validation evaluations")
    eval_batch_size: int = Field(1000, gt=0, description="sequences per evaluation batch")
    seed: int = Field(0, ge=0, description="seed of the initialisation, dropout and training data")
    device: str = Field("cpu", description="cpu, cuda or cuda:N")
    checkpoint_dir: Path | None = Field(None, description="where to checkpoint and resume from")
    eval_lengths: tuple[Annotated[int, Field(gt=0)], ...] = Field(
        (), description="other lengths T′ at which the trained model (its best weights) is tested at the end "
        "(length generalisation; tasks whose Task.other_lengths is True)")

    def fingerprint(self) -> str:
        """A hash of everything that determines the trial's numbers (not where it checkpoints)."""
        unset = {"protocol"} if self.protocol is None else set()  # as before protocols existed: same checkpoints
        unset |= set() if self.eval_lengths else {"eval_lengths"}  # as before length generalisation
        data = self.model_dump(mode="json", exclude={"checkpoint_dir", *unset})
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def make_config(**fields: Any) -> TrialConfig:
    """Build a `TrialConfig`, turning the first validation problem into a `BadInput`."""
    try:
        return TrialConfig(**fields)
    except ValidationError as error:
        raise bad_input(error) from None


def bad_input(error: ValidationError) -> BadInput:
    """The first problem of a pydantic validation as a `BadInput` naming its field."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "value"
    return BadInput(where, None if first["type"] == "missing" else first.get("input"), first["msg"])


#: What a trial of a search is: one of the searched configurations, or a repeat of the arm's best
#: configuration with another seed.
TrialRole = Literal["search", "repeat"]


class TrialResources(BaseModel):
    """What a trial reserves on the cluster (Ray's `cpu` and `gpu` resources)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(1.0, ge=0, description="CPUs reserved per trial")
    gpu: float = Field(0.0, ge=0, description="GPUs reserved per trial (fractions share a GPU)")


class SearchTrial(BaseModel):
    """One trial of a search: what it trains (`trial`), where it belongs and how it is ranked.

    The search builds it (`seqarena.platform.arms.ArmPlan.trial`), Ray Tune carries it as the
    trial's config (`to_tune`, plain JSON), and everything that reads a Tune config (the
    trainable, the scheduler, the recorder) reads it back through `from_tune`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    arm: str = Field(min_length=1, description="the arm's key, task/T=seq_len/model")
    role: TrialRole = Field(description="search (a searched configuration) or repeat (the best, reseeded)")
    metric_name: str = Field(min_length=1, description="the task's headline metric")
    higher_is_better: bool = Field(description="whether a larger metric is better")
    trial: TrialConfig = Field(description="what the trial trains: model, task, T, options, hparams, budget, seed")
    resources: TrialResources = Field(default_factory=TrialResources, description="what the trial reserves")
    retry_of: str | None = Field(None, description="the recorded trial (its Tune trial id) this one reruns "
                                 "(`seqarena retry`); its record replaces that trial's")

    def to_tune(self) -> dict[str, Any]:
        """The trial as Ray Tune's config: plain JSON values (Tune stores it with the experiment)."""
        return self.model_dump(mode="json")

    @classmethod
    def from_tune(cls, config: Any) -> SearchTrial:
        """Validate a Tune config back into a `SearchTrial`; the first problem becomes a `BadInput`."""
        try:
            return cls.model_validate(config)
        except ValidationError as error:
            raise bad_input(error) from None


@dataclass(frozen=True)
class Setup:
    """A validated trial: the task instance, all hyperparameters resolved, the device, and the name of the
    task's data protocol it follows."""

    config: TrialConfig
    task: Task
    hparams: dict[str, Value]
    device: torch.device
    protocol: str

    @property
    def model_kwargs(self) -> dict[str, Value]:
        """The hyperparameters that go to `cells.build` as keywords."""
        allowed = set(cells.model_hparams(self.config.model))
        return {name: value for name, value in self.hparams.items() if name in allowed}


def resolve_device(name: str) -> torch.device:
    """`cpu`, `cuda` or `cuda:N`, refused when no such device is available."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise BadInput("device", name, "cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise BadInput("device", name, "cpu, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise BadInput("device", name, "cpu (torch.cuda.is_available() is False on this machine)")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise BadInput("device", name, f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


#: Most parameters of a trial's model: 20 M take 320 MB in training (weights, gradients, Adam's two
#: moments, 4 bytes each). `param_budget` and a spec's largest configurations are bounded by it too.
MAX_MODEL_PARAMS = 20_000_000


def check_model_size(model: str, hparams: dict[str, Value], shape: tasks.TaskShape) -> None:
    """`BadInput` when `model` with `hparams` has over `MAX_MODEL_PARAMS` parameters, counted on torch's
    meta device (shapes only: no memory, no time). A model that builds only on a real device is left
    to build there."""
    hidden, layers = int(hparams["hidden_size"]), int(hparams["num_layers"])
    kwargs = {name: hparams[name] for name in cells.model_hparams(model) if name in hparams}
    try:
        with torch.device("meta"), torch.random.fork_rng(devices=[]):
            backbone = cells.build(model, shape.input_size, hidden, layers, seq_len=shape.length, **kwargs)
    except Exception:
        return
    count = sum(p.numel() for p in backbone.parameters())
    if count > MAX_MODEL_PARAMS:
        raise BadInput("hidden_size", hidden, f"a model of at most {MAX_MODEL_PARAMS:,} parameters ({model} with "
                       f"hidden_size={hidden}, num_layers={layers} has {count:,}: 16 bytes each in training)")


def prepare(config: TrialConfig) -> Setup:
    """Validate every part of `config`; load (and if needed download) the task's data.

    Raises:
        BadInput: the first problem found, naming its field and what is allowed.
    """
    cells.model_class(config.model)
    tasks.task_class(config.task)
    device = resolve_device(config.device)
    hparams = resolve(cells.space(config.model), config.hparams, task=config.task)
    protocol = tasks.protocol(config.task, config.protocol, config.task_options, model=config.model)
    tasks.check_other_lengths(config.task, config.eval_lengths, **protocol.options)
    check_model_size(config.model, hparams, tasks.shape(config.task, config.seq_len, **protocol.options))
    task = tasks.build(config.task, config.seq_len, **protocol.options)
    return Setup(config=config, task=task, hparams=hparams, device=device, protocol=protocol.name)
