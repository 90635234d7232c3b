"""UnICORNN's recurrence on the GPU: one thread per (batch row, unit) walking through time, both ways.

Rusch & Mishra (2021), "UnICORNN: A recurrent model for learning very long time dependencies",
ICML, PMLR 139:9168-9178, Sec. 2 (symplectic Euler) and Sec. 3 (the backward pass that runs the
step backwards in time instead of storing the states); the equations are in
`seqarena.cells.kernels.unicornn`, the C++ source is `cpu.cpp`. The recurrence is
elementwise per unit (`w` is a vector), so every (batch row, unit) is an independent chain: one
thread per chain, all steps of a time chunk in one launch, as the authors' CUDA kernel does.

`forward` and `backward` take what the C++ source's do: sequences `[B, K, H]` (a time chunk of a
longer `[B, T, H]`; any strides with a unit last one), states and gradient carries `[B, H]`
contiguous and updated in place, so `UnICORNNRecurrence`'s chunked, memory-free backward runs on
either device unchanged. float32 CUDA tensors (any dtype under Triton's interpreter).
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

from seqarena.cells.kernels.triton_common import UNITS, tanh


@triton.jit
def _forward(x_ptr, sxb, sxt, w_ptr, delta_ptr, alpha, y_ptr, z_ptr, ys_ptr, syb, syt, B, T,
             H: tl.constexpr, BLOCK: tl.constexpr):
    chain = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = chain < B * H
    unit = chain % H
    w = tl.load(w_ptr + unit, mask=mask, other=0.0)
    delta = tl.load(delta_ptr + unit, mask=mask, other=0.0)
    y = tl.load(y_ptr + chain, mask=mask, other=0.0)
    z = tl.load(z_ptr + chain, mask=mask, other=0.0)
    x_row = x_ptr + (chain // H) * sxb + unit
    ys_row = ys_ptr + (chain // H) * syb + unit
    # x_n .. x_{n+3} in flight: each step issues the load of x_{n+4} (prefetch four steps ahead)
    x0 = tl.load(x_row, mask=mask & (T > 0), other=0.0)
    x1 = tl.load(x_row + sxt, mask=mask & (T > 1), other=0.0)
    x2 = tl.load(x_row + 2 * sxt, mask=mask & (T > 2), other=0.0)
    x3 = tl.load(x_row + 3 * sxt, mask=mask & (T > 3), other=0.0)
    t = 0
    while t < T:
        x4 = tl.load(x_row + (t + 4) * sxt, mask=mask & (t + 4 < T), other=0.0)
        z = z - delta * (tanh(w * y + x0) + alpha * y)
        y = y + delta * z
        tl.store(ys_row + t * syt, y, mask=mask)
        x0, x1, x2, x3 = x1, x2, x3, x4
        t += 1
    tl.store(y_ptr + chain, y, mask=mask)
    tl.store(z_ptr + chain, z, mask=mask)


@triton.jit
def _backward(x_ptr, sxb, sxt, gys_ptr, sgb, sgt, gx_ptr, w_ptr, delta_ptr, alpha, y_ptr, z_ptr, gy_ptr, gz_ptr,
              gw_ptr, gdelta_ptr, B, T, H: tl.constexpr, BLOCK: tl.constexpr):
    chain = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = chain < B * H
    unit = chain % H
    w = tl.load(w_ptr + unit, mask=mask, other=0.0)
    delta = tl.load(delta_ptr + unit, mask=mask, other=0.0)
    y = tl.load(y_ptr + chain, mask=mask, other=0.0)
    z = tl.load(z_ptr + chain, mask=mask, other=0.0)
    gy = tl.load(gy_ptr + chain, mask=mask, other=0.0)
    gz = tl.load(gz_ptr + chain, mask=mask, other=0.0)
    gw = tl.load(gw_ptr + chain, mask=mask, other=0.0)
    gdelta = tl.load(gdelta_ptr + chain, mask=mask, other=0.0)
    x_row = x_ptr + (chain // H) * sxb + unit
    gys_row = gys_ptr + (chain // H) * sgb + unit
    gx_row = gx_ptr + (chain // H) * T * H + unit
    # x_n, dL/dy_n of the next four steps (backwards) in flight, as in the forward kernel
    x0 = tl.load(x_row + (T - 1) * sxt, mask=mask & (T - 1 >= 0), other=0.0)
    x1 = tl.load(x_row + (T - 2) * sxt, mask=mask & (T - 2 >= 0), other=0.0)
    x2 = tl.load(x_row + (T - 3) * sxt, mask=mask & (T - 3 >= 0), other=0.0)
    x3 = tl.load(x_row + (T - 4) * sxt, mask=mask & (T - 4 >= 0), other=0.0)
    g0 = tl.load(gys_row + (T - 1) * sgt, mask=mask & (T - 1 >= 0), other=0.0)
    g1 = tl.load(gys_row + (T - 2) * sgt, mask=mask & (T - 2 >= 0), other=0.0)
    g2 = tl.load(gys_row + (T - 3) * sgt, mask=mask & (T - 3 >= 0), other=0.0)
    g3 = tl.load(gys_row + (T - 4) * sgt, mask=mask & (T - 4 >= 0), other=0.0)
    t = T - 1
    while t >= 0:
        x4 = tl.load(x_row + (t - 4) * sxt, mask=mask & (t - 4 >= 0), other=0.0)
        g4 = tl.load(gys_row + (t - 4) * sgt, mask=mask & (t - 4 >= 0), other=0.0)
        prev = y - delta * z  # y_{n-1}: the inverse step
        s = tanh(w * prev + x0)
        f = s + alpha * prev
        gyn = gy + g0  # dL/dy_n
        gzn = gz + delta * gyn  # dL/dz_n (y_n reads the new z_n)
        ga = -delta * gzn * (1.0 - s * s)  # dL/d(w y_{n-1} + x_n)
        gdelta += gyn * z - gzn * f
        gw += ga * prev
        tl.store(gx_row + t * H, ga, mask=mask)
        gy = gyn + ga * w - delta * gzn * alpha
        gz = gzn
        z = z + delta * f  # z_{n-1}
        y = prev
        x0, x1, x2, x3 = x1, x2, x3, x4
        g0, g1, g2, g3 = g1, g2, g3, g4
        t -= 1
    tl.store(y_ptr + chain, y, mask=mask)
    tl.store(z_ptr + chain, z, mask=mask)
    tl.store(gy_ptr + chain, gy, mask=mask)
    tl.store(gz_ptr + chain, gz, mask=mask)
    tl.store(gw_ptr + chain, gw, mask=mask)
    tl.store(gdelta_ptr + chain, gdelta, mask=mask)


def _grid(batch: int, hidden: int) -> tuple[int]:
    return (triton.cdiv(batch * hidden, UNITS),)


def forward(x: Tensor, w: Tensor, delta: Tensor, alpha: float, y: Tensor, z: Tensor, ys: Tensor) -> None:
    """Run the recurrence over x [B, K, H] from the states (y, z) [B, H], which end as the last step's;
    write y_1..y_K into ys [B, K, H] (as `cpu.cpp`'s forward)."""
    batch, steps, hidden = x.shape
    _forward[_grid(batch, hidden)](x, x.stride(0), x.stride(1), w, delta, alpha, y, z, ys, ys.stride(0), ys.stride(1),
                                   batch, steps, H=hidden, BLOCK=UNITS)


def backward(x: Tensor, gys: Tensor, w: Tensor, delta: Tensor, alpha: float, y: Tensor, z: Tensor, gy: Tensor,
             gz: Tensor, gw: Tensor, gdelta: Tensor) -> Tensor:
    """The reversible backward pass over x [B, K, H], last step first (as `cpu.cpp`'s backward):
    (y, z) go from the states after step K to those before step 1, (gy, gz) carry the gradients, gw and
    gdelta [B, H] accumulate; returns dL/dx [B, K, H]."""
    batch, steps, hidden = x.shape
    gx = x.new_empty(batch, steps, hidden)
    _backward[_grid(batch, hidden)](x, x.stride(0), x.stride(1), gys, gys.stride(0), gys.stride(1), gx, w, delta,
                                    alpha, y, z, gy, gz, gw, gdelta, batch, steps, H=hidden, BLOCK=UNITS)
    return gx
