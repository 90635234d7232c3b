"""The hashed dropout (`seqarena.cells.kernels.dropout`): torch's dropout distribution with a recomputed mask.

Kept fraction within 5 standard deviations of 1 − p, kept values scaled by exactly 1/(1 − p), neighbouring
elements uncorrelated, the backward the same mask times the incoming gradient (float64, gradcheck on a fixed
seed, a strided input), repeated under one `torch.manual_seed`, the identity in evaluation mode.
"""

from __future__ import annotations

import math

import pytest
import torch

from seqarena.cells.kernels.dropout import Dropout, HashedDropout, dropout

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keeps_one_minus_p_and_scales_the_kept(p: float) -> None:
    torch.manual_seed(0)
    x = torch.rand(1000, 1000, dtype=torch.float64) + 1.0
    y = dropout(x, p, True)
    keep = y != 0
    sigma = math.sqrt(p * (1 - p) / x.numel())
    assert abs(keep.double().mean().item() - (1 - p)) < 5 * sigma
    assert torch.equal(y[keep], x[keep] * (1 / (1 - p)))


def test_neighbouring_elements_are_uncorrelated() -> None:
    torch.manual_seed(1)
    keep = (dropout(torch.ones(2_000_000), 0.5, True) != 0).double()
    for lag in (1, 2, 128):
        corr = torch.corrcoef(torch.stack((keep[:-lag], keep[lag:])))[0, 1].item()
        assert abs(corr) < 5 / math.sqrt(keep.numel()), lag


def test_backward_applies_the_same_mask_to_a_strided_input() -> None:
    torch.manual_seed(2)
    base = torch.randn(6, 40, 10, dtype=torch.float64)
    x = base[:, ::2, 1:8].requires_grad_(True)
    y = dropout(x, 0.3, True)
    grad = torch.randn_like(y)
    y.backward(grad)
    keep = (y != 0).double()
    torch.testing.assert_close(x.grad, grad * keep / 0.7, rtol=1e-15, atol=0)


def test_gradcheck_on_a_fixed_seed() -> None:
    x = torch.randn(3, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: HashedDropout.apply(t, 0.4, 12345), (x,))


def test_the_same_seed_gives_the_same_mask_and_eval_is_the_identity() -> None:
    x = torch.randn(64, 100)
    torch.manual_seed(3)
    first = dropout(x, 0.2, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.2, True), first)
    assert not torch.equal(dropout(x, 0.2, True), first)
    layer = Dropout(0.2).eval()
    assert layer(x) is x
