"""UnICORNN's kernel: its layer as one autograd Function, projection, time loop and reversible backward.

Files: this module (the Function and `unicornn_layer`), `cpu.cpp` (the C++ source), `triton.py` (the
Triton source); `seqarena.cells.kernels.backend` chooses which source runs an input.

Rusch & Mishra (2021), "UnICORNN: A recurrent model for learning very long time dependencies", ICML,
PMLR 139:9168-9178. The recurrence (paper Sec. 2, docs/reference/models.md §6) is

    x_n = V u_n + b,   z_n = z_{n-1} − δ ⊙ (tanh(w ⊙ y_{n-1} + x_n) + α y_{n-1}),   y_n = y_{n-1} + δ ⊙ z_n

and the step is exactly invertible, so the backward pass (paper Sec. 3) walks from the final state
back to the first, rebuilding `(y_{n-1}, z_{n-1})` from `(y_n, z_n)` instead of reading stored states.

What is stored for the backward pass (`ctx.save_for_backward`): the layer's input `u` [B, T, d] (a
dense layer keeps its input in any implementation), the parameters `V`, `b`, `w`, `δ`, and the final
states `y_T`, `z_T` [B, H]. Not stored: the projected inputs `x` [B, T, H] (recomputed chunk by chunk
in the backward pass from `u`), the states `y_n`, `z_n` for n < T and every per-step intermediate.
The output sequence `y_1..y_T` is returned, not saved. Time is processed in chunks of
`chunk_steps(B, H)` steps in both directions, so the transient buffers (`x`, `∂L/∂x` of one chunk)
do not grow with T either: the recurrence's memory is O(B·H), against the eager unroll's
O(T·B·H) of saved per-step activations. A layer with at most `SMALL_INPUT` input features (the
first layer of a model on the adding problem, sMNIST, psMNIST, noisy CIFAR) skips even those on the
CPU: the kernel computes `x_n` from `u_n` step by step and accumulates `∂L/∂V`, `∂L/∂b`, `∂L/∂u`
itself (`forward_small`, `backward_small` in `cpu.cpp`), which halves the CPU time of a
training step at batch 64, hidden 128, T = 1000 (it was bound by the memory traffic of `x` and
`∂L/∂x`; benchmarks/RESULTS.md).

Shapes: `[B, T, ·]` (batch first, as `project_inputs`); float32 or float64 CPU tensors through
`cpu.cpp`, float32 CUDA tensors through `triton.py`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

#: Elements (B · steps · H) of one time chunk on the CPU: 2^20 (4 MiB in float32).
CHUNK_ELEMENTS = 1 << 20
#: The same on a GPU, where each chunk costs a few kernel launches: 2^24 (64 MiB in float32; T = 2048
#: at batch 64 and hidden 128 in one chunk).
GPU_CHUNK_ELEMENTS = 1 << 24


#: Input features up to which the CPU kernel computes `x_n = V u_n + b` itself, step by step
#: (`forward_small`/`backward_small`): no `x` or `∂L/∂x` sequence is materialised and the sequence is
#: not chunked (the recurrence still stores nothing per step).
SMALL_INPUT = 8


def small_input(ops: ModuleType, u: Tensor) -> bool:
    """Whether `u` goes through the small-input entry points of `ops` (the C++ source has them), d <= SMALL_INPUT."""
    return u.shape[2] <= SMALL_INPUT and hasattr(ops, "forward_small")


def chunk_steps(batch: int, hidden: int, cuda: bool = False) -> int:
    """Time steps per chunk for a [batch, ·, hidden] layer (at least one), on a GPU or the CPU."""
    return max(1, (GPU_CHUNK_ELEMENTS if cuda else CHUNK_ELEMENTS) // max(1, batch * hidden))


def _chunks(steps: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(steps, start + size)) for start in range(0, steps, size)]


class UnICORNNRecurrence(torch.autograd.Function):
    """`(ops, u, V, b, w, δ, y_0, z_0, α) -> (y_1..y_T [B, T, H], y_T, z_T)`; gradients for all tensors.

    `ops` is the chosen backend's module: `cpu.cpp` compiled or `triton.py`."""

    @staticmethod
    def forward(ctx: FunctionCtx, ops: ModuleType, u: Tensor, weight: Tensor, bias: Tensor, w: Tensor,
                delta: Tensor, y0: Tensor, z0: Tensor, alpha: float) -> tuple[Tensor, Tensor, Tensor]:
        batch, steps, _ = u.shape
        hidden = weight.shape[0]
        w, delta = w.contiguous(), delta.contiguous()
        y, z = y0.detach().contiguous().clone(), z0.detach().contiguous().clone()
        ys = u.new_empty(batch, steps, hidden)
        if small_input(ops, u):
            u = u.contiguous()
            ops.forward_small(u, weight.t().contiguous(), bias.contiguous(), w, delta, alpha, y, z, ys)
        else:
            for start, stop in _chunks(steps, chunk_steps(batch, hidden, u.is_cuda)):
                x = F.linear(u[:, start:stop], weight, bias).contiguous()
                ops.forward(x, w, delta, alpha, y, z, ys[:, start:stop])
        ctx.save_for_backward(u, weight, bias, w, delta, y, z)
        ctx.ops, ctx.alpha = ops, alpha
        return ys, y, z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_ys: Tensor, g_y: Tensor, g_z: Tensor) -> tuple[Tensor | None, ...]:
        u, weight, bias, w, delta, y_last, z_last = ctx.saved_tensors
        batch, steps, _ = u.shape
        hidden = weight.shape[0]
        y, z = y_last.clone(), z_last.clone()
        gy, gz = g_y.contiguous().clone(), g_z.contiguous().clone()
        g_w, g_delta = y.new_zeros(batch, hidden), y.new_zeros(batch, hidden)
        g_ys = g_ys.contiguous()
        if small_input(ctx.ops, u):
            g_vt, g_b = y.new_zeros(batch, u.shape[2], hidden), y.new_zeros(batch, hidden)
            g_u = ctx.ops.backward_small(u, g_ys, weight.t().contiguous(), bias.contiguous(), w, delta, ctx.alpha,
                                            y, z, gy, gz, g_w, g_delta, g_vt, g_b).sum(1)
            return None, g_u, g_vt.sum(0).t(), g_b.sum(0), g_w.sum(0), g_delta.sum(0), gy, gz, None
        g_u = torch.empty_like(u) if ctx.needs_input_grad[1] else None
        g_weight, g_bias = torch.zeros_like(weight), torch.zeros_like(bias)
        for start, stop in reversed(_chunks(steps, chunk_steps(batch, hidden, u.is_cuda))):
            u_chunk = u[:, start:stop]
            x = F.linear(u_chunk, weight, bias).contiguous()
            g_x = ctx.ops.backward(x, g_ys[:, start:stop], w, delta, ctx.alpha, y, z, gy, gz, g_w, g_delta)
            _project_back(g_x, u_chunk, weight, g_weight, g_bias)
            if g_u is not None:
                g_u[:, start:stop] = g_x @ weight
        return None, g_u, g_weight, g_bias, g_w.sum(0), g_delta.sum(0), gy, gz, None


