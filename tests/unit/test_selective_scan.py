"""Mamba's selective scan (`scan.selective_scan`) against its definition, a sequential loop in plain torch.

    h_t[e, n] = exp(Δ_t[e] A[e, n]) h_{t−1}[e, n] + Δ_t[e] B_t[n] x_t[e],    y_t[e] = Σ_n C_t[n] h_t[e, n]

In float64: the values and the gradients of x, Δ, A, B and C of the fused C++ kernel ("cpp": checkpoints
every SELECTIVE_CHUNK steps, the backward recomputing each chunk) and of the materialised path on the
torch scan ("parallel") equal the loop's (autograd through the loop) at T from 1 to 3000, across chunk
boundaries; `gradcheck` checks the fused backward against finite differences.
"""

from __future__ import annotations

import functools
import math

import pytest
import torch
from torch import Tensor

from seqarena.cells.kernels import scan as S

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = {"rtol": 1e-9, "atol": 1e-11}
NAMES = ("y", "grad x", "grad delta", "grad A", "grad B", "grad C")


def inputs(steps: int, batch: int = 2, inner: int = 3, width: int = 5, seed: int = 0) -> tuple[Tensor, ...]:
    """`(x, Δ, A, B, C)` as Mamba makes them: Δ > 0 (softplus), A < 0 (−exp(A_log)), so |exp(Δ A)| < 1."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    delta = torch.nn.functional.softplus(randn(batch, steps, inner) - 2.0)
    A = -torch.exp(randn(inner, width) * 0.5)
    return randn(batch, steps, inner), delta, A, randn(batch, steps, width), randn(batch, steps, width)


def loop(x: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tensor:
    """The definition, one step per time step."""
    h = x.new_zeros(x.shape[0], x.shape[2], A.shape[1])
    out = []
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * x[:, t])[..., None] * B[:, t, None, :]
        out.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(out, dim=1)


def values_and_grads(method: str, args: tuple[Tensor, ...]) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in args]
    y = loop(*leaves) if method == "loop" else S.selective_scan(*leaves, method=method)  # type: ignore[arg-type]
    weights = torch.linspace(-1, 1, y.shape[1], dtype=torch.float64)[:, None]
    (y**2 * weights).sum().backward()
    return [y.detach(), *(leaf.grad for leaf in leaves)]  # type: ignore[misc]


def assert_same(got: list[Tensor], want: list[Tensor]) -> None:
    for name, x, y in zip(NAMES, got, want, strict=True):
        assert x.shape == y.shape, f"{name}: shape {list(x.shape)}, want {list(y.shape)}"
        assert torch.allclose(x, y, **TOL), f"{name}: max diff {(x - y).abs().max().item():.3g}"


@functools.cache
def loop_of(steps: int) -> list[Tensor]:
    """The loop's values and gradients on `inputs(steps)` (computed once per length for both methods)."""
    return values_and_grads("loop", inputs(steps, batch=2 if steps < 1000 else 1))


@pytest.mark.parametrize("method", ["cpp", "parallel"])
@pytest.mark.parametrize("steps", [1, 2, 63, 64, 65, 1000, 3000])
def test_selective_scan_matches_the_loop(method: str, steps: int) -> None:
    assert_same(values_and_grads(method, inputs(steps, batch=2 if steps < 1000 else 1)), loop_of(steps))


@pytest.mark.parametrize("chunk", [1, 7])
def test_fused_backward_across_many_chunk_boundaries(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    """Checkpoints every step, or every 7 steps of 30 (a short last chunk): still the loop's gradients."""
    monkeypatch.setattr(S, "SELECTIVE_CHUNK", chunk)
    args = inputs(30, width=16)
    assert_same(values_and_grads("cpp", args), values_and_grads("loop", args))


def test_gradcheck_of_the_fused_kernel() -> None:
    args = tuple(t.requires_grad_(True) for t in inputs(70, batch=2, inner=2, width=3, seed=3))  # two chunks
    assert torch.autograd.gradcheck(lambda *a: S.selective_scan(*a, method="cpp"), args)


def test_hand_computed_two_steps() -> None:
    """E = N = 1, A = −1, Δ = 1, x = B = (1, 2), C = (1, 1): h = 1, e^{−1} + 4; y = h."""
    x = torch.tensor([[[1.0], [2.0]]], dtype=torch.float64)
    ones = torch.ones(1, 2, 1, dtype=torch.float64)
    y = S.selective_scan(x, ones, -torch.ones(1, 1, dtype=torch.float64), x.clone(), ones, method="cpp")
    assert torch.allclose(y.flatten(), torch.tensor([1.0, torch.e**-1 + 4.0], dtype=torch.float64))


def test_float32_stays_close_over_three_thousand_steps() -> None:
    args = inputs(3000, batch=1, width=16)
    want = loop(*args)
    got = S.selective_scan(*(t.float() for t in args), method="cpp").double()
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-4)


