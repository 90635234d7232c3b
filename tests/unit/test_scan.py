"""The diagonal linear scan (`seqarena.cells.kernels.scan`) against its definition, the sequential loop.

In float64 / complex128: values and every gradient (a, b, h_0) of the parallel torch scan and of the
C++ loop equal the reference loop's (autograd through the loop) at T ∈ {1, 2, 7, 1000, 10000}, for
real and complex recurrences, constant (`[N]`) and input-dependent (`[B, T, N]`) `a`; `gradcheck`
checks the reversed-scan backward against finite differences. `modal_scan` (split-complex, M modes summed;
LRU and LinOSS) in C++ against the sum of complex `scan`s, on strided inputs, with gradcheck. The Triton source
runs under Triton's interpreter (`slow`: it interprets every tile op in Python); compiled on a GPU by
scripts/gpu_ssm_checks.sh.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from seqarena.cells.kernels import scan as S

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = {"rtol": 1e-9, "atol": 1e-11}


def recurrence(steps: int, dtype: torch.dtype, constant: bool, batch: int = 3, width: int = 5,
               seed: int = 0) -> tuple[Tensor, Tensor, Tensor]:
    """A stable `(a, b, h0)`: |a| in [0.5, 0.999], so that nothing vanishes or explodes over 10^4 steps."""
    gen = torch.Generator().manual_seed(seed)
    shape = (width,) if constant else (batch, steps, width)
    radius = 0.5 + 0.499 * torch.rand(shape, generator=gen, dtype=torch.float64)
    if dtype.is_complex:
        phase = torch.rand(shape, generator=gen, dtype=torch.float64) * 6.283
        a = torch.polar(radius, phase)
        b = torch.randn(batch, steps, width, generator=gen, dtype=torch.complex128)
        h0 = torch.randn(batch, width, generator=gen, dtype=torch.complex128)
    else:
        a = radius * torch.where(torch.rand(shape, generator=gen, dtype=torch.float64) < 0.2, -1.0, 1.0)
        b = torch.randn(batch, steps, width, generator=gen, dtype=torch.float64)
        h0 = torch.randn(batch, width, generator=gen, dtype=torch.float64)
    return a, b, h0


def values_and_grads(method: str, a: Tensor, b: Tensor, h0: Tensor) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in (a, b, h0)]
    h = S.scan_reference(*leaves) if method == "loop" else S.scan(*leaves, method=method)  # type: ignore[arg-type]
    weights = torch.linspace(-1, 1, h.shape[1], dtype=torch.float64)[:, None]
    loss = (h.abs() ** 2 * weights).sum() if h.is_complex() else (h**2 * weights).sum()
    loss.backward()
    return [h.detach(), *(leaf.grad for leaf in leaves)]  # type: ignore[misc]


def assert_same(got: list[Tensor], want: list[Tensor]) -> None:
    for name, x, y in zip(("h", "grad a", "grad b", "grad h0"), got, want, strict=True):
        assert torch.allclose(x, y, **TOL), f"{name}: max diff {(x - y).abs().max().item():.3g}"


@pytest.mark.parametrize("method", ["parallel", "cpp"])
@pytest.mark.parametrize("constant", [True, False], ids=["const-a", "input-a"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=["real", "complex"])
@pytest.mark.parametrize("steps", [1, 2, 7, 1000, 10000])
def test_scan_matches_the_loop(method: str, constant: bool, dtype: torch.dtype, steps: int) -> None:
    a, b, h0 = recurrence(steps, dtype, constant, batch=2 if steps > 1000 else 3)
    assert_same(values_and_grads(method, a, b, h0), values_and_grads("loop", a, b, h0))


def test_hand_computed_three_steps() -> None:
    """h_1 = b_1, h_2 = a_2 h_1 + b_2, h_3 = a_3 h_2 + b_3 with a = (·, 0.5, −2), b = (1, 2, 3): 1, 2.5, −2."""
    a = torch.tensor([[[9.0], [0.5], [-2.0]]], dtype=torch.float64)
    b = torch.tensor([[[1.0], [2.0], [3.0]]], dtype=torch.float64)
    for method in ("parallel", "cpp", "reference"):
        h = S.scan(a, b, method=method)  # type: ignore[arg-type]
        assert h.flatten().tolist() == [1.0, 2.5, -2.0], method


def test_complex_b_with_real_a_and_complex_rotation() -> None:
    """a = i rotates by 90° per step: b = (1, 0, 0, 0) gives 1, i, −1, −i."""
    b = torch.zeros(1, 4, 1, dtype=torch.complex128)
    b[0, 0, 0] = 1.0
    h = S.scan(torch.tensor([1j], dtype=torch.complex128), b, method="parallel")
    assert torch.allclose(h.flatten(), torch.tensor([1, 1j, -1, -1j], dtype=torch.complex128))


@pytest.mark.parametrize("method", ["parallel", "cpp"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128], ids=["real", "complex"])
@pytest.mark.parametrize("constant", [True, False], ids=["const-a", "input-a"])
def test_gradcheck(method: str, dtype: torch.dtype, constant: bool) -> None:
    a, b, h0 = recurrence(70, dtype, constant, batch=2, width=3, seed=4)  # 70 > CHUNK: two chunks
    leaves = tuple(t.requires_grad_(True) for t in (a, b, h0))
    assert torch.autograd.gradcheck(lambda x, y, z: S.scan(x, y, z, method=method), leaves)  # type: ignore[arg-type]


def test_chunked_scan_with_small_chunks_recurses(monkeypatch: pytest.MonkeyPatch) -> None:
    """With 4-step chunks a 100-step scan takes three levels of chunk totals; still the loop's values."""
    monkeypatch.setattr(S, "CHUNK", 4)
    a, b, h0 = recurrence(100, torch.complex128, False)
    assert_same(values_and_grads("parallel", a, b, h0), values_and_grads("loop", a, b, h0))


