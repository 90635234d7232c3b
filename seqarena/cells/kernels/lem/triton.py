"""LEM's time loop on the GPU: persistent Triton kernels, forward and BPTT backward.

Rusch, Mishra, Erichson & Mahoney (2022), "Long Expressive Memory for sequence modeling", ICLR,
eq. (3); the equations of both passes are in `seqarena.cells.kernels.lem`, the C++ source is
`cpu.cpp`. `forward` and `backward` take and return what the C++ source's do (time-major
`[T, B, ·]` tensors), so `LEMRecurrence` runs either. Each step has two dependent halves, each a
`tl.dot` over a state the program wrote to global memory just before (behind a barrier): the
z update reads `W_h y_{n-1}`, the y update reads `W_y z_n` (`transform_z`). The weight gradients are matrix products
over all T·B rows after the loop, as on the CPU. float32 CUDA tensors (any dtype under Triton's
interpreter).
"""

from __future__ import annotations

import torch
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
def _forward(x_ptr, sxt, sxb, wht_ptr, bh_ptr, wyt_ptr, by_ptr, ys_ptr, zs_ptr, sy_ptr, sz_ptr, zh_ptr, yh_ptr,
             B, T, dt, H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    bh_ystep = tl.load(bh_ptr + cols, mask=col_mask, other=0.0)[None, :]
    bh_zstep = tl.load(bh_ptr + H + cols, mask=col_mask, other=0.0)[None, :]
    bh_z = tl.load(bh_ptr + 2 * H + cols, mask=col_mask, other=0.0)[None, :]
    by = tl.load(by_ptr + cols, mask=col_mask, other=0.0)[None, :]
    y = tile(ys_ptr, H, rows, cols, mask)
    z = tile(zs_ptr, H, rows, cols, mask)
    t = 0
    while t < T:
        x_t = x_ptr + t * sxt + rows[:, None] * sxb + cols[None, :]
        y_before = ys_ptr + t * B * H
        # the pre-activations of y's step, z's step and the z candidate: x_n chunks 0, 1, 3 + W_h y_{n-1} + b_h
        pre_ystep = rows_times(tl.load(x_t, mask=mask, other=0.0) + bh_ystep, y_before, H, rows, row_mask, wht_ptr,
                               3 * H, cols, col_mask, H, BK, PRECISION)
        pre_zstep = rows_times(tl.load(x_t + H, mask=mask, other=0.0) + bh_zstep, y_before, H, rows, row_mask,
                               wht_ptr + H, 3 * H, cols, col_mask, H, BK, PRECISION)
        pre_z = rows_times(tl.load(x_t + 3 * H, mask=mask, other=0.0) + bh_z, y_before, H, rows, row_mask,
                           wht_ptr + 2 * H, 3 * H, cols, col_mask, H, BK, PRECISION)
        sy, sz, zh = sigmoid(pre_ystep), sigmoid(pre_zstep), tanh(pre_z)
        dz = dt * sz
        z = (1.0 - dz) * z + dz * zh
        z_after = zs_ptr + (t + 1) * B * H
        put(z_after, H, rows, cols, mask, z)
        put(sy_ptr + t * B * H, H, rows, cols, mask, sy)
        put(sz_ptr + t * B * H, H, rows, cols, mask, sz)
        put(zh_ptr + t * B * H, H, rows, cols, mask, zh)
        tl.debug_barrier()  # z_n is the y update's matrix operand
        q = rows_times(tl.load(x_t + 2 * H, mask=mask, other=0.0) + by, z_after, H, rows, row_mask, wyt_ptr, H,
                       cols, col_mask, H, BK, PRECISION)
        yh = tanh(q)
        dy = dt * sy
        y = (1.0 - dy) * y + dy * yh
        put(y_before + B * H, H, rows, cols, mask, y)
        put(yh_ptr + t * B * H, H, rows, cols, mask, yh)
        tl.debug_barrier()  # y_n is the next step's matrix operand
        t += 1


@triton.jit
def _backward(gys_ptr, sgt, sgb, wh_ptr, wy_ptr, ys_ptr, zs_ptr, sy_ptr, sz_ptr, zh_ptr, yh_ptr, gx_ptr, gy_ptr,
              gz_ptr, B, T, dt, H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr, BK: tl.constexpr,
             PRECISION: tl.constexpr):
    rows, cols, row_mask, col_mask, mask = row_block(B, H, BH, R)
    gy = tile(gy_ptr, H, rows, cols, mask)  # dL/dy_T, dL/dz_T of the final state
    gz = tile(gz_ptr, H, rows, cols, mask)
    zeros = tl.full((R, BH), 0, gy.dtype)
    t = T - 1
    while t >= 0:
        # W_h^T [g^s̄, g^s, g^z] of step n + 1 (chunks 0, 1, 3 of its dL/dx): the path into y_n
        later, later_rows = gx_ptr + (t + 1) * B * 4 * H, row_mask & (t + 1 < T)
        rec = rows_times(zeros, later, 4 * H, rows, later_rows, wh_ptr, H, cols, col_mask, H, BK, PRECISION)
        rec = rows_times(rec, later + H, 4 * H, rows, later_rows, wh_ptr + H * H, H, cols, col_mask, H, BK, PRECISION)
        rec = rows_times(rec, later + 3 * H, 4 * H, rows, later_rows, wh_ptr + 2 * H * H, H, cols, col_mask, H, BK,
                         PRECISION)
        g = gy + rec + tl.load(gys_ptr + t * sgt + rows[:, None] * sgb + cols[None, :], mask=mask, other=0.0)
        a = tile(sy_ptr + t * B * H, H, rows, cols, mask)
        k = tile(yh_ptr + t * B * H, H, rows, cols, mask)
        y_prev = tile(ys_ptr + t * B * H, H, rows, cols, mask)
        dy = dt * a
        step = gx_ptr + t * B * 4 * H
        put(step, 4 * H, rows, cols, mask, g * (k - y_prev) * dt * a * (1.0 - a))
        put(step + 2 * H, 4 * H, rows, cols, mask, g * dy * (1.0 - k * k))
        gy = g * (1.0 - dy)
        tl.debug_barrier()  # dL/dq_n is the operand of W_y^T below
        gzn = rows_times(gz, step + 2 * H, 4 * H, rows, row_mask, wy_ptr, H, cols, col_mask, H, BK, PRECISION)
        c = tile(sz_ptr + t * B * H, H, rows, cols, mask)
        kz = tile(zh_ptr + t * B * H, H, rows, cols, mask)
        z_prev = tile(zs_ptr + t * B * H, H, rows, cols, mask)
        dz = dt * c
        put(step + H, 4 * H, rows, cols, mask, gzn * (kz - z_prev) * dt * c * (1.0 - c))
        put(step + 3 * H, 4 * H, rows, cols, mask, gzn * dz * (1.0 - kz * kz))
        gz = gzn * (1.0 - dz)
        tl.debug_barrier()  # dL/dx_n is the previous step's matrix operand
        t -= 1
    put(gy_ptr, H, rows, cols, mask, gy)
    put(gz_ptr, H, rows, cols, mask, gz)


def forward(x: Tensor, wh: Tensor, bh: Tensor, wy: Tensor, by: Tensor, y0: Tensor, z0: Tensor,
            dt: float) -> list[Tensor]:
    """The layer over x [T, B, 4H] (rows contiguous) from (y0, z0) [B, H]: the states y_0..y_T, z_0..z_T
    [T + 1, B, H] and sy, sz, zh, yh [T, B, H] (as `cpu.cpp`)."""
    steps, batch, hidden = x.shape[0], x.shape[1], x.shape[2] // 4
    check_size(x, steps, batch, 4 * hidden)
    ys, zs = x.new_empty(steps + 1, batch, hidden), x.new_empty(steps + 1, batch, hidden)
    ys[0], zs[0] = y0, z0
    saved = [x.new_empty(steps, batch, hidden) for _ in range(4)]
    _forward[row_programs(batch)](
        x, x.stride(0), x.stride(1), wh.t().contiguous(), bh.contiguous(), wy.t().contiguous(), by.contiguous(),
        ys, zs, *saved, batch, steps, dt, **bptt_options("lem", hidden))
    return [ys, zs, *saved]


def backward(gys: Tensor, gy_last: Tensor, gz_last: Tensor, wh: Tensor, wy: Tensor, ys: Tensor, zs: Tensor,
             sy: Tensor, sz: Tensor, zh: Tensor, yh: Tensor, dt: float) -> list[Tensor]:
    """BPTT from dL/dy_1..dL/dy_T [T, B, H] and dL/d(y_T, z_T): dL/dx [T, B, 4H], dL/dWh, dL/dbh, dL/dWy,
    dL/dby, dL/dy0, dL/dz0 (as `cpu.cpp`)."""
    steps, batch, hidden = gys.shape
    whc = wh.contiguous()
    gy, gz = gy_last.contiguous().clone(), gz_last.contiguous().clone()
    gx = gys.new_empty(steps, batch, 4 * hidden)
    _backward[row_programs(batch)](
        gys, gys.stride(0), gys.stride(1), whc, wy.contiguous(), ys, zs, sy, sz, zh, yh, gx, gy, gz, batch, steps, dt,
        **bptt_options("lem", hidden))
    g = gx.reshape(steps * batch, 4 * hidden)
    g_h = torch.cat((g[:, : 2 * hidden], g[:, 3 * hidden:]), dim=1)  # the hid2hid chunks: y's step, z's step, z
    gy = gy + torch.cat((gx[0, :, : 2 * hidden], gx[0, :, 3 * hidden:]), dim=1) @ whc  # step 1's path to y_0
    g_sum = g_h.sum(0)
    g_wh = g_h.t() @ ys[:steps].reshape(steps * batch, hidden)
    g_q = g[:, 2 * hidden: 3 * hidden]
    g_wy = g_q.t() @ zs[1:].reshape(steps * batch, hidden)
    return [gx, g_wh, g_sum, g_wy, g_q.sum(0), gy, gz]
