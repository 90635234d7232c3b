"""Elman RNN (Elman 1990, "Finding structure in time"), on `torch.nn.RNN`.

    h_n = tanh(W_ih u_n + b_ih + W_hh h_{n-1} + b_hh)

Expected to fail the long-memory tasks (TCN paper, Bai et al. 2018, Table 1: adding T=600
MSE 0.177, sMNIST 21.5 %). Hyperparameters: the task protocols' batch sizes, Adam; the search
ranges are seqarena's [ours] (docs/reference/models.md §1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import State
from seqarena.cells.torch_rnn import TorchRecurrent

#: The update as LaTeX display lines (one `st.latex` block each; docs/reference/models.md §1).
EQUATIONS: tuple[str, ...] = (
    r"h_n = \tanh\left(W_{ih} u_n + b_{ih} + W_{hh} h_{n-1} + b_{hh}\right)",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = "Elman (1990), Finding structure in time, Cognitive Science 14(2)"


class ElmanRNN(TorchRecurrent):
    """Elman tanh RNN. Shapes: `[B, T, d] -> [B, T, H]`."""

    name = "rnn"
    citation = PAPER
    equations = EQUATIONS
    module_type = nn.RNN
    hparams = (
        sp.hidden_size(128),
        sp.num_layers(1),
        sp.dropout(0.0),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout, nonlinearity="tanh")

    def probe_step(self, x_t: Tensor, hidden: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """h_t = tanh(W_ih u_t + b_ih + W_hh h_{t-1} + b_hh); no gates."""
        return (torch.tanh(x_t + hidden),), {}
