"""Dropout whose mask is hashed from a seed and an element's index instead of drawn and stored.

Srivastava, Hinton, Krizhevsky, Sutskever & Salakhutdinov (2014), "Dropout: A Simple Way to Prevent Neural
Networks from Overfitting", JMLR 15: in training each element is kept with probability 1 − p and the kept ones
are scaled by 1/(1 − p) (torch's `nn.Dropout`, "inverted" dropout):

    out_i = x_i · keep_i / (1 − p),      keep_i = [u_i ≥ p],   u_i = hash(seed, i) / 2^24 ∈ [0, 1)

The seed is one draw from torch's default generator per call (so `torch.manual_seed` makes runs repeat); the
mask is never stored: `cpu.cpp` hashes it again in the backward (dL/dx = dL/dout · keep / (1 − p)). On the CPU
this is one vectorised pass each way, where torch's `bernoulli_` + `div_` + `mul` took about 60 ms per
[64, 1000, 128] float32 tensor on the 2-core machine. Other devices, dtypes and a C++ build failure take
`nn.functional.dropout`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.autograd.function import FunctionCtx, once_differentiable

from seqarena.cells.kernels import cpp_build


class HashedDropout(torch.autograd.Function):
    """`(x, p, seed) -> x · keep / (1 − p)` (module docstring); `x` contiguous."""

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, p: float, seed: int) -> Tensor:
        ctx.p, ctx.seed = p, seed
        return cpp_build.require("dropout").masked(x, seed, p)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None, None]:
        return cpp_build.require("dropout").masked(grad.contiguous(), ctx.seed, ctx.p), None, None


def dropout(x: Tensor, p: float, training: bool) -> Tensor:
    """`nn.functional.dropout(x, p, training)` with the mask hashed on the CPU (module docstring)."""
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or x.dtype not in (torch.float32, torch.float64) or cpp_build.load("dropout") is None:
        return nn.functional.dropout(x, p, True)
    seed = int(torch.randint(-(2**63), 2**63 - 1, (), dtype=torch.int64).item())
    return HashedDropout.apply(x.contiguous(), p, seed)


class Dropout(nn.Dropout):
    """`nn.Dropout` on `dropout` (the hashed mask on the CPU)."""

    def forward(self, x: Tensor) -> Tensor:
        return dropout(x, self.p, self.training)
