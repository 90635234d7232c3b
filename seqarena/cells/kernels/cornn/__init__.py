"""coRNN's kernel: its time loop as one autograd Function, compiled forward and BPTT backward.

Files: this module (the Function and `cornn_layer`), `cpu.cpp` (the C++ source), `triton.py` (the
Triton source); `seqarena.cells.kernels.backend` chooses which source runs an input.

Rusch & Mishra (2021), "Coupled Oscillatory Recurrent Neural Network (coRNN)", ICLR, eq. (3) as in
the official code (docs/reference/models.md §5). With the projected input `x_n = V u_n + b`
(`CoRNNCell.project_inputs`, one matrix product for all steps), the recurrent block
`R = [𝒲 | W]` [H, 2H] and the state `s_{n-1} = [z_{n-1}, y_{n-1}]`:

    a_n = tanh(x_n + R s_{n-1})
    z_n = z_{n-1} + Δt (a_n − γ y_{n-1} − ε z_{n-1})
    y_n = y_{n-1} + Δt z_n                                   (the new z_n)

Backward (BPTT, n = T … 1), differentiating those three lines. `ĝy_n`, `ĝz_n` are the gradients
of the loss with respect to `y_n`, `z_n` through everything after step n; they start at `∂L/∂y_T`,
`∂L/∂z_T` of the final state:

    ĝy_n ← ĝy_n + ∂L/∂(output y_n)
    ĝz_n ← ĝz_n + Δt ĝy_n                                    (y_n reads z_n)
    g_n  = Δt ĝz_n ⊙ (1 − a_n²)                              (= ∂L/∂x_n, and ∂L/∂ of R s_{n-1})
    ĝz_{n-1} = (1 − Δt ε) ĝz_n + R_zᵀ g_n,   ĝy_{n-1} = ĝy_n − Δt γ ĝz_n + R_yᵀ g_n
    ∂L/∂R = Σ_n g_n s_{n-1}ᵀ                                 (one product over all B·T rows)

`∂L/∂(y_0, z_0)` are `ĝy_0`, `ĝz_0`. The forward pass saves what the backward reads: the states
`s_0..s_T` [T + 1, B, 2H] and the activations `a_n` [T, B, H] (O(T·B·H) memory, like the eager
unroll; unlike UnICORNN's, the step is not invertible). Per step the C++ loop does one matrix
product into a preallocated buffer and one elementwise pass (`cpu.cpp`); the buffers are
time-major ([T, B, ·]) so that every step reads and writes contiguous blocks.

Shapes: `[B, T, ·]` in and out (views of time-major memory); float32 or float64 CPU tensors through
`cpu.cpp`, float32 CUDA tensors through `triton.py`.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from seqarena.cells.kernels.backend import time_major


class CoRNNRecurrence(torch.autograd.Function):
    """`(ops, x, R, y_0, z_0, Δt, γ, ε) -> (y_1..y_T [B, T, H], y_T, z_T)`; gradients for x, R, y_0, z_0.

    `ops` is the chosen backend's module: `cpu.cpp` compiled or `triton.py`."""

    @staticmethod
    def forward(ctx: FunctionCtx, ops: ModuleType, x: Tensor, recurrent: Tensor, y0: Tensor, z0: Tensor,
                dt: float, gamma: float, epsilon: float) -> tuple[Tensor, Tensor, Tensor]:
        hparams = (float(dt), float(gamma), float(epsilon))
        ys, y, z, states, acts = ops.forward(time_major(x), recurrent, y0, z0, *hparams)
        ctx.save_for_backward(recurrent, states, acts)
        ctx.ops, ctx.hparams = ops, hparams
        return ys.transpose(0, 1), y, z

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_ys: Tensor, g_y: Tensor, g_z: Tensor) -> tuple[Tensor | None, ...]:
        recurrent, states, acts = ctx.saved_tensors
        g_x, g_recurrent, g_y0, g_z0 = ctx.ops.backward(
            time_major(g_ys), g_y, g_z, recurrent, states, acts, *ctx.hparams)
        return None, g_x.transpose(0, 1), g_recurrent, g_y0, g_z0, None, None, None


def cornn_layer(ops: ModuleType, x: Tensor, recurrent: Tensor, dt: float, gamma: float, epsilon: float,
                state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One coRNN layer's recurrence through `ops`: `x [B, T, H] -> (y_1..y_T, (y_T, z_T))`.

    `ops` is the chosen backend's module (`backend.choose("cornn", x).ops`), `x` the projected input
    `V u_n + b` for all steps, `recurrent` the block `[𝒲 | W]` [H, 2H] acting on `[z, y]`, `state` the
    initial `(y_0, z_0)` (zeros by default).
    """
    if state is None:
        zeros = x.new_zeros(x.shape[0], x.shape[2])
        state = (zeros, zeros)
    ys, y, z = CoRNNRecurrence.apply(ops, x, recurrent, state[0], state[1], dt, gamma, epsilon)
    return ys, (y, z)
