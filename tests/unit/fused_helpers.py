"""Helpers of the fused-kernel tests (`test_fused.py`, `test_fused_cells.py`): build a kernel once,
run a model's forward and backward on one path, compare two runs."""

from __future__ import annotations

import logging
import time

import pytest
import torch
from torch import Tensor, nn

from seqarena.cells.kernels import build

log = logging.getLogger(__name__)

#: Tolerance of fused against eager in float64, on outputs and on every gradient.
F64 = {"rtol": 1e-9, "atol": 1e-11}


def require_kernel(name: str) -> None:
    """Build (first run on a machine) or load (cached) extension `name`; fail the test if it cannot."""
    start = time.perf_counter()
    if build.load(name) is None:
        pytest.fail(f"the {name} CPU kernel did not build: {build.extension_error(name)}")
    log.info("%s kernel ready in %.1f s", name, time.perf_counter() - start)


def weighted_loss(features: Tensor) -> Tensor:
    """A loss that weighs every step and unit differently, so that every gradient path counts."""
    return (features * torch.linspace(-1, 1, features.shape[1], dtype=features.dtype)[:, None]).square().sum()


def outputs_and_grads(model: nn.Module, u: Tensor, fused: bool, seed: int = 0) -> list[Tensor]:
    """Features, then d(loss)/d(input) and d(loss)/d(each parameter), for one forward/backward pass."""
    model.fused = fused
    model.zero_grad()
    u = u.detach().requires_grad_(True)
    torch.manual_seed(seed)  # the same dropout masks on both paths
    features = model(u)
    assert model.implementation == ("fused-cpu" if fused else "eager")
    weighted_loss(features).backward()
    return [features.detach(), u.grad, *(p.grad for p in model.parameters())]


def assert_all_close(fused: list[Tensor], eager: list[Tensor], **tolerance: float) -> None:
    assert len(fused) == len(eager)
    for got, want in zip(fused, eager, strict=True):
        torch.testing.assert_close(got, want, **tolerance)


def assert_scaled_close(fused: list[Tensor], eager: list[Tensor], tolerance: float) -> None:
    """Each pair equal within `tolerance` after dividing both by the reference's largest entry."""
    assert len(fused) == len(eager)
    for got, want in zip(fused, eager, strict=True):
        scale = want.abs().max().clamp_min(1e-12)
        torch.testing.assert_close(got / scale, want / scale, rtol=tolerance, atol=tolerance)


def largest_scaled_error(fused: list[Tensor], eager: list[Tensor]) -> float:
    """max over pairs of max|fused − eager| / max|eager| (what the docstrings report as measured)."""
    return max(float((got - want).abs().max() / want.abs().max().clamp_min(1e-300))
               for got, want in zip(fused, eager, strict=True))
