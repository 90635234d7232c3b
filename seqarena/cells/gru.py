"""GRU (Cho et al. 2014), on `torch.nn.GRU` (the cuDNN variant).

    r = σ(W_ir u + b_ir + W_hr h + b_hr)
    z = σ(W_iz u + b_iz + W_hz h + b_hz)
    n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

`r` multiplies `W_hn h + b_hn` including its bias, as torch and cuDNN do (Cho et al. apply r to
h before the matrix product). Parameters: `3m(d + m) + 6m` per layer. Reference numbers: TCN
paper (Bai et al. 2018) Table 1, e.g. adding T=600 MSE 5.3e-5 (docs/reference/results.md).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import State
from seqarena.cells.torch_rnn import TorchRecurrent

#: The gates and update as LaTeX display lines (one `st.latex` block each; docs/reference/models.md §3).
#: The candidate (torch's gate `n`) is written h̃_n because n is the step index.
EQUATIONS: tuple[str, ...] = (
    r"\begin{aligned}"
    r"r_n &= \hat{\sigma}\left(W_{ir} u_n + b_{ir} + W_{hr} h_{n-1} + b_{hr}\right) \\"
    r"z_n &= \hat{\sigma}\left(W_{iz} u_n + b_{iz} + W_{hz} h_{n-1} + b_{hz}\right) \\"
    r"\tilde{h}_n &= \tanh\left(W_{in} u_n + b_{in} + r_n \odot \left(W_{hn} h_{n-1} + b_{hn}\right)\right)"
    r"\end{aligned}",
    r"h_n = (1 - z_n) \odot \tilde{h}_n + z_n \odot h_{n-1}",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = ("Cho et al. (2014), Learning phrase representations using RNN encoder-decoder for statistical "
              "machine translation, EMNLP 2014")


class GRU(TorchRecurrent):
    """Gated recurrent unit. Shapes: `[B, T, d] -> [B, T, H]`."""

    name = "gru"
    citation = PAPER
    equations = EQUATIONS
    module_type = nn.GRU
    hparams = (
        sp.hidden_size(128),
        sp.num_layers(1),
        sp.dropout(0.0),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )

    def probe_step(self, x_t: Tensor, hidden: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """torch's GRU: r, z = σ(·); n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn)); h' = (1 − z) ⊙ n + z ⊙ h."""
        x_r, x_z, x_n = x_t.chunk(3, dim=1)
        h_r, h_z, h_n = hidden.chunk(3, dim=1)
        reset, update = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
        candidate = torch.tanh(x_n + reset * h_n)
        return ((1.0 - update) * candidate + update * state[0],), {"reset": reset, "update": update}
