"""What the Triton sources (`<kernel>/triton.py`) share: activations, a row-block matrix product, launch sizes.

The BPTT kernels (coRNN, JANET, LEM) are persistent: one program owns `ROWS` batch rows and every
unit of them, and walks through all time steps, so the recurrent matrix product of a step
(`[ROWS, K] @ [K, H]`, `tl.dot` in IEEE float32) and its elementwise update run inside one launch
with no per-step round trip through Python. The state a step reads as the matrix product's left
operand is the one the program wrote to global memory in the previous step, read back after a
block-wide barrier (`tl.debug_barrier`, CUDA's `__syncthreads`, which makes a block's global writes
visible to the whole block); states that only the elementwise update reads stay in registers.

The time loops are `while` loops over a run-time `T`: one compiled kernel serves every length, and
Triton's CPU interpreter (`TRITON_INTERPRET=1`, which the tests use on machines without a GPU) runs
them too (its `range` needs a compile-time bound). Hidden sizes are compile-time constants (one
compiled kernel per H), batch sizes and lengths are not.
"""

from __future__ import annotations

import triton
import triton.language as tl
from torch import Tensor

#: Batch rows per program of the BPTT kernels: the smallest M of `tl.dot`.
ROWS = 16
#: Units per program of the elementwise UnICORNN kernel (one thread per (batch row, unit)).
UNITS = 128
#: Per BPTT kernel: the inner dimension of each `tl.dot` of the row-block product (`K_BLOCK`) and its
#: `input_precision`, "ieee" (float32 FMA) or "tf32x3" (tensor cores, three TF32 products: float32
#: accuracy to a few ulp). Chosen per cell by `benchmarks/fused_gpu.py tune` (figures in
#: benchmarks/RESULTS.md); a kernel not named here uses `DEFAULT_CONFIG`.
DEFAULT_CONFIG: tuple[int, str] = (16, "ieee")
CONFIG: dict[str, tuple[int, str]] = {"cornn": (64, "tf32x3"), "janet": (64, "tf32x3"), "lem": (64, "tf32x3")}
#: Warps per program of the BPTT kernels (8: no register spills up to H = 128 on sm_90, by ptxas -v).
WARPS = 8


def padded(hidden: int) -> int:
    """The power of two (at least 16) that holds `hidden` units: a block's width."""
    return max(16, triton.next_power_of_2(hidden))


def row_programs(batch: int) -> tuple[int]:
    """The launch grid of the BPTT kernels: one program per `ROWS` batch rows."""
    return (triton.cdiv(batch, ROWS),)


def check_size(like: Tensor, *sizes: int) -> None:
    """Refuse buffers whose element offsets would not fit the kernels' 32-bit index arithmetic."""
    count = 1
    for size in sizes:
        count *= size
    if count >= 2**31:
        raise ValueError(f"a Triton kernel's buffer of shape {list(sizes)} ({count} elements) is too large for "
                         f"32-bit offsets (input {list(like.shape)}); use shorter sequences or smaller batches")


def bptt_options(cell: str, hidden: int) -> dict[str, int | str]:
    """The compile-time arguments and launch options of cell `cell`'s BPTT kernels for `hidden` units."""
    k_block, precision = CONFIG.get(cell, DEFAULT_CONFIG)
    return {"H": hidden, "BH": padded(hidden), "R": ROWS, "BK": k_block, "PRECISION": precision, "num_warps": WARPS}


@triton.jit
def tanh(x):
    """tanh through one exponential, stable for large |x|: `sign(x) (1 − e^{−2|x|}) / (1 + e^{−2|x|})`."""
    e = tl.exp(-2.0 * tl.abs(x))
    t = (1.0 - e) / (1.0 + e)
    return tl.where(x >= 0, t, -t)


@triton.jit
def sigmoid(x):
    """The logistic function `1 / (1 + e^{−x})`."""
    return 1.0 / (1.0 + tl.exp(-x))


@triton.jit
def row_block(B, H: tl.constexpr, BH: tl.constexpr, R: tl.constexpr):
    """The batch rows, the units (padded to BH) and their masks of this program's row block (BPTT
    kernels): `rows, cols, row_mask, col_mask, mask` with `mask` the [R, BH] tile's."""
    rows = tl.program_id(0) * R + tl.arange(0, R)
    cols = tl.arange(0, BH)
    row_mask, col_mask = rows < B, cols < H
    return rows, cols, row_mask, col_mask, row_mask[:, None] & col_mask[None, :]


@triton.jit
def rows_times(acc, a_ptr, a_stride, rows, row_mask, b_ptr, b_stride, cols, col_mask, K: tl.constexpr,
               BK: tl.constexpr, PRECISION: tl.constexpr):
    """`acc + A[rows, 0:K] @ B[0:K, cols]`: A's row r starts at `a_ptr + r · a_stride`, B's row k at
    `b_ptr + k · b_stride`; both have unit column stride. Masked rows, columns and k read zeros.
    `PRECISION` is `tl.dot`'s `input_precision`."""
    for k0 in range(0, K, BK):
        ks = k0 + tl.arange(0, BK)
        k_mask = ks < K
        a = tl.load(a_ptr + rows[:, None] * a_stride + ks[None, :], mask=row_mask[:, None] & k_mask[None, :],
                    other=0.0)
        b = tl.load(b_ptr + ks[:, None] * b_stride + cols[None, :], mask=k_mask[:, None] & col_mask[None, :],
                    other=0.0)
        acc += tl.dot(a, b, input_precision=PRECISION)
    return acc


@triton.jit
def tile(ptr, row_stride, rows, cols, mask):
    """Load the `[rows, cols]` tile of a row-major block (zeros where masked)."""
    return tl.load(ptr + rows[:, None] * row_stride + cols[None, :], mask=mask, other=0.0)


@triton.jit
def put(ptr, row_stride, rows, cols, mask, value):
    """Store `value` into the `[rows, cols]` tile of a row-major block."""
    tl.store(ptr + rows[:, None] * row_stride + cols[None, :], value, mask=mask)
