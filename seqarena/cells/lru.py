"""LRU: the Linear Recurrent Unit.

Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De (2023), "Resurrecting Recurrent Neural Networks
for Long Sequences", ICML; the layer follows the paper's Appendix A code (`init_lru_parameters`,
`forward_LRU`), the block the LRU code of `jaredbmit/damped-linoss` (`LRUBlock`, from the authors' S5 line).

A complex diagonal linear recurrence with an exponential parameterisation (paper §3, eqs. (6)-(7)):

    h_t = Λ ⊙ h_{t−1} + γ ⊙ (B u_t),       y_t = Re(C h_t) + D ⊙ u_t
    Λ = exp(−exp(ν_log) + i exp(θ_log)),    γ = exp(γ_log),   γ_log initialised to log √(1 − |Λ|²)

with `nu_log`, `theta_log`, `gamma_log` ∈ ℝ^N, B ∈ ℂ^{N×H}, C ∈ ℂ^{H×N}, D ∈ ℝ^H (attributes `B_re`,
`B_im`, `C_re`, `C_im`, `D`). |Λ| = exp(−exp(ν_log)) < 1 for every ν_log: stable by construction.

Ring initialisation (Appendix A): |Λ|² ~ U[r_min², r_max²] (ν_log = log(−½ log(u₁(r_max² − r_min²) + r_min²))),
arg Λ ~ U[0, max_phase] (θ_log = log(max_phase · u₂)); B, C Glorot-like normal (B ~ N(0, 1/(2H)) per
part, C ~ N(0, 1/N) per part), D ~ N(0, 1). Defaults r_min = 0, r_max = 1, max_phase = 6.28: the
Appendix code's signature; the paper's long-range runs use r_min = 0.9, r_max = 0.999 and smaller phases
(the search domain covers both). Block: `seqarena.cells.ssm` (batch norm, LRU, GELU, dropout, GLU,
dropout, residual); runs on the diagonal scan `seqarena.cells.kernels.scan` (`modal_scan`, one mode with
k = γ, the states split into real and imaginary halves between two real matmuls).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqarena.cells import space as sp
from seqarena.cells.kernels.scan import modal_scan
from seqarena.cells.ssm import SSMStack, project_in, read_out, report_split_states

EQUATIONS: tuple[str, ...] = (
    r"h_t = \Lambda \odot h_{t-1} + \gamma \odot \left(B u_t\right), \qquad"
    r" y_t = \operatorname{Re}\left(C h_t\right) + D \odot u_t",
    r"\Lambda = \exp\left(-e^{\nu_{\log}} + i\, e^{\theta_{\log}}\right), \qquad \gamma = e^{\gamma_{\log}}",
    r"\lvert\Lambda\rvert^2 \sim U\left[r_{\min}^2, r_{\max}^2\right],"
    r" \quad \arg\Lambda \sim U\left[0, \theta_{\max}\right],"
    r" \quad \gamma_{\log} = \log\sqrt{1 - \lvert\Lambda\rvert^2} \text{ at initialisation}",
)

PAPER: str = ("Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De (2023), Resurrecting Recurrent Neural "
              "Networks for Long Sequences, ICML 2023")


class LRULayer(nn.Module):
    """One LRU `[B, T, H] -> [B, T, H]` with N complex states (attributes as in the Appendix A code)."""

    def __init__(self, width: int, state_size: int, r_min: float, r_max: float, max_phase: float) -> None:
        super().__init__()
        u1, u2 = torch.rand(state_size), torch.rand(state_size)
        nu_log = torch.log(-0.5 * torch.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = torch.log(max_phase * u2)
        self.nu_log, self.theta_log = nn.Parameter(nu_log), nn.Parameter(theta_log)
        self.B_re = nn.Parameter(torch.randn(state_size, width) / math.sqrt(2 * width))
        self.B_im = nn.Parameter(torch.randn(state_size, width) / math.sqrt(2 * width))
        self.C_re = nn.Parameter(torch.randn(width, state_size) / math.sqrt(state_size))
        self.C_im = nn.Parameter(torch.randn(width, state_size) / math.sqrt(state_size))
        self.D = nn.Parameter(torch.randn(width))
        modulus = torch.exp(-torch.exp(nu_log))
        self.gamma_log = nn.Parameter(torch.log(torch.sqrt(1 - modulus**2)))

    def Lambda(self) -> Tensor:
        """The diagonal Λ = exp(−exp(ν_log) + i exp(θ_log)), complex `[N]`."""
        return torch.exp(torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log)))

    def forward(self, u: Tensor) -> Tensor:
        lam = self.Lambda()
        gamma = torch.complex(torch.exp(self.gamma_log), torch.zeros_like(self.gamma_log))
        h = report_split_states(modal_scan(lam[None], gamma[None], project_in(u, self.B_re, self.B_im)))
        return read_out(h, self.C_re, self.C_im, self.D, u)


class LRU(SSMStack):
    """LRU: encoder, `num_layers` LRU blocks of width H with N complex states each."""

    name = "lru"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(128, choices=(64, 128, 256)),
        sp.num_layers(4, high=6),
        sp.integer("state_size", 256, 16, 512, log=True, valid=(1, 65536), doc="complex states per layer (N)"),
        sp.floating("r_min", 0.0, 0.0, 0.99, valid=(0.0, 1.0), doc="smallest |Λ| at initialisation"),
        sp.floating("r_max", 1.0, 0.9, 1.0, valid=(0.0, 1.0), doc="largest |Λ| at initialisation"),
        sp.floating("max_phase", 6.28, math.pi / 50, 6.28, valid=(0.0, 6.3), doc="largest arg Λ at initialisation"),
        sp.dropout(0.1),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2), batch=sp.batch_size(32)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 state_size: int = 256, r_min: float = 0.0, r_max: float = 1.0, max_phase: float = 6.28) -> None:
        self.state_size, self.r_min, self.r_max, self.max_phase = state_size, r_min, r_max, max_phase
        super().__init__(input_size, hidden_size, num_layers, dropout)

    def make_layer(self) -> nn.Module:
        return LRULayer(self.hidden_size, self.state_size, self.r_min, self.r_max, self.max_phase)