def _project_back(g_x: Tensor, u_chunk: Tensor, weight: Tensor, g_weight: Tensor, g_bias: Tensor) -> None:
    """Accumulate `∂L/∂V += Σ_n ∂L/∂x_n u_nᵀ` and `∂L/∂b += Σ_n ∂L/∂x_n` over one chunk."""
    flat = g_x.reshape(-1, weight.shape[0])
    g_weight.addmm_(flat.t(), u_chunk.reshape(-1, weight.shape[1]))
    g_bias.add_(flat.sum(0))


def unicornn_layer(ops: ModuleType, u: Tensor, weight: Tensor, bias: Tensor, w: Tensor, delta: Tensor, alpha: float,
                   state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One UnICORNN layer through `ops`: `u [B, T, d] -> (y_1..y_T [B, T, H], (y_T, z_T))`.

    `ops` is the chosen backend's module (`backend.choose("unicornn", u).ops`), `weight` [H, d] and
    `bias` [H] are `V` and `b`, `w` [H] the diagonal recurrent weight, `delta` [H] is `Δt · σ(c)` (its
    gradient reaches `c` through autograd), `state` the initial `(y_0, z_0)` (zeros by default).
    """
    if state is None:
        zeros = u.new_zeros(u.shape[0], weight.shape[0])
        state = (zeros, zeros)
    ys, y, z = UnICORNNRecurrence.apply(ops, u, weight, bias, w, delta, state[0], state[1], float(alpha))
    return ys, (y, z)
