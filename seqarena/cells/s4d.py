"""S4D: diagonal state-space models, S4D-Lin and S4D-Inv initialisations, zero-order hold.

Gu, Gupta, Goel & Ré (2022), "On the Parameterization and Initialization of Diagonal State Space
Models", NeurIPS; official code `state-spaces/s4` (`models/s4/s4d.py`, the standalone S4D, and
`example.py`, its block).

Per channel h = 1..H, N/2 complex modes (the conjugate half is implicit, hence the 2 Re), eq. (4)-(5):

    x'(t) = A x(t) + B u(t),   y(t) = 2 Re(C x(t)) + D u(t),      A = −exp(`log_A_real`) + i `A_imag`, B = 1
    ZOH with step Δ = exp(`log_dt`):   Ā = exp(Δ A),   B̄ = (exp(Δ A) − 1)/A
    x_t = Ā ⊙ x_{t−1} + B̄ u_t,   y_t = 2 Re(Σ_n C_n x_{t,n}) + D u_t

computed in this recurrent form on the diagonal scan (`seqarena.cells.kernels.scan`) rather than as
s4d.py's convolution with the kernel K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l): the same map.

Initialisation (s4d.py): log Δ ~ U[log dt_min, log dt_max] per channel; Re A = −½; Im A = π n
(S4D-Lin) or (N/π)(N/(2n + 1) − 1) (S4D-Inv, `init="inv"`), n = 0..N/2 − 1; C ~ CN(0, 1); D ~ N(0, 1).
Block (`example.py`, post-norm): x ← LayerNorm(x + Dropout(GLU(Dropout(GELU(S4D(x)))))), the GLU being
s4d.py's output `Conv1d(H, 2H, 1)` + GLU. Optimiser (the code's): A and Δ (`log_A_real`, `A_imag`, `log_dt`)
at lr min(0.001, lr) without weight decay (`models/s4/s4d.py:49-59` `register`, `example.py:177`,
`example.py:247-276` `setup_optimizer`), the rest at the trial's lr and weight decay (the code: AdamW, lr
0.01, wd 0.01); marked with `seqarena.cells.base.OwnOptimizer`, grouped by the training loop's optimiser.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import OwnOptimizer, own_optimizer
from seqarena.cells.kernels.scan import scan
from seqarena.cells.ssm import SSMStack, report_states

EQUATIONS: tuple[str, ...] = (
    r"x'(t) = A\, x(t) + B\, u(t), \qquad y(t) = 2 \operatorname{Re}\left(C\, x(t)\right) + D\, u(t)",
    r"\bar A = e^{\Delta A}, \quad \bar B = \left(e^{\Delta A} - 1\right) A^{-1} B, \qquad"
    r" x_t = \bar A \odot x_{t-1} + \bar B\, u_t",
    r"A_n = -\tfrac12 + i \pi n \ (\text{Lin}) \ \text{or}"
    r" -\tfrac12 + i \tfrac{N}{\pi}\left(\tfrac{N}{2n+1} - 1\right)"
    r" \ (\text{Inv}), \qquad \log\Delta \sim U\left[\log \Delta t_{\min}, \log \Delta t_{\max}\right]",
)

#: A and Δ at lr ≤ 0.001, no weight decay (`state-spaces/s4` `example.py:177`, `models/s4/s4d.py:49-59`).
SSM_OPTIMIZER = OwnOptimizer(max_lr=0.001)

PAPER: str = ("Gu, Gupta, Goel & Ré (2022), On the Parameterization and Initialization of Diagonal State "
              "Space Models, NeurIPS 2022")


def imaginary_init(modes: int, init: str) -> Tensor:
    """Im A of S4D-Lin (π n) or S4D-Inv ((N/π)(N/(2n + 1) − 1)), n = 0..N/2 − 1, N = 2·modes."""
    n = torch.arange(modes, dtype=torch.float32)
    if init == "lin":
        return math.pi * n
    state = 2 * modes
    return state / math.pi * (state / (2 * n + 1) - 1)


class S4DLayer(nn.Module):
    """One S4D layer `[B, T, H] -> [B, T, H]` (s4d.py's `S4DKernel` + `S4D` without its activation and output,
    which the shared block adds)."""

    def __init__(self, width: int, state_size: int, dt_min: float, dt_max: float, init: str) -> None:
        super().__init__()
        modes = state_size // 2
        self.log_dt = nn.Parameter(torch.rand(width) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(width, modes, dtype=torch.cfloat)))
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(width, modes)))
        self.A_imag = nn.Parameter(imaginary_init(modes, init).repeat(width, 1))
        for param in (self.log_dt, self.log_A_real, self.A_imag):
            own_optimizer(param, SSM_OPTIMIZER)
        self.D = nn.Parameter(torch.randn(width))

    def discrete(self) -> tuple[Tensor, Tensor]:
        """`(Ā, B̄)`, each complex `[H, N/2]` (ZOH)."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        dtA = A * torch.exp(self.log_dt)[:, None]
        return torch.exp(dtA), (torch.exp(dtA) - 1.0) / A

    def forward(self, u: Tensor) -> Tensor:
        batch, steps, width = u.shape
        A_bar, B_bar = self.discrete()
        b = (u.to(B_bar.dtype)[..., None] * B_bar).reshape(batch, steps, -1)  # [B, T, H·N/2]
        x = report_states(scan(A_bar.reshape(-1), b)).reshape(batch, steps, width, -1)
        return 2.0 * (x * torch.view_as_complex(self.C)).sum(-1).real + self.D * u


class S4D(SSMStack):
    """S4D: encoder, `num_layers` post-norm S4D blocks of width H, N/2 complex modes per channel."""

    name = "s4d"
    citation = PAPER
    equations = EQUATIONS
    norm = "layer"
    prenorm = False
    hparams = (
        sp.hidden_size(128, choices=(64, 128, 256)),
        sp.num_layers(4, high=6),
        sp.choice("state_size", 64, (16, 32, 64, 128), valid=(2, 4096), doc="state size N (N/2 complex modes)"),
        sp.choice("init", "lin", ("lin", "inv"), doc="S4D-Lin or S4D-Inv initialisation of Im A"),
        sp.floating("dt_min", 0.001, 1e-4, 0.01, log=True, valid=(1e-6, 1.0), doc="smallest initial Δ"),
        sp.floating("dt_max", 0.1, 0.01, 1.0, log=True, valid=(1e-6, 10.0), doc="largest initial Δ"),
        sp.dropout(0.1),
        *sp.training_hparams(lr=sp.learning_rate(0.01, 1e-3, 0.05), batch=sp.batch_size(64)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 state_size: int = 64, init: str = "lin", dt_min: float = 0.001, dt_max: float = 0.1) -> None:
        if state_size % 2:
            raise ValueError(f"s4d: state_size must be even (N/2 complex modes), got {state_size}")
        self.state_size, self.init, self.dt_min, self.dt_max = state_size, init, dt_min, dt_max
        super().__init__(input_size, hidden_size, num_layers, dropout)

    def make_layer(self) -> nn.Module:
        return S4DLayer(self.hidden_size, self.state_size, self.dt_min, self.dt_max, self.init)
