"""UnICORNN: Undamped Independent Controlled Oscillatory RNN.

Rusch & Mishra (2021), "UnICORNN: A recurrent model for learning very long time dependencies",
ICML, PMLR 139:9168-9178; official code `tk-rusch/unicornn` (`psMNIST/network.py`, CUDA kernel
`unicornn_fwd`, lines 56-57; its inverse in `unicornn_bwd`, lines 96-97). Each unit is a
Hamiltonian oscillator discretised by symplectic Euler (paper Sec. 2), with a learned per-unit
time step:

    x_n = V u_n + b                                  (dense, all steps at once)
    δ   = Δt · σ(c)                                  (per unit, c learned, δ ∈ (0, Δt))
    z_n = z_{n-1} − δ ⊙ ( tanh(w ⊙ y_{n-1} + x_n) + α · y_{n-1} )
    y_n = y_{n-1} + δ ⊙ z_n                          (the NEW z_n)

`w` is a learned vector (diagonal recurrence): units of a layer interact only through the next
layer's dense `V`. The step is exactly invertible (`y_{n-1} = y_n − δ ⊙ z_n`, then `z_{n-1}`),
which the paper uses for an O(1)-memory backward (Sec. 3).

Runs as compiled C++ on the CPU (float32/float64) and as Triton on CUDA (float32), the two sources
of its kernel `seqarena.cells.kernels.unicornn`, whose backward rebuilds the states by running the
step backwards (the recurrence stores only the final state: memory independent of T), and as the
eager unroll through `step` otherwise (autograd through every step), the reference the kernel is
tested against; `implementation` says which ran (`seqarena.cells.kernel_stack`).

Initialisation as in the code: `w ~ U(0, 1)`, `c ~ U(−0.1, 0.1)`, `V` kaiming-uniform with a = 8
(U(±sqrt(6 / (65·fan_in)))), biases 0. Deep stacking: L layers, each followed by variational
dropout (one mask per sequence and unit, p = 0.1 by default). Parameters: `m·d + m + 2m` per
layer. No gradient clipping.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import State
from seqarena.cells.kernel_stack import KernelCell, KernelStackedRecurrent
from seqarena.cells.kernels.unicornn import unicornn_layer

#: The symplectic-Euler step, and its exact inverse, as LaTeX display lines (one `st.latex` block
#: each; docs/reference/models.md §6). The y update uses the new z_n.
EQUATIONS: tuple[str, ...] = (
    r"x_n = V u_n + b, \qquad \delta = \Delta t \, \hat{\sigma}(c) \in (0, \Delta t)",
    r"\begin{aligned}"
    r"z_n &= z_{n-1} - \delta \odot \left(\tanh\left(w \odot y_{n-1} + x_n\right) + \alpha \, y_{n-1}\right) \\"
    r"y_n &= y_{n-1} + \delta \odot z_n"
    r"\end{aligned}",
    r"\begin{aligned}"
    r"y_{n-1} &= y_n - \delta \odot z_n \\"
    r"z_{n-1} &= z_n + \delta \odot \left(\tanh\left(w \odot y_{n-1} + x_n\right) + \alpha \, y_{n-1}\right)"
    r"\end{aligned}",
)

#: The paper the model follows: authors, year, title, venue.
PAPER: str = ("Rusch & Mishra (2021), UnICORNN: A recurrent model for learning very long time dependencies, "
              "ICML 2021, PMLR 139:9168-9178")


class UnICORNNCell(KernelCell):
    """One UnICORNN layer: dense projection `V` [m, d], `b` [m] plus the elementwise oscillators `w`, `c` [m]."""

    state_size = 2

    def __init__(self, input_size: int, hidden_size: int, dt: float, alpha: float) -> None:
        super().__init__(input_size, hidden_size)
        self.dt, self.alpha = dt, alpha
        self.V = nn.Linear(input_size, hidden_size)
        self.w = nn.Parameter(torch.empty(hidden_size).uniform_(0.0, 1.0))
        self.c = nn.Parameter(torch.empty(hidden_size).uniform_(-0.1, 0.1))
        nn.init.kaiming_uniform_(self.V.weight, a=8, mode="fan_in")
        nn.init.zeros_(self.V.bias)

    def delta(self) -> Tensor:
        """The per-unit time step `δ = Δt · σ(c)` [H]."""
        return self.dt * torch.sigmoid(self.c)

    def project_inputs(self, u: Tensor) -> Tensor:
        """`x_n = V u_n + b` for all n."""
        return self.V(u)

    def run_kernel(self, u: Tensor, ops: ModuleType) -> Tensor:
        """The layer's features `y_1..y_T` [B, T, m] through the kernel's `ops` (zero initial state; the
        kernel projects `u` itself, chunk by chunk)."""
        ys, _ = unicornn_layer(ops, u, self.V.weight, self.V.bias, self.w, self.delta(), self.alpha)
        return ys

    def step(self, x_t: Tensor, state: State) -> State:
        y, z = state  # [B, m] each; x_t = V u_n + b [B, m]
        delta = self.delta()
        z = z - delta * (torch.tanh(self.w * y + x_t) + self.alpha * y)
        y = y + delta * z
        return (y, z)

    def inverse_step(self, x_t: Tensor, state: State) -> State:
        """The symplectic step run backwards: recover `(y_{n-1}, z_{n-1})` from `(y_n, z_n)`."""
        y, z = state
        delta = self.delta()
        y = y - delta * z
        z = z + delta * (torch.tanh(self.w * y + x_t) + self.alpha * y)
        return (y, z)

    def output(self, state: State) -> Tensor:
        return state[0]


class UnICORNN(KernelStackedRecurrent):
    """Deep UnICORNN (3 layers on psMNIST and noisy CIFAR-10). `[B, T, d] -> [B, T, H]`."""

    name = "unicornn"
    kernel = "unicornn"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(256, choices=(32, 128, 256), per_task={"ncifar": 128, "imdb": 128}),
        sp.num_layers(3, per_task={"imdb": 2}),
        sp.dropout(0.1, high=0.7, per_task={"imdb": 0.61}),
        sp.floating("dt", 0.19, 1e-5, 0.5, log=True, valid=(1e-8, 10.0), doc="maximal time step Δt",
                    per_task={"psmnist": 0.19, "ncifar": 0.126, "imdb": 0.0066}),
        # IMDB/IMDB_task.py:27 `--dt [0.0066, 0.205]`, network.py: layer x gets dt[x]
        sp.floating("dt_upper", 0.0, 0.0, 0.0, valid=(0.0, 10.0), searched=False, per_task={"imdb": 0.205},
                    doc="Δt of the second and higher layers; 0 = the first layer's dt (every task but IMDB)"),
        sp.floating("alpha", 30.65, 0.0, 40.0, valid=(0.0, 1000.0), doc="restoring force α",
                    per_task={"psmnist": 30.65, "ncifar": 13.0, "imdb": 0.0}),
        *sp.training_hparams(
            lr=sp.learning_rate(0.00251, 1e-4, 1e-2,
                                per_task={"psmnist": 0.00251, "ncifar": 0.00314, "imdb": 0.000164}),
            batch=sp.batch_size(32, per_task={"smnist": 32, "psmnist": 32, "ncifar": 30, "imdb": 32}),
            # tk-rusch/unicornn psMNIST/network.py:303,305: classifier kaiming_normal_, every bias 0
            readout=sp.readout_init("kaiming_normal_zero_bias"),
            # psMNIST_task.py:97-98 `if (epoch + 1) == args.reduce_point` (650, once);
            # noisy_CIFAR10/noisy_cifar10_task.py: `if (epoch + 1) % 250 == 0`
            schedule=sp.lr_schedule(per_task_epochs={"psmnist": 650, "ncifar": 250},
                                    per_task_repeats={"ncifar": True}),
        ),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 dt: float = 0.19, alpha: float = 30.65, dt_upper: float = 0.0, use_kernel: bool = True) -> None:
        """`dt` is the first layer's Δt, `dt_upper` (0: the same) that of the layers above it.

        `use_kernel=False` forces the eager unroll (tests, benchmarks); see `seqarena.cells.kernel_stack`.
        """
        self.dt, self.alpha = dt, alpha
        super().__init__(input_size, hidden_size, num_layers, dropout, use_kernel)
        for cell in self.layers[1:]:
            cell.dt = dt_upper or dt

    def make_cell(self, input_size: int) -> UnICORNNCell:
        return UnICORNNCell(input_size, self.hidden_size, self.dt, self.alpha)
