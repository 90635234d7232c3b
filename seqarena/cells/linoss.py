"""LinOSS: oscillatory state-space models (implicit and implicit-explicit variants).

Rusch & Rus (2025), "Oscillatory State-Space Models", ICLR; official code `tk-rusch/linoss` (JAX,
`models/LinOSS.py`: `LinOSSLayer`, `LinOSSBlock`, `apply_linoss_im`, `apply_linoss_imex`).

P uncoupled forced harmonic oscillators driven by the block input `u_n ∈ ℝ^H` (paper eq. (1)):

    y'' = −A y + B u,      x_out = Re(C y) + D ⊙ u                     A = relu(A_diag) ≥ 0, diagonal

with z = y' and Δt = σ(`dt`) ∈ (0, 1) per oscillator, B ∈ ℂ^{P×H}, C ∈ ℂ^{H×P}, D ∈ ℝ^H. Discretised
(paper eqs. (3)-(5)) as x_n = M x_{n−1} + F (B u_n), x = [z, y], per oscillator:

    IM:    z_n = z_{n−1} + Δt (−A y_n + B u_n),        y_n = y_{n−1} + Δt z_n
           M = [[S, −Δt A S], [Δt S, S]],   F = [Δt S, Δt² S],        S = (1 + Δt² A)^{−1}
    IMEX:  z_n = z_{n−1} + Δt (−A y_{n−1} + B u_n),    y_n = y_{n−1} + Δt z_n
           M = [[1, −Δt A], [Δt, 1 − Δt² A]],   F = [Δt, Δt²]

(the code's M_11 = 1 − Δt² A S equals S). The authors scan the 2×2 blocks; seqarena runs the same
recurrence on the diagonal scan by diagonalising each block (`oscillator_modes`): with eigenvalues
λ± = τ/2 ± d of M (τ its trace, d = √(τ²/4 − det M)), the modes u±_n = λ± u±_{n−1} + k± (B u_n) with
k± = ±(m₂₁ f₁ − (λ∓ − m₂₂) f₂)/(2d) give y_n = u+_n + u−_n exactly (`modal_scan`, M = 2: both modes, the
products with k± and their sum in one fused pass). A block whose eigenvalues coincide
(d = 0, e.g. A = 0, where M is a Jordan block) is not diagonalisable; there |d| is held at `MIN_SPLIT`
(1e-3), which moves the eigenvalues by at most that much.

Initialisation (code): A_diag ~ U[0, 1), `dt` ~ U[0, 1) (then Δt = σ(dt)), B, C uniform on ±1/√H and
±1/√P (real and imaginary parts), D ~ N(0, 1). Block: `seqarena.cells.ssm` (batch norm, LinOSS, GELU,
dropout, GLU, dropout, residual). Parameters per block: P(2 + 4H) + H + 2H(H + 1).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.base import active_probe
from seqarena.cells.kernels.scan import join_complex, modal_scan, scan, split_complex
from seqarena.cells.ssm import SSMStack, complex_uniform, project_in, read_out, report_states

#: Below this, the half-distance |d| of a block's eigenvalues is held at it (module docstring).
MIN_SPLIT = 1e-3

EQUATIONS: tuple[str, ...] = (
    r"y''(t) = -A\, y(t) + B\, u(t), \qquad x(t) = \operatorname{Re}\left(C\, y(t)\right) + D \odot u(t),"
    r" \qquad A = \operatorname{relu}(\hat A) \ge 0",
    r"\begin{aligned}"
    r"\text{IM:}\quad z_n &= z_{n-1} + \Delta t\left(-A\, y_n + B u_n\right), &"
    r" y_n &= y_{n-1} + \Delta t\, z_n \\"
    r"\text{IMEX:}\quad z_n &= z_{n-1} + \Delta t\left(-A\, y_{n-1} + B u_n\right), &"
    r" y_n &= y_{n-1} + \Delta t\, z_n"
    r"\end{aligned}",
    r"x \leftarrow x + \mathrm{Drop}\left(\mathrm{GLU}\left(\mathrm{Drop}\left(\mathrm{GELU}\left("
    r"\mathrm{LinOSS}\left(\mathrm{BN}(x)\right)\right)\right)\right)\right)",
)

PAPER: str = "Rusch & Rus (2025), Oscillatory State-Space Models, ICLR 2025"


def oscillator_modes(m11: Tensor, m12: Tensor, m21: Tensor, m22: Tensor, f1: Tensor,
                     f2: Tensor) -> tuple[Tensor, Tensor]:
    """The diagonal form of `x_n = M x_{n−1} + [f₁, f₂] v_n`, read out at y (x = [z, y]), per oscillator.

    Returns `(λ, k)`, each complex `[2P]` (the + modes, then the − modes): with `u_n = λ ⊙ u_{n−1} + k ⊙ [v_n, v_n]`
    from zero, `y_n = u_n[:P] + u_n[P:]` (module docstring; |d| held at `MIN_SPLIT`)."""
    half_trace = (m11 + m22) / 2
    disc = half_trace**2 - (m11 * m22 - m12 * m21)
    floor = MIN_SPLIT**2
    root = torch.sqrt(torch.clamp(disc.abs(), min=floor))  # real part when disc > floor, else imaginary part
    d = torch.complex(torch.where(disc > floor, root, 0.0), torch.where(disc > floor, 0.0, root))
    lam_plus, lam_minus = half_trace + d, half_trace - d
    k_plus = (m21 * f1 - (lam_minus - m22) * f2) / (2 * d)
    k_minus = (-m21 * f1 + (lam_plus - m22) * f2) / (2 * d)
    return torch.cat((lam_plus, lam_minus)), torch.cat((k_plus, k_minus))


def run_oscillators(lam: Tensor, k: Tensor, bu: Tensor) -> Tensor:
    """`y [B, T, 2P]` of the oscillators in modal form driven by `bu = B u`, both split complex (`project_in`):
    the two modes of each oscillator on `modal_scan`. Under `probing()` the modes themselves, `[B, T, 2P]`
    complex, are run on `scan` and reported (`report_states`)."""
    half = bu.shape[-1] // 2
    if active_probe() is None:
        return modal_scan(lam.reshape(2, half), k.reshape(2, half), bu)
    drive = join_complex(bu)
    modes = report_states(scan(lam, k * torch.cat((drive, drive), dim=-1)))
    return split_complex(modes[..., :half] + modes[..., half:])


class LinOSSLayer(nn.Module):
    """One LinOSS layer `[B, T, H] -> [B, T, H]`; attributes as in the code (`A_diag`, `dt`, `B`, `C`, `D`)."""

    def __init__(self, width: int, state_size: int, variant: str) -> None:
        super().__init__()
        self.variant = variant
        self.A_diag = nn.Parameter(torch.rand(state_size))
        self.dt = nn.Parameter(torch.rand(state_size))
        self.B = complex_uniform(state_size, width, 1.0 / math.sqrt(width))
        self.C = complex_uniform(width, state_size, 1.0 / math.sqrt(state_size))
        self.D = nn.Parameter(torch.randn(width))

    def transition(self) -> tuple[Tensor, ...]:
        """`(m₁₁, m₁₂, m₂₁, m₂₂, f₁, f₂)` per oscillator, each `[P]` (module docstring)."""
        A, dt = torch.relu(self.A_diag), torch.sigmoid(self.dt)
        if self.variant == "im":
            S = 1.0 / (1.0 + dt**2 * A)
            return S, -dt * A * S, dt * S, S, dt * S, dt**2 * S
        one = torch.ones_like(A)
        return one, -dt * A, dt, 1.0 - dt**2 * A, dt, dt**2

    def forward(self, u: Tensor) -> Tensor:
        lam, k = oscillator_modes(*self.transition())
        y = run_oscillators(lam, k, project_in(u, self.B[..., 0], self.B[..., 1]))
        return read_out(y, self.C[..., 0], self.C[..., 1], self.D, u)


class LinOSS(SSMStack):
    """LinOSS: encoder, `num_layers` LinOSS blocks of width H with P oscillators each."""

    name = "linoss"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(64, choices=(16, 64, 128)),
        sp.num_layers(2, high=6),
        sp.integer("state_size", 64, 16, 256, log=True, valid=(1, 65536), doc="oscillators per layer (P)"),
        sp.choice("variant", "im", ("im", "imex"), doc="discretisation: implicit (IM) or implicit-explicit (IMEX)"),
        sp.dropout(0.1),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-5, 1e-2), batch=sp.batch_size(32)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 state_size: int = 64, variant: str = "im") -> None:
        self.state_size, self.variant = state_size, variant
        super().__init__(input_size, hidden_size, num_layers, dropout)

    def make_layer(self) -> nn.Module:
        return LinOSSLayer(self.hidden_size, self.state_size, self.variant)
