"""The adding problem (Hochreiter & Schmidhuber 1997, in the form of Arjovsky et al. 2016).

Input `[B, T, 2]`: channel 0 holds i.i.d. U[0, 1] values, channel 1 is 0 except for exactly two
markers. Target: the sum of the two marked values, in [0, 2]. Loss and metric: MSE.

Marker placement (docs/reference/tasks.md §1): `half` (default; coRNN, LEM and JANET scripts)
puts the first marker uniformly in [0, T//2) and the second in [T//2, T); `anywhere` (TCN's
script) draws two distinct positions uniformly from [0, T).

Baseline: always answering E[X1 + X2] = 1 costs Var(X1 + X2) = 2/12 = 1/6 ≈ 0.1667 MSE.
Training data (`train_size`): fresh every step by default (infinite data, as in the coRNN and LEM
scripts), or a fixed set of N sequences drawn once, as TCN's (N = 50 000) and JANET's
(N = 105 000) scripts do (`seqarena.tasks.generated.train_stream`).

Data protocols (`Adding.protocols`): `cornn` and `lem` (the default: markers in each half, fresh
data), `janet` (markers in each half, 105 000 fixed training sequences) and `tcn` (markers
anywhere, 50 000 fixed training sequences).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from seqarena.errors import BadInput
from seqarena.tasks.base import Batch, BatchStream, SolvedWhen, Split, Task, TaskShape
from seqarena.tasks.generated import GeneratedOptions, fixed_set, train_stream

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
    other_lengths = True  # generated (adding, copy) or cut (char) at any length
    solved_when = SolvedWhen(
        "fraction_of_baseline", 0.1,
        "MSE under a tenth of the trivial 1/6 (0.0167; the issue's definition): runs that leave the 1/6 "
        "plateau fall through it within a few evaluations (tk-rusch/LEM "
        "src/adding/results/adding_log_seqlength_2000.txt: < 0.05 at step 1 800, < 0.01 at 1 900); "
        "docs/reference/tasks.md §1")
    per_step = False
    options_model = AddingOptions
    options: AddingOptions
    protocols: ClassVar[dict[str, dict[str, Any]]] = {
        # tk-rusch/coRNN adding/utils.py:7-12 (one marker in each half), adding_task.py:56-57 (a fresh batch
        # every step)
        "cornn": {"markers": "half", "train_size": 0},
        # tk-rusch/LEM src/adding/adding_task.py:29-40 (coRNN's generator), :63-64 (a fresh batch every step)
        "lem": {"markers": "half", "train_size": 0},
        # JosvanderWesthuizen/janet prepare_data.py:31 (150 000 sequences drawn once), :52-53 (one marker in
        # each half), :36-37 with aux_code/ops.py:163-168,172-206 (70 / 10 / 20 % split: 105 000 to train)
        "janet": {"markers": "half", "train_size": 105_000},
        # locuslab/TCN TCN/adding_problem/utils.py:16 (two distinct positions anywhere), add_test.py:52-53
        # (50 000 training sequences drawn once; 1000 test sequences, the n_test default)
        "tcn": {"markers": "anywhere", "train_size": 50_000},
    }
    default_protocol = "cornn"

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
        return train_stream(self._generate, self.seq_len, self.options.train_size, seed)

    def eval_set(self, split: Split) -> Batch:
        return fixed_set(self._generate, self.seq_len, self.options, split)
