"""LEM's kernel: its time loop as one autograd Function, compiled forward and BPTT backward.

Files: this module (the Function and `lem_layer`), `cpu.cpp` (the C++ source), `triton.py` (the
Triton source); `seqarena.cells.kernels.backend` chooses which source runs an input.

Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR,
eq. (3) (docs/reference/models.md §7), in the layout of the official code (`tk-rusch/LEM`,
`src/adding/network.py`, `LEMCell.forward`, lines 21-33). The projected input `x_n = inp2hid(u_n)`
[B, 4H] (bias included; `LEMCell.project_inputs`, one matrix product for all steps) holds, in the
code's chunk order (dt1, dt2, z, y), the paper's input terms

    x_n = [V_2 u_n + b_2,  V_1 u_n + b_1,  V_y u_n + b_y,  V_z u_n + b_z]

`hid2hid = (W_h, b_h)` with `W_h = [W_2; W_1; W_z]` [3H, H] (chunks dt1, dt2, y: the code's "y"
chunk is the paper's W_z, which drives the z update), and `transform_z = (W_y [H, H], b'_y)` (the
paper's W_y acting on the new z_n). The code has two bias vectors where the paper has one: the
chunks of b_h add to b_2, b_1, b_z and b'_y adds to b_y. Per step:

    s̄_n = σ(V_2 u_n + b_2 + W_2 y_{n-1})                                (Δt̄_n = Δt s̄_n, the step of y)
    s_n  = σ(V_1 u_n + b_1 + W_1 y_{n-1})                                (Δt_n = Δt s_n, the step of z)
    ẑ_n = tanh(V_z u_n + b_z + W_z y_{n-1})
    z_n  = (1 − Δt s_n) ⊙ z_{n-1} + Δt s_n ⊙ ẑ_n
    ŷ_n = tanh(W_y z_n + b'_y + V_y u_n + b_y)                           (the new z_n)
    y_n  = (1 − Δt s̄_n) ⊙ y_{n-1} + Δt s̄_n ⊙ ŷ_n

Backward (BPTT, n = T … 1), differentiating those lines. `ĝy_n`, `ĝz_n` are the gradients of the
loss with respect to `y_n`, `z_n` through everything after step n; they start at `∂L/∂y_T`,
`∂L/∂z_T` of the final state. `g^s̄, g^s, g^y, g^z` are the gradients of the four pre-activations,
which are also `∂L/∂x_n` (in the chunk order above):

    ĝy_n ← ĝy_n + ∂L/∂(output y_n)
    g^s̄_n = ĝy_n ⊙ (ŷ_n − y_{n-1}) Δt s̄_n (1 − s̄_n),    g^y_n = ĝy_n ⊙ Δt s̄_n (1 − ŷ_n²)
    ĝz_n ← ĝz_n + W_yᵀ g^y_n                                             (y_n reads z_n)
    g^s_n = ĝz_n ⊙ (ẑ_n − z_{n-1}) Δt s_n (1 − s_n),      g^z_n = ĝz_n ⊙ Δt s_n (1 − ẑ_n²)
    ĝz_{n-1} = (1 − Δt s_n) ⊙ ĝz_n
    ĝy_{n-1} = (1 − Δt s̄_n) ⊙ ĝy_n + W_hᵀ [g^s̄_n, g^s_n, g^z_n]
    ∂L/∂W_h = Σ_n [g^s̄_n, g^s_n, g^z_n] y_{n-1}ᵀ,   ∂L/∂b_h = Σ_n [g^s̄_n, g^s_n, g^z_n]
    ∂L/∂W_y = Σ_n g^y_n z_nᵀ,                       ∂L/∂b'_y = Σ_n g^y_n       (products over all B·T rows)

`∂L/∂(y_0, z_0)` are `ĝy_0`, `ĝz_0`. The forward pass saves the states `y_0..y_T`, `z_0..z_T` (the
features are `y_1..y_T`, returned as a view of that buffer) and `s̄, s, ẑ, ŷ`: O(T·B·H) memory,
like the eager unroll. Per step the C++ loop does two matrix products into preallocated buffers
(`z_n` needs `W_h y_{n-1}`, `y_n` needs `W_y z_n`), each followed by an elementwise pass
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


class LEMRecurrence(torch.autograd.Function):
    """`(ops, x [B, T, 4H], W_h, b_h, W_y, b'_y, y_0, z_0, Δt) -> (y_1..y_T [B, T, H], y_T, z_T)`; gradients
    for every tensor. `ops` is the chosen backend's module: `cpu.cpp` compiled or `triton.py`."""

    @staticmethod
    def forward(ctx: FunctionCtx, ops: ModuleType, x: Tensor, w_h: Tensor, b_h: Tensor, w_y: Tensor,
                b_y: Tensor, y0: Tensor, z0: Tensor, dt: float) -> tuple[Tensor, Tensor, Tensor]:
        ys, zs, *saved = ops.forward(time_major(x), w_h, b_h, w_y, b_y, y0, z0, float(dt))
        ctx.save_for_backward(w_h, w_y, ys, zs, *saved)
        ctx.ops, ctx.dt = ops, float(dt)
        return ys[1:].transpose(0, 1), ys[-1].clone(), zs[-1].clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, g_ys: Tensor, g_y: Tensor, g_z: Tensor) -> tuple[Tensor | None, ...]:
        g_x, *grads = ctx.ops.backward(time_major(g_ys), g_y, g_z, *ctx.saved_tensors, ctx.dt)
        return None, g_x.transpose(0, 1), *grads, None


def lem_layer(ops: ModuleType, x: Tensor, w_h: Tensor, b_h: Tensor, w_y: Tensor, b_y: Tensor, dt: float,
              state: tuple[Tensor, Tensor] | None = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """One LEM layer's recurrence through `ops`: `x [B, T, 4H] -> (y_1..y_T, (y_T, z_T))`.

    `ops` is the chosen backend's module (`backend.choose("lem", x).ops`), `x` is `inp2hid(u)` for all
    steps, `(w_h, b_h)` is `hid2hid`, `(w_y, b_y)` is `transform_z` (the paper's W_y), `state` the
    initial `(y_0, z_0)` (zeros by default).
    """
    if state is None:
        zeros = x.new_zeros(x.shape[0], w_y.shape[0])
        state = (zeros, zeros)
    ys, y, z = LEMRecurrence.apply(ops, x, w_h, b_h, w_y, b_y, state[0], state[1], dt)
    return ys, (y, z)
