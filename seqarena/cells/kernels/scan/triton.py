"""The diagonal linear recurrence h_t = a_t ⊙ h_{t-1} + b_t on the GPU: a chunked associative scan in Triton.

Equations, backward and the choice of source: `seqarena.cells.kernels.scan`. One program owns one
batch row and `BLOCK_N` channels and walks the sequence in chunks of `CHUNK` steps: it loads the
chunk's `(a_t, b_t)` as `[CHUNK, BLOCK_N]` tiles, scans them along time with `tl.associative_scan`
under the operator `(a, b) ∘ (a', b') = (a' a, a' b + b')` (log-depth inside the chunk), adds the
carry from the previous chunk (`h_t += A_t ⊙ carry`, `A_t` the scanned product) and keeps the
chunk's last state as the next carry. Masked steps past T are the identity `(1, 0)`. Complex tensors
are read as interleaved (real, imaginary) pairs (`torch.view_as_real`) and scanned with the complex
product written out. `reverse` visits time T−1 … 0, the backward's form. float32 / complex64 CUDA
tensors (and, under Triton's interpreter, float64 / complex128 CPU tensors: the tests).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl
from torch import Tensor

from seqarena.cells.kernels.triton_common import check_size

#: Steps per chunk (the tile's rows) and channels per program.
CHUNK = 64
BLOCK_N = 32


@triton.jit
def _add(x, y):
    return x + y


@triton.jit
def _last_row(tile, last):
    """The tile's last row (`last` marks it): a masked sum along time, without `tl.sum` (a library
    function that Triton's interpreter only patches when triton.language is first imported under it)."""
    return tl.reduce(tl.where(last, tile, 0.0), 0, _add)


@triton.jit
def _combine_real(a1, b1, a2, b2):
    return a2 * a1, a2 * b1 + b2


@triton.jit
def _combine_complex(ar1, ai1, br1, bi1, ar2, ai2, br2, bi2):
    ar = ar2 * ar1 - ai2 * ai1
    ai = ar2 * ai1 + ai2 * ar1
    br = ar2 * br1 - ai2 * bi1 + br2
    bi = ar2 * bi1 + ai2 * br1 + bi2
    return ar, ai, br, bi


@triton.jit
def _scan(a_ptr, sab, sat, san, b_ptr, h_ptr, T, N, REVERSE: tl.constexpr, COMPLEX: tl.constexpr,
          CH: tl.constexpr, BN: tl.constexpr):
    row = tl.program_id(0)
    cols = tl.program_id(1) * BN + tl.arange(0, BN)
    col_mask = cols < N
    steps = tl.arange(0, CH)
    last = (steps == CH - 1)[:, None]
    width = 2 if COMPLEX else 1  # scalars per element (interleaved real, imaginary)
    carry_r = tl.full((BN,), 0.0, h_ptr.dtype.element_ty)
    carry_i = carry_r
    c0 = 0
    while c0 < T:
        pos = c0 + steps
        t = tl.where(REVERSE, T - 1 - pos, pos)
        mask = (pos < T)[:, None] & col_mask[None, :]
        a_off = row * sab + t[:, None] * sat + cols[None, :] * san
        b_off = (row * T + t[:, None]) * N + cols[None, :]
        ar = tl.load(a_ptr + a_off * width, mask=mask, other=1.0)
        br = tl.load(b_ptr + b_off * width, mask=mask, other=0.0)
        if COMPLEX:
            ai = tl.load(a_ptr + a_off * width + 1, mask=mask, other=0.0)
            bi = tl.load(b_ptr + b_off * width + 1, mask=mask, other=0.0)
            ar, ai, br, bi = tl.associative_scan((ar, ai, br, bi), 0, _combine_complex)
            hr = br + ar * carry_r[None, :] - ai * carry_i[None, :]
            hi = bi + ar * carry_i[None, :] + ai * carry_r[None, :]
            tl.store(h_ptr + b_off * 2, hr, mask=mask)
            tl.store(h_ptr + b_off * 2 + 1, hi, mask=mask)
            carry_i = _last_row(hi, last)
        else:
            ar, br = tl.associative_scan((ar, br), 0, _combine_real)
            hr = br + ar * carry_r[None, :]
            tl.store(h_ptr + b_off, hr, mask=mask)
        carry_r = _last_row(hr, last)
        c0 += CH


def scan(a: Tensor, b: Tensor, reverse: bool) -> Tensor:
    """`h [B, T, N]` from `a` (expanded to b's shape, any strides) and `b` ([B, T, N]); zero start,
    `reverse` from the last step. The same contract as `cpu.cpp`'s `scan`."""
    b = b.contiguous()
    batch, steps, width = b.shape
    check_size(b, 2 * batch, steps, width)
    h = torch.empty_like(b)
    if b.numel() == 0:
        return h
    complex_ = b.is_complex()
    a_real = torch.view_as_real(a) if complex_ else a
    grid = (batch, triton.cdiv(width, BLOCK_N))
    _scan[grid](a_real, a.stride(0), a.stride(1), a.stride(2), torch.view_as_real(b) if complex_ else b,
                torch.view_as_real(h) if complex_ else h, steps, width, REVERSE=reverse, COMPLEX=complex_,
                CH=CHUNK, BN=BLOCK_N)
    return h
