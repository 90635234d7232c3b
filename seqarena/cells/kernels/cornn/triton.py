"""coRNN's time loop on the GPU: persistent Triton kernels, forward and BPTT backward.

Rusch & Mishra (2021), "Coupled Oscillatory Recurrent Neural Network (coRNN)", ICLR, eq. (3); the
equations of both passes are in `seqarena.cells.kernels.cornn`, the C++ source is `cpu.cpp`.
`forward` and `backward` take and return what the C++ source's do (time-major `[T, B, ·]`
tensors), so `CoRNNRecurrence` runs either. Per step, each program (16 batch rows, every unit)
computes `x_n + R s_{n-1}` with `tl.dot` over the state it wrote in the previous step, then the
elementwise update; `z`, `y` stay in registers. The gradient of `R` is one matrix product over all
T·B rows after the loop, as on the CPU. float32 CUDA tensors (any dtype under Triton's interpreter).
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
    tanh,
    tile,
)


@triton.jit
def _forward(x_ptr, sxt, sxb, rt_ptr, states_ptr, ys_ptr, acts_ptr, B, T, dt, gamma, epsilon,
             H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    z = tile(states_ptr, 2 * H, rows, cols, mask)  # s_0 = [z_0, y_0]
    y = tile(states_ptr + H, 2 * H, rows, cols, mask)
    t = 0
    while t < T:
        before = states_ptr + t * B * 2 * H
        pre = tl.load(x_ptr + t * sxt + rows[:, None] * sxb + cols[None, :], mask=mask, other=0.0)
        pre = rows_times(pre, before, 2 * H, rows, row_mask, rt_ptr, H, cols, col_mask, 2 * H, BK, PRECISION)
        a = tanh(pre)
        z = z + dt * (a - gamma * y - epsilon * z)
        y = y + dt * z
        after = before + B * 2 * H
        put(after, 2 * H, rows, cols, mask, z)
        put(after + H, 2 * H, rows, cols, mask, y)
        put(acts_ptr + t * B * H, H, rows, cols, mask, a)
        put(ys_ptr + t * B * H, H, rows, cols, mask, y)
        tl.debug_barrier()  # s_n is the next step's matrix operand
        t += 1


@triton.jit
def _backward(gys_ptr, sgt, sgb, r_ptr, acts_ptr, gx_ptr, gy_ptr, gz_ptr, B, T, dt, gamma, epsilon,
              H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    gy = tile(gy_ptr, H, rows, cols, mask)  # dL/dy_T, dL/dz_T of the final state
    gz = tile(gz_ptr, H, rows, cols, mask)
    zeros = tl.full((R, BH), 0, gy.dtype)
    t = T - 1
    while t >= 0:
        later = gx_ptr + (t + 1) * B * H  # g_{n+1}; zeros after the last step
        later_rows = row_mask & (t + 1 < T)
        rec_z = rows_times(zeros, later, H, rows, later_rows, r_ptr, 2 * H, cols, col_mask, H, BK, PRECISION)
        rec_y = rows_times(zeros, later, H, rows, later_rows, r_ptr + H, 2 * H, cols, col_mask, H, BK, PRECISION)
        gyn = gy + rec_y + tl.load(gys_ptr + t * sgt + rows[:, None] * sgb + cols[None, :], mask=mask, other=0.0)
        gzn = gz + rec_z + dt * gyn
        a = tile(acts_ptr + t * B * H, H, rows, cols, mask)
        put(gx_ptr + t * B * H, H, rows, cols, mask, dt * gzn * (1.0 - a * a))
        gz = gzn * (1.0 - dt * epsilon)
        gy = gyn - dt * gamma * gzn
        tl.debug_barrier()  # g_n is the previous step's matrix operand
        t -= 1
    put(gy_ptr, H, rows, cols, mask, gy)
    put(gz_ptr, H, rows, cols, mask, gz)


def forward(x: Tensor, recurrent: Tensor, y0: Tensor, z0: Tensor, dt: float, gamma: float,
            epsilon: float) -> list[Tensor]:
    """The layer over x [T, B, H] (rows contiguous) from (y0, z0) [B, H]: ys [T, B, H], y_T, z_T, and the
    saved states s_0..s_T [T + 1, B, 2H] and activations a_n [T, B, H] (as `cpu.cpp`)."""
    steps, batch, hidden = x.shape
    check_size(x, steps + 1, batch, 2 * hidden)
    states = x.new_empty(steps + 1, batch, 2 * hidden)
    states[0, :, :hidden], states[0, :, hidden:] = z0, y0
    ys, acts = x.new_empty(steps, batch, hidden), x.new_empty(steps, batch, hidden)
    _forward[row_programs(batch)](
        x, x.stride(0), x.stride(1), recurrent.t().contiguous(), states, ys, acts, batch, steps, dt, gamma, epsilon,
        **bptt_options("cornn", hidden))
    last = states[steps]
    return [ys, last[:, hidden:].contiguous(), last[:, :hidden].contiguous(), states, acts]


def backward(gys: Tensor, gy_last: Tensor, gz_last: Tensor, recurrent: Tensor, states: Tensor, acts: Tensor,
             dt: float, gamma: float, epsilon: float) -> list[Tensor]:
    """BPTT from dL/dys [T, B, H] and dL/d(y_T, z_T): dL/dx [T, B, H], dL/drecurrent [H, 2H], dL/dy0, dL/dz0."""
    steps, batch, hidden = gys.shape
    r = recurrent.contiguous()
    gy, gz = gy_last.contiguous().clone(), gz_last.contiguous().clone()
    gx = gys.new_empty(steps, batch, hidden)
    _backward[row_programs(batch)](
        gys, gys.stride(0), gys.stride(1), r, acts, gx, gy, gz, batch, steps, dt, gamma, epsilon,
        **bptt_options("cornn", hidden))
    rec = gx[0] @ r  # [R_z^T g_1, R_y^T g_1]: the path from step 1's pre-activation to s_0
    g_recurrent = gx.reshape(steps * batch, hidden).t() @ states[:steps].reshape(steps * batch, 2 * hidden)
    return [gx, g_recurrent, gy + rec[:, hidden:], gz + rec[:, :hidden]]
