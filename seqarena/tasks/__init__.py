"""Benchmarks: `names()`, `build(name, seq_len, **options)` (DESIGN.md, "Tasks").

A task is its module plus one line in `_TASKS`.
"""

from __future__ import annotations

from typing import Any

from seqarena.errors import BadInput, one_of
from seqarena.tasks.adding import Adding
from seqarena.tasks.base import Task, TaskOptions, parse_options
from seqarena.tasks.char import CharLM
from seqarena.tasks.copy import Copy
from seqarena.tasks.ecg import HeartbeatECG
from seqarena.tasks.har2 import HAR2
from seqarena.tasks.imdb import IMDBSentiment
from seqarena.tasks.ncifar import NoisyCIFAR
from seqarena.tasks.psmnist import PermutedMNIST
from seqarena.tasks.smnist import SequentialMNIST

__all__ = ["Task", "TaskOptions", "build", "names", "task_class"]

_TASKS: dict[str, type[Task]] = {cls.name: cls for cls in (
    Adding, Copy, SequentialMNIST, PermutedMNIST, CharLM, HeartbeatECG, IMDBSentiment, HAR2, NoisyCIFAR,
)}


def names() -> list[str]:
    """Registered task names."""
    return list(_TASKS)


def task_class(name: str) -> type[Task]:
    """The class registered as `name`; `BadInput` naming the known tasks otherwise."""
    try:
        return _TASKS[name]
    except KeyError:
        raise BadInput("task", name, one_of(_TASKS)) from None


def build(name: str, seq_len: int, **options: Any) -> Task:
    """Task `name` at sequence length `seq_len` with its options validated.

    Raises:
        BadInput: unknown task or option, an option out of range, a non-positive `seq_len`, or a
        missing / corrupt data file (`DataError`).
    """
    cls = task_class(name)
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or seq_len <= 0:
        raise BadInput("seq_len", seq_len, "a positive integer")
    if name == "adding" and seq_len < 2:
        raise BadInput("seq_len", seq_len, "at least 2 for the adding problem (two markers)")
    return cls(seq_len, parse_options(cls.options_model, options))  # type: ignore[call-arg]