def test_float32_scan_stays_close_over_ten_thousand_steps() -> None:
    a, b, _ = recurrence(10000, torch.float64, True, batch=2)
    want = S.scan_reference(a, b)
    for method in ("parallel", "cpp"):
        got = S.scan(a.float(), b.float(), method=method).double()  # type: ignore[arg-type]
        assert torch.allclose(got, want, rtol=1e-4, atol=1e-4), method


def test_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"b must be \[B, T, N\]"):
        S.scan(torch.ones(3), torch.ones(4, 3))


@pytest.fixture(scope="module")
def interpreted() -> Iterator[None]:
    """Triton's interpreter on, and the Triton sources imported again under it, for these tests only."""
    pytest.importorskip("triton")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        for module in [m for m in sys.modules if m.startswith("seqarena.cells.kernels.") and
                       (m.endswith(".triton") or m.endswith(".triton_common"))]:
            patch.delitem(sys.modules, module)
        yield


@pytest.mark.slow
@pytest.mark.usefixtures("interpreted")
@pytest.mark.parametrize(("steps", "dtype", "constant"), [
    (1, torch.float64, True), (7, torch.complex128, False), (130, torch.float64, False),
    (130, torch.complex128, True)])
def test_triton_scan_matches_the_loop(steps: int, dtype: torch.dtype, constant: bool) -> None:
    """130 steps: three chunks of 64, the last mostly masked; width 40: two column blocks of 32. (The
    interpreter runs each tile op in Python: about 45 s per case.)"""
    a, b, h0 = recurrence(steps, dtype, constant, width=40)
    assert_same(values_and_grads("triton", a, b, h0), values_and_grads("loop", a, b, h0))


@pytest.mark.parametrize("shape", [(1, 7, 4), (7, 4), (3, 1, 4), (4,)], ids=["batch-bcast", "2d", "time-bcast", "1d"])
def test_broadcast_a_gets_its_summed_gradient(shape: tuple[int, ...]) -> None:
    """`a` broadcast over batch and/or time: the fused C++ backward sums dL/da over the broadcast dimensions."""
    gen = torch.Generator().manual_seed(2)
    a = (0.5 + 0.4 * torch.rand(shape, generator=gen, dtype=torch.float64)).requires_grad_(True)
    b = torch.randn(3, 7, 4, generator=gen, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: S.scan(x, y, method="cpp"), (a, b))