def test_the_cpu_default_is_the_fused_kernel() -> None:
    """`backend_for` picks "cpp" for CPU tensors here (the extension builds), and the fused Function runs."""
    x, delta, A, B, C = (t.requires_grad_(True) for t in inputs(5))
    assert S.backend_for(x) == "cpp"
    assert S.selective_scan(x, delta, A, B, C).grad_fn.name() == "SelectiveScanBackward"


def test_bad_shapes_are_rejected() -> None:
    x, delta, A, B, C = inputs(4)
    with pytest.raises(ValueError, match=r"A \[E, N\]"):
        S.selective_scan(x, delta, A.t(), B, C)


def test_mamba_traced_states_give_the_fused_output() -> None:
    """Under `probing()` (the trace page) Mamba materialises and reports its states `[B, E·N]` per step; its
    output equals the fused kernel's."""
    from seqarena.cells.base import probing
    from seqarena.cells.mamba import MambaMixer

    torch.manual_seed(0)
    mixer = MambaMixer(4, 3, 2, 2, 0.001, 0.1).double()
    u = torch.randn(2, 9, 4, dtype=torch.float64)
    fused = mixer(u)
    with probing() as probe:
        traced = mixer(u)
    assert len(probe.states) == 1 and len(probe.states[0]) == 9 and probe.states[0][0][0].shape == (2, 8 * 3)
    assert torch.allclose(fused, traced, **TOL)


def test_mamba_causal_convolution_is_the_depthwise_conv1d() -> None:
    """`causal_depthwise_conv` (k shifted products) equals Conv1d(groups=E, padding k − 1) cut to T steps."""
    from seqarena.cells.mamba import causal_depthwise_conv

    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
    x = torch.randn(2, 9, 6, dtype=torch.float64)
    want = conv(x.transpose(1, 2))[..., :9].transpose(1, 2)
    assert torch.allclose(causal_depthwise_conv(x, conv), want, **TOL)


def gated_inputs(steps: int, batch: int = 2, inner: int = 3, width: int = 5, seed: int = 0) -> tuple[Tensor, ...]:
    """`(x, dt, A, B, C, D, z)` of `gated_selective_scan`: dt before the softplus (a few above its threshold 20),
    z and x as slices of one `[B, T, 2E]` tensor (strided, as Mamba's `in_proj` output gives them)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    xz = randn(batch, steps, 2 * inner)
    dt = randn(batch, steps, inner) - 2.0
    dt[0, 0, 0] = 21.0  # softplus' linear branch
    BC = randn(batch, steps, 2 * width)
    return (
        xz[..., :inner],
        dt,
        -torch.exp(randn(inner, width) * 0.5),
        BC[..., :width],
        BC[..., width:],
        randn(inner),
        xz[..., inner:],
    )


def gated_loop(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor, z: Tensor) -> Tensor:
    """Mamba's block around the scan by its definition: (loop(x, softplus(dt), A, B, C) + D x) SiLU(z)."""
    return (loop(x, torch.nn.functional.softplus(dt), A, B, C) + D * x) * torch.nn.functional.silu(z)


GATED_NAMES = ("out", "grad x", "grad dt", "grad A", "grad B", "grad C", "grad D", "grad z")


def gated_values_and_grads(method: str, args: tuple[Tensor, ...]) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in args]
    out = gated_loop(*leaves) if method == "loop" else S.gated_selective_scan(*leaves, method=method)  # type: ignore[arg-type]
    weights = torch.linspace(-1, 1, out.shape[1], dtype=torch.float64)[:, None]
    (out**2 * weights).sum().backward()
    return [out.detach(), *(leaf.grad for leaf in leaves)]  # type: ignore[misc]


