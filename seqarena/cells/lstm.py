"""LSTM (Hochreiter & Schmidhuber 1997), on `torch.nn.LSTM`, with optional chrono initialisation.

Gates in torch's order (i, f, g, o):

    i = σ(W_ii u + b_ii + W_hi h + b_hi)        f = σ(W_if u + b_if + W_hf h + b_hf)
    g = tanh(W_ig u + b_ig + W_hg h + b_hg)     o = σ(W_io u + b_io + W_ho h + b_ho)
    c' = f ⊙ c + i ⊙ g                          h' = o ⊙ tanh(c')

Parameters: `4m(d + m) + 8m` per layer (torch keeps two bias vectors, which add up).

Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?", ICLR,
Sec. 4), when `chrono=True`: forget bias `b_f = log(U[1, T_max − 1])`, input bias `b_i = −b_f`,
all other biases 0, with T_max the sequence length; it spreads the units' forgetting times
(about `1 + e^{b_f}` steps) between 2 and T_max.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import State
from seqarena.cells.torch_rnn import TorchRecurrent

#: The gates and update as LaTeX display lines (one `st.latex` block each; docs/reference/models.md §2).
EQUATIONS: tuple[str, ...] = (
    r"\begin{aligned}"
    r"i_n &= \hat{\sigma}\left(W_{ii} u_n + b_{ii} + W_{hi} h_{n-1} + b_{hi}\right) \\"
    r"f_n &= \hat{\sigma}\left(W_{if} u_n + b_{if} + W_{hf} h_{n-1} + b_{hf}\right) \\"
    r"g_n &= \tanh\left(W_{ig} u_n + b_{ig} + W_{hg} h_{n-1} + b_{hg}\right) \\"
    r"o_n &= \hat{\sigma}\left(W_{io} u_n + b_{io} + W_{ho} h_{n-1} + b_{ho}\right)"
    r"\end{aligned}",
    r"c_n = f_n \odot c_{n-1} + i_n \odot g_n, \qquad h_n = o_n \odot \tanh(c_n)",
    r"\text{chrono init (optional): } b_f = \log \xi,\ \xi \sim \mathcal{U}[1, T_{\max} - 1], \quad b_i = -b_f"
    r"\quad (b_f = b_{if} + b_{hf},\ b_i = b_{ii} + b_{hi}; \text{ other biases } 0)",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = "Hochreiter & Schmidhuber (1997), Long short-term memory, Neural Computation 9(8)"


def chrono_bias(hidden_size: int, t_max: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """`log(U[1, t_max − 1])` per unit (Tallec & Ollivier 2018, Sec. 4), shape `[hidden_size]`."""
    high = max(float(t_max - 1), 1.0)
    uniform = torch.empty(hidden_size).uniform_(1.0, high, generator=generator)
    return torch.log(uniform)


class LSTM(TorchRecurrent):
    """Long short-term memory. Shapes: `[B, T, d] -> [B, T, H]`."""

    name = "lstm"
    citation = PAPER
    equations = EQUATIONS
    module_type = nn.LSTM
    hparams = (
        sp.hidden_size(128),
        sp.num_layers(1),
        sp.dropout(0.0),
        sp.choice("chrono", False, (False, True), searched=False,
                  doc="chrono initialisation of the forget/input biases (Tallec & Ollivier 2018)"),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )

    state_size = 2

    def probe_step(self, x_t: Tensor, hidden: Tensor, state: State) -> tuple[State, dict[str, Tensor]]:
        """torch's LSTM: i, f, o = σ(·), g = tanh(·); c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c')."""
        i, f, g, o = (x_t + hidden).chunk(4, dim=1)
        i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
        c = f * state[1] + i * torch.tanh(g)
        return (o * torch.tanh(c), c), {"input": i, "forget": f, "output": o}

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 chrono: bool = False, seq_len: int | None = None) -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.chrono = chrono
        if chrono:
            self._chrono_init(seq_len or 784)

    @torch.no_grad()
    def _chrono_init(self, t_max: int) -> None:
        m = self.hidden_size
        for layer in range(self.num_layers):
            b_ih = getattr(self.rnn, f"bias_ih_l{layer}")
            b_hh = getattr(self.rnn, f"bias_hh_l{layer}")
            b_f = chrono_bias(m, t_max)
            b_ih.zero_()
            b_hh.zero_()
            b_ih[m:2 * m] = b_f
            b_ih[:m] = -b_f
