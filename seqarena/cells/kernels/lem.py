"""LEM's time loop as one autograd Function (CPU or GPU): compiled forward, compiled BPTT backward.

Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR,
eq. (3) (shared/reference/models.md §7), in the layout of the official code. With the projected
input `x_n = [x¹_n, x²_n, x^z_n, x^y_n]` (the dt1, dt2, z, y chunks of `inp2hid`, bias included;
`LEMCell.project_inputs`, one matrix product for all steps), `hid2hid = (W_h [3H, H], b_h)` with
chunks (dt1, dt2, y) and `transform_z = (W_z [H, H], b_z)`:

    [h¹_n, h²_n, h^y_n] = W_h y_{n-1} + b_h
    s¹_n = σ(x¹_n + h¹_n),   s²_n = σ(x²_n + h²_n),   ẑ_n = tanh(x^y_n + h^y_n)
    z_n = (1 − Δt s²_n) ⊙ z_{n-1} + Δt s²_n ⊙ ẑ_n                       (Δt_n = Δt s²_n)
    ŷ_n = tanh(W_z z_n + b_z + x^z_n)                                    (the new z_n)
    y_n = (1 − Δt s¹_n) ⊙ y_{n-1} + Δt s¹_n ⊙ ŷ_n                       (Δt̄_n = Δt s¹_n)

Backward (BPTT, n = T … 1), differentiating those lines. `ĝy_n`, `ĝz_n` are the gradients of the
loss with respect to `y_n`, `z_n` through everything after step n; they start at `∂L/∂y_T`,
`∂L/∂z_T` of the final state. `g¹ … g^y` are the gradients of the four pre-activations, which are
also `∂L/∂x_n` (chunks dt1, dt2, z, y):

    ĝy_n ← ĝy_n + ∂L/∂(output y_n)
    g¹_n = ĝy_n ⊙ (ŷ_n − y_{n-1}) Δt s¹_n (1 − s¹_n),    g^z_n = ĝy_n ⊙ Δt s¹_n (1 − ŷ_n²)
    ĝz_n ← ĝz_n + W_zᵀ g^z_n                                             (y_n reads z_n)
    g²_n = ĝz_n ⊙ (ẑ_n − z_{n-1}) Δt s²_n (1 − s²_n),    g^y_n = ĝz_n ⊙ Δt s²_n (1 − ẑ_n²)
    ĝz_{n-1} = (1 − Δt s²_n) ⊙ ĝz_n
    ĝy_{n-1} = (1 − Δt s¹_n) ⊙ ĝy_n + W_hᵀ [g¹_n, g²_n, g^y_n]
    ∂L/∂W_h = Σ_n [g¹_n, g²_n, g^y_n] y_{n-1}ᵀ,   ∂L/∂b_h = Σ_n [g¹_n, g²_n, g^y_n]
    ∂L/∂W_z = Σ_n g^z_n z_nᵀ,                      ∂L/∂b_z = Σ_n g^z_n          (products over all B·T rows)

`∂L/∂(y_0, z_0)` are `ĝy_0`, `ĝz_0`. The forward pass saves the states `y_0..y_T`, `z_0..z_T` (the
features are `y_1..y_T`, returned as a view of that buffer) and `s¹, s², ẑ, ŷ`: O(T·B·H) memory,
like the eager unroll. Per step the C++ loop does two matrix products into preallocated buffers
(`z_n` needs `W_h y_{n-1}`, `y_n` needs `W_z z_n`), each followed by an elementwise pass
(`lem_cpu.cpp`); the buffers are time-major ([T, B, ·]) so that every step reads and writes
contiguous blocks.

Shapes: `[B, T, ·]` in and out (views of time-major memory); float32 or float64 CPU tensors through
`lem_cpu.cpp`, float32 CUDA tensors through `lem_cuda.py` (`select.kernel` picks).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from seqarena.cells.kernels import select
from seqarena.cells.kernels.build import time_major


class LEMRecurrence(torch.autograd.Function):
    """`(kernel, x [B, T, 4H], W_h, b_h, W_z, b_z, y_0, z_0, Δt) -> (y_1..y_T [B, T, H], y_T, z_T)`; gradients
    for every tensor. `kernel` is `lem_cpu.cpp`'s extension or `lem_cuda` (`select.kernel`)."""

    @staticmethod
    def forward(ctx: FunctionCtx, kernel: ModuleType, x: Tensor, w_h: Tensor, b_h: Tensor, w_z: Tensor,
                b_z: Tensor, y0: Tensor, z0: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
        ys, zs, *saved = kernel.forward(time_major(x), w_h, b_h, w_z, b_z, y0, z0, float(dt))
        ctx.save_for_backward(w_h, w_z, ys, zs, *saved)
        ctx.kernel, ctx.dt = kernel, float(dt)
        return ys[1:].transpose(0, 1), ys[-1].clone(), zs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_ys: Tensor, g_y: Tensor, g_z: Tensor) -> tuple[Tensor | None, ...]:
        g_x, *grads = ctx.kernel.backward(time_major(g_ys), g_y, g_z, *ctx.saved_tensors, ctx.dt)
        return None, g_x.transpose(0, 1), *grads, None


def lem_layer(x: Tensor, w_h: Tensor, b_h: Tensor, w_z: Tensor, b_z: Tensor, dt: float,
              state: tuple[Tensor, Tensor] | None = None,
              kernel: ModuleType | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LEM layer's recurrence through a fused kernel: `x [B, T, 4H] -> (y_1..y_T, (y_T, z_T))`.

    `x` is `inp2hid(u)` for all steps, `(w_h, b_h)` is `hid2hid`, `(w_z, b_z)` is `transform_z`,
    `state` the initial `(y_0, z_0)` (zeros by default), `kernel` the kernel module (default: the one
    for `x`'s device).
    """
    if state is None:
        zeros = x.new_zeros(x.shape[0], w_z.shape[0])
        state = (zeros, zeros)
    kernel = kernel or select.kernel("lem", x)
    ys, y, z = LEMRecurrence.apply(kernel, x, w_h, b_h, w_z, b_z, state[0], state[1], dt)
    return ys, (y, z)
