"""Mamba: a selective state-space model (S6) in its gated block with a short causal convolution.

Gu & Dao (2023), "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", arXiv:2312.00752;
official code `state-spaces/mamba` (`mamba_simple.py` `Mamba`, `selective_scan_interface.py`
`selective_scan_ref`, `mixer_seq_simple.py` `Block` / `MixerModel`). A small faithful version, not the CUDA package:
plain torch around the selective scan of `seqarena.cells.kernels.scan` (`gated_selective_scan`), which on the
CPU is a fused C++ kernel in the manner of the official `selective_scan` CUDA kernel with its `delta_softplus`,
`D` and `z` options (the states `h` stay in a row-local buffer, the backward recomputes them from checkpoints
every 32 steps; softplus(Δ), the read-out, the D skip and the SiLU(z) gate are computed in the same pass;
`implementation` "selective-scan-cpp"), with the causal convolution and its SiLU fused into one more C++ pass
(`causal_conv_silu`) and the RMSNorms into one pass each way (`rms_norm`), and elsewhere materialises `h` on
the diagonal scan.

Mixer on `u [B, T, H]`, inner width E = `expand`·H, N = `state_size` states per inner channel,
R = ⌈H/16⌉ (Algorithm 2 and the code):

    [x, z] = W_in u                                   (`in_proj`, no bias)
    x = SiLU(causal depthwise Conv1d_k(x))            (`conv1d`, kernel k = `conv_kernel`)
    [δ, B, C] = W_x x,   Δ = softplus(W_Δ δ + b_Δ)     (`x_proj` R + 2N outputs, `dt_proj` R → E)
    h_t = exp(Δ_t A) ⊙ h_{t−1} + (Δ_t B_t) x_t         per inner channel, A = −exp(`A_log`) ∈ ℝ^{E×N}
    y_t = C_t h_t + D ⊙ x_t,   out = W_out (y ⊙ SiLU(z))  (`out_proj`, no bias)

Model (`MixerModel`): encoder Linear(d, H), then `num_layers` pre-norm residual blocks
u ← u + Mixer(RMSNorm(u)), then a final RMSNorm. Initialisation (code): A_log = log(1..N) per channel
(S4D-Real), D = 1, `dt_proj.weight` ~ U(±R^{-1/2}), `dt_proj.bias` = softplus⁻¹(Δ₀) with
Δ₀ ~ logU[dt_min, dt_max] floored at 1e-4; other layers torch's defaults. Defaults N = 16, k = 4,
E = 2H, Δ ∈ [0.001, 0.1] (the code's). The state `h` is `[B, T, E·N]`; only the materialised path
(GPU, trace page) holds it, and its memory grows with E·N.

Cost against nn.LSTM on the CPU (issue 21's target; B = 64, H = 128, T = 1000, one layer, these defaults):
the faithful block cannot beat nn.LSTM there, whatever the fusion. Per token and direction, Mamba's
products are `in_proj` 128·512 + `x_proj` 256·40 + `dt_proj` 8·256 + `out_proj` 256·128 + the encoder 2·128
= 110,848 multiply-adds, 1.67× nn.LSTM(2, 128)'s 4·128·(2 + 128) = 66,560; a training step does each three
times (forward, input gradient, weight gradient): 21.3 G against 12.8 G multiply-adds at 64,000 tokens.
`benchmarks/ssm_scan.py models` times these products alone (row "mamba: its matrix products alone": the
model's linear maps as it computes them, forward and backward, nothing else). Measured on the 2-core
machine with one thread (CPU seconds, min of 4, 2026-12-05): nn.LSTM's whole step 0.36 s, Mamba's products
alone 0.60 s, its fused scan 0.41 s (forward 0.10, backward 0.31: E·N = 4,096 state updates per token, each
with an exp, once forward and once more in the backward's recomputation, 0.5 G exps per step), Mamba's
whole step 1.09 s. nn.LSTM gains nothing from a second thread (0.37 s wall on two quiet cores), while
Mamba's products and scan, even split perfectly over both cores, need (0.60 + 0.41) / 2 = 0.5 s. The fused
CPU path (`gated_selective_scan`, `causal_conv_silu`, `rms_norm`, `narrow_linear`, `in_proj_halves`) is as
far as this goes without changing the model; figures in benchmarks/RESULTS.md, "State-space models and
their scan".
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from seqarena.cells import space as sp
from seqarena.cells.base import active_probe
from seqarena.cells.kernels import cpp_build
from seqarena.cells.kernels import scan as scan_kernel
from seqarena.cells.kernels.scan import gated_selective_scan, selective_states
from seqarena.cells.ssm import ScanModel, report_states

EQUATIONS: tuple[str, ...] = (
    r"\Delta_t = \operatorname{softplus}\left(W_\Delta W_\delta x_t + b_\Delta\right), \quad"
    r" B_t = W_B x_t, \quad C_t = W_C x_t, \qquad \Delta_0 \sim \log U\left[\Delta t_{\min}, \Delta t_{\max}\right]",
    r"h_t = e^{\Delta_t A} \odot h_{t-1} + \Delta_t B_t\, x_t, \qquad y_t = C_t h_t + D \odot x_t",
    r"\mathrm{out}_t = W_{\mathrm{out}}\left(y_t \odot \operatorname{SiLU}(z_t)\right), \quad"
    r" x = \operatorname{SiLU}\left(\mathrm{Conv1d}_k(W_x u)\right), \quad z = W_z u",
)

PAPER: str = "Gu & Dao (2023), Mamba: Linear-Time Sequence Modeling with Selective State Spaces, arXiv:2312.00752"


def causal_depthwise_conv(x: Tensor, conv: nn.Conv1d) -> Tensor:
    """`conv` (depthwise, kernel k, padding k − 1) on `x [B, T, E]`, cut to its first T steps:
    out_t = bias + Σ_j w_j ⊙ x_{t−k+1+j} (zeros before the start), as k shifted products in `x`'s own layout.

    The same map as `conv(x.transpose(1, 2))[..., :T].transpose(1, 2)`; oneDNN's depthwise convolution
    backward took a quarter of Mamba's CPU training step at T = 1000, these products a small part of it."""
    steps, width = x.shape[1], conv.kernel_size[0]
    padded = nn.functional.pad(x, (0, 0, width - 1, 0))
    weight = conv.weight[:, 0, :]  # [E, k]
    out = padded[:, :steps] * weight[:, 0]
    for j in range(1, width):
        out = out + padded[:, j : j + steps] * weight[:, j]
    return out + conv.bias if conv.bias is not None else out