@pytest.mark.parametrize("method", ["cpp", "parallel"])
@pytest.mark.parametrize("steps", [1, 31, 32, 33, 300])
def test_gated_selective_scan_matches_the_loop(method: str, steps: int) -> None:
    """Softplus, scan, read-out, D skip and SiLU(z) gate fused: the values and all eight gradients are the
    composition's, across checkpoint boundaries (SELECTIVE_CHUNK = 32), with strided x, z, B, C."""
    args = gated_inputs(steps)
    got, want = gated_values_and_grads(method, args), gated_values_and_grads("loop", args)
    for name, x, y in zip(GATED_NAMES, got, want, strict=True):
        assert x.shape == y.shape, f"{name}: shape {list(x.shape)}, want {list(y.shape)}"
        assert torch.allclose(x, y, **TOL), f"{name}: max diff {(x - y).abs().max().item():.3g}"


def test_gated_kernel_reads_strided_slices() -> None:
    """x and z as the two halves of one `[B, T, 2E]` leaf, B and C as slices of one `[B, T, 2N]` leaf (the
    kernel reads them in place): the same values and gradients as on contiguous copies."""
    x, dt, A, B, C, D, z = gated_inputs(70)
    xz, BC = torch.cat((x, z), -1).requires_grad_(True), torch.cat((B, C), -1).requires_grad_(True)
    inner, width = x.shape[-1], B.shape[-1]
    out = S.gated_selective_scan(
        xz[..., :inner], dt, A, BC[..., :width], BC[..., width:], D, xz[..., inner:], method="cpp"
    )
    assert not xz[..., :inner].is_contiguous()
    (out**2 * torch.linspace(-1, 1, out.shape[1], dtype=torch.float64)[:, None]).sum().backward()
    want = gated_values_and_grads("loop", (x, dt, A, B, C, D, z))
    assert torch.allclose(out, want[0], **TOL)
    assert torch.allclose(xz.grad, torch.cat((want[1], want[7]), -1), **TOL)
    assert torch.allclose(BC.grad, torch.cat((want[4], want[5]), -1), **TOL)


def test_gradcheck_of_the_fused_gated_kernel() -> None:
    args = tuple(t.detach().clone().requires_grad_(True) for t in gated_inputs(40, batch=2, inner=2, width=3, seed=5))
    assert torch.autograd.gradcheck(lambda *a: S.gated_selective_scan(*a, method="cpp"), args)


def test_gated_hand_computed_step() -> None:
    """E = N = 1, one step: dt = 0 → Δ = ln 2; A = −1, x = B = C = 1, D = 2, z = 0 → SiLU(0) = 0; z = 1 →
    out = (Δ + 2) · 1/(1 + e^{−1})."""
    one = torch.ones(1, 1, 1, dtype=torch.float64)
    for zval, want in ((0.0, 0.0), (1.0, (math.log(2.0) + 2.0) / (1.0 + math.exp(-1.0)))):
        out = S.gated_selective_scan(
            one,
            0 * one,
            -torch.ones(1, 1, dtype=torch.float64),
            one,
            one,
            torch.tensor([2.0], dtype=torch.float64),
            zval * one,
            method="cpp",
        )
        assert out.item() == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("steps", [1, 3, 4, 40])
