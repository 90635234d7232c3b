"""The copying memory task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016), TCN's variant.

Alphabet of 10: 0 blank, 1..8 data, 9 marker. For blank length T the sequence has T + 20 steps
(`locuslab/TCN: TCN/copy_memory/utils.py`): 10 data symbols uniform in {1..8}, T − 1 blanks,
then 11 markers. The target is blank for the first T + 10 steps, then the 10 data symbols.
Inputs are one-hot `[B, T + 20, 10]` (as JANET feeds them); the loss is cross-entropy over 10
classes at every step, averaged over all T + 20 steps; `recall_accuracy` is the per-symbol
accuracy over the last 10 steps.

Baseline (docs/reference/tasks.md §2): a memoryless model that answers blank with certainty
for T + 10 steps and guesses uniformly among the 8 data symbols for the last 10 scores
`10 · ln 8 / (T + 20)` nats per step (0.02039 at T = 1000).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from seqarena.errors import BadInput
from seqarena.tasks.base import Batch, BatchStream, GeneratedStream, Split, Task, TaskShape
from seqarena.tasks.generated import GeneratedOptions, fixed_set

N_SYMBOLS, N_DATA, MARKER, COPY_LEN = 10, 8, 9, 10


def copy_batch(seq_len: int, n: int, generator: torch.Generator) -> Batch:
    """`n` copy sequences for blank length `seq_len`: one-hot inputs `[n, T + 20, 10]`,
    integer targets `[n, T + 20]`."""
    if seq_len < 1:
        raise ValueError(f"seq_len: got {seq_len}; allowed: >= 1 for the copy task")
    data = torch.randint(1, N_DATA + 1, (n, COPY_LEN), generator=generator)
    blanks = torch.zeros(n, seq_len - 1, dtype=torch.long)
    markers = torch.full((n, COPY_LEN + 1), MARKER, dtype=torch.long)
    symbols = torch.cat((data, blanks, markers), dim=1)
    target = torch.cat((torch.zeros(n, seq_len + COPY_LEN, dtype=torch.long), data), dim=1)
    return torch.nn.functional.one_hot(symbols, N_SYMBOLS).float(), target


class Copy(Task):
    """Copy memory with blank length T (sequences of T + 20 steps); many-to-many classification."""

    name = "copy"
    metric_name = "ce"
    higher_is_better = False
    per_step = True
    options_model = GeneratedOptions
    options: GeneratedOptions

    def __init__(self, seq_len: int, options: GeneratedOptions) -> None:
        super().__init__(seq_len, options)
        self.baseline = COPY_LEN * math.log(N_DATA) / self.length

    @classmethod
    def shape_of(cls, seq_len: int | None, options: GeneratedOptions) -> TaskShape:
        if seq_len is None or seq_len < 1:
            raise BadInput("seq_len", seq_len, "a positive blank length")
        return TaskShape(cls.name, seq_len, seq_len + 2 * COPY_LEN, input_size=N_SYMBOLS, output_size=N_SYMBOLS,
                         per_step=cls.per_step)

    def loss(self, output: Tensor, target: Tensor) -> Tensor:
        return torch.nn.functional.cross_entropy(output.flatten(0, 1), target.flatten())

    def metrics(self, output: Tensor, target: Tensor) -> dict[str, Tensor]:
        ce = torch.nn.functional.cross_entropy(output.transpose(1, 2), target, reduction="none")
        recalled = output[:, -COPY_LEN:].argmax(dim=2) == target[:, -COPY_LEN:]
        return {"ce": ce.mean(dim=1), "recall_accuracy": recalled.float().mean(dim=1)}

    def train_stream(self, seed: int) -> BatchStream:
        return GeneratedStream(copy_batch, self.seq_len, seed)

    def eval_set(self, split: Split) -> Batch:
        return fixed_set(copy_batch, self.seq_len, self.options, split)
