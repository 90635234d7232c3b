"""D-LinOSS: oscillatory state-space models with learned damping.

Boyer, Rusch & Rus (2025), "Learning to Dissipate Energy in Oscillatory State-Space Models",
arXiv:2505.12171; official code `jaredbmit/damped-linoss` (JAX, `models/LinOSS.py`: `DampedIMEX1Layer`,
the paper's D-LinOSS).

P uncoupled damped harmonic oscillators (paper eq. (1)):

    y'' = −A y − G y' + B u,      x_out = Re(C y) + D ⊙ u,     A, G ≥ 0 diagonal

discretised with the damping implicit (paper eq. (3)), z = y', S = 1 + Δt G:

    z_n = z_{n−1} + Δt (−A y_{n−1} − G z_n + B u_n),      y_n = y_{n−1} + Δt z_n
    M = [[1/S, −Δt A/S], [Δt/S, 1 − Δt² A/S]],   F = [Δt/S, Δt²/S]

so det M = 1/S: |λ₁ λ₂| = 1/(1 + Δt G) ≤ 1, the learned energy dissipation. Stability
parameterisation (code `_soft_project_AGdt`): Δt = σ(`dt`), G = relu(`G_diag`), and A is clipped
softly into [A_low, A_high] = [(2 + Δt G ∓ 2√(1 + Δt G))/Δt²], where M's eigenvalues are a complex pair
of modulus 1/√S. Run on the diagonal scan through the modal form of `seqarena.cells.linoss`
(`oscillator_modes`; at the interval's ends the pair coincides and |d| is held at `MIN_SPLIT`).

Initialisation "ring" (code `_ring_init_AGdt`, solved here in closed form): `dt` ~ N(0, 0.5²); the
eigenvalues λ = r e^{±iθ} with r² ~ U[r_min², r_max²], θ ~ U[0, θ_max]; then det M = r² and
tr M = 2 r cos θ give G = (1/r² − 1)/Δt and A = (1 + S − 2 r cos θ S)/Δt². B, C, D as in LinOSS.
Defaults: the authors' sweep (`scripts/create_experiment.py`): r ∈ [0.9, 1], θ_max = π, dropout 0.1,
batch 32, lr 1e-3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.linoss import oscillator_modes, run_oscillators
from seqarena.cells.ssm import SSMStack, complex_uniform, project_in, read_out

EQUATIONS: tuple[str, ...] = (
    r"y''(t) = -A\, y(t) - G\, y'(t) + B\, u(t), \qquad x(t) = \operatorname{Re}\left(C\, y(t)\right) + D \odot u(t)",
    r"\begin{aligned}"
    r"z_n &= z_{n-1} + \Delta t\left(-A\, y_{n-1} - G\, z_n + B u_n\right) \\"
    r"y_n &= y_{n-1} + \Delta t\, z_n, \qquad \lvert\lambda_1 \lambda_2\rvert = \left(1 + \Delta t\, G\right)^{-1}"
    r"\end{aligned}",
    r"\lambda = r e^{\pm i\theta}, \quad r^2 \sim U\left[r_{\min}^2, r_{\max}^2\right], \quad"
    r" \theta \sim U\left[0, \theta_{\max}\right] \text{ at initialisation}",
)

PAPER: str = ("Boyer, Rusch & Rus (2025), Learning to Dissipate Energy in Oscillatory State-Space Models, "
              "arXiv:2505.12171")


def ring_init(size: int, r_min: float, r_max: float, theta_max: float,
              dt_std: float = 0.5) -> tuple[Tensor, Tensor, Tensor]:
    """`(A_diag, G_diag, dt)` whose blocks have eigenvalues r e^{±iθ} sampled on the ring (module docstring)."""
    dt_raw = torch.randn(size) * dt_std
    dt = torch.sigmoid(dt_raw)
    r = torch.sqrt(torch.rand(size) * (r_max**2 - r_min**2) + r_min**2)
    theta = torch.rand(size) * theta_max
    S = 1.0 / r**2
    G = (S - 1.0) / dt
    A = (1.0 + S - 2.0 * r * torch.cos(theta) * S) / dt**2
    return A, G, dt_raw


class DLinOSSLayer(nn.Module):
    """One D-LinOSS layer `[B, T, H] -> [B, T, H]`; attributes as in the code (`A_diag`, `G_diag`, `dt`, `B`,
    `C`, `D`)."""

    def __init__(self, width: int, state_size: int, r_min: float, r_max: float, theta_max: float) -> None:
        super().__init__()
        A, G, dt = ring_init(state_size, r_min, r_max, theta_max)
        self.A_diag, self.G_diag, self.dt = nn.Parameter(A), nn.Parameter(G), nn.Parameter(dt)
        self.B = complex_uniform(state_size, width, 1.0 / math.sqrt(width))
        self.C = complex_uniform(width, state_size, 1.0 / math.sqrt(state_size))
        self.D = nn.Parameter(torch.randn(width))

    def projected(self) -> tuple[Tensor, Tensor, Tensor]:
        """`(A, G, Δt)` after the soft projection onto the stable region (code `_soft_project_AGdt`)."""
        dt = torch.sigmoid(self.dt)
        G = torch.relu(self.G_diag)
        root, dt2 = 2.0 * torch.sqrt(1.0 + dt * G), torch.clamp(dt**2, min=1e-6)
        low, high = (2.0 + dt * G - root) / dt2, (2.0 + dt * G + root) / dt2
        A = low + torch.relu(self.A_diag - low) - torch.relu(self.A_diag - high)
        return A, G, dt

    def transition(self) -> tuple[Tensor, ...]:
        """`(m₁₁, m₁₂, m₂₁, m₂₂, f₁, f₂)` per oscillator, each `[P]`."""
        A, G, dt = self.projected()
        S = 1.0 + dt * G
        return 1.0 / S, -dt * A / S, dt / S, 1.0 - dt**2 * A / S, dt / S, dt**2 / S

    def forward(self, u: Tensor) -> Tensor:
        lam, k = oscillator_modes(*self.transition())
        y = run_oscillators(lam, k, project_in(u, self.B[..., 0], self.B[..., 1]))
        return read_out(y, self.C[..., 0], self.C[..., 1], self.D, u)


class DLinOSS(SSMStack):
    """D-LinOSS: encoder, `num_layers` D-LinOSS blocks of width H with P damped oscillators each."""

    name = "dlinoss"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(128, choices=(64, 128, 256)),
        sp.num_layers(4, high=6),
        sp.integer("state_size", 128, 16, 256, log=True, valid=(1, 65536), doc="oscillators per layer (P)"),
        sp.floating("r_min", 0.9, 0.5, 0.99, valid=(0.0, 1.0), doc="smallest eigenvalue modulus at initialisation"),
        sp.floating("r_max", 1.0, 0.99, 1.0, valid=(0.0, 1.0), doc="largest eigenvalue modulus at initialisation"),
        sp.floating("theta_max", math.pi, math.pi / 12, math.pi, valid=(0.0, math.pi),
                    doc="largest eigenvalue phase at initialisation"),
        sp.dropout(0.1),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 5e-5, 5e-3), batch=sp.batch_size(32)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 state_size: int = 128, r_min: float = 0.9, r_max: float = 1.0, theta_max: float = math.pi) -> None:
        self.state_size, self.r_min, self.r_max, self.theta_max = state_size, r_min, r_max, theta_max
        super().__init__(input_size, hidden_size, num_layers, dropout)

    def make_layer(self) -> nn.Module:
        return DLinOSSLayer(self.hidden_size, self.state_size, self.r_min, self.r_max, self.theta_max)
