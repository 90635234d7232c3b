"""minGRU and minLSTM: the gates of GRU and LSTM without the previous state, trained with a parallel scan.

Feng, Tung, Ahmed, Bengio & Hajimirsadeghi (2024), "Were RNNs All We Needed?", arXiv:2410.01201;
§3.1.3 (minGRU), §3.2.3 (minLSTM) and the log-space parallel code of Appendix B, whose g keeps the
candidate state positive: g(x) = x + ½ for x ≥ 0, σ(x) otherwise.

    minGRU:   z_t = σ(W_z x_t + b_z),   h̃_t = g(W_h x_t + b_h),   h_t = (1 − z_t) ⊙ h_{t−1} + z_t ⊙ h̃_t
    minLSTM:  f_t = σ(W_f x_t + b_f),  i_t = σ(W_i x_t + b_i),   f'_t = f_t/(f_t + i_t),  i'_t = i_t/(f_t + i_t)
              h_t = f'_t ⊙ h_{t−1} + i'_t ⊙ g(W_h x_t + b_h)

No gate reads h_{t−1}, so each layer is one diagonal linear recurrence `h_t = a_t ⊙ h_{t−1} + b_t` with
input-dependent a_t, run on the scan `seqarena.cells.kernels.scan`. The Appendix B code starts from
log g(h_0); seqarena's h_0 = 0 gives h_0 = g(0) = ½. Layers stack like the classic RNNs (layer l's
h is layer l + 1's x) with dropout between layers; linear layers have torch's default initialisation.
Parameters per layer: 2H(d + 1) (minGRU), 3H(d + 1) (minLSTM).
"""

from __future__ import annotations

from abc import abstractmethod
from typing import ClassVar

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.kernels.scan import scan
from seqarena.cells.ssm import ScanModel, report_states

PAPER: str = ("Feng, Tung, Ahmed, Bengio & Hajimirsadeghi (2024), Were RNNs All We Needed?, "
              "arXiv:2410.01201")


def g(x: Tensor) -> Tensor:
    """g(x) = x + ½ for x ≥ 0, σ(x) otherwise (continuous, positive)."""
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class MinLayer(nn.Module):
    """One minGRU/minLSTM layer `[B, T, d] -> [B, T, H]`: `gates` linear maps of x, then the scan from g(0)."""

    gate_count: ClassVar[int]

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.linear = nn.Linear(input_size, self.gate_count * hidden_size)

    @abstractmethod
    def coefficients(self, projected: Tensor) -> tuple[Tensor, Tensor]:
        """`(a, b)` of `h_t = a_t ⊙ h_{t−1} + b_t` from the projected input `[B, T, gates·H]`."""

    def forward(self, x: Tensor) -> Tensor:
        a, b = self.coefficients(self.linear(x))
        h0 = x.new_full((x.shape[0], self.hidden_size), 0.5)  # g(0)
        return report_states(scan(a, b, h0))


class MinGRULayer(MinLayer):
    gate_count = 2

    def coefficients(self, projected: Tensor) -> tuple[Tensor, Tensor]:
        k_z, k_h = projected.chunk(2, dim=-1)
        z = torch.sigmoid(k_z)
        return 1.0 - z, z * g(k_h)


class MinLSTMLayer(MinLayer):
    gate_count = 3

    def coefficients(self, projected: Tensor) -> tuple[Tensor, Tensor]:
        k_f, k_i, k_h = projected.chunk(3, dim=-1)
        f, i = torch.sigmoid(k_f), torch.sigmoid(k_i)
        return f / (f + i), i / (f + i) * g(k_h)


class MinStack(ScanModel):
    """`num_layers` layers of `layer_type`, dropout after each (as the classic RNN stacks)."""

    layer_type: ClassVar[type[MinLayer]]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        sizes = [input_size] + [hidden_size] * (num_layers - 1)
        self.layers = nn.ModuleList(self.layer_type(size, hidden_size) for size in sizes)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        self.note_backend(x)
        for layer in self.layers:
            x = self.drop(layer(x))
        return x


def _space() -> tuple[sp.HParam, ...]:
    return (
        sp.hidden_size(128),
        sp.num_layers(3, high=6),
        sp.dropout(0.0),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )


class MinGRU(MinStack):
    """minGRU (§3.1.3)."""

    name = "mingru"
    citation = PAPER
    layer_type = MinGRULayer
    hparams = _space()
    equations = (
        r"z_t = \sigma\left(W_z x_t + b_z\right), \qquad \tilde h_t = g\left(W_h x_t + b_h\right)",
        r"h_t = \left(1 - z_t\right) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad"
        r" g(x) = \begin{cases} x + \tfrac12 & x \ge 0 \\ \sigma(x) & x < 0 \end{cases}",
    )


class MinLSTM(MinStack):
    """minLSTM (§3.2.3)."""

    name = "minlstm"
    citation = PAPER
    layer_type = MinLSTMLayer
    hparams = _space()
    equations = (
        r"f_t = \sigma\left(W_f x_t + b_f\right), \quad i_t = \sigma\left(W_i x_t + b_i\right), \quad"
        r" \tilde h_t = g\left(W_h x_t + b_h\right)",
        r"h_t = \frac{f_t}{f_t + i_t} \odot h_{t-1} + \frac{i_t}{f_t + i_t} \odot \tilde h_t",
    )
