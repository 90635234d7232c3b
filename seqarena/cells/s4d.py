"""S4D: diagonal state-space models, S4D-Lin and S4D-Inv initialisations, zero-order hold.

Gu, Gupta, Goel & Ré (2022), "On the Parameterization and Initialization of Diagonal State Space
Models", NeurIPS; official code `state-spaces/s4` (`models/s4/s4d.py`, the standalone S4D, and
`example.py`, its block).

Per channel h = 1..H, N/2 complex modes (the conjugate half is implicit, hence the 2 Re), eq. (4)-(5):

    x'(t) = A x(t) + B u(t),   y(t) = 2 Re(C x(t)) + D u(t),      A = −exp(`log_A_real`) + i `A_imag`, B = 1
    ZOH with step Δ = exp(`log_dt`):   Ā = exp(Δ A),   B̄ = (exp(Δ A) − 1)/A

Two views of the same map (`mode`; the paper's §3.1: a diagonal SSM's kernel is a Vandermonde matrix product,
K = (B̄ᵀ ∘ C) · V_L(Ā)):

* recurrent:  x_t = Ā ⊙ x_{t−1} + B̄ u_t,   y_t = 2 Re(Σ_n C_n x_{t,n}) + D u_t,  run on the diagonal scan
  (`seqarena.cells.kernels.scan`); it holds the states x, `[B, T, H·N/2]` complex, and is the view the trace
  page (`probing()`) reads, whatever `mode` says.
* convolution (`mode="conv"`, the default, as the authors train):  y = K ∗ u + D u  with the kernel
  K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l), l = 0..T−1, a Vandermonde product over the N/2 modes (`s4d.py:41-45`
  `S4DKernel.forward`: `C * (exp(dtA) − 1)/A` times `exp(dtA · arange(L))`), and the causal convolution
  by FFTs of length 2T (`s4d.py:96-102`: `irfft(rfft(u, 2L) · rfft(K, 2L), 2L)[:L] + D u`). Nothing of size
  `[B, T, H·N/2]` is formed: the kernel's largest factor is `[H, N/2, ⌈√T⌉]` (`S4DLayer.kernel`), the spectra
  those of chunks of the batch's rows (`CONV_CHUNK`). The FFTs are causal to rounding only (a later input
  moves an earlier output by ~1e-7 of its size in float32; `SequenceModel.causal_to_the_bit`).

Initialisation (s4d.py): log Δ ~ U[log dt_min, log dt_max] per channel; Re A = −½; Im A = π n
(S4D-Lin) or (N/π)(N/(2n + 1) − 1) (S4D-Inv, `init="inv"`), n = 0..N/2 − 1; C ~ CN(0, 1); D ~ N(0, 1).
Block (`example.py`, post-norm): x ← LayerNorm(x + Dropout(GLU(Dropout(GELU(S4D(x)))))), the GLU being
s4d.py's output `Conv1d(H, 2H, 1)` + GLU; both dropouts tied over time, one mask per sequence and channel
(s4d.py:79 `DropoutNd`, `tie=True`: `src/models/nn/dropout.py:66-89`; `example.py:43-44` `nn.Dropout1d`).
Optimiser (the code's): A and Δ (`log_A_real`, `A_imag`, `log_dt`)
at lr min(0.001, lr) without weight decay (`models/s4/s4d.py:49-59` `register`, `example.py:177`,
`example.py:247-276` `setup_optimizer`), the rest at the trial's lr and weight decay (the code: AdamW, lr
0.01, wd 0.01); marked with `seqarena.cells.base.OwnOptimizer`, grouped by the training loop's optimiser.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from seqarena.cells import space as sp
from seqarena.cells.base import OwnOptimizer, active_probe, own_optimizer
from seqarena.cells.kernels.scan import scan
from seqarena.cells.ssm import SSMStack, report_states

EQUATIONS: tuple[str, ...] = (
    r"x'(t) = A\, x(t) + B\, u(t), \qquad y(t) = 2 \operatorname{Re}\left(C\, x(t)\right) + D\, u(t)",
    r"\bar A = e^{\Delta A}, \quad \bar B = \left(e^{\Delta A} - 1\right) A^{-1} B, \qquad"
    r" x_t = \bar A \odot x_{t-1} + \bar B\, u_t",
    r"y = K * u + D\, u, \qquad K_l = 2 \operatorname{Re} \sum_n C_n \bar B_n \bar A_n^{\,l}, \quad l = 0, \dots, T - 1"
    r" \quad (\text{by FFTs of length } 2T)",
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


#: The two views of S4D (module docstring): "conv" (the authors' training path) or "recurrent" (the scan).
MODES = ("conv", "recurrent")


#: `CausalConv` transforms at most this many padded input entries (`[rows, H, 2T]`, 4 MiB in float32) at a time:
#: the batch's rows go through in chunks, so that no spectrum of the whole batch is held at once (a 1 000-sequence
#: evaluation batch at T = 500, H = 128 would take 1 GB a spectrum). Measured at B = 64, H = 128, T = 1000, one
#: thread: forward + backward 150 ms of CPU in chunks, 175 ms whole (with `heap.keep_freed_blocks`; before it,
#: each fresh 65 MB spectrum cost ~30 ms of page faults and chunks made the forward 3× cheaper).
CONV_CHUNK = 1 << 20


def row_chunks(batch: int, width: int, steps: int) -> list[slice]:
    """Slices of the batch's rows of at most `CONV_CHUNK` padded entries each (one row at least)."""
    rows = max(1, CONV_CHUNK // (width * 2 * steps))
    return [slice(start, min(start + rows, batch)) for start in range(0, batch, rows)]


class CausalConv(torch.autograd.Function):
    """`y_t = Σ_{l ≤ t} K_l u_{t−l}` per channel, `u [B, T, H]`, `K [H, T]`, by FFTs of length 2T (no wrap-around;
    `s4d.py:96-99`: `irfft(rfft(u, 2L) · rfft(K, 2L), 2L)[:L]`) along the time axis, in chunks of the batch
    (`CONV_CHUNK`), with the adjoint written out: for `g = ∂L/∂y` padded to 2T and `Ĝ = rfft(g)`,
    ∂L/∂u = irfft(Ĝ · conj(K̂))[:T] (a correlation with K) and ∂L/∂K = irfft(Σ_b Ĝ · conj(Û))[:T]."""

    @staticmethod
    def forward(ctx: Any, u: Tensor, kernel: Tensor) -> Tensor:
        batch, steps, width = u.shape
        k_f = torch.fft.rfft(kernel, n=2 * steps)  # [H, T + 1]
        y, spectra = torch.empty_like(u), []
        for rows in row_chunks(batch, width, steps):
            u_f = torch.fft.rfft(u[rows].transpose(1, 2), n=2 * steps)  # [rows, H, T + 1]
            y[rows] = torch.fft.irfft(u_f * k_f, n=2 * steps)[..., :steps].transpose(1, 2)
            spectra.append(u_f)
        ctx.save_for_backward(k_f, *spectra)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor | None, Tensor | None]:
        k_f, *spectra = ctx.saved_tensors
        batch, steps, width = grad_y.shape
        grad_u = torch.empty_like(grad_y) if ctx.needs_input_grad[0] else None
        grad_k_f = torch.zeros_like(k_f)
        for rows, u_f in zip(row_chunks(batch, width, steps), spectra, strict=True):
            g_f = torch.fft.rfft(grad_y[rows].transpose(1, 2), n=2 * steps)
            grad_k_f += (g_f * u_f.conj()).sum(0)
            if grad_u is not None:
                grad_u[rows] = torch.fft.irfft(g_f.mul_(k_f.conj()), n=2 * steps)[..., :steps].transpose(1, 2)
        grad_k = torch.fft.irfft(grad_k_f, n=2 * steps)[..., :steps] if ctx.needs_input_grad[1] else None
        return grad_u, grad_k


