"""The Triton scan compiled on a CUDA GPU against the float64 loop on the CPU (`gpu`: skipped without CUDA).

float32 and complex64 on the GPU, values and gradients (a, b, h_0) after dividing by the reference's
largest entry within 1e-4, at T ∈ {1, 7, 1000, 10000}; LinOSS and LRU as whole models (features and every
parameter's gradient) against float64 copies on the CPU. Needs torch and Triton only (run with
`--noconftest`, as scripts/gpu_ssm_checks.sh does). Under Triton's interpreter the same kernel is checked
in float64 by tests/unit/test_scan.py.
"""

from __future__ import annotations

import copy

import pytest
import torch
from torch import Tensor

from seqarena import cells
from seqarena.cells.kernels import scan as S

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def scaled_close(got: list[Tensor], want: list[Tensor], tol: float = 1e-4) -> None:
    for i, (x, y) in enumerate(zip(got, want, strict=True)):
        x = x.detach().cpu().to(y.dtype)
        scale = y.abs().max().clamp(min=1e-12)
        err = float(((x - y).abs() / scale).max())
        assert err <= tol, f"tensor {i}: scaled error {err:.3g}"


def run(method: str, a: Tensor, b: Tensor, h0: Tensor) -> list[Tensor]:
    leaves = [t.detach().clone().requires_grad_(True) for t in (a, b, h0)]
    h = S.scan_reference(*leaves) if method == "loop" else S.scan(*leaves, method=method)  # type: ignore[arg-type]
    weights = torch.linspace(-1, 1, h.shape[1], device=h.device, dtype=h.real.dtype)[:, None]
    (h.abs() ** 2 * weights).sum().backward()
    return [h, *(leaf.grad for leaf in leaves)]  # type: ignore[misc]


@pytest.mark.parametrize("constant", [True, False], ids=["const-a", "input-a"])
@pytest.mark.parametrize("complex_", [False, True], ids=["real", "complex"])
@pytest.mark.parametrize("steps", [1, 7, 1000, 10000])
def test_compiled_triton_scan_matches_the_float64_loop(steps: int, complex_: bool, constant: bool) -> None:
    gen = torch.Generator().manual_seed(steps)
    shape = (40,) if constant else (3, steps, 40)
    radius = 0.5 + 0.499 * torch.rand(shape, generator=gen, dtype=torch.float64)
    a = torch.polar(radius, torch.rand(shape, generator=gen, dtype=torch.float64) * 6.28) if complex_ else radius
    dtype = torch.complex128 if complex_ else torch.float64
    b = torch.randn(3, steps, 40, generator=gen, dtype=dtype)
    h0 = torch.randn(3, 40, generator=gen, dtype=dtype)
    want = run("loop", a, b, h0) if steps <= 1000 else run("cpp", a, b, h0)
    got = run("triton", *(t.to("cuda", torch.complex64 if t.is_complex() else torch.float32) for t in (a, b, h0)))
    assert S.backend_for(got[0]) == "triton"
    scaled_close(got, want)


@pytest.mark.parametrize("name", ["linoss", "lru", "mingru"])
def test_models_on_the_gpu_match_float64_on_the_cpu(name: str) -> None:
    torch.manual_seed(0)
    model = cells.build(name, 3, 16, 2, seq_len=300).eval()
    reference = copy.deepcopy(model).double()
    u = torch.randn(4, 300, 3, dtype=torch.float64)
    runs = []
    for net, x in ((model.cuda(), u.float().cuda()), (reference, u)):
        x = x.requires_grad_(True)
        out = net(x)
        out[:, -1].square().sum().backward()
        runs.append([out, x.grad, *(p.grad for p in net.parameters())])
    scaled_close(runs[0], runs[1], 1e-3)
