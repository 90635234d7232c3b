"""Helpers of the kernel tests (`test_fused.py`, `test_fused_cells.py`, `test_fused_gpu.py`): build a C++
source once, run a model's forward and backward on one path, compare two runs."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from types import ModuleType

import pytest
import torch
from torch import Tensor, nn

from seqarena.cells.cornn import CoRNN
from seqarena.cells.janet import JANET
from seqarena.cells.kernel_stack import KernelStackedRecurrent
from seqarena.cells.kernels import cpp_build
from seqarena.cells.kernels.cornn import CoRNNRecurrence
from seqarena.cells.kernels.janet import JANETRecurrence
from seqarena.cells.kernels.lem import LEMRecurrence
from seqarena.cells.kernels.unicornn import UnICORNNRecurrence
from seqarena.cells.lem import LEM
from seqarena.cells.unicornn import UnICORNN

log = logging.getLogger(__name__)

#: Tolerance of fused against eager in float64, on outputs and on every gradient.
F64 = {"rtol": 1e-9, "atol": 1e-11}


def require_kernel(name: str) -> None:
    """Build (first run on a machine) or load (cached) kernel `name`'s C++ source; fail the test if it cannot."""
    start = time.perf_counter()
    if cpp_build.load(name) is None:
        pytest.fail(f"the {name} C++ kernel did not build: {cpp_build.build_error(name)}")
    log.info("%s kernel ready in %.1f s", name, time.perf_counter() - start)


def make_kernel_model(name: str, input_size: int, hidden: int, layers: int,
                     dropout: float = 0.2) -> KernelStackedRecurrent:
    """A model with hyperparameters that make every term of the update matter (not the defaults)."""
    if name == "cornn":
        return CoRNN(input_size, hidden, layers, dropout, dt=0.1, gamma=2.0, epsilon=3.0)
    if name == "janet":
        return JANET(input_size, hidden, layers, dropout, chrono=True, seq_len=50)
    if name == "lem":
        return LEM(input_size, hidden, layers, dropout, dt=0.5)
    return UnICORNN(input_size, hidden, layers, dropout, dt=0.3, alpha=2.0)


def weighted_loss(features: Tensor) -> Tensor:
    """A loss that weighs every step and unit differently, so that every gradient path counts."""
    weights = torch.linspace(-1, 1, features.shape[1], dtype=features.dtype, device=features.device)
    return (features * weights[:, None]).square().sum()


def outputs_and_grads(model: nn.Module, u: Tensor, use_kernel: bool, seed: int = 0,
                      path: str = "fused-cpu") -> list[Tensor]:
    """Features, then d(loss)/d(input) and d(loss)/d(each parameter), for one forward/backward pass;
    asserts that the model took `path` (through its kernel) or the eager unroll."""
    model.use_kernel = use_kernel
    model.zero_grad()
    u = u.detach().requires_grad_(True)
    torch.manual_seed(seed)  # the same dropout masks on both paths
    features = model(u)
    assert model.implementation == (path if use_kernel else "eager")
    weighted_loss(features).backward()
    return [features.detach(), u.grad, *(p.grad for p in model.parameters())]


def assert_all_close(fused: list[Tensor], eager: list[Tensor], **tolerance: float) -> None:
    assert len(fused) == len(eager)
    for got, want in zip(fused, eager, strict=True):
        torch.testing.assert_close(got, want, **tolerance)


def assert_scaled_close(fused: list[Tensor], eager: list[Tensor], tolerance: float, floor: float = 1e-12) -> None:
    """Each pair equal within `tolerance` after dividing both by the reference's largest entry (at least
    `floor`, the scale of a reference that is exactly zero)."""
    assert len(fused) == len(eager)
    for got, want in zip(fused, eager, strict=True):
        scale = want.abs().max().clamp_min(floor)
        torch.testing.assert_close(got / scale, want / scale, rtol=tolerance, atol=tolerance)


def largest_scaled_error(fused: list[Tensor], eager: list[Tensor]) -> float:
    """max over pairs of max|fused − eager| / max|eager| (what the docstrings report as measured)."""
    return max(float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))
               for got, want in zip(fused, eager, strict=True))


def recurrence_gradcheck_args(name: str, ops: ModuleType) -> tuple[Callable[..., tuple[Tensor, ...]], list[Tensor]]:
    """Cell `name`'s autograd Function on `ops` with its scalar hyperparameters bound, and random
    float64 tensor inputs that require gradients (for `torch.autograd.gradcheck`)."""
    b, t, h = 2, 5, 3
    if name == "cornn":
        function = lambda *a: CoRNNRecurrence.apply(ops, *a, 0.3, 1.2, 0.7)  # noqa: E731
        args = [torch.randn(b, t, h), 0.5 * torch.randn(h, 2 * h), torch.randn(b, h), torch.randn(b, h)]
    elif name == "janet":
        function = lambda *a: JANETRecurrence.apply(ops, *a, 1.0)  # noqa: E731
        args = [torch.randn(b, t, 2 * h), 0.5 * torch.randn(2 * h, h), torch.randn(b, h)]
    elif name == "lem":
        function = lambda *a: LEMRecurrence.apply(ops, *a, 0.8)  # noqa: E731
        args = [torch.randn(b, t, 4 * h), 0.5 * torch.randn(3 * h, h), torch.randn(3 * h), 0.5 * torch.randn(h, h),
                torch.randn(h), torch.randn(b, h), torch.randn(b, h)]
    else:
        function = lambda *a: UnICORNNRecurrence.apply(ops, *a, 3.0)  # noqa: E731
        args = [torch.randn(b, t, h), torch.randn(4, h), torch.randn(4), torch.rand(4), 0.1 + 0.2 * torch.rand(4),
                torch.randn(b, 4), torch.randn(b, 4)]
    return function, [a.double().requires_grad_(True) for a in args]
