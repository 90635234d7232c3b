"""LEM: Long Expressive Memory.

Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR;
official code `tk-rusch/LEM: src/adding/network.py`, class `LEMCell` (same cell in every task).
A multiscale ODE system discretised with learned, input-dependent time steps (paper eq. (3)):

    Δt_n  = Δt · σ(W_1 y_{n-1} + V_1 u_n + b_1)      (multiscale step of z)
    Δt̄_n = Δt · σ(W_2 y_{n-1} + V_2 u_n + b_2)      (multiscale step of y)
    z_n   = (1 − Δt_n) ⊙ z_{n-1} + Δt_n ⊙ tanh(W_z y_{n-1} + V_z u_n + b_z)
    y_n   = (1 − Δt̄_n) ⊙ y_{n-1} + Δt̄_n ⊙ tanh(W_y z_n + V_y u_n + b_y)    (the NEW z_n)

Layout as in the code: `inp2hid = Linear(d, 4m)` with chunks (dt1, dt2, z, y) and
`hid2hid = Linear(m, 3m)` with chunks (dt1, dt2, y); `dt1` drives y (Δt̄), `dt2` drives z (Δt),
the "y" chunks feed the z update and `transform_z = Linear(m, m)` (W_y) acts on the new z, added
to the `z` chunk of the input. Every cell parameter ~ U(±1/sqrt(m)) as in the code. For Δt <= 1
each update is a convex combination, so |y|, |z| < 1 from a zero state (paper Sec. 4).
Parameters: `4m(d + m) + 8m` per layer.

Two implementations of the same layer (`seqarena.cells.fused`; `implementation` says which ran):
`"fused-cpu"`, the compiled time loop of `seqarena.cells.kernels.lem` with its own BPTT backward
(default for float32/float64 CPU tensors), and `"eager"`, the shared unroller through `step`, the
reference it is tested against (`tests/unit/test_fused_cells.py`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import RecurrentCell, State
from seqarena.cells.fused import FusedStackedRecurrent
from seqarena.cells.kernels.lem import lem_layer

#: The update as LaTeX display lines (one `st.latex` block each; shared/reference/models.md §7).
#: Two learned time steps, both in (0, Δt); the y update uses the new z_n.
EQUATIONS: tuple[str, ...] = (
    r"\begin{aligned}"
    r"\Delta t_n &= \Delta t \, \hat{\sigma}\left(W_1 y_{n-1} + V_1 u_n + b_1\right) \\"
    r"\overline{\Delta t}_n &= \Delta t \, \hat{\sigma}\left(W_2 y_{n-1} + V_2 u_n + b_2\right)"
    r"\end{aligned}",
    r"\begin{aligned}"
    r"z_n &= (1 - \Delta t_n) \odot z_{n-1} + \Delta t_n \odot \tanh\left(W_z y_{n-1} + V_z u_n + b_z\right) \\"
    r"y_n &= (1 - \overline{\Delta t}_n) \odot y_{n-1}"
    r" + \overline{\Delta t}_n \odot \tanh\left(W_y z_n + V_y u_n + b_y\right)"
    r"\end{aligned}",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = "Rusch, Mishra, Erichson & Mahoney (2022), Long Expressive Memory for sequence modeling, ICLR 2022"


class LEMCell(RecurrentCell):
    """One LEM layer; state (y, z), features y."""

    state_size = 2

    def __init__(self, input_size: int, hidden_size: int, dt: float) -> None:
        super().__init__(input_size, hidden_size)
        self.dt = dt
        m = hidden_size
        self.inp2hid = nn.Linear(input_size, 4 * m)
        self.hid2hid = nn.Linear(m, 3 * m)
        self.transform_z = nn.Linear(m, m)
        bound = 1.0 / math.sqrt(m)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def project_inputs(self, u: Tensor) -> Tensor:
        """The four input terms (dt1, dt2, z, y chunks) for all steps: `[B, T, 4m]`."""
        return self.inp2hid(u)

    def fused(self, u: Tensor) -> Tensor:
        """The layer's features `y_1..y_T` [B, T, H] through the fused kernel, C++ on the CPU or Triton on a GPU
        (zero initial state)."""
        x = self.project_time_major(u)
        ys, _ = lem_layer(x, self.hid2hid.weight, self.hid2hid.bias, self.transform_z.weight, self.transform_z.bias,
                          self.dt)
        return ys

    def step(self, x_t: Tensor, state: State) -> State:
        y, z = state
        i_dt1, i_dt2, i_z, i_y = x_t.chunk(4, dim=1)
        h_dt1, h_dt2, h_y = self.hid2hid(y).chunk(3, dim=1)
        dt_bar = self.dt * torch.sigmoid(i_dt1 + h_dt1)
        dt_z = self.dt * torch.sigmoid(i_dt2 + h_dt2)
        z = (1.0 - dt_z) * z + dt_z * torch.tanh(i_y + h_y)
        y = (1.0 - dt_bar) * y + dt_bar * torch.tanh(self.transform_z(z) + i_z)
        return (y, z)

    def output(self, state: State) -> Tensor:
        return state[0]

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The learned time steps Δt̄ (of y) and Δt_z (of z) of the step, each in (0, Δt)."""
        i_dt1, i_dt2, _, _ = x_t.chunk(4, dim=1)
        h_dt1, h_dt2, _ = self.hid2hid(state[0]).chunk(3, dim=1)
        return {"dt_y": self.dt * torch.sigmoid(i_dt1 + h_dt1), "dt_z": self.dt * torch.sigmoid(i_dt2 + h_dt2)}


class LEM(FusedStackedRecurrent):
    """LEM; one layer in every published PyTorch task, deeper stacks feed y to the next layer."""

    name = "lem"
    kernel = "lem"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(128, choices=(32, 128, 256)),
        sp.num_layers(1),
        sp.dropout(0.0),
        sp.floating("dt", 0.21, 1e-4, 1.0, log=True, valid=(1e-8, 1.0), doc="maximal time step Δt",
                    per_task={"adding": 0.0242, "smnist": 0.21, "psmnist": 0.31, "ncifar": 0.44}),
        *sp.training_hparams(
            lr=sp.learning_rate(0.0018, 5e-4, 1e-2,
                                per_task={"adding": 0.0026, "smnist": 0.0018, "psmnist": 0.0073,
                                          "ncifar": 0.00322}),
            batch=sp.batch_size(128, per_task={"adding": 50, "smnist": 128, "psmnist": 128,
                                               "ncifar": 100}),
            clip=sp.grad_clip(0.0, per_task={"smnist": 1.0, "psmnist": 1.1}),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 dt: float = 0.21, fused: bool = True) -> None:
        """`fused=False` forces the eager unroll (tests, benchmarks); see `seqarena.cells.fused`."""
        self.dt = dt
        super().__init__(input_size, hidden_size, num_layers, dropout, fused)

    def make_cell(self, input_size: int) -> LEMCell:
        return LEMCell(input_size, self.hidden_size, self.dt)
