"""coRNN: Coupled Oscillatory Recurrent Neural Network.

Rusch & Mishra (2021), "Coupled Oscillatory Recurrent Neural Network (coRNN): an accurate and
(gradient) stable architecture for learning long time dependencies", ICLR; official code
`tk-rusch/coRNN` (`adding/model.py`, `sMNIST/network.py`, ...).

The second-order ODE `y'' = tanh(W y + 𝒲 y' + V u + b) − γ y − ε y'` (paper eq. (1)-(2)),
written with z = y', is discretised by the IMEX scheme of paper eq. (3), exactly as the code does:

    z_n = z_{n-1} + Δt · ( tanh(W y_{n-1} + 𝒲 z_{n-1} + V u_n + b) − γ y_{n-1} − ε z_{n-1} )
    y_n = y_{n-1} + Δt · z_n                      (the NEW z_n: the implicit half of the step)

σ = tanh; Δt (`dt`), γ (`gamma`) and ε (`epsilon`) are fixed scalars. As in the code, one
`Linear(d + 2m, m)` acts on the concatenation [u_n, z_{n-1}, y_{n-1}] with torch's default
initialisation U(±1/sqrt(d + 2m)); seqarena keeps that single weight `weight = [V | 𝒲 | W]` so
that the initialisation is the authors', and applies its input block to all steps at once.
Parameters: `m(d + 2m) + m` per layer. No gradient clipping in any coRNN script.

Runs as compiled C++ on the CPU (float32/float64) and as Triton on CUDA (float32), the two sources
of its kernel `seqarena.cells.kernels.cornn` with their own BPTT backward, and as the eager unroll
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
from seqarena.cells.kernels.cornn import cornn_layer

#: The ODE and its IMEX discretisation as LaTeX display lines (one `st.latex` block each;
#: docs/reference/models.md §5). The y update uses the new z_n.
EQUATIONS: tuple[str, ...] = (
    r"y'' = \tanh\left(W y + \mathcal{W} y' + V u + b\right) - \gamma y - \epsilon y'",
    r"\begin{aligned}"
    r"z_n &= z_{n-1} + \Delta t \left(\tanh\left(W y_{n-1} + \mathcal{W} z_{n-1} + V u_n + b\right)"
    r" - \gamma y_{n-1} - \epsilon z_{n-1}\right) \\"
    r"y_n &= y_{n-1} + \Delta t \, z_n"
    r"\end{aligned}",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = ("Rusch & Mishra (2021), Coupled Oscillatory Recurrent Neural Network (coRNN): an accurate and "
              "(gradient) stable architecture for learning long time dependencies, ICLR 2021")


class CoRNNCell(KernelCell):
    """One coRNN layer; state (y, z), features y. `weight = [V | 𝒲 | W]` [m, d + 2m] acts on `[u_n, z, y]`
    (tk-rusch/coRNN `adding/model.py`, lines 12 and 15: `i2h` on `cat((x, hz, hy))`)."""

    state_size = 2

    def __init__(self, input_size: int, hidden_size: int, dt: float, gamma: float, epsilon: float) -> None:
        super().__init__(input_size, hidden_size)
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        fan_in = input_size + 2 * hidden_size
        bound = 1.0 / math.sqrt(fan_in)
        self.weight = nn.Parameter(torch.empty(hidden_size, fan_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(hidden_size).uniform_(-bound, bound))

    @property
    def V(self) -> Tensor:
        """The input weight `V` [m, d]."""
        return self.weight[:, : self.input_size]

    @property
    def recurrent(self) -> Tensor:
        """`[𝒲 | W]` [m, 2m]: 𝒲 acts on z = y', W on y."""
        return self.weight[:, self.input_size:]

    def project_inputs(self, u: Tensor) -> Tensor:
        """`V u_n + b` for all n: `[B, T, d] -> [B, T, m]`."""
        return nn.functional.linear(u, self.V, self.bias)

    def run_kernel(self, u: Tensor, ops: ModuleType) -> Tensor:
        """The layer's features `y_1..y_T` [B, T, m] through the kernel's `ops` (zero initial state)."""
        ys, _ = cornn_layer(ops, self.project_time_major(u), self.recurrent, self.dt, self.gamma, self.epsilon)
        return ys

    def step(self, x_t: Tensor, state: State) -> State:
        y, z = state  # [B, m] each; x_t = V u_n + b [B, m]
        drive = torch.tanh(x_t + torch.cat((z, y), dim=1) @ self.recurrent.t())  # tanh(W y + 𝒲 z + V u_n + b)
        z = z + self.dt * (drive - self.gamma * y - self.epsilon * z)
        y = y + self.dt * z
        return (y, z)

    def output(self, state: State) -> Tensor:
        return state[0]


class CoRNN(KernelStackedRecurrent):
    """coRNN, one layer in every published task; deeper stacks feed y to the next layer."""

    name = "cornn"
    kernel = "cornn"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(128, per_task={"smnist": 256, "psmnist": 256, "ncifar": 128, "har2": 64}),
        sp.num_layers(1),
        sp.dropout(0.0),
        sp.floating("dt", 0.042, 0.01, 0.1, log=True, valid=(1e-6, 2.0), doc="time step Δt",
                    per_task={"adding": 0.06, "smnist": 0.042, "psmnist": 0.076, "ncifar": 0.034,
                              "har2": 0.1, "imdb": 0.054}),
        sp.floating("gamma", 2.7, 0.1, 80.0, log=True, valid=(0.0, 1000.0), doc="restoring force γ",
                    per_task={"adding": 66.0, "smnist": 2.7, "psmnist": 0.4, "ncifar": 1.3,
                              "har2": 0.2, "imdb": 4.9}),
        sp.floating("epsilon", 4.7, 1.0, 20.0, valid=(0.0, 1000.0), doc="damping ε",
                    per_task={"adding": 15.0, "smnist": 4.7, "psmnist": 8.0, "ncifar": 12.7,
                              "har2": 6.4, "imdb": 4.8}),
        *sp.training_hparams(
            lr=sp.learning_rate(0.0021, 5e-4, 2e-2,
                                per_task={"adding": 2e-2, "smnist": 0.0021, "psmnist": 0.0054,
                                          "ncifar": 0.0075, "har2": 0.017, "imdb": 6e-4}),
            batch=sp.batch_size(120, per_task={"adding": 50, "smnist": 120, "psmnist": 120,
                                               "ncifar": 100, "har2": 64, "imdb": 64}),
            # tk-rusch/coRNN sMNIST/sMNIST_task.py:81-84, psMNIST/psMNIST_task.py:88-91:
            # `if (epoch+1) % 100 == 0: lr /= 10` (readout: torch's default nn.Linear)
            schedule=sp.lr_schedule(per_task_epochs={"smnist": 100, "psmnist": 100},
                                    per_task_repeats={"smnist": True, "psmnist": True}),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 dt: float = 0.042, gamma: float = 2.7, epsilon: float = 4.7, use_kernel: bool = True) -> None:
        """`use_kernel=False` forces the eager unroll (tests, benchmarks); see `seqarena.cells.kernel_stack`."""
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        super().__init__(input_size, hidden_size, num_layers, dropout, use_kernel)

    def make_cell(self, input_size: int) -> CoRNNCell:
        return CoRNNCell(input_size, self.hidden_size, self.dt, self.gamma, self.epsilon)
