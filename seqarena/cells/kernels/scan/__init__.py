"""The diagonal linear recurrence every state-space model of the zoo runs on, with its reversed-scan backward.

    h_t = a_t ⊙ h_{t-1} + b_t,      t = 1..T,   h_0 = 0 (or a given initial state)

`a` and `b` are real or complex; `a` is either input-dependent (`[B, T, N]`, Mamba, minGRU) or one
vector for all steps (`[N]`, LinOSS, LRU, S4D). Three ways to compute it, all giving `h [B, T, N]`:

* `scan_reference`: the sequential loop, one step per time step (the definition; the tests' reference).
* `scan_parallel`: the associative scan of Blelloch (1990) on the pairs `(a_t, b_t)` with the
  operator `(a, b) ∘ (a', b') = (a' a, a' b + b')`, chunked: a Hillis–Steele log-depth scan inside
  chunks of `CHUNK` steps, the same scan (recursively) over the chunks' totals, and one fix-up
  `h_t += A_t ⊙ carry` with `A_t` the within-chunk product of the `a`'s. Depth O(log T), work
  O(T log CHUNK), memory O(B·T·N) (a few buffers of the input's size; nothing per level is kept).
* the sources of this folder, chosen per call by `scan` (see `backend_for`): `cpu.cpp`, a
  sequential C++ loop over time (vectorised over N, parallel over B) for CPU tensors, and
  `triton.py`, a chunked associative scan (`tl.associative_scan`) for CUDA tensors.

Backward (`LinearScan`, one autograd Function for every source). With `g_t = ∂L/∂h_t` from the
outputs and `λ_t` the total gradient with respect to `h_t` (PyTorch's convention for complex
tensors, in which the gradient of `y = a x` with respect to `x` is `conj(a) ∂L/∂y`):

    λ_t = g_t + conj(a_{t+1}) ⊙ λ_{t+1},   λ_T = g_T        (the same scan, run in reverse time)
    ∂L/∂b_t = λ_t,    ∂L/∂a_t = λ_t ⊙ conj(h_{t-1})          (summed over broadcast dimensions)

so the backward is one reversed scan plus one product: no per-step graph, memory O(B·T·N).

Mamba's selective scan (`selective_scan`) is the same recurrence with `a = exp(Δ_t A)` and `b = Δ_t B_t x_t`
over `[B, T, E, N]` states, read out as `y_t = Σ_n C_t[n] h_t[·, n]`. Materialised, it holds several
`[B, T, E·N]` tensors; `cpu.cpp`'s fused form (the CPU default, `backend_for`) keeps one batch row's states
`h [N, E]` in a local buffer (every loop runs over the E contiguous channels of `[B, T, E]` inputs, read in
place whatever their batch and time strides), stores `h` only every `SELECTIVE_CHUNK` steps, and its backward
recomputes each chunk's states from those checkpoints: memory O(B·T·(E + N) + B·E·N·T/SELECTIVE_CHUNK).
`gated_selective_scan` is the same kernel with Mamba's surroundings folded in: Δ = softplus(dt), the D skip
and the SiLU(z) gate, so the block's [B, T, E] intermediates are neither written forward nor stored for the
backward. The kernels flush denormals to zero while they run (a gradient entering at the last step decays
into float32 denormals through the reversed recurrence, and each denormal costs the CPU ~100 cycles).

`modal_scan` serves the time-invariant models (LRU, LinOSS, D-LinOSS): M modes `h^m_t = λ_m h^m_{t−1} + k_m v_t`
driven by one input and summed, with complex vectors split into real and imaginary halves of a real last
dimension, so that the real matmuls around the scan read and write them directly; `cpu.cpp` fuses it.

Shapes: `a [B, T, N]` or `[N]` (anything that broadcasts to `b`), `b [B, T, N]`; float32, float64,
complex64 or complex128. This package imports nothing else of seqarena but the kernel build and backend
helpers.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, Literal

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable

from seqarena.cells.kernels import backend as kernel_backend
from seqarena.cells.kernels import cpp_build

#: Steps per chunk of `scan_parallel` (the Hillis–Steele part runs log2(CHUNK) levels per chunk).
CHUNK = 64
#: Steps between the checkpoints of `cpu.cpp`'s fused selective scan (its backward recomputes the states
#: of one chunk at a time into a [SELECTIVE_CHUNK + 1, N] buffer).
SELECTIVE_CHUNK = 32
#: The names of the ways `scan` can compute the recurrence (`method=`).
Method = Literal["auto", "reference", "parallel", "cpp", "triton"]


def scan_reference(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """`h_t = a_t ⊙ h_{t-1} + b_t` by a Python loop over t (the definition): `[B, T, N]`."""
    a = a.expand_as(b)
    h = b.new_zeros(b.shape[0], b.shape[2]) if h0 is None else h0
    out = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1), strict=True):
        h = a_t * h + b_t
        out.append(h)
    return torch.stack(out, dim=1)


def _hillis_steele(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Inclusive scan along dim -2 of `[..., C, N]`: the products `A_t = a_t ⋯ a_1` and `h_t` (zero start).

    Level k combines every position with the one 2^k before it: log2(C) levels of elementwise work."""
    a, b = a.clone(), b.clone()
    steps, shift = a.shape[-2], 1
    while shift < steps:
        a_late, b_late = a[..., shift:, :], b[..., shift:, :]
        a_early, b_early = a[..., :-shift, :], b[..., :-shift, :]
        b_new = torch.addcmul(b_late, a_late, b_early)  # a' b + b'
        a_new = a_late * a_early
        b = torch.cat((b[..., :shift, :], b_new), dim=-2)
        a = torch.cat((a[..., :shift, :], a_new), dim=-2)
        shift *= 2
    return a, b


