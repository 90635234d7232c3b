"""Shared parts of the generated (synthetic) tasks: fixed evaluation sets from a data seed, and the
training stream: fresh samples every step, or epochs over a fixed training set drawn once."""

from __future__ import annotations

import torch
from pydantic import Field
from torch import Tensor

from seqarena.tasks.base import Batch, BatchStream, GeneratedStream, Generator, ShuffledStream, Split, TaskOptions

_SPLIT_OFFSET = {"val": 1, "test": 2}
#: Evaluation sets use seeds far above any trial seed, so they never share a stream with training.
_EVAL_SEED_BASE = 2**40
#: A fixed training set is drawn from its own seed, apart from the one that shuffles it.
_TRAIN_SET_SEED_BASE = 2**41


class GeneratedOptions(TaskOptions):
    """Options of a generated task."""

    n_val: int = Field(1000, ge=1, le=1_000_000, description="validation samples (fixed set)")
    n_test: int = Field(1000, ge=1, le=1_000_000, description="test samples (fixed set)")
    data_seed: int = Field(0, ge=0, description="seed of the validation and test sets")
    train_size: int = Field(
        0, ge=0, le=1_000_000, description="0: fresh training samples every step; N > 0: a fixed training set of "
        "N samples drawn once from the trial's seed, then epochs over it in a seeded shuffled order")


def fixed_set(fn: Generator, seq_len: int, options: GeneratedOptions, split: Split) -> Batch:
    """The validation or test set: `n_val`/`n_test` samples drawn with a seed fixed by `data_seed`."""
    seed = _EVAL_SEED_BASE + 8 * options.data_seed + _SPLIT_OFFSET[split]
    n = options.n_val if split == "val" else options.n_test
    return fn(seq_len, n, torch.Generator().manual_seed(seed))


class _Regenerated:
    """Samples stored as their seeds: `inputs(seeds)` draws the inputs of a batch of them again.

    A fixed training set of long sequences is large as tensors (JANET's 105 000 adding sequences at
    T = 5000: 4.2 GB); kept as one seed per sample it is 8 bytes a sample, its targets aside, and
    each sample reads back the same on every epoch and every resume.
    """

    def __init__(self, fn: Generator, seq_len: int) -> None:
        self.fn, self.seq_len = fn, seq_len

    def draw(self, seed: int) -> Batch:
        """The one sample of `seed`: inputs `[1, ...]`, targets `[1, ...]`."""
        return self.fn(self.seq_len, 1, torch.Generator().manual_seed(seed))

    def inputs(self, seeds: Tensor) -> Tensor:
        return torch.cat([self.draw(int(seed))[0] for seed in seeds])


def train_stream(fn: Generator, seq_len: int, train_size: int, seed: int) -> BatchStream:
    """The training batches of a trial seeded with `seed`.

    `train_size` 0: `fn` draws fresh samples every step (infinite data, as the coRNN and LEM scripts
    do: coRNN `adding/adding_task.py:56-57`). N > 0: N samples fixed once by `seed`, then epochs over
    them in an order shuffled by `seed`, the ragged end of each epoch dropped (`ShuffledStream`): as
    TCN's scripts draw their training sets once (adding: 50 000 sequences, `TCN/adding_problem/
    add_test.py:52`; copy: 10 000, `TCN/copy_memory/copymem_test.py:60,65`; they walk them in the same
    order every epoch) and JANET's (`prepare_data.py:31,36`: 150 000 sequences, 70 % for training).
    """
    if train_size == 0:
        return GeneratedStream(fn, seq_len, seed)
    sample = _Regenerated(fn, seq_len)
    seeds = torch.randint(0, 2**62, (train_size,),
                          generator=torch.Generator().manual_seed(_TRAIN_SET_SEED_BASE + seed))
    targets = torch.cat([sample.draw(int(each))[1] for each in seeds])
    return ShuffledStream(seeds, targets, seed, sample.inputs)