def powers(dtA: Tensor, exponents: Tensor) -> tuple[Tensor, Tensor]:
    """Real and imaginary parts of exp(k Δ A) for each k of `exponents`: `[H, N/2, len(exponents)]` each, in real
    arithmetic, e^{k Re ΔA}(cos, sin)(k Im ΔA) (torch's complex `exp` and its backward cost the CPU about four
    times as much)."""
    decay, angle = torch.exp(dtA.real[..., None] * exponents), dtA.imag[..., None] * exponents
    return decay * torch.cos(angle), decay * torch.sin(angle)


class S4DLayer(nn.Module):
    """One S4D layer `[B, T, H] -> [B, T, H]` (s4d.py's `S4DKernel` + `S4D` without its activation and output,
    which the shared block adds), by the convolution or the recurrent view (`mode`; module docstring)."""

    def __init__(self, width: int, state_size: int, dt_min: float, dt_max: float, init: str,
                 mode: str = "conv") -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"s4d: mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.mode = mode
        modes = state_size // 2
        self.log_dt = nn.Parameter(torch.rand(width) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        self.C = nn.Parameter(torch.view_as_real(torch.randn(width, modes, dtype=torch.cfloat)))
        self.log_A_real = nn.Parameter(torch.log(0.5 * torch.ones(width, modes)))
        self.A_imag = nn.Parameter(imaginary_init(modes, init).repeat(width, 1))
        for param in (self.log_dt, self.log_A_real, self.A_imag):
            own_optimizer(param, SSM_OPTIMIZER)
        self.D = nn.Parameter(torch.randn(width))

    def exponents(self) -> tuple[Tensor, Tensor]:
        """`(A, Δ A)`, each complex `[H, N/2]`: A = −exp(log_A_real) + i A_imag, Δ = exp(log_dt)."""
        A = torch.complex(-torch.exp(self.log_A_real), self.A_imag)
        return A, A * torch.exp(self.log_dt)[:, None]

    def discrete(self) -> tuple[Tensor, Tensor]:
        """`(Ā, B̄)`, each complex `[H, N/2]` (ZOH)."""
        A, dtA = self.exponents()
        return torch.exp(dtA), (torch.exp(dtA) - 1.0) / A

    def kernel(self, steps: int) -> Tensor:
        """The convolution kernel `K [H, steps]`, K_l = 2 Re(Σ_n C_n B̄_n Ā_n^l), Ā_n^l = exp(l Δ A_n): the
        Vandermonde product of `s4d.py:41-45`, with each power l = q m + r (m = ⌈√T⌉) split as
        Ā^l = exp(q m Δ A) exp(r Δ A), so that the sum over n is one `[⌈T/m⌉, N/2] @ [N/2, m]` product per
        channel and nothing of size `[H, N/2, T]` is formed (s4d.py forms exp(ΔA · arange(L)) whole)."""
        A, dtA = self.exponents()
        weights = torch.view_as_complex(self.C) * (torch.exp(dtA) - 1.0) / A  # C B̄, [H, N/2]
        inner = math.isqrt(max(steps - 1, 0)) + 1  # m = ⌈√T⌉ ≥ ⌈T/m⌉
        near = powers(dtA, torch.arange(inner, device=dtA.device, dtype=dtA.real.dtype))  # Ā^r, [H, N/2, m]
        far_re, far_im = powers(dtA, torch.arange(-(-steps // inner), device=dtA.device, dtype=dtA.real.dtype) * inner)
        w_re, w_im = weights.real[..., None], weights.imag[..., None]
        far = torch.cat((w_re * far_re - w_im * far_im, -(w_re * far_im + w_im * far_re)), dim=1)  # C B̄ Ā^{qm}
        return 2.0 * (far.transpose(1, 2) @ torch.cat(near, dim=1)).reshape(dtA.shape[0], -1)[:, :steps]

    def forward(self, u: Tensor) -> Tensor:
        if self.mode == "recurrent" or active_probe() is not None:
            return self.recurrent(u)
        return torch.addcmul(CausalConv.apply(u, self.kernel(u.shape[1]).to(u.dtype)), self.D, u)

    def recurrent(self, u: Tensor) -> Tensor:
        """The recurrent view on the scan: `x_t = Ā x_{t−1} + B̄ u_t`, `y_t = 2 Re(C x_t) + D u_t` (reports `x`
        under `probing()`)."""
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
    tied_dropout = True
    hparams = (
        sp.hidden_size(128, choices=(64, 128, 256)),
        sp.num_layers(4, high=6),
        sp.choice("state_size", 64, (16, 32, 64, 128), valid=(2, 4096), doc="state size N (N/2 complex modes)"),
        sp.choice("init", "lin", ("lin", "inv"), doc="S4D-Lin or S4D-Inv initialisation of Im A"),
        sp.floating("dt_min", 0.001, 1e-4, 0.01, log=True, valid=(1e-6, 1.0), doc="smallest initial Δ"),
        sp.floating("dt_max", 0.1, 0.01, 1.0, log=True, valid=(1e-6, 10.0), doc="largest initial Δ"),
        sp.choice("mode", "conv", MODES, searched=False,
                  doc="conv: the kernel K and an FFT convolution, as the authors train (s4d.py:96-102); recurrent: "
                      "the diagonal scan (the same map; it holds [B, T, H·N/2] complex states)"),
        sp.dropout(0.1),
        *sp.training_hparams(lr=sp.learning_rate(0.01, 1e-3, 0.05), batch=sp.batch_size(64)),
    )

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.1,
                 state_size: int = 64, init: str = "lin", dt_min: float = 0.001, dt_max: float = 0.1,
                 mode: str = "conv") -> None:
        if state_size % 2:
            raise ValueError(f"s4d: state_size must be even (N/2 complex modes), got {state_size}")
        self.state_size, self.init, self.dt_min, self.dt_max, self.mode = state_size, init, dt_min, dt_max, mode
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.causal_to_the_bit = mode == "recurrent"

    def note_backend(self, x: Tensor) -> None:
        """"fft-conv" in the convolution view, else the scan's source (`ScanModel.note_backend`)."""
        if self.mode == "conv" and active_probe() is None:
            self.implementation = "fft-conv"
        else:
            super().note_backend(x)

    def make_layer(self) -> nn.Module:
        return S4DLayer(self.hidden_size, self.state_size, self.dt_min, self.dt_max, self.init, self.mode)
