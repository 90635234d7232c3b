"""TCN: Temporal Convolutional Network.

Bai, Kolter & Koltun (2018), "An empirical evaluation of generic convolutional and recurrent
networks for sequence modeling", arXiv:1803.01271, Sec. 3; official code `locuslab/TCN: TCN/tcn.py`.

A stack of L residual temporal blocks; block i (i = 0..L−1) has dilation 2^i:

    F(x) = Dropout(ReLU(conv2(Dropout(ReLU(conv1(x))))))      causal dilated convolutions
    out  = ReLU(F(x) + x)                                      (1×1 conv on x if widths differ)

Each conv is weight-normalised (Salimans & Kingma 2016) and causal: padded on the left by
(k − 1)·dilation, which equals the code's pad-both-sides-then-`Chomp1d`. Receptive field
`R = 1 + 2(k − 1)(2^L − 1)`; features at step t see steps t − R + 1 .. t.

Initialisation: the code calls `normal_(0, 0.01)` on the convs' `weight`, but under weight norm
that tensor is recomputed from (g, v) before every forward, so the convs keep torch's default
initialisation; seqarena copies that effective behaviour. The 1×1 downsample conv (no weight norm)
gets N(0, 0.01), as in the code. `hidden_size` is the channel width of every level (the
published scripts use `[nhid] * levels`), `num_layers` the number of levels.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn
from torch.nn.utils.parametrizations import weight_norm

from seqarena.cells import space as sp
from seqarena.cells.base import SequenceModel

#: The causal dilated convolution, the residual block and the receptive field as LaTeX display lines
#: (one `st.latex` block each; docs/reference/models.md §8). Block i = 0..L-1 has dilation 2^i.
EQUATIONS: tuple[str, ...] = (
    r"(\mathrm{Conv}_d\, x)_t = \sum_{j=0}^{k-1} W_j \, x_{t - d j} + b, \qquad x_t = 0 \text{ for } t < 0,"
    r" \qquad W = g \, \frac{v}{\lVert v \rVert}",
    r"\begin{aligned}"
    r"F(x) &= \mathrm{Dropout}\left(\mathrm{ReLU}\left(\mathrm{Conv}^{(2)}_{d}\,"
    r" \mathrm{Dropout}\left(\mathrm{ReLU}\left(\mathrm{Conv}^{(1)}_{d}\, x\right)\right)\right)\right),"
    r" \quad d = 2^i \\"
    r"x^{(i+1)} &= \mathrm{ReLU}\left(F(x^{(i)}) + S x^{(i)}\right),"
    r" \quad S = I \text{ or a } 1 \times 1 \text{ convolution}"
    r"\end{aligned}",
    r"R = 1 + 2 (k - 1) \left(2^L - 1\right)",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = ("Bai, Kolter & Koltun (2018), An empirical evaluation of generic convolutional and recurrent "
              "networks for sequence modeling, arXiv:1803.01271")


def receptive_field(kernel_size: int, levels: int) -> int:
    """`1 + 2(k − 1)(2^L − 1)`: two convolutions per block, dilation doubling per block."""
    return 1 + 2 * (kernel_size - 1) * (2**levels - 1)


class CausalConv1d(nn.Module):
    """Weight-normalised dilated Conv1d padded on the left only: `[B, C, T] -> [B, C', T]`."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.left_pad = (kernel_size - 1) * dilation
        self.conv = weight_norm(nn.Conv1d(n_in, n_out, kernel_size, dilation=dilation))

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.pad(x, (self.left_pad, 0)))


class TemporalBlock(nn.Module):
    """Two causal convolutions with ReLU and dropout, plus a residual connection."""

    def __init__(self, n_in: int, n_out: int, kernel_size: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.branch = nn.Sequential(
            CausalConv1d(n_in, n_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
            CausalConv1d(n_out, n_out, kernel_size, dilation), nn.ReLU(), nn.Dropout(dropout),
        )
        self.downsample = nn.Conv1d(n_in, n_out, 1) if n_in != n_out else None
        if self.downsample is not None:
            nn.init.normal_(self.downsample.weight, 0.0, 0.01)

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        return nn.functional.relu(self.branch(x) + residual)


class TCN(SequenceModel):
    """Temporal convolutional network. `[B, T, d] -> [B, T, H]` (transposed to `[B, C, T]` inside)."""

    name = "tcn"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.integer("hidden_size", 25, 16, 150, valid=(1, 16384), doc="channels per level (nhid)",
                   per_task={"adding": 30, "copy": 10, "smnist": 25, "psmnist": 25}),
        sp.integer("num_layers", 8, 2, 12, valid=(1, 24), doc="levels (residual blocks)", searched=False),
        sp.integer("kernel_size", 7, 2, 8, valid=(1, 64), doc="convolution kernel size k",
                   per_task={"copy": 8}),
        sp.dropout(0.05, per_task={"adding": 0.0, "copy": 0.0}),
        *sp.training_hparams(
            lr=sp.learning_rate(2e-3, 1e-4, 1e-2, per_task={"adding": 4e-3, "copy": 5e-4}),
            batch=sp.batch_size(64, per_task={"adding": 32, "copy": 32, "smnist": 64, "psmnist": 64}),
            # copy_memory/copymem_test.py:119-121 calls clip_grad_norm_ before backward(): it clips nothing
            clip=sp.grad_clip(0.0),
            optimizer=sp.choice("optimizer", "adam", ("adam", "rmsprop", "sgd"), role="train", searched=False,
                                per_task={"copy": "rmsprop"}, doc="optimiser (copy: RMSprop)"),
            # adding_problem/model.py:12-13, copy_memory/model.py: `self.linear.weight.data.normal_(0, 0.01)`
            readout=sp.readout_init(per_task={"adding": "normal_0.01", "copy": "normal_0.01"}),
            # mnist_pixel/pmnist_test.py:123-126 (sMNIST and pMNIST): `if epoch % 10 == 0: lr /= 10`
            schedule=sp.lr_schedule(per_task_epochs={"smnist": 10, "psmnist": 10},
                                    per_task_repeats={"smnist": True, "psmnist": True}),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.05,
                 kernel_size: int = 7) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.kernel_size = kernel_size
        widths = [input_size] + [hidden_size] * num_layers
        self.blocks = nn.Sequential(*(
            TemporalBlock(widths[i], widths[i + 1], kernel_size, 2**i, dropout) for i in range(num_layers)
        ))

    def forward(self, x: Tensor) -> Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)

    def extra_info(self) -> dict[str, Any]:
        return {"receptive_field": receptive_field(self.kernel_size, self.num_layers)}
