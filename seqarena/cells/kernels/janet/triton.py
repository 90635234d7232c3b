"""JANET's time loop on the GPU: persistent Triton kernels, forward and BPTT backward.

van der Westhuizen & Lasenby (2018), "The unreasonable effectiveness of the forget gate",
arXiv:1804.04849, eq. (8)-(11); the equations of both passes are in `seqarena.cells.kernels.janet`,
the C++ source is `cpu.cpp`. `forward` and `backward` take and return what the C++
source's do (time-major `[T, B, ·]` tensors), so `JANETRecurrence` runs either. Per step, each
program (16 batch rows, every unit) computes `[s_n, k_n] = x_n + U c_{n-1}` with `tl.dot` over the
state it wrote in the previous step, then the gates and the update; `c` stays in registers.
float32 CUDA tensors (any dtype under Triton's interpreter).
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from seqarena.cells.kernels.triton_common import (
    bptt_options,
    check_size,
    put,
    row_block,
    row_programs,
    rows_times,
    sigmoid,
    tanh,
    tile,
)


@triton.jit
def _forward(x_ptr, sxt, sxb, ut_ptr, cs_ptr, f_ptr, g_ptr, h_ptr, B, T, beta,
             H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    c = tile(cs_ptr, H, rows, cols, mask)
    t = 0
    while t < T:
        before = cs_ptr + t * B * H
        x_t = x_ptr + t * sxt + rows[:, None] * sxb + cols[None, :]
        s = tl.load(x_t, mask=mask, other=0.0)
        k = tl.load(x_t + H, mask=mask, other=0.0)
        s = rows_times(s, before, H, rows, row_mask, ut_ptr, 2 * H, cols, col_mask, H, BK, PRECISION)
        k = rows_times(k, before, H, rows, row_mask, ut_ptr + H, 2 * H, cols, col_mask, H, BK, PRECISION)
        f, g, h = sigmoid(s), sigmoid(s - beta), tanh(k)
        c = f * c + (1.0 - g) * h
        put(before + B * H, H, rows, cols, mask, c)
        put(f_ptr + t * B * H, H, rows, cols, mask, f)
        put(g_ptr + t * B * H, H, rows, cols, mask, g)
        put(h_ptr + t * B * H, H, rows, cols, mask, h)
        tl.debug_barrier()  # c_n is the next step's matrix operand
        t += 1


@triton.jit
def _backward(gys_ptr, sgt, sgb, u_ptr, cs_ptr, f_ptr, g_ptr, h_ptr, gx_ptr, gc_ptr, B, T,
              H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    gc = tile(gc_ptr, H, rows, cols, mask)  # dL/dc_T of the final state
    zeros = tl.full((R, BH), 0, gc.dtype)
    t = T - 1
    while t >= 0:
        later_rows = row_mask & (t + 1 < T)  # U^T [dL/ds, dL/dk] of step n + 1; zeros after the last step
        rec = rows_times(zeros, gx_ptr + (t + 1) * B * 2 * H, 2 * H, rows, later_rows, u_ptr, H, cols,
                         col_mask, 2 * H, BK, PRECISION)
        gcn = gc + rec + tl.load(gys_ptr + t * sgt + rows[:, None] * sgb + cols[None, :], mask=mask, other=0.0)
        c = tile(cs_ptr + t * B * H, H, rows, cols, mask)  # c_{n-1}
        f = tile(f_ptr + t * B * H, H, rows, cols, mask)
        g = tile(g_ptr + t * B * H, H, rows, cols, mask)
        h = tile(h_ptr + t * B * H, H, rows, cols, mask)
        step = gx_ptr + t * B * 2 * H
        put(step, 2 * H, rows, cols, mask, gcn * (c * f * (1.0 - f) - h * g * (1.0 - g)))
        put(step + H, 2 * H, rows, cols, mask, gcn * (1.0 - g) * (1.0 - h * h))
        gc = gcn * f
        tl.debug_barrier()  # dL/dx_n is the previous step's matrix operand
        t -= 1
    put(gc_ptr, H, rows, cols, mask, gc)


def forward(x: Tensor, u: Tensor, c0: Tensor, beta: float) -> list[Tensor]:
    """The layer over x [T, B, 2H] (rows contiguous) from c0 [B, H] with U [2H, H]: the states c_0..c_T
    [T + 1, B, H] and f_n, g_n, h_n [T, B, H] (as `cpu.cpp`)."""
    steps, batch, hidden = x.shape[0], x.shape[1], x.shape[2] // 2
    check_size(x, steps + 1, batch, 2 * hidden)
    cs = x.new_empty(steps + 1, batch, hidden)
    cs[0] = c0
    gates = [x.new_empty(steps, batch, hidden) for _ in range(3)]
    _forward[row_programs(batch)](
        x, x.stride(0), x.stride(1), u.t().contiguous(), cs, *gates, batch, steps, beta,
        **bptt_options("janet", hidden))
    return [cs, *gates]


def backward(gys: Tensor, gc_last: Tensor, u: Tensor, cs: Tensor, f: Tensor, g: Tensor, h: Tensor) -> list[Tensor]:
    """BPTT from dL/dc_1..dL/dc_T [T, B, H] and dL/dc_T: dL/dx [T, B, 2H], dL/dU [2H, H], dL/dc0 [B, H]."""
    steps, batch, hidden = gys.shape
    uc = u.contiguous()
    gc = gc_last.contiguous().clone()
    gx = gys.new_empty(steps, batch, 2 * hidden)
    _backward[row_programs(batch)](
        gys, gys.stride(0), gys.stride(1), uc, cs, f, g, h, gx, gc, batch, steps,
        **bptt_options("janet", hidden))
    g_u = gx.reshape(steps * batch, 2 * hidden).t() @ cs[:steps].reshape(steps * batch, hidden)
    return [gx, g_u, gc + gx[0] @ uc]