def modal_case(modes: int, steps: int, seed: int = 5) -> tuple[Tensor, Tensor, Tensor]:
    """`(lam, k [M, N], v [3, T, 2N])`: |λ| in [0.5, 0.999], and `v` a strided slice (batch and time strides of
    a wider tensor), as the C++ kernel reads it in place."""
    gen = torch.Generator().manual_seed(seed)
    width = 5
    radius = 0.5 + 0.499 * torch.rand(modes, width, generator=gen, dtype=torch.float64)
    lam = torch.polar(radius, 6.283 * torch.rand(modes, width, generator=gen, dtype=torch.float64))
    k = torch.randn(modes, width, generator=gen, dtype=torch.complex128)
    v = torch.randn(3, 2 * steps, 4 * width, generator=gen, dtype=torch.float64)[:, ::2, 1:1 + 2 * width]
    return lam, k, v


def modal_values_and_grads(method: str, lam: Tensor, k: Tensor, v: Tensor) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in (lam, k, v)]
    y = S.modal_scan(*leaves, method=method)  # type: ignore[arg-type]
    weights = torch.linspace(-1, 1, y.shape[1], dtype=torch.float64)[:, None]
    (y**2 * weights).sum().backward()
    return [y.detach(), *(leaf.grad for leaf in leaves)]  # type: ignore[misc]


@pytest.mark.parametrize("modes", [1, 2])
@pytest.mark.parametrize("steps", [1, 7, 1000])
def test_modal_scan_matches_the_complex_scans(modes: int, steps: int) -> None:
    """The fused C++ modal scan (split layout) against the sum of `scan`s in complex128 through the loop: values
    and the gradients of λ, k and the strided v."""
    lam, k, v = modal_case(modes, steps)
    got, want = modal_values_and_grads("cpp", lam, k, v), modal_values_and_grads("reference", lam, k, v)
    for name, x, y in zip(("y", "grad lam", "grad k", "grad v"), got, want, strict=True):
        assert torch.allclose(x, y, **TOL), f"{name}: max diff {(x - y).abs().max().item():.3g}"


def test_modal_scan_hand_computed() -> None:
    """Two modes λ = (0.5, i), k = (1, 2) driven by v = 1, 0, 0: y = 1 + 2, 0.5 + 2i, 0.25 − 2."""
    lam = torch.tensor([[0.5 + 0j], [1j]], dtype=torch.complex128)
    k = torch.tensor([[1 + 0j], [2 + 0j]], dtype=torch.complex128)
    v = torch.tensor([[[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]], dtype=torch.float64)
    for method in ("cpp", "parallel"):
        y = S.modal_scan(lam, k, v, method=method)  # type: ignore[arg-type]
        assert y[0].tolist() == [[3.0, 0.0], [0.5, 2.0], [-1.75, 0.0]], method


@pytest.mark.parametrize("modes", [1, 2])
def test_modal_scan_gradcheck(modes: int) -> None:
    leaves = tuple(t.detach().requires_grad_(True) for t in modal_case(modes, 9, seed=6))
    assert torch.autograd.gradcheck(lambda *x: S.modal_scan(*x, method="cpp"), leaves)


def test_modal_scan_bad_shape_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"modal_scan: lam, k \[M, N\], v \[B, T, 2N\]"):
        S.modal_scan(torch.ones(1, 3, dtype=torch.complex128), torch.ones(1, 3, dtype=torch.complex128),
                     torch.ones(2, 4, 5, dtype=torch.float64))


@pytest.mark.parametrize("constant", [True, False], ids=["const-a", "input-a"])
def test_complex_a_with_strided_channels_gets_its_gradient(constant: bool) -> None:
    """A complex `a` whose channels are not contiguous (every other one of a wider tensor): the C++ backward reads
    it through its stride."""
    gen = torch.Generator().manual_seed(3)
    shape = (8,) if constant else (2, 6, 8)
    wide = torch.polar(0.5 + 0.4 * torch.rand(shape, generator=gen, dtype=torch.float64),
                       6.283 * torch.rand(shape, generator=gen, dtype=torch.float64))
    a = wide[..., ::2].detach().requires_grad_(True)
    b = torch.randn(2, 6, 4, generator=gen, dtype=torch.complex128).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda x, y: S.scan(x, y, method="cpp"), (a, b))
