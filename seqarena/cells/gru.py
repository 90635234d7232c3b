"""GRU (Cho et al. 2014), on `torch.nn.GRU` (the cuDNN variant).

    r = σ(W_ir u + b_ir + W_hr h + b_hr)
    z = σ(W_iz u + b_iz + W_hz h + b_hz)
    n = tanh(W_in u + b_in + r ⊙ (W_hn h + b_hn))
    h' = (1 − z) ⊙ n + z ⊙ h

`r` multiplies `W_hn h + b_hn` including its bias, as torch and cuDNN do (Cho et al. apply r to
h before the matrix product). Parameters: `3m(d + m) + 6m` per layer. Reference numbers: TCN
paper (Bai et al. 2018) Table 1, e.g. adding T=600 MSE 5.3e-5 (shared/reference/results.md).
"""

from __future__ import annotations

from torch import nn

from seqarena.cells import space as sp
from seqarena.cells.torch_rnn import TorchRecurrent


class GRU(TorchRecurrent):
    """Gated recurrent unit. Shapes: `[B, T, d] -> [B, T, H]`."""

    name = "gru"
    citation = "Cho et al. (2014), Learning phrase representations using RNN encoder-decoder, EMNLP"
    module_type = nn.GRU
    hparams = (
        sp.hidden_size(128),
        sp.num_layers(1),
        sp.dropout(0.0),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )
