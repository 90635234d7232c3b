"""The Triton kernels of coRNN, JANET, LEM and UnICORNN against their reference, the eager unroll.

Two ways to run, chosen by the machine:

* With a CUDA GPU: the kernels are compiled and run on float32 CUDA tensors (path `"fused-cuda"`), and
  compared with the eager unroll of the same model in float64 on the GPU: after dividing each tensor
  by the reference's largest entry, features and every gradient within 1e-4 (JANET: 1e-3, as on the
  CPU: its chrono-initialised recurrence is ill-conditioned in float32). A reference that is exactly
  zero (UnICORNN's dL/dw at T = 1 from a zero state: w multiplies y_0 = 0) is compared at 1e-8
  absolute, since the reversible backward rebuilds y_0 to within float32 rounding, not exactly.
* Without one: Triton's CPU interpreter runs the same kernel code on CPU tensors in float64 (path
  `"fused-triton-interpreted"`; the module fixture turns `TRITON_INTERPRET` on while this module runs
  and imports the kernel modules under it), compared with the eager unroll at `rtol = 1e-9`,
  `atol = 1e-11`, and the hand-written backward against finite differences (`gradcheck`). This checks
  the kernels' indexing, masking and BPTT arithmetic in every CI run; compilation and speed need the
  GPU (`benchmarks/fused_gpu.py`).

Skipped when Triton is not installed. Sizes cover several programs (17 batch rows: two blocks of
16, the second mostly masked), hidden sizes that are not powers of two (20 in a block of 32: the
masked columns; 2H = 40: two `tl.dot` steps of 32) and stacked layers with dropout between them.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor

from seqarena.cells.kernels import backend
from seqarena.cells.kernels import unicornn as unicornn_kernel
from tests.unit.fused_helpers import (
    F64,
    assert_all_close,
    assert_scaled_close,
    make_kernel_model,
    outputs_and_grads,
    recurrence_gradcheck_args,
)

pytest.importorskip("triton")

NAMES = ("cornn", "janet", "lem", "unicornn")
CUDA = torch.cuda.is_available()
DEVICE = torch.device("cuda" if CUDA else "cpu")
#: The dtype the kernels run in here, and the path the models report.
DTYPE = torch.float32 if CUDA else torch.float64
PATH = "fused-cuda" if CUDA else "fused-triton-interpreted"
#: Dropout between and after the layers where both paths draw the same masks: on the CPU (one
#: generator, same dtype); CUDA's dropout draws differ between float32 and float64 tensors.
DROPOUT = 0.0 if CUDA else 0.2


@pytest.fixture(scope="module", autouse=True)
def triton_mode() -> Iterator[None]:
    """On a machine without a GPU, Triton's interpreter on (and the Triton sources imported under it)
    for this module's tests only."""
    if CUDA:
        yield
        return
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TRITON_INTERPRET", "1")
        for module in [m for m in sys.modules if m.startswith("seqarena.cells.kernels.") and
                       (m.endswith(".triton") or m.endswith(".triton_common"))]:
            patch.delitem(sys.modules, module)  # imported again, under the interpreter
        yield


def fused_and_eager(name: str, input_size: int, hidden: int, layers: int, u: Tensor, dropout: float = DROPOUT,
                    seed: int = 0) -> tuple[list[Tensor], list[Tensor]]:
    """Features and every gradient through the Triton kernels (DTYPE on DEVICE) and through the eager
    unroll of the same model in float64, as float64 tensors."""
    torch.manual_seed(seed)
    model = make_kernel_model(name, input_size, hidden, layers, dropout).to(DEVICE)
    reference = copy.deepcopy(model).double()
    fused = outputs_and_grads(model.to(DTYPE), u.to(DEVICE, DTYPE), True, seed=seed, path=PATH)
    eager = outputs_and_grads(reference, u.to(DEVICE, torch.float64), False, seed=seed)
    return [t.double() for t in fused], eager


def assert_matches(name: str, fused: list[Tensor], eager: list[Tensor]) -> None:
    if CUDA:
        assert_scaled_close(fused, eager, 1e-3 if name == "janet" else 1e-4, floor=1e-4)
    else:
        assert_all_close(fused, eager, **F64)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 9, 30])
