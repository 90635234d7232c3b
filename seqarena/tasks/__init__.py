"""Benchmarks: `names()`, `shape(...)` (sizes, no data), `build(name, seq_len, **options)`, `check_data(...)`,
and the tasks' data protocols: `protocols(name)`, `protocol(name, requested, options, model=...)`.

A task is its module plus one line in `_TASKS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from seqarena.errors import BadInput, one_of
from seqarena.tasks import data
from seqarena.tasks.adding import Adding
from seqarena.tasks.base import SolvedWhen, Task, TaskOptions, TaskShape, parse_options
from seqarena.tasks.char import CharLM
from seqarena.tasks.copy import Copy
from seqarena.tasks.data import DataCheck
from seqarena.tasks.ecg import HeartbeatECG
from seqarena.tasks.har2 import HAR2
from seqarena.tasks.imdb import IMDBSentiment
from seqarena.tasks.ncifar import NoisyCIFAR
from seqarena.tasks.psmnist import PermutedMNIST
from seqarena.tasks.smnist import SequentialMNIST

__all__ = ["AUTHORS", "DataCheck", "Protocol", "SolvedWhen", "Task", "TaskOptions", "TaskShape", "build", "check_data",
           "check_other_lengths", "names", "protocol", "protocols", "shape", "task_class"]

_TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    Adding, Copy, SequentialMNIST, PermutedMNIST, CharLM, HeartbeatECG, IMDBSentiment, HAR2, NoisyCIFAR,
)}


def names() -> list[str]:
    """Registered task names."""
    return list(_TASKS)


#: Longest sequence any task is built at: one batch of 32 sequences of 100,000 steps through a 256-wide
#: layer keeps 3.3 GB of activations for backpropagation (the longest benchmark in examples/ is 5,000).
MAX_SEQ_LEN = 100_000


def task_class(name: str) -> type[Task]:
    """The class registered as `name`; `BadInput` naming the known tasks otherwise."""
    try:
        return _TASKS[name]
    except KeyError:
        raise BadInput("task", name, one_of(_TASKS)) from None


def _checked(name: str, seq_len: int, options: dict[str, Any]) -> tuple[type[Task], TaskOptions]:
    """The task's class and its validated options; `seq_len` a positive integer."""
    cls = task_class(name)
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or not 0 < seq_len <= MAX_SEQ_LEN:
        raise BadInput("seq_len", seq_len, f"an integer from 1 to {MAX_SEQ_LEN:,}")
    return cls, parse_options(cls.options_model, options)


def shape(name: str, seq_len: int, **options: Any) -> TaskShape:
    """The sizes of task `name` at `seq_len` from its options alone: no file is read, nothing downloaded.

    Raises:
        BadInput: unknown task or option, an option out of range, or a length the task refuses.
    """
    cls, parsed = _checked(name, seq_len, options)
    return cls.shape_of(seq_len, parsed)


def check_other_lengths(name: str, lengths: Sequence[int], field: str = "eval_lengths", **options: Any) -> None:
    """Refuse testing task `name` at the other lengths `lengths` (length generalisation) unless the task allows
    it (`Task.other_lengths`) and each length is one the task takes with `options` (no data read).

    Raises:
        BadInput: naming `field` (a task of fixed length), or `field[i]` (a length the task refuses).
    """
    cls = task_class(name)
    if lengths and not cls.other_lengths:
        allowing = ", ".join(task for task, each in _TASKS.items() if each.other_lengths)
        raise BadInput(field, list(lengths), f"none for task {name}: its length is fixed (tasks tested at other "
                       f"lengths: {allowing})")
    for i, length in enumerate(lengths):
        try:
            shape(name, length, **options)
        except BadInput as error:
            raise BadInput(f"{field}[{i}]", length, error.allowed) from None


def check_data(name: str, **options: Any) -> DataCheck:
    """Which of the files task `name` reads with `options` are on this machine (nothing is read or downloaded)."""
    cls, parsed = _checked(name, 1, options)
    return data.check(name, cls.data_files(parsed))


def build(name: str, seq_len: int, **options: Any) -> Task:
    """Task `name` at sequence length `seq_len` with its options validated, its data loaded.

    Raises:
        BadInput: unknown task or option, an option out of range, a length the task refuses, or a
        missing / corrupt data file (`DataError`).
    """
    cls, parsed = _checked(name, seq_len, options)
    return cls(seq_len, parsed)  # type: ignore[call-arg]


#: The protocol name that gives each model its own paper's protocol for the task (`protocol(..., model=...)`).
AUTHORS = "authors"


@dataclass(frozen=True)
class Protocol:
    """A task's data protocol as one trial uses it.

    Attributes:
        name: the protocol's name among `protocols(task)`.
        options: the task options: the protocol's values, with the explicitly given options over them.
    """

    name: str
    options: Mapping[str, Any]


def protocols(name: str) -> dict[str, dict[str, Any]]:
    """Task `name`'s data protocols: protocol name -> the option values it sets (`Task.protocols`)."""
    return {key: dict(values) for key, values in task_class(name).protocols.items()}


def protocol_name(name: str, requested: str | None = None, model: str | None = None) -> str:
    """The protocol of task `name` that `requested` means: itself when the task declares it; the task's
    default when None; for `AUTHORS`, the one named after `model`, else the task's default.

    Raises:
        BadInput: `protocol`, a name the task does not declare (nor `AUTHORS`).
    """
    cls = task_class(name)
    if requested is None or (requested == AUTHORS and model not in cls.protocols):
        return cls.default_protocol
    if requested == AUTHORS:
        return str(model)
    if requested not in cls.protocols:
        allowed = one_of([*cls.protocols, AUTHORS])
        raise BadInput("protocol", requested, f"{allowed} (the data protocols of task {name})")
    return requested


def protocol(name: str, requested: str | None = None, options: Mapping[str, Any] | None = None, *,
             model: str | None = None) -> Protocol:
    """The data protocol `requested` (see `protocol_name`) of task `name` for `model`, with `options`
    (explicit task options) over its values."""
    chosen = protocol_name(name, requested, model)
    return Protocol(chosen, {**task_class(name).protocols[chosen], **(options or {})})