def scan_parallel(a: Tensor, b: Tensor) -> Tensor:
    """`h` of `h_t = a_t ⊙ h_{t-1} + b_t` (zero start) by the chunked associative scan; `[B, T, N]`.

    No autograd graph is meant to go through this (the `LinearScan` Function calls it without one)."""
    a = a.expand_as(b)
    batch, steps, width = b.shape
    if steps <= CHUNK:
        return _hillis_steele(a, b)[1]
    chunks = -(-steps // CHUNK)
    pad = chunks * CHUNK - steps
    if pad:
        a = torch.cat((a, a.new_ones(batch, pad, width)), dim=1)
        b = torch.cat((b, b.new_zeros(batch, pad, width)), dim=1)
    a_in, h_in = _hillis_steele(a.reshape(batch, chunks, CHUNK, width), b.reshape(batch, chunks, CHUNK, width))
    totals_a, totals_h = a_in[:, :, -1], h_in[:, :, -1]  # [B, chunks, N]: each chunk as one step
    ends = scan_parallel(totals_a, totals_h)  # h at each chunk's last step
    carry = torch.cat((ends.new_zeros(batch, 1, width), ends[:, :-1]), dim=1)  # h before each chunk
    h = torch.addcmul(h_in, a_in, carry[:, :, None, :])
    return h.reshape(batch, chunks * CHUNK, width)[:, :steps]


def _torch_ops(a: Tensor, b: Tensor, reverse: bool) -> Tensor:
    if not reverse:
        return scan_parallel(a, b)
    return scan_parallel(a.flip(1), b.flip(1)).flip(1)


def cpp_ops() -> ModuleType | None:
    """The compiled `cpu.cpp` (built on first use, cached per machine), or None when it cannot be built."""
    return cpp_build.load("scan")


def backend_for(b: Tensor, method: Method = "auto") -> str:
    """Which source `scan` uses for `b`: "triton" for CUDA tensors (and CPU tensors under Triton's
    interpreter), "cpp" for CPU tensors when `cpu.cpp` builds (measured faster than the vectorised
    torch scan at every size of benchmarks/ssm_scan.py), else "parallel" (vectorised torch)."""
    if method != "auto":
        return method
    if kernel_backend.triton_serves(b) or (b.is_cuda and b.dtype in (torch.float64, torch.complex64)):
        return "triton" if kernel_backend.triton_ops("scan") is not None else "parallel"
    if b.device.type == "cpu" and cpp_ops() is not None:
        return "cpp"
    return "parallel"


def _run(method: str, a: Tensor, b: Tensor, reverse: bool) -> Tensor:
    """The zero-start scan of `(a, b)` (`a` already expanded to `b`'s shape), forward or reversed in time."""
    if method == "cpp":
        ops = cpp_ops()
        if ops is None:
            raise RuntimeError(f"the C++ scan is unavailable: {cpp_build.build_error('scan')}")
        return ops.scan(a, b.contiguous(), reverse)
    if method == "triton":
        ops = kernel_backend.triton_ops("scan")
        if ops is None:
            raise RuntimeError(f"the Triton scan is unavailable: {kernel_backend.unavailable('scan')}")
        return ops.scan(a, b, reverse)
    if method == "reference":
        if reverse:
            return scan_reference(a.flip(1), b.flip(1)).flip(1)
        return scan_reference(a, b)
    return _torch_ops(a, b, reverse)


def _cpp_backward(a: Tensor, full: Tensor, grad_h: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """`(dL/da, dL/db)` by `cpu.cpp`'s fused backward (one pass per batch row)."""
    ops = cpp_ops()
    if ops is None:
        raise RuntimeError(f"the C++ scan is unavailable: {cpp_build.build_error('scan')}")
    per_step = full.stride(1) != 0 and h.shape[1] > 1  # a varies over time: one gradient per step
    lam, grad_a = ops.scan_backward(full, grad_h, h, per_step)
    grad_a = grad_a if per_step else grad_a[:, None, :]  # [B, 1, N]: summed over time
    return grad_a.sum_to_size(a.shape), lam


class LinearScan(torch.autograd.Function):
    """`(a, b, method) -> h`, zero initial state; backward by the reversed scan (module docstring)."""

    @staticmethod
    def forward(ctx: FunctionCtx, a: Tensor, b: Tensor, method: str) -> Tensor:
        full = a.expand_as(b)
        h = _run(method, full, b, reverse=False)
        ctx.save_for_backward(a, h)
        ctx.method = method
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_h: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        a, h = ctx.saved_tensors
        full = a.expand_as(h)
        if ctx.method == "cpp":
            return (*_cpp_backward(a, full, grad_h.to(h.dtype).contiguous(), h), None)
        a_next = torch.cat((full[:, 1:], full.new_zeros(full.shape[0], 1, full.shape[2])), dim=1).conj()
        lam = _run(ctx.method, a_next.resolve_conj(), grad_h.to(h.dtype).contiguous(), reverse=True)
        grad_a = None
        if ctx.needs_input_grad[0]:
            h_prev = torch.cat((h.new_zeros(h.shape[0], 1, h.shape[2]), h[:, :-1]), dim=1)
            grad_a = (lam * h_prev.conj()).sum_to_size(a.shape)
            if not a.is_complex() and grad_a.is_complex():
                grad_a = grad_a.real
        return grad_a, lam, None


def scan(a: Tensor, b: Tensor, h0: Tensor | None = None, method: Method = "auto") -> Tensor:
    """`h [B, T, N]` of `h_t = a_t ⊙ h_{t-1} + b_t` from `h_0` (zeros when None), differentiable in
    `a`, `b` and `h0`.

    `a` broadcasts to `b` (`[N]` for a constant recurrence, `[B, T, N]` for an input-dependent one);
    a real `a` may drive a complex `b`. `method` picks the source ("auto": see `backend_for`).
    """
    if b.dim() != 3:
        raise ValueError(f"scan: b must be [B, T, N], got shape {list(b.shape)}")
    if a.is_complex() and not b.is_complex():
        b = b.to(a.dtype)
    if h0 is not None:  # fold the initial state into the first input: b_1 + a_1 h_0
        first = b[:, :1] + a.expand_as(b)[:, :1] * h0[:, None]
        b = torch.cat((first, b[:, 1:]), dim=1)
    a = a.to(b.dtype) if a.is_complex() != b.is_complex() else a
    return LinearScan.apply(a, b, backend_for(b, method))


def selective_states(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, method: Method = "auto") -> Tensor:
    """The states `h [B, T, E, N]` of Mamba's selective scan, materialised (`scan` over `[B, T, E·N]`):

        h_t[e, n] = exp(Δ_t[e] A[e, n]) h_{t−1}[e, n] + Δ_t[e] B_t[n] x_t[e]        (h_0 = 0)

    with `x`, `delta` `[B, T, E]`, `A [E, N]`, `B`, `C` `[B, T, N]` (`C` is unused here: the signature is
    `selective_scan`'s)."""
    batch, steps, inner = x.shape
    a = torch.exp(delta[..., None] * A).reshape(batch, steps, -1)
    b = (delta[..., None] * B[:, :, None, :] * x[..., None]).reshape(batch, steps, -1)
    return scan(a, b, method=method).reshape(batch, steps, inner, A.shape[-1])


def channels_contiguous(t: Tensor) -> Tensor:
    """`t` itself when its last dimension is contiguous (the C++ kernels take any batch and time strides), else a
    contiguous copy."""
    return t if t.stride(-1) == 1 or t.shape[-1] <= 1 else t.contiguous()


def split_complex(z: Tensor) -> Tensor:
    """A complex `[..., N]` as the real `[..., 2N]` of `modal_scan`: real parts, then imaginary parts."""
    return torch.cat((z.real, z.imag), dim=-1)


def join_complex(x: Tensor) -> Tensor:
    """The complex `[..., N]` of a split real `[..., 2N]` (`split_complex`'s inverse)."""
    half = x.shape[-1] // 2
    return torch.complex(x[..., :half], x[..., half:])


class ModalScan(torch.autograd.Function):
    """`(lam, k, v) -> y`, all real in split layout (`modal_scan`), by `cpu.cpp`'s fused modal scan and its one
    reversed pass."""

    @staticmethod
    def forward(ctx: FunctionCtx, lam: Tensor, k: Tensor, v: Tensor) -> Tensor:
        ops = cpp_build.require("scan")
        keep = lam.shape[0] > 1
        y, states = ops.modal_scan(lam, k, v, keep)
        ctx.save_for_backward(lam, k, v, states if keep else y)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_y: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        lam, k, v, states = ctx.saved_tensors
        dv, dlam, dk = cpp_build.require("scan").modal_scan_backward(lam, k, v, states, grad_y.contiguous())
        return dlam.sum(0), dk.sum(0), dv


def modal_scan(lam: Tensor, k: Tensor, v: Tensor, method: Method = "auto") -> Tensor:
    """The modes of a diagonal time-invariant recurrence driven by one input, summed, in split-complex layout:

        h^m_t = λ_m ⊙ h^m_{t−1} + k_m ⊙ v_t,     y_t = Σ_m h^m_t        (complex; h_0 = 0)

    `lam`, `k` complex `[M, N]`; `v` real `[B, T, 2N]` and the result `y` real `[B, T, 2N]`, each the real parts
    then the imaginary parts (`split_complex`): the layout of one real matmul by `[W_re; W_im]`, so that the
    LRU (M = 1) and LinOSS (M = 2, its oscillators' two eigenmodes) form no complex tensor around the scan.
    On the CPU ("cpp", `backend_for`) one fused kernel runs the M modes, the products `k_m ⊙ v_t` and the sum
    in one pass over time, and the backward in one reversed pass (it keeps the M states for dL/dλ when M > 1);
    elsewhere the same composition of `scan`s in complex torch."""
    if lam.dim() != 2 or lam.shape != k.shape or v.dim() != 3 or v.shape[-1] != 2 * lam.shape[-1]:
        raise ValueError(f"modal_scan: lam, k [M, N], v [B, T, 2N]; got lam {list(lam.shape)}, k {list(k.shape)}, "
                         f"v {list(v.shape)}")
    if backend_for(v, method) == "cpp":
        return ModalScan.apply(split_complex(lam), split_complex(k), channels_contiguous(v))
    drive = join_complex(v)
    y = sum(scan(lam[m], k[m] * drive, method=method) for m in range(lam.shape[0]))
    return split_complex(y)  # type: ignore[arg-type]


class SelectiveScan(torch.autograd.Function):
    """`(x, dt, A, B, C, D, z, softplus) -> out [B, T, E]` by `cpu.cpp`'s fused selective scan and its
    recomputing backward: Δ = softplus(dt) (or dt), y = C h (the states h never stored), out = y + D x (D
    optional), times SiLU(z) (z optional)."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        dt: Tensor,
        A: Tensor,
        B: Tensor,
        C: Tensor,
        D: Tensor | None,
        z: Tensor | None,
        softplus: bool,
    ) -> Tensor:
        ops = cpp_build.require("scan")
        inputs = (
            channels_contiguous(x),
            channels_contiguous(dt),
            A.t().contiguous(),
            channels_contiguous(B),
            channels_contiguous(C),
            None if D is None else D.contiguous(),
            None if z is None else channels_contiguous(z),
        )
        out, kept = ops.selective_scan(*inputs, softplus, SELECTIVE_CHUNK)
        ctx.save_for_backward(*(t for t in inputs if t is not None), kept)
        ctx.present = (D is not None, z is not None)
        ctx.softplus, ctx.chunk = softplus, SELECTIVE_CHUNK
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        saved = list(ctx.saved_tensors)
        kept = saved.pop()
        x, dt, At, B, C = saved[:5]
        rest = iter(saved[5:])
        has_d, has_z = ctx.present
        D, z = (next(rest) if has_d else None), (next(rest) if has_z else None)
        grad = grad_out.to(x.dtype).contiguous()
        dx, ddt, dA, dB, dC, dD, dz = cpp_build.require("scan").selective_scan_backward(
            x, dt, At, B, C, D, z, ctx.softplus, grad, kept, ctx.chunk
        )
        return (dx, ddt, dA.sum(0).t(), dB, dC, dD.sum(0) if has_d else None, dz if has_z else None, None)


def _check_selective(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> None:
    if (
        x.dim() != 3
        or delta.shape != x.shape
        or B.shape != C.shape
        or B.shape[:2] != x.shape[:2]
        or A.shape != (x.shape[2], B.shape[2])
    ):
        raise ValueError(
            f"selective_scan: x, delta [B, T, E], A [E, N], B, C [B, T, N]; got x {list(x.shape)}, "
            f"delta {list(delta.shape)}, A {list(A.shape)}, B {list(B.shape)}, C {list(C.shape)}"
        )


def selective_scan(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, method: Method = "auto") -> Tensor:
    """`y_t[e] = Σ_n C_t[n] h_t[e, n]` (`[B, T, E]`) of the selective scan (`selective_states`), differentiable
    in every input. On the CPU with the C++ source ("cpp", `backend_for`) the fused kernel never forms `h`;
    any other `method` materialises `h` and runs it on `scan`. All inputs of one real dtype."""
    _check_selective(x, delta, A, B, C)
    if backend_for(x, method) == "cpp":
        return SelectiveScan.apply(x, delta, A, B, C, None, None, False)
    return (selective_states(x, delta, A, B, C, method) * C[:, :, None, :]).sum(-1)


def gated_selective_scan(
    x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor, method: Method = "auto"
) -> Tensor:
    """Mamba's block around its scan, `(y + D ⊙ x) ⊙ SiLU(z)` with `y = selective_scan(x, softplus(dt), A, B, C)`
    (`D [E]`, `z [B, T, E]`; `dt` before the softplus, its bias included).

    On the CPU ("cpp") one fused kernel computes the softplus, the scan, the read-out, the D skip and the gate
    in one pass over time and its backward in one more (recomputing Δ, the states and y instead of storing
    them): none of the [B, T, E] intermediates Δ, y, y + D x, SiLU(z) is written. Elsewhere the same
    composition in torch."""
    _check_selective(x, dt, A, B, C)
    if D.shape != (x.shape[2],) or z.shape != x.shape:
        raise ValueError(f"gated_selective_scan: D [E], z [B, T, E]; got D {list(D.shape)}, z {list(z.shape)}")
    if backend_for(x, method) == "cpp":
        return SelectiveScan.apply(x, dt, A, B, C, D, z, True)
    y = selective_scan(x, torch.nn.functional.softplus(dt), A, B, C, method)
    return (y + D * x) * torch.nn.functional.silu(z)