@pytest.mark.parametrize("batch", [3, 17])
@pytest.mark.parametrize(("hidden", "layers"), [(5, 1), (20, 2)])
def test_triton_model_matches_eager(name: str, steps: int, batch: int, hidden: int, layers: int) -> None:
    """Features and every gradient (input and each parameter); on the CPU with dropout between and after
    the layers."""
    u = torch.randn(batch, steps, 3, generator=torch.Generator().manual_seed(steps + batch + hidden))
    fused, eager = fused_and_eager(name, 3, hidden, layers, u, seed=steps * 100 + batch)
    assert_matches(name, fused, eager)


@pytest.mark.parametrize("name", NAMES)
def test_losses_with_odd_gradient_layouts(name: str) -> None:
    """`features.sum()` sends an expanded (stride 0) gradient, `features[:, -1]` a mostly-zero one, and a
    non-contiguous input comes in: all take the Triton path and match eager."""
    torch.manual_seed(5)
    model = make_kernel_model(name, 4, 6, 2, dropout=0.0).to(DEVICE, torch.float64)
    u = torch.randn(6, 3, 11, dtype=torch.float64, device=DEVICE).permute(1, 2, 0)[..., :4]  # [3, 11, 4], strided
    assert not u.is_contiguous()
    for loss in (lambda f: f.sum(), lambda f: f[:, -1].square().sum()):
        runs = []
        for use_kernel, dtype in ((True, DTYPE), (False, torch.float64)):
            model.use_kernel = use_kernel
            model.to(dtype).zero_grad()
            leaf = u.detach().to(dtype).requires_grad_(True)
            features = model(leaf)
            assert model.implementation == (PATH if use_kernel else "eager")
            loss(features).backward()
            grads = [leaf.grad, *(p.grad for p in model.parameters())]
            runs.append([t.double() for t in (features.detach(), *grads)])
        assert_matches(name, *runs)


def test_unicornn_time_chunks_match_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """UnICORNN's Function runs the kernel over chunks of time steps (both passes, states carried
    between launches); with 4-step chunks of a 23-step sequence it matches eager too."""
    monkeypatch.setattr(unicornn_kernel, "CHUNK_ELEMENTS", 3 * 8 * 4)
    monkeypatch.setattr(unicornn_kernel, "GPU_CHUNK_ELEMENTS", 3 * 8 * 4)
    u = torch.randn(3, 23, 2, generator=torch.Generator().manual_seed(7))
    fused, eager = fused_and_eager("unicornn", 2, 8, 2, u, seed=7)
    assert_matches("unicornn", fused, eager)


@pytest.mark.skipif(CUDA, reason="finite differences need float64: checked under the interpreter")
@pytest.mark.parametrize("name", NAMES)
def test_autograd_gradcheck_of_the_triton_recurrence(name: str) -> None:
    """The Triton backward against finite differences, independently of the eager path (initial states,
    weights and inputs all random, so every gradient path is exercised)."""
    torch.manual_seed(3)
    chosen = backend.require(name, torch.empty(1, dtype=torch.float64))
    assert chosen.source == "triton" and chosen.implementation == PATH
    assert chosen.ops.__name__ == f"seqarena.cells.kernels.{name}.triton"
    function, args = recurrence_gradcheck_args(name, chosen.ops)
    assert torch.autograd.gradcheck(function, args, fast_mode=True)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_long_sequence_on_the_gpu(name: str) -> None:
    """T = 1000, batch 64, hidden 128 (the benchmark's sizes; 4 programs of 16 rows), one layer."""
    u = torch.randn(64, 1000, 1, generator=torch.Generator().manual_seed(11))
    fused, eager = fused_and_eager(name, 1, 128, 1, u, dropout=0.0, seed=11)
    assert_matches(name, fused, eager)


@pytest.mark.gpu
@pytest.mark.skipif(not CUDA, reason="needs a CUDA GPU")
@pytest.mark.parametrize("name", NAMES)
def test_float64_on_the_gpu_takes_the_eager_path(name: str) -> None:
    """The Triton kernels are float32 only: a float64 CUDA model says it ran eager."""
    model = make_kernel_model(name, 2, 8, 1).to(DEVICE, torch.float64)
    model(torch.randn(2, 5, 2, dtype=torch.float64, device=DEVICE))
    assert model.implementation == "eager"
