"""The copying memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016), TCN's variant.

Alphabet of 10: 0 blank, 1..8 data, 9 marker. For blank length T the sequence has T + 20 steps
(`locuslab/TCN: TCN/copy_memory/utils.py`): 10 data symbols uniform in {1..8}, T − 1 blanks,
then 11 markers. The target is blank for the first T + 10 steps, then the 10 data symbols.
Inputs (`encoding`): one-hot `[B, T + 20, 10]` by default (as JANET feeds its copy task,
`janet/prepare_data.py:73`), or `scalar`: the symbol itself as one float channel `[B, T + 20, 1]`
(0 blank, 1..8 data, 9 marker), as TCN feeds it (`TCN/copy_memory/utils.py:15-20`, one input
channel: `copymem_test.py:72`). The loss is cross-entropy over 10 classes at every step, averaged
over all T + 20 steps; `recall_accuracy` is the per-symbol accuracy over the last 10 steps.
Training data (`train_size`): fresh every step by default, or a fixed set drawn once (TCN: 10 000).

Data protocols (`Copy.protocols`): `default` (one-hot, fresh data: JANET's encoding on TCN's
sequences; JANET's own copy task has one marker and T + 21 steps and is not offered) and `tcn`
(scalar input, 10 000 fixed training sequences).

Baseline (docs/reference/tasks.md §2): a memoryless model that answers blank with certainty
for T + 10 steps and guesses uniformly among the 8 data symbols for the last 10 scores
`10 · ln 8 / (T + 20)` nats per step (0.02039 at T = 1000).
"""

from __future__ import annotations

import functools
import math
from typing import Any, ClassVar, Literal

import torch
from torch import Tensor

from seqarena.errors import BadInput
from seqarena.tasks.base import Batch, BatchStream, SolvedWhen, Split, Task, TaskShape
from seqarena.tasks.generated import GeneratedOptions, fixed_set, train_stream

N_SYMBOLS, N_DATA, MARKER, COPY_LEN = 10, 8, 9, 10


Encoding = Literal["onehot", "scalar"]


def copy_batch(seq_len: int, n: int, generator: torch.Generator, encoding: Encoding = "onehot") -> Batch:
    """`n` copy sequences for blank length `seq_len`: inputs `[n, T + 20, 10]` one-hot (or
    `[n, T + 20, 1]`, the symbol as a float, for `scalar`), integer targets `[n, T + 20]`."""
    if seq_len < 1:
        raise ValueError(f"seq_len: got {seq_len}; allowed: >= 1 for the copy task")
    data = torch.randint(1, N_DATA + 1, (n, COPY_LEN), generator=generator)
    blanks = torch.zeros(n, seq_len - 1, dtype=torch.long)
    markers = torch.full((n, COPY_LEN + 1), MARKER, dtype=torch.long)
    symbols = torch.cat((data, blanks, markers), dim=1)
    target = torch.cat((torch.zeros(n, seq_len + COPY_LEN, dtype=torch.long), data), dim=1)
    return encode(symbols, encoding), target


def encode(symbols: Tensor, encoding: Encoding) -> Tensor:
    """Integer symbols `[n, L]` as inputs: one-hot `[n, L, 10]`, or the symbol as a float `[n, L, 1]`."""
    if encoding == "scalar":
        return symbols.float().unsqueeze(2)
    return torch.nn.functional.one_hot(symbols, N_SYMBOLS).float()


class CopyOptions(GeneratedOptions):
    """Options of the copy task."""

    encoding: Encoding = "onehot"


class Copy(Task):
    """Copy memory with blank length T (sequences of T + 20 steps); many-to-many classification."""

    name = "copy"
    metric_name = "ce"
    higher_is_better = False
    other_lengths = True  # generated (adding, copy) or cut (char) at any length
    solved_when = SolvedWhen(
        "fraction_of_baseline", 0.1,
        "cross-entropy under a tenth of the memoryless 10 ln 8 / (T + 20) (docs/reference/tasks.md §2): the "
        "TCN paper's LSTM, GRU and RNN sit on it at T = 1000 (0.0204, 0.0197, 0.0202: failed) and TCN far "
        "below (3.5e-5; Bai et al. 2018, Table 1)")
    per_step = True
    options_model = CopyOptions
    options: CopyOptions
    protocols: ClassVar[dict[str, dict[str, Any]]] = {
        # One-hot symbols as JosvanderWesthuizen/janet prepare_data.py:73 feeds them, on TCN's sequences,
        # fresh every step.
        "default": {"encoding": "onehot", "train_size": 0},
        # locuslab/TCN TCN/copy_memory/utils.py:15-20 and copymem_test.py:72,114 (the symbol as one float
        # channel), copymem_test.py:60,65 (10 000 training sequences drawn once)
        "tcn": {"encoding": "scalar", "train_size": 10_000},
    }
    default_protocol = "default"

    def __init__(self, seq_len: int, options: CopyOptions) -> None:
        super().__init__(seq_len, options)
        self.baseline = COPY_LEN * math.log(N_DATA) / self.length
        self._generate = functools.partial(copy_batch, encoding=options.encoding)

    @classmethod
    def shape_of(cls, seq_len: int | None, options: CopyOptions) -> TaskShape:
        if seq_len is None or seq_len < 1:
            raise BadInput("seq_len", seq_len, "a positive blank length")
        input_size = 1 if options.encoding == "scalar" else N_SYMBOLS
        return TaskShape(cls.name, seq_len, seq_len + 2 * COPY_LEN, input_size=input_size, output_size=N_SYMBOLS,
                         per_step=cls.per_step)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(output.flatten(0, 1), target.flatten())

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        ce = torch.nn.functional.cross_entropy(output.transpose(1, 2), target, reduction="none")
        recalled = output[:, -COPY_LEN:].argmax(dim=2) == target[:, -COPY_LEN:]
        return {"ce": ce.mean(dim=1), "recall_accuracy": recalled.float().mean(dim=1)}

    def train_stream(self, seed: int) -> BatchStream:
        return train_stream(self._generate, self.seq_len, self.options.train_size, seed)

    def eval_set(self, split: Split) -> Batch:
        return fixed_set(self._generate, self.seq_len, self.options, split)
