"""Declared hyperparameters: defaults, search ranges and valid ranges, in one uniform form.

Every model declares a tuple of `HParam`. One `HParam` is either a number searched over an interval
(`kind="float"` or `"int"`, optionally log-scaled) or a choice from a list (`kind="choice"`). The
search of a later stage turns each into a Ray Tune / Optuna distribution by its `kind` and `log`
alone: there is no per-model special case.

Two ranges are kept apart on purpose:

* the *search range* (`low`/`high` or `choices`) is where a search looks; it is taken from the
  papers' chosen values (see `docs/reference/models.md`);
* the *valid range* (`valid`) is what the equations allow (e.g. a time step must be positive). A
  value given by hand is checked against it; when no valid range is declared, the search range is
  the valid range.

`role` says who consumes the value: `"model"` hyperparameters go to the model's constructor,
`"train"` ones (learning rate, optimiser, clipping, batch size, ...) to the training loop.
Defaults may differ per task (`per_task`), because the authors tuned them per benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from seqarena.errors import BadInput, one_of

Value = float | int | str | bool
Kind = Literal["float", "int", "choice"]
Role = Literal["model", "train"]


@dataclass(frozen=True)
class HParam:
    """One declared hyperparameter.

    Attributes:
        name: the paper's symbol where there is one (`dt`, `gamma`, `epsilon`, `alpha`).
        default: the authors' default (for tasks not in `per_task`).
        kind: `float`, `int` (searched over [low, high]) or `choice` (searched over `choices`).
        low, high: the search interval for `float` / `int`.
        log: search the interval log-uniformly.
        choices: the search set for `choice`.
        valid: closed interval of values the equations allow; None means the search domain.
        role: `model` (constructor argument) or `train` (consumed by the training loop).
        per_task: task name -> the authors' default for that task.
        doc: meaning and source.
        searched: whether a search varies it unless told otherwise (structural and protocol
            choices such as the optimiser or batch size stay at the task's default).
    """

    name: str
    default: Value
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Value, ...] = ()
    valid: tuple[float, float] | None = None
    role: Role = "model"
    per_task: Mapping[str, Value] = field(default_factory=dict)
    doc: str = ""
    searched: bool = True

    def __post_init__(self) -> None:
        if self.kind == "choice" and not self.choices:
            raise ValueError(f"HParam {self.name}: a choice needs choices")
        if self.kind != "choice" and (self.low is None or self.high is None or self.low > self.high):
            raise ValueError(f"HParam {self.name}: a {self.kind} needs low <= high")
        for value in (self.default, *self.per_task.values()):
            self.check(value)

    def summary(self) -> dict[str, Any]:
        """A printable summary (the CLI's `models` and the dashboard's Models page): name, role,
        default, per-task defaults, search domain, valid range, meaning."""
        if self.kind == "choice":
            search = "{" + ", ".join(str(c) for c in self.choices) + "}"
        else:
            search = f"[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")
        valid = f"[{self.valid[0]:g}, {self.valid[1]:g}]" if self.valid else "search range"
        per_task = ", ".join(f"{task}: {value}" for task, value in self.per_task.items())
        return {"name": self.name, "role": self.role, "default": self.default, "per_task": per_task,
                "search": search if self.searched else f"{search} (fixed unless asked)", "valid": valid,
                "doc": self.doc}

    def default_for(self, task: str | None) -> Value:
        """The authors' default for `task`, falling back to the general default."""
        return self.per_task.get(task, self.default) if task else self.default

    def allowed(self) -> str:
        """A human-readable description of the values this hyperparameter accepts."""
        if self.valid is not None:
            return f"{self.valid[0]:g} <= {self.name} <= {self.valid[1]:g}"
        if self.kind == "choice":
            return one_of(str(c) for c in self.choices)
        return f"{self.low:g} <= {self.name} <= {self.high:g}"

    def check(self, value: Any) -> Value:
        """Coerce `value` (possibly a string from the command line) and check it is allowed."""
        coerced = self._coerce(value)
        if not self._is_allowed(coerced):
            raise BadInput(self.name, value, self.allowed())
        return coerced

    def _coerce(self, value: Any) -> Value:
        target = self._value_type()
        if isinstance(value, str) and target is not str:
            return _parse_string(self.name, value, target, self.allowed())
        if target is int and isinstance(value, float) and value.is_integer():
            return int(value)
        if target is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not isinstance(value, target) or (target is not bool and isinstance(value, bool)):
            raise BadInput(self.name, value, f"a {target.__name__}; {self.allowed()}")
        return value

    def _value_type(self) -> type:
        if self.kind == "float":
            return float
        if self.kind == "int":
            return int
        return type(self.choices[0])

    def _is_allowed(self, value: Value) -> bool:
        if isinstance(value, float) and not math.isfinite(value):
            return False
        if self.valid is not None:
            return self.valid[0] <= value <= self.valid[1]  # type: ignore[operator]
        if self.kind == "choice":
            return value in self.choices
        return self.low <= value <= self.high  # type: ignore[operator]


def _parse_string(name: str, text: str, target: type, allowed: str) -> Value:
    if target is bool:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise BadInput(name, text, "true or false")
    try:
        number = float(text)
    except ValueError:
        raise BadInput(name, text, f"a number; {allowed}") from None
    if target is int:
        if not number.is_integer():
            raise BadInput(name, text, f"an integer; {allowed}")
        return int(number)
    return number


def floating(name: str, default: float, low: float, high: float, **kw: Any) -> HParam:
    """A real-valued hyperparameter searched over [low, high]."""
    return HParam(name=name, default=default, kind="float", low=low, high=high, **kw)


def integer(name: str, default: int, low: int, high: int, **kw: Any) -> HParam:
    """An integer hyperparameter searched over [low, high]."""
    return HParam(name=name, default=default, kind="int", low=low, high=high, **kw)


def choice(name: str, default: Value, choices: tuple[Value, ...], **kw: Any) -> HParam:
    """A hyperparameter searched over a finite set."""
    return HParam(name=name, default=default, kind="choice", choices=choices, **kw)


def training_hparams(
    lr: HParam,
    batch: HParam | None = None,
    clip: HParam | None = None,
    optimizer: HParam | None = None,
    weight_decay: HParam | None = None,
    *,
    decay_scope: tuple[HParam, HParam] | None = None,
    readout: HParam | None = None,
    schedule: tuple[HParam, HParam, HParam] | None = None,
) -> tuple[HParam, ...]:
    """The hyperparameters of the training loop: the model's authors' protocol, one call per model.

    Unless the model says otherwise: the task protocol's batch size, no gradient clipping, Adam
    (every paper here but TCN's copy and char runs), no weight decay (when there is some: on every
    parameter, in the optimiser, `weight_decay_scope()`), torch's default readout initialisation
    (`readout_init()`) and a constant learning rate (`lr_schedule()`). The training loop applies them
    (`seqarena.workers.protocol`); docs/reference/protocols.md says where each comes from.
    """
    chosen = (
        lr,
        batch or batch_size(),
        clip or grad_clip(0.0),
        optimizer or choice("optimizer", "adam", ("adam", "rmsprop", "sgd"), role="train",
                            searched=False, doc="optimiser of the training loop"),
        weight_decay or choice("weight_decay", 0.0, (0.0,), valid=(0.0, 1.0), role="train",
                               searched=False, doc="L2 penalty added to the gradient"),
        *(decay_scope or weight_decay_scope()),
        readout or readout_init(),
        *(schedule or lr_schedule()),
    )
    for hp in chosen:
        if hp.role != "train":
            raise ValueError(f"training hyperparameter {hp.name} must have role='train'")
    return chosen


#: Initialisations of the readout layer found in the authors' code (applied by
#: `seqarena.workers.protocol.init_readout`): torch's `nn.Linear` default; He-normal (`kaiming_normal_`,
#: std sqrt(2 / H)) with torch's bias or with bias 0; Glorot-uniform with bias 0 (TensorFlow's default
#: variable initialiser); N(0, 0.01) weights with torch's bias.
READOUT_INITS: tuple[str, ...] = (
    "torch", "kaiming_normal", "kaiming_normal_zero_bias", "glorot_uniform_zero_bias", "normal_0.01",
)


def readout_init(default: str = "torch", per_task: Mapping[str, str] | None = None) -> HParam:
    """How the readout layer `Linear(H, out)` is initialised (one of `READOUT_INITS`)."""
    return choice("readout_init", default, READOUT_INITS, role="train", searched=False, per_task=per_task or {},
                  doc="initialisation of the readout layer, as in the authors' code")


def weight_decay_scope(on: str = "all", where: str = "optimizer",
                       per_task_on: Mapping[str, str] | None = None,
                       per_task_where: Mapping[str, str] | None = None) -> tuple[HParam, HParam]:
    """Which parameters `weight_decay` acts on and where.

    `weight_decay_on`: `all` parameters, or the weight `matrices` only (every parameter of two or more
    dimensions: the biases are left alone). `weight_decay_in`: the `optimizer` (torch's `weight_decay`,
    added to the gradient after clipping) or the `loss` (wd · Σ v² / 2 added to the loss, so its gradient
    is clipped with the rest, as TensorFlow code writes it).
    """
    return (
        choice("weight_decay_on", on, ("all", "matrices"), role="train", searched=False,
               per_task=per_task_on or {}, doc="parameters the weight decay acts on: all, or matrices only"),
        choice("weight_decay_in", where, ("optimizer", "loss"), role="train", searched=False,
               per_task=per_task_where or {}, doc="weight decay in the optimiser (after clipping) or in the loss"),
    )


def lr_schedule(epochs: int = 0, repeats: bool = False, factor: float = 0.1,
                per_task_epochs: Mapping[str, int] | None = None,
                per_task_repeats: Mapping[str, bool] | None = None) -> tuple[HParam, HParam, HParam]:
    """A step decay of the learning rate counted in epochs of the training set, as the papers count it.

    The learning rate is multiplied by `lr_decay_factor` once after `lr_decay_epochs` epochs, or after
    every `lr_decay_epochs` epochs when `lr_decay_repeats`; `lr_decay_epochs = 0` keeps it constant. An
    epoch is one pass over the task's fixed training set (`BatchStream.steps_per_epoch`), so a schedule
    needs a task with one.
    """
    return (
        integer("lr_decay_epochs", epochs, 0, 1000, valid=(0, 100000), role="train", searched=False,
                per_task=per_task_epochs or {}, doc="epochs before the learning rate is decayed; 0 = constant"),
        choice("lr_decay_repeats", repeats, (False, True), role="train", searched=False,
               per_task=per_task_repeats or {}, doc="decay again after every lr_decay_epochs epochs"),
        floating("lr_decay_factor", factor, 0.1, 0.1, valid=(1e-6, 1.0), role="train", searched=False,
                 doc="factor of each decay (every paper here divides by 10)"),
    )


Space = tuple[HParam, ...]


def by_name(space: Space) -> dict[str, HParam]:
    """Index a space by hyperparameter name."""
    return {hp.name: hp for hp in space}


def resolve(space: Space, overrides: Mapping[str, Any], task: str | None = None) -> dict[str, Value]:
    """The task's defaults with `overrides` applied, every value checked.

    Raises:
        BadInput: an unknown hyperparameter name or a value outside its valid range.
    """
    index = by_name(space)
    unknown = [name for name in overrides if name not in index]
    if unknown:
        raise BadInput("hp", unknown[0], one_of(index))
    values = {hp.name: hp.default_for(task) for hp in space}
    values.update({name: index[name].check(value) for name, value in overrides.items()})
    return values


# Shared declarations. Each model passes its authors' defaults; the names and valid ranges are common.

#: Batch sizes of the task protocols (docs/reference/tasks.md), the default for models whose
#: authors gave none for that task.
PROTOCOL_BATCH_SIZE: Mapping[str, int] = {"adding": 50, "copy": 32, "smnist": 128, "psmnist": 128}


def hidden_size(default: int, choices: tuple[int, ...] = (64, 128, 256), **kw: Any) -> HParam:
    """Units per layer (the papers' m); any positive size is valid, the search looks at `choices`."""
    return choice("hidden_size", default, choices, valid=(1, 16384), doc="units per layer (m)", **kw)


def num_layers(default: int, high: int = 3, **kw: Any) -> HParam:
    """Number of stacked layers (TCN: residual blocks)."""
    return integer("num_layers", default, 1, high, valid=(1, 64), doc="stacked layers", searched=False, **kw)


def dropout(default: float, high: float = 0.3, **kw: Any) -> HParam:
    """Dropout probability; searched by default only for models whose authors used dropout."""
    return floating("dropout", default, 0.0, high, valid=(0.0, 0.95), doc="dropout probability",
                    searched=default > 0, **kw)


def learning_rate(default: float, low: float, high: float, **kw: Any) -> HParam:
    """Learning rate of the optimiser, searched log-uniformly."""
    return floating("lr", default, low, high, log=True, valid=(1e-7, 10.0), role="train",
                    doc="learning rate", **kw)


def batch_size(default: int = 64, per_task: Mapping[str, int] | None = None) -> HParam:
    """Sequences per training step; the task protocol's size unless the authors chose another."""
    return choice("batch_size", default, (32, 64, 128), valid=(1, 65536), role="train", searched=False,
                  per_task={**PROTOCOL_BATCH_SIZE, **(per_task or {})}, doc="sequences per step")


def grad_clip(default: float, per_task: Mapping[str, float] | None = None) -> HParam:
    """Max global gradient norm (0 = none), searched over {none, 1.0} as in LEM's runs."""
    return choice("grad_clip", default, (0.0, 1.0), valid=(0.0, 1e6), role="train", searched=False,
                  per_task=per_task or {}, doc="max global gradient norm; 0 = no clipping")
