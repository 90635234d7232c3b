"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

Input `[B, T, 2]`: channel 0 holds i.i.d. U[0, 1] values, channel 1 is 0 except for exactly two
markers. Target: the sum of the two marked values, in [0, 2]. Loss and metric: MSE.

Marker placement (docs/reference/tasks.md §1): `half` (default; coRNN, LEM and JANET scripts)
puts the first marker uniformly in [0, T//2) and the second in [T//2, T); `anywhere` (TCN's
script) draws two distinct positions uniformly from [0, T).

Baseline: always answering E[X1 + X2] = 1 costs Var(X1 + X2) = 2/12 = 1/6 ≈ 0.1667 MSE.
Training data is fresh every step (infinite data, as in the coRNN and LEM scripts).
"""

from __future__ import annotations

import functools
from typing import Literal

import torch
from torch import Tensor

from seqarena.errors import BadInput
from seqarena.tasks.base import Batch, BatchStream, GeneratedStream, Split, Task, TaskShape
from seqarena.tasks.generated import GeneratedOptions, fixed_set

Markers = Literal["half", "anywhere"]


def adding_batch(seq_len: int, n: int, generator: torch.Generator, markers: Markers = "half") -> Batch:
    """`n` adding sequences of length `seq_len`: inputs `[n, T, 2]`, targets `[n, 1]`."""
    if seq_len < 2:
        raise ValueError(f"seq_len: got {seq_len}; allowed: >= 2 for the adding problem")
    values = torch.rand(n, seq_len, generator=generator)
    if markers == "half":
        half = seq_len // 2
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, seq_len, (n,), generator=generator)
    else:
        scores = torch.rand(n, seq_len, generator=generator)
        first, second = scores.topk(2, dim=1).indices.unbind(1)  # two distinct uniform positions
    marks = torch.zeros(n, seq_len)
    rows = torch.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    target = (values * marks).sum(dim=1, keepdim=True)
    return torch.stack((values, marks), dim=2), target


class AddingOptions(GeneratedOptions):
    """Options of the adding problem."""

    markers: Markers = "half"


class Adding(Task):
    """Adding problem at length T; many-to-one regression."""

    name = "adding"
    metric_name = "mse"
    higher_is_better = False
    per_step = False
    options_model = AddingOptions
    options: AddingOptions

    def __init__(self, seq_len: int, options: AddingOptions) -> None:
        super().__init__(seq_len, options)
        self.baseline = 1.0 / 6.0
        self._generate = functools.partial(adding_batch, markers=options.markers)

    @classmethod
    def shape_of(cls, seq_len: int | None, options: AddingOptions) -> TaskShape:
        if seq_len is None or seq_len < 2:
            raise BadInput("seq_len", seq_len, "at least 2 for the adding problem (two markers)")
        return TaskShape(cls.name, seq_len, seq_len, input_size=2, output_size=1, per_step=cls.per_step)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.mse_loss(output, target)

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        return {"mse": ((output - target) ** 2).mean(dim=1)}

    def train_stream(self, seed: int) -> BatchStream:
        return GeneratedStream(self._generate, self.seq_len, seed)

    def eval_set(self, split: Split) -> Batch:
        return fixed_set(self._generate, self.seq_len, self.options, split)
