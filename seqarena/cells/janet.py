"""JANET: "Just Another NETwork", the forget-gate-only LSTM.

van der Westhuizen & Lasenby (2018), "The unreasonable effectiveness of the forget gate",
arXiv:1804.04849, eq. (8)-(11); official code `JosvanderWesthuizen/janet: aux_code/rnn_cells.py`.

    s_n  = U_f h_{n-1} + W_f u_n + b_f
    c~_n = tanh(U_c h_{n-1} + W_c u_n + b_c)
    c_n  = σ(s_n) ⊙ c_{n-1} + (1 − σ(s_n − β)) ⊙ c~_n
    h_n  = c_n

β = 1 as in the official code (`aux_code/rnn_cells.py`, lines 63-64: `beta = 1`, input gate
`1 − σ(f − β)`); it lets slightly more new information in than `1 − σ(s_n)`.
Initialisation as in the code: Glorot-uniform over the whole `W [2m, d]` and `U [2m, m]`
(TensorFlow's default for the code's `W_xh` and `W_hh` variables), `b_c = 0`, and
the chrono forget bias `b_f = log(U[1, T_max − 1])` with T_max the sequence length (paper Sec. 4;
the repo samples U[1, T_max], immaterial). Without chrono the repo sets `b_f = 1`.
Official training: Adam lr 1e-3, global gradient-norm clip 5, weight decay 1e-5, dropout keep
0.9, 2 × 128 units on MNIST. Parameters: `2m(d + m) + 2m` per layer.

Runs as compiled C++ on the CPU (float32/float64) and as Triton on CUDA (float32), the two sources
of its kernel `seqarena.cells.kernels.janet` with their own BPTT backward, and as the eager unroll
through `step` otherwise, the reference the kernel is tested against; `implementation` says which
ran (`seqarena.cells.kernel_stack`).
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import DROPOUT_PLACEMENTS, State
from seqarena.cells.kernel_stack import KernelCell, KernelStackedRecurrent
from seqarena.cells.kernels.janet import janet_layer
from seqarena.cells.lstm import chrono_bias

#: The update as LaTeX display lines (one `st.latex` block each; docs/reference/models.md §4).
EQUATIONS: tuple[str, ...] = (
    r"\begin{aligned}"
    r"s_n &= U_f h_{n-1} + W_f u_n + b_f \\"
    r"\tilde{c}_n &= \tanh\left(U_c h_{n-1} + W_c u_n + b_c\right) \\"
    r"c_n &= \hat{\sigma}(s_n) \odot c_{n-1} + \left(1 - \hat{\sigma}(s_n - \beta)\right) \odot \tilde{c}_n \\"
    r"h_n &= c_n"
    r"\end{aligned}",
    r"\text{chrono init (default): } b_f = \log \xi,\ \xi \sim \mathcal{U}[1, T_{\max} - 1], \quad b_c = 0",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = ("van der Westhuizen & Lasenby (2018), The unreasonable effectiveness of the forget gate, "
              "arXiv:1804.04849")


class JANETCell(KernelCell):
    """One JANET layer. Parameters: `W = [W_f; W_c]` [2m, d] (input), `U = [U_f; U_c]` [2m, m] (recurrent),
    `b = [b_f; b_c]` [2m], stacked as (forget, candidate)."""

    state_size = 1

    def __init__(self, input_size: int, hidden_size: int, beta: float = 1.0,
                 chrono: bool = True, t_max: int = 784) -> None:
        super().__init__(input_size, hidden_size)
        m = hidden_size
        self.beta = beta
        self.W = nn.Parameter(torch.empty(2 * m, input_size))
        self.U = nn.Parameter(torch.empty(2 * m, m))
        self.b = nn.Parameter(torch.zeros(2 * m))
        self.reset_parameters(chrono, t_max)

    @torch.no_grad()
    def reset_parameters(self, chrono: bool, t_max: int) -> None:
        m = self.hidden_size
        # Glorot-uniform over each whole matrix, as the code's `W_xh [d, 2m]` and `W_hh [m, 2m]`
        nn.init.xavier_uniform_(self.W)
        nn.init.xavier_uniform_(self.U)
        self.b.zero_()
        self.b[:m] = chrono_bias(m, t_max) if chrono else 1.0

    def project_inputs(self, u: Tensor) -> Tensor:
        """`[W_f u_n + b_f, W_c u_n + b_c]` for all n: `[B, T, d] -> [B, T, 2m]`."""
        return nn.functional.linear(u, self.W, self.b)

    def run_kernel(self, u: Tensor, ops: ModuleType) -> Tensor:
        """The layer's features `c_1..c_T` [B, T, m] through the kernel's `ops` (zero initial state)."""
        ys, _ = janet_layer(ops, self.project_time_major(u), self.U, self.beta)
        return ys

    def step(self, x_t: Tensor, state: State) -> State:
        (c,) = state  # h_{n-1} = c_{n-1} [B, m]
        s, k = (x_t + c @ self.U.t()).chunk(2, dim=1)  # s_n, and k_n = U_c h_{n-1} + W_c u_n + b_c
        c = torch.sigmoid(s) * c + (1.0 - torch.sigmoid(s - self.beta)) * torch.tanh(k)  # tanh(k_n) = c~_n
        return (c,)

    def output(self, state: State) -> Tensor:
        return state[0]

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The forget gate f = σ(s) of the step (the input gate is 1 − σ(s − β))."""
        s, _ = (x_t + state[0] @ self.U.t()).chunk(2, dim=1)
        return {"forget": torch.sigmoid(s)}