class ConvSilu(torch.autograd.Function):
    """`(u, weight [E, k], bias [E]) -> SiLU(causal depthwise conv)` by `cpu.cpp`'s fused `conv_silu`: one pass
    forward, one backward (recomputing the pre-activation); u may be a strided slice (in_proj's first half)."""

    @staticmethod
    def forward(ctx: FunctionCtx, u: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        u = scan_kernel.channels_contiguous(u)
        wt, bias = weight.t().contiguous(), bias.contiguous()
        ctx.save_for_backward(u, wt, bias)
        return cpp_build.require("scan").conv_silu(u, wt, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        u, wt, bias = ctx.saved_tensors
        du, dw, db = cpp_build.require("scan").conv_silu_backward(u, wt, bias, grad_x.contiguous())
        return du, dw.sum(0).t(), db.sum(0)


def causal_conv_silu(u: Tensor, conv: nn.Conv1d) -> Tensor:
    """`SiLU(causal_depthwise_conv(u, conv))` on `u [B, T, E]`: on the CPU (where the C++ scan source builds,
    `scan.backend_for`) one fused C++ pass each way instead of k shifted products, their sums, the bias and
    the SiLU as separate passes over [B, T, E] (and as many in autograd's backward); elsewhere those products."""
    if scan_kernel.backend_for(u) == "cpp":
        bias = conv.bias if conv.bias is not None else u.new_zeros(u.shape[-1])
        return ConvSilu.apply(u, conv.weight[:, 0, :], bias)
    return nn.functional.silu(causal_depthwise_conv(u, conv))


class NarrowLinear(torch.autograd.Function):
    """`linear(x, weight, bias)` for a layer with few inputs (`weight [out, in]`, in = 2 or R = 8 here), whose
    weight gradient is the [in, out] product xᵀ g transposed instead of torch's gᵀ x: the same sums over the
    B·T rows, but the CPU's BLAS is slow on the [out, B·T] × [B·T, in] form with a tiny in: at B·T = 64,000
    one thread took 155 ms for `dt_proj`'s (8 → 256) and 58 ms for the encoder's (2 → 128) in that form,
    17 and 20 ms in this one."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.has_bias = bias is not None
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
        x, weight = ctx.saved_tensors
        rows = grad.reshape(-1, grad.shape[-1])
        dx = grad.matmul(weight) if ctx.needs_input_grad[0] else None
        dw = x.reshape(-1, x.shape[-1]).t().mm(rows).t().contiguous() if ctx.needs_input_grad[1] else None
        db = rows.sum(0) if ctx.has_bias and ctx.needs_input_grad[2] else None
        return dx, dw, db


def narrow_linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """`layer(x)` for Mamba's layers with few inputs (the encoder, `dt_proj`): by `NarrowLinear` on the CPU."""
    return NarrowLinear.apply(x, layer.weight, layer.bias) if x.device.type == "cpu" else layer(x)


def in_proj_halves(u: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """`[x, z] = W_in u` (`weight [2E, H]`) as two products with the two halves of W_in: the same map as
    `linear(u, weight).chunk(2, -1)`, but the backward adds two input gradients instead of concatenating dx
    and dz into one [B, T, 2E] gradient first (a copy of 131 MB at B = 64, T = 1000, E = 256)."""
    inner = weight.shape[0] // 2
    return nn.functional.linear(u, weight[:inner]), nn.functional.linear(u, weight[inner:])


class RMSNorm(torch.autograd.Function):
    """`(x [..., H], weight [H], eps) -> x / sqrt(mean(x²) + eps) ⊙ weight` by `cpu.cpp`'s fused `rms_norm`: one
    pass forward (keeping 1/rms per row), one backward, instead of torch's composite backward with its ten
    temporaries of x's size."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor, eps: float) -> Tensor:
        rows = x.reshape(-1, x.shape[-1]).contiguous()
        weight = weight.contiguous()
        y, rstd = cpp_build.require("scan").rms_norm(rows, weight, eps)
        ctx.save_for_backward(rows, weight, rstd)
        return y.view(x.shape)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, Tensor, None]:
        rows, weight, rstd = ctx.saved_tensors
        dx, dw = cpp_build.require("scan").rms_norm_backward(
            rows, weight, rstd, grad.reshape(rows.shape).contiguous()
        )
        return dx.view(grad.shape), dw.sum(0), None


def rms_norm(x: Tensor, norm: nn.RMSNorm) -> Tensor:
    """`norm(x)` (Mamba's pre-norm and final norm, with a weight and an explicit eps): by the fused `RMSNorm` on
    the CPU where the C++ scan source builds (`scan.backend_for`), else torch's module."""
    if scan_kernel.backend_for(x) == "cpp" and norm.weight is not None and norm.eps is not None:
        return RMSNorm.apply(x, norm.weight, norm.eps)
    return norm(x)


class MambaMixer(nn.Module):
    """The selective SSM block `[B, T, H] -> [B, T, H]` (attributes as in `mamba_simple.Mamba`)."""

    def __init__(
        self, width: int, state_size: int, conv_kernel: int, expand: int, dt_min: float, dt_max: float
    ) -> None:
        super().__init__()
        inner, rank = expand * width, math.ceil(width / 16)
        self.inner, self.rank, self.state_size = inner, rank, state_size
        self.in_proj = nn.Linear(width, 2 * inner, bias=False)
        self.conv1d = nn.Conv1d(inner, inner, conv_kernel, groups=inner, padding=conv_kernel - 1)
        self.x_proj = nn.Linear(inner, rank + 2 * state_size, bias=False)
        self.dt_proj = nn.Linear(rank, inner)
        nn.init.uniform_(self.dt_proj.weight, -(rank**-0.5), rank**-0.5)
        dt = torch.exp(torch.rand(inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus⁻¹(Δ₀)
        self.A_log = nn.Parameter(torch.log(torch.arange(1, state_size + 1, dtype=torch.float32)).repeat(inner, 1))
        self.D = nn.Parameter(torch.ones(inner))
        self.out_proj = nn.Linear(inner, width, bias=False)

    def forward(self, u: Tensor) -> Tensor:
        batch, steps, _ = u.shape
        x, z = in_proj_halves(u, self.in_proj.weight)  # [B, T, E] each
        x = causal_conv_silu(x, self.conv1d)
        delta, B, C = self.x_proj(x).split((self.rank, self.state_size, self.state_size), dim=-1)
        dt = narrow_linear(self.dt_proj, delta)  # [B, T, E], Δ = softplus(dt)
        A = -torch.exp(self.A_log)  # [E, N]
        if active_probe() is None:  # fused on the CPU: softplus, scan, C read-out, D skip, gate; no [B, T, E, N]
            return self.out_proj(gated_selective_scan(x, dt, A, B, C, self.D, z))
        # the trace page: the states, materialised, reported per step
        h = report_states(selective_states(x, nn.functional.softplus(dt), A, B, C).flatten(2))
        y = (h.reshape(batch, steps, self.inner, self.state_size) * C[:, :, None, :]).sum(-1)
        return self.out_proj((y + self.D * x) * nn.functional.silu(z))


class Mamba(ScanModel):
    """Mamba: encoder, `num_layers` pre-RMSNorm residual mixer blocks, final RMSNorm (`MixerModel`)."""

    name = "mamba"
    citation = PAPER
    equations = EQUATIONS
    hparams = (
        sp.hidden_size(64, choices=(32, 64, 128)),
        sp.num_layers(2, high=6),
        sp.integer("state_size", 16, 4, 64, log=True, valid=(1, 4096), doc="states per inner channel (N)"),
        sp.integer("conv_kernel", 4, 2, 8, valid=(1, 64), doc="causal convolution width k"),
        sp.choice("expand", 2, (1, 2, 4), valid=(1, 16), doc="inner width E / H"),
        sp.floating("dt_min", 0.001, 1e-4, 0.01, log=True, valid=(1e-6, 1.0), doc="smallest initial Δ"),
        sp.floating("dt_max", 0.1, 0.01, 1.0, log=True, valid=(1e-6, 10.0), doc="largest initial Δ"),
        sp.dropout(0.0),
        *sp.training_hparams(lr=sp.learning_rate(1e-3, 1e-4, 1e-2)),
    )

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_layers: int,
        dropout: float = 0.0,
        state_size: int = 16,
        conv_kernel: int = 4,
        expand: int = 2,
        dt_min: float = 0.001,
        dt_max: float = 0.1,
    ) -> None:
        super().__init__(input_size, hidden_size, num_layers)
        self.encoder = nn.Linear(input_size, hidden_size)
        self.norms = nn.ModuleList(nn.RMSNorm(hidden_size, eps=1e-5) for _ in range(num_layers))
        self.mixers = nn.ModuleList(
            MambaMixer(hidden_size, state_size, conv_kernel, expand, dt_min, dt_max) for _ in range(num_layers)
        )
        self.norm_f = nn.RMSNorm(hidden_size, eps=1e-5)
        self.drop = nn.Dropout(dropout)

    def note_backend(self, x: Tensor) -> None:
        """ "selective-scan-cpp" where the fused C++ selective scan serves `x` (the CPU default), else the
        materialised states' scan source ("scan-triton", "scan-parallel")."""
        source = scan_kernel.backend_for(x)
        self.implementation = "selective-scan-cpp" if source == "cpp" else "scan-" + source

    def forward(self, x: Tensor) -> Tensor:
        self.note_backend(x)
        x = narrow_linear(self.encoder, x)
        for norm, mixer in zip(self.norms, self.mixers, strict=True):
            x = x + self.drop(mixer(rms_norm(x, norm)))
        return rms_norm(x, self.norm_f)