def test_fused_conv_silu_is_the_conv_and_silu(steps: int) -> None:
    """`mamba.causal_conv_silu` (fused C++ on the CPU) on a strided slice: the values and the gradients of the
    input, weight and bias equal SiLU(Conv1d(groups=E, padding k − 1) cut to T steps)."""
    from seqarena.cells.mamba import ConvSilu, causal_conv_silu

    torch.manual_seed(1)
    conv = torch.nn.Conv1d(6, 6, 4, groups=6, padding=3).double()
    xz = torch.randn(2, steps, 12, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(2, steps, 6, dtype=torch.float64)
    got = causal_conv_silu(xz[..., :6], conv)
    assert got.grad_fn.name() == "ConvSiluBackward"
    (got * weights).sum().backward()
    grads = [t.grad.clone() for t in (xz, conv.weight, conv.bias)]
    for t in (xz, conv.weight, conv.bias):
        t.grad = None
    want = torch.nn.functional.silu(conv(xz[..., :6].transpose(1, 2))[..., :steps].transpose(1, 2))
    (want * weights).sum().backward()
    assert torch.allclose(got, want, **TOL)
    for name, g, w in zip(("x", "weight", "bias"), grads, (xz.grad, conv.weight.grad, conv.bias.grad), strict=True):
        assert torch.allclose(g, w, **TOL), f"grad {name}: max diff {(g - w).abs().max().item():.3g}"
    args = (
        torch.randn(2, 5, 3, dtype=torch.float64, requires_grad=True),
        torch.randn(3, 4, dtype=torch.float64, requires_grad=True),
        torch.randn(3, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(ConvSilu.apply, args)


def test_float32_gated_kernel_stays_close_in_every_gradient() -> None:
    """The float32 kernel (its own vectorised exp2, `cpu.cpp` `exp2_of`) at E = 37 (vector lanes and a scalar
    tail) over 100 steps (four checkpoint chunks): the value and all eight gradients within 1e-5 of each one's
    largest magnitude of the float64 loop's (measured: at most 7e-7)."""
    args = gated_inputs(100, batch=2, inner=37, width=5, seed=2)
    want = gated_values_and_grads("loop", args)
    got = gated_values_and_grads("cpp", tuple(t.float() for t in args))
    for name, x, y in zip(GATED_NAMES, got, want, strict=True):
        assert x.dtype == torch.float32
        error, scale = (x.double() - y).abs().max().item(), y.abs().max().item()
        assert error <= 1e-5 * scale, f"{name}: max diff {error:.3g} at scale {scale:.3g}"


def test_mamba_narrow_linear_and_in_proj_halves_are_the_linear_maps() -> None:
    """`mamba.narrow_linear` (the weight gradient as (xᵀ g)ᵀ) and `in_proj_halves` (two products with W_in's
    halves): the values and the gradients of the input, weight and bias of `nn.Linear` and of its output's
    `chunk(2, -1)`, on a strided input (`dt_proj` reads a slice of `x_proj`'s output)."""
    from seqarena.cells.mamba import in_proj_halves, narrow_linear

    torch.manual_seed(2)
    layer = torch.nn.Linear(3, 5).double()
    wide = torch.randn(2, 7, 8, dtype=torch.float64, requires_grad=True)
    seeds = [torch.randn(2, 7, 5, dtype=torch.float64), torch.randn(2, 7, 2, dtype=torch.float64)]

    def run(fused: bool) -> list[Tensor]:
        for t in (wide, layer.weight, layer.bias):
            t.grad = None
        x = wide[..., 2:5]
        out = narrow_linear(layer, x) if fused else layer(x)
        weight = layer.weight[:4]
        halves = in_proj_halves(x, weight) if fused else torch.nn.functional.linear(x, weight).chunk(2, -1)
        torch.autograd.backward([out, *halves], [seeds[0], seeds[1], -seeds[1]])
        return [out.detach(), *(h.detach() for h in halves), wide.grad, layer.weight.grad, layer.bias.grad]

    for got, want in zip(run(True), run(False), strict=True):
        assert torch.allclose(got, want, **TOL)
    assert narrow_linear(layer, wide[..., 2:5]).grad_fn.name() == "NarrowLinearBackward"


def test_mamba_fused_rms_norm_is_torch_rms_norm() -> None:
    """`mamba.rms_norm` (fused C++ on the CPU) on a [2, 7, 5] input: the values and the gradients of the input
    and the weight equal `nn.RMSNorm`'s; gradcheck of the fused backward."""
    from seqarena.cells.mamba import RMSNorm, rms_norm

    torch.manual_seed(3)
    norm = torch.nn.RMSNorm(5, eps=1e-5).double()
    with torch.no_grad():
        norm.weight.copy_(torch.randn(5, dtype=torch.float64))
    x = torch.randn(2, 7, 5, dtype=torch.float64, requires_grad=True)
    seed = torch.randn(2, 7, 5, dtype=torch.float64)
    results = []
    for fused in (True, False):
        x.grad, norm.weight.grad = None, None
        y = rms_norm(x, norm) if fused else norm(x)
        assert (y.grad_fn.name() == "RMSNormBackward") == fused
        (y * seed).sum().backward()
        results.append([y.detach(), x.grad, norm.weight.grad])
    for got, want in zip(*results, strict=True):
        assert torch.allclose(got, want, **TOL)
    leaf = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, w: RMSNorm.apply(a, w, 1e-5), (leaf, weight))
