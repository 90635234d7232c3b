"""Shared parts of the generated (synthetic) tasks: fixed evaluation sets from a data seed."""

from __future__ import annotations

import torch
from pydantic import Field

from seqarena.tasks.base import Batch, Generator, Split, TaskOptions

_SPLIT_OFFSET = {"val": 1, "test": 2}
#: Evaluation sets use seeds far above any trial seed, so they never share a stream with training.
_EVAL_SEED_BASE = 2**40


class GeneratedOptions(TaskOptions):
    """Options of a generated task."""

    n_val: int = Field(1000, ge=1, le=1_000_000, description="validation samples (fixed set)")
    n_test: int = Field(1000, ge=1, le=1_000_000, description="test samples (fixed set)")
    data_seed: int = Field(0, ge=0, description="seed of the validation and test sets")


def fixed_set(fn: Generator, seq_len: int, options: GeneratedOptions, split: Split) -> Batch:
    """The validation or test set: `n_val`/`n_test` samples drawn with a seed fixed by `data_seed`."""
    seed = _EVAL_SEED_BASE + 8 * options.data_seed + _SPLIT_OFFSET[split]
    n = options.n_val if split == "val" else options.n_test
    return fn(seq_len, n, torch.Generator().manual_seed(seed))
