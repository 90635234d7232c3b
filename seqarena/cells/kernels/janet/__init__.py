"""JANET's kernel: its time loop as one autograd Function, compiled forward and BPTT backward.

Files: this module (the Function and `janet_layer`), `cpu.cpp` (the C++ source), `triton.py` (the
Triton source); `seqarena.cells.kernels.backend` chooses which source runs an input.

van der Westhuizen & Lasenby (2018), "The unreasonable effectiveness of the forget gate",
arXiv:1804.04849, eq. (8)-(11) (docs/reference/models.md §4). With the projected input
`x_n = W u_n + b = [x^s_n, x^k_n]` (`JANETCell.project_inputs`, one matrix product for all steps)
and the recurrent weight `U = [U_f; U_c]` [2H, H]:

    [s_n, k_n] = x_n + U c_{n-1}
    f_n = σ(s_n),   g_n = σ(s_n − β),   h_n = tanh(k_n)
    c_n = f_n ⊙ c_{n-1} + (1 − g_n) ⊙ h_n                      (the features: h_n = c_n in the paper)

Backward (BPTT, n = T … 1), differentiating those lines. `ĝc_n` is the gradient of the loss with
respect to `c_n` through everything after step n; it starts at `∂L/∂c_T` of the final state:

    ĝc_n ← ĝc_n + ∂L/∂(output c_n)
    ∂L/∂s_n = ĝc_n ⊙ (c_{n-1} ⊙ f_n (1 − f_n) − h_n ⊙ g_n (1 − g_n))
    ∂L/∂k_n = ĝc_n ⊙ (1 − g_n) ⊙ (1 − h_n²)
    ĝc_{n-1} = f_n ⊙ ĝc_n + Uᵀ [∂L/∂s_n, ∂L/∂k_n]
    ∂L/∂x_n = [∂L/∂s_n, ∂L/∂k_n],   ∂L/∂U = Σ_n [∂L/∂s_n, ∂L/∂k_n] c_{n-1}ᵀ     (one product, all B·T rows)

`∂L/∂c_0` is `ĝc_0`. The forward pass saves the states `c_0..c_T` (the features `c_1..c_T` are
returned as a view of that buffer) and `f_n`, `g_n`, `h_n`: O(T·B·H) memory, like the eager unroll.
Per step the C++ loop does one matrix product into a preallocated buffer and one elementwise pass
(`cpu.cpp`); the buffers are time-major ([T, B, ·]) so that every step reads and writes
contiguous blocks.

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


class JANETRecurrence(torch.autograd.Function):
    """`(ops, x [B, T, 2H], U, c_0, β) -> (c_1..c_T [B, T, H], c_T)`; gradients for x, U and c_0.

    `ops` is the chosen backend's module: `cpu.cpp` compiled or `triton.py`."""

    @staticmethod
    def forward(ctx: FunctionCtx, ops: ModuleType, x: Tensor, recurrent: Tensor, c0: Tensor,
                beta: float) -> tuple[Tensor, Tensor]:
        states, *gates = ops.forward(time_major(x), recurrent, c0, float(beta))
        ctx.save_for_backward(recurrent, states, *gates)
        ctx.ops = ops
        return states[1:].transpose(0, 1), states[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_ys: Tensor, g_c: Tensor) -> tuple[Tensor | None, ...]:
        recurrent, states, *gates = ctx.saved_tensors
        g_x, g_recurrent, g_c0 = ctx.ops.backward(time_major(g_ys), g_c, recurrent, states, *gates)
        return None, g_x.transpose(0, 1), g_recurrent, g_c0, None


def janet_layer(ops: ModuleType, x: Tensor, recurrent: Tensor, beta: float,
                state: tuple[Tensor] | None = None) -> tuple[Tensor, tuple[Tensor]]:
    """One JANET layer's recurrence through `ops`: `x [B, T, 2H] -> (c_1..c_T, (c_T,))`.

    `ops` is the chosen backend's module (`backend.choose("janet", x).ops`), `x` the projected input
    `W u_n + b` for all steps (forget chunk, then candidate chunk), `recurrent` is `U = [U_f; U_c]`
    [2H, H], `state` the initial `(c_0,)` (zeros by default).
    """
    c0 = x.new_zeros(x.shape[0], recurrent.shape[1]) if state is None else state[0]
    ys, c = JANETRecurrence.apply(ops, x, recurrent, c0, beta)
    return ys, (c,)
