"""Permuted sequential MNIST (psMNIST): sMNIST with one fixed random permutation of the 784 pixels.

The permutation is `torch.randperm(784)` from a generator seeded with `permutation_seed`
(docs/reference/tasks.md §4). The default 5544 is the seed of the UnICORNN and LEM scripts
(and of the expRNN / DTRIV / scoRNN repositories), which draw the permutation the same way after
`torch.manual_seed(5544)`; coRNN's script uses 12008. The same permutation is shared by train,
validation and test, and by every worker.

Data protocols (`PermutedMNIST.protocols`): `unicornn` (the default) and `lem` (seed 5544), `cornn`
(seed 12008).
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

import torch
from pydantic import Field
from torch import Tensor

from seqarena.tasks.base import SolvedWhen
from seqarena.tasks.mnist import PIXELS
from seqarena.tasks.smnist import MNISTOptions, SequentialMNIST


@functools.lru_cache(maxsize=8)
def permutation(seed: int) -> Tensor:
    """The fixed pixel permutation for `seed`: a permutation of 0..783."""
    return torch.randperm(PIXELS, generator=torch.Generator().manual_seed(seed))


class PermutedMNISTOptions(MNISTOptions):
    """Options of psMNIST."""

    permutation_seed: int = Field(5544, ge=0, description="seed of the pixel permutation")


class PermutedMNIST(SequentialMNIST):
    """Pixel-by-pixel MNIST in a fixed permuted order; many-to-one classification."""

    name = "psmnist"
    solved_when = SolvedWhen(
        "absolute", 0.9,
        "accuracy of at least 90 %: every gated model of the papers' tables reaches 91-98.4 % (JANET paper's "
        "LSTM 91.0, coRNN 97.34, UnICORNN 98.4) and a failing one stays far lower (TCN paper, Table 1: Elman "
        "RNN 25.3 %); docs/reference/results.md §1")
    options_model = PermutedMNISTOptions
    options: PermutedMNISTOptions
    protocols: ClassVar[dict[str, dict[str, Any]]] = {
        "unicornn": {"permutation_seed": 5544},  # tk-rusch/unicornn psMNIST/psMNIST_task.py:38,41
        "lem": {"permutation_seed": 5544},  # tk-rusch/LEM src/psMNIST/psMNIST_task.py:26,40,44
        "cornn": {"permutation_seed": 12008},  # tk-rusch/coRNN psMNIST/psMNIST_task.py:29,34
    }
    default_protocol = "unicornn"

    def pixel_order(self) -> Tensor:
        return permutation(self.options.permutation_seed)
