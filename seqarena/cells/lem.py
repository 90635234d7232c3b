"""LEM: Long Expressive Memory.

Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR;
official code `tk-rusch/LEM: src/adding/network.py`, class `LEMCell` (same cell in every task).
A multiscale ODE system discretised with learned, input-dependent time steps (paper eq. (3)):

    Δt_n  = Δt · σ(W_1 y_{n-1} + V_1 u_n + b_1)      (multiscale step of z)
    Δt̄_n = Δt · σ(W_2 y_{n-1} + V_2 u_n + b_2)      (multiscale step of y)
    z_n   = (1 − Δt_n) ⊙ z_{n-1} + Δt_n ⊙ tanh(W_z y_{n-1} + V_z u_n + b_z)
    y_n   = (1 − Δt̄_n) ⊙ y_{n-1} + Δt̄_n ⊙ tanh(W_y z_n + V_y u_n + b_y)    (the NEW z_n)

Parameters as in the code (`src/adding/network.py`, lines 11-13 and 24-31), named by their roles
in the paper's equations:

    inp2hid     = Linear(d, 4m)  chunks (dt1, dt2, z, y) = [V_2; V_1; V_y; V_z] and their biases
    hid2hid     = Linear(m, 3m)  chunks (dt1, dt2, y)    = [W_2; W_1; W_z] and their biases
    transform_z = Linear(m, m)                            = W_y, acting on the new z_n

The code's chunk names say which state a chunk belongs to, not which update it drives: the "dt1"
chunks give Δt̄_n (the step of y), the "dt2" chunks Δt_n (the step of z), the "y" chunks feed the
z update and the "z" chunk of the input feeds the y update, beside `transform_z`. Two bias vectors
add where the paper has one (harmless). Every cell parameter ~ U(±1/sqrt(m)) as in the code. For
Δt <= 1 each update is a convex combination, so |y|, |z| < 1 from a zero state (paper Sec. 4).
Parameters: `4m(d + m) + 8m` per layer.

Runs as compiled C++ on the CPU (float32/float64) and as Triton on CUDA (float32), the two sources
of its kernel `seqarena.cells.kernels.lem` with their own BPTT backward, and as the eager unroll
through `step` otherwise, the reference the kernel is tested against; `implementation` says which
ran (`seqarena.cells.kernel_stack`).
"""

from __future__ import annotations

import math
from types import ModuleType

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import State
from seqarena.cells.kernel_stack import KernelCell, KernelStackedRecurrent
from seqarena.cells.kernels.lem import lem_layer

#: The update as LaTeX display lines (one `st.latex` block each; docs/reference/models.md §7).
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


class LEMCell(KernelCell):
    """One LEM layer; state (y, z), features y. Parameters as in the module docstring."""

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
        """The four input terms `[V_2 u_n, V_1 u_n, V_y u_n, V_z u_n]` (+ biases) for all steps: `[B, T, 4m]`."""
        return self.inp2hid(u)

    def run_kernel(self, u: Tensor, ops: ModuleType) -> Tensor:
        """The layer's features `y_1..y_T` [B, T, m] through the kernel's `ops` (zero initial state)."""
        ys, _ = lem_layer(ops, self.project_time_major(u), self.hid2hid.weight, self.hid2hid.bias,
                          self.transform_z.weight, self.transform_z.bias, self.dt)
        return ys

    def step(self, x_t: Tensor, state: State) -> State:
        y, z = state  # [B, m] each; x_t = inp2hid(u_n) [B, 4m]
        v_2, v_1, v_y, v_z = x_t.chunk(4, dim=1)  # V_2 u_n + b_2, V_1 u_n + b_1, V_y u_n + b_y, V_z u_n + b_z
        w_2, w_1, w_z = self.hid2hid(y).chunk(3, dim=1)  # W_2 y_{n-1}, W_1 y_{n-1}, W_z y_{n-1} (+ biases)
        dt_n, dt_bar = self.dt * torch.sigmoid(w_1 + v_1), self.dt * torch.sigmoid(w_2 + v_2)  # steps of z, y
        z = (1.0 - dt_n) * z + dt_n * torch.tanh(w_z + v_z)
        y = (1.0 - dt_bar) * y + dt_bar * torch.tanh(self.transform_z(z) + v_y)  # transform_z is W_y, on the new z_n
        return (y, z)

    def output(self, state: State) -> Tensor:
        return state[0]

    def gates(self, x_t: Tensor, state: State) -> dict[str, Tensor]:
        """The learned time steps Δt̄_n (of y) and Δt_n (of z) of the step, each in (0, Δt)."""
        v_2, v_1, _, _ = x_t.chunk(4, dim=1)
        w_2, w_1, _ = self.hid2hid(state[0]).chunk(3, dim=1)
        return {"dt_y": self.dt * torch.sigmoid(w_2 + v_2), "dt_z": self.dt * torch.sigmoid(w_1 + v_1)}


class LEM(KernelStackedRecurrent):
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
            # tk-rusch/LEM psMNIST/network.py:46 (every task's network.py): classifier kaiming_normal_
            readout=sp.readout_init("kaiming_normal"),
            # sMNIST_task.py, psMNIST_task.py, nCIFAR_task.py: `if (epoch + 1) % 100 == 0: lr /= 10`
            schedule=sp.lr_schedule(per_task_epochs={"smnist": 100, "psmnist": 100, "ncifar": 100},
                                    per_task_repeats={"smnist": True, "psmnist": True, "ncifar": True}),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 dt: float = 0.21, use_kernel: bool = True) -> None:
        """`use_kernel=False` forces the eager unroll (tests, benchmarks); see `seqarena.cells.kernel_stack`."""
        self.dt = dt
        super().__init__(input_size, hidden_size, num_layers, dropout, use_kernel)

    def make_cell(self, input_size: int) -> LEMCell:
        return LEMCell(input_size, self.hidden_size, self.dt)
