"""Causal Transformer: a decoder-only stack of masked self-attention layers.

Vaswani et al. (2017), "Attention is all you need", NeurIPS, Sec. 3. Inputs are embedded by
`Linear(d, d_model)` and added to the sinusoidal positional encoding (Sec. 3.5)

    PE[t, 2i] = sin(t / 10000^{2i/d_model}),    PE[t, 2i+1] = cos(t / 10000^{2i/d_model}),

then L layers of masked multi-head attention `softmax(QKᵀ/√d_k + M) V` with `M[t, s] = −∞` for
s > t, and a position-wise feed-forward network (d_ff = 4·d_model, ReLU), each with a residual
connection and LayerNorm. `norm_first=True` (pre-LN, the default here, more stable on small
budgets) or False (post-LN as in the paper) is recorded with every trial. Attention costs O(T²)
memory per head. The authors published no numbers on these benchmarks; defaults are ours.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import SequenceModel
from seqarena.errors import BadInput

#: Embedding, causal attention and the pre-/post-LN layer as LaTeX display lines (one `st.latex`
#: block each; docs/reference/models.md §9). `norm_first` picks the layer form.
EQUATIONS: tuple[str, ...] = (
    r"h^{(0)}_t = \mathrm{Dropout}\left(W_e u_t + b_e + PE_t\right), \qquad"
    r" PE_{t, 2i} = \sin\left(t / 10000^{2i / d_{\mathrm{model}}}\right), \quad"
    r" PE_{t, 2i+1} = \cos\left(t / 10000^{2i / d_{\mathrm{model}}}\right)",
    r"\operatorname{Attn}(Q, K, V) = \operatorname{softmax}\left(\frac{Q K^\top}{\sqrt{d_k}} + M\right) V,"
    r" \qquad M_{ts} = \begin{cases} 0 & s \le t \\ -\infty & s > t \end{cases}",
    r"\operatorname{MHA}(x) = \left[\mathrm{head}_1, \dots, \mathrm{head}_h\right] W^O, \quad"
    r" \mathrm{head}_j = \operatorname{Attn}\left(x W^Q_j, x W^K_j, x W^V_j\right), \quad"
    r" d_k = d_{\mathrm{model}} / h",
    r"\operatorname{FFN}(x) = W_2 \, \mathrm{ReLU}\left(W_1 x + b_1\right) + b_2, \qquad"
    r" d_{\mathrm{ff}} = 4 \, d_{\mathrm{model}}",
    r"\text{pre-LN (default): } \begin{aligned}"
    r"a^{(l)} &= h^{(l)} + \operatorname{MHA}\left(\mathrm{LN}(h^{(l)})\right) \\"
    r"h^{(l+1)} &= a^{(l)} + \operatorname{FFN}\left(\mathrm{LN}(a^{(l)})\right)"
    r"\end{aligned} \qquad \text{output } \mathrm{LN}(h^{(L)})",
    r"\text{post-LN (paper): } \begin{aligned}"
    r"a^{(l)} &= \mathrm{LN}\left(h^{(l)} + \operatorname{MHA}(h^{(l)})\right) \\"
    r"h^{(l+1)} &= \mathrm{LN}\left(a^{(l)} + \operatorname{FFN}(a^{(l)})\right)"
    r"\end{aligned} \qquad \text{output } h^{(L)}",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = "Vaswani et al. (2017), Attention is all you need, NeurIPS 2017"


def sinusoidal_encoding(length: int, d_model: int, like: Tensor) -> Tensor:
    """The `[length, d_model]` sinusoidal positional encoding of Vaswani et al. (2017) Sec. 3.5."""
    position = torch.arange(length, dtype=like.dtype, device=like.device).unsqueeze(1)
    rate = torch.exp(torch.arange(0, d_model, 2, dtype=like.dtype, device=like.device)
                     * (-math.log(10000.0) / d_model))
    encoding = like.new_zeros(length, d_model)
    encoding[:, 0::2] = torch.sin(position * rate)
    encoding[:, 1::2] = torch.cos(position * rate)[:, : d_model // 2]
    return encoding


class CausalTransformer(SequenceModel):
    """Causally masked Transformer encoder stack. `[B, T, d] -> [B, T, d_model]`."""

    name = "transformer"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(64, choices=(32, 64, 128)),
        sp.num_layers(2, high=6),
        sp.dropout(0.1),
        sp.choice("nhead", 4, (1, 2, 4, 8), valid=(1, 64), doc="attention heads"),
        sp.choice("norm_first", True, (True, False), searched=False,
                  doc="pre-LN (True) or the paper's post-LN"),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 nhead: int = 4, norm_first: bool = True) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        if hidden_size % nhead:
            raise BadInput("nhead", nhead, f"a divisor of hidden_size={hidden_size}")
        self.embed = nn.Linear(input_size, hidden_size)
        layer = nn.TransformerEncoderLayer(hidden_size, nhead, 4 * hidden_size, dropout,
                                           batch_first=True, norm_first=norm_first)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.final_norm = nn.LayerNorm(hidden_size) if norm_first else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        length = x.shape[1]
        h = self.dropout(self.embed(x) + sinusoidal_encoding(length, self.hidden_size, x))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=x.dtype)
        return self.final_norm(self.encoder(h, mask=mask, is_causal=True))