class JANET(KernelStackedRecurrent):
    """Stacked JANET layers (the README's MNIST runs use 2 × 128). `[B, T, d] -> [B, T, H]`."""

    name = "janet"
    kernel = "janet"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(128),
        # Readme.md: MNIST `--layers 128,128`, pMNIST the default one layer of 128 (main.py `--layers`)
        sp.num_layers(1, per_task={"smnist": 2}),
        sp.dropout(0.1),  # main.py `--keep_prob 0.9`
        sp.choice("dropout_placement", "between_layers", DROPOUT_PLACEMENTS, searched=False,
                  doc="between_layers: a fresh mask per step on the outputs feeding the next layer, the "
                      "readout reading the undropped final state (model_file.py); variational: one mask "
                      "per sequence after every layer"),
        sp.floating("beta", 1.0, 1.0, 1.0, valid=(0.0, 10.0), searched=False,
                    doc="shift of the input gate (code: 1)"),
        sp.choice("chrono", True, (True, False), searched=False,
                  doc="chrono initialisation of the forget bias"),
        *sp.training_hparams(
            lr=sp.learning_rate(1e-3, 1e-4, 1e-2),
            batch=sp.batch_size(200, per_task={"smnist": 200, "psmnist": 200}),
            clip=sp.grad_clip(5.0),
            # main.py `--wd` default 0; Readme.md: `--wd 0.00001` for MNIST and pMNIST only
            weight_decay=sp.choice("weight_decay", 0.0, (0.0, 1e-5), valid=(0.0, 1.0), role="train",
                                   searched=False, per_task={"smnist": 1e-5, "psmnist": 1e-5},
                                   doc="L2 penalty (Readme: 1e-5 on MNIST and pMNIST, else 0)"),
            # model_file.py build_loss: wd · Σ l2_loss(v) over variables without 'bias' in their name,
            # added to the loss, so build_optimizer's clip_by_global_norm clips its gradient too
            decay_scope=sp.weight_decay_scope(on="matrices", where="loss"),
            # aux_code/tf_ops.py `linear`: tf.get_variable's default (Glorot-uniform) weights, bias 0
            readout=sp.readout_init("glorot_uniform_zero_bias"),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 dropout_placement: str = "between_layers", beta: float = 1.0, chrono: bool = True,
                 seq_len: int | None = None, use_kernel: bool = True) -> None:
        """`use_kernel=False` forces the eager unroll (tests, benchmarks); see `seqarena.cells.kernel_stack`."""
        self.beta, self.chrono, self.t_max = beta, chrono, seq_len or 784
        super().__init__(input_size, hidden_size, num_layers, dropout, use_kernel, dropout_placement)

    def make_cell(self, input_size: int) -> JANETCell:
        return JANETCell(input_size, self.hidden_size, self.beta, self.chrono, self.t_max)
