"""Stacked recurrences with three implementations: a compiled CPU time loop, Triton GPU kernels, the eager unroll.

`FusedStackedRecurrent` is a `StackedRecurrent` whose cells also have `fused(u) -> [B, T, H]`, the
layer's features through a kernel of `seqarena.cells.kernels` (named by the class attribute
`kernel`; `kernels.select` picks the module for the input's device). `implementation` says which
path the last forward pass took (also in `extra_info`):

* `"fused-cpu"` (default for float32/float64 CPU tensors): the compiled C++ kernel, with its own backward.
* `"fused-cuda"` (default for float32 CUDA tensors): the Triton kernels, with their own backward.
* `"eager"`: the shared unroller through `step`, autograd through every step. Used on other devices
  and dtypes (float64 on a GPU among them), inside `probing()` (which needs every step's state),
  with `fused=False`, and when the kernel cannot be built or imported (warned once, reason in
  `extra_info`). It is the reference the fused paths are tested against (`tests/unit/test_fused.py`,
  `tests/unit/test_fused_cells.py`, `tests/unit/test_fused_gpu.py`).

`fused` is a constructor argument, not a declared hyperparameter: `cells.build` never passes it,
so searches and specs cannot change it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor

from seqarena.cells.base import StackedRecurrent, active_probe, unroll
from seqarena.cells.kernels import select


class FusedStackedRecurrent(StackedRecurrent):
    """A stack of cells with a `fused(u)` method; see the module docstring."""

    #: The kernel's name in `seqarena.cells.kernels.build.SOURCES`.
    kernel: ClassVar[str]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 fused: bool = True) -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout)
        self.fused = fused
        #: The path the last forward pass took: "fused-cpu", "fused-cuda" or "eager" ("not run" before the first).
        self.implementation = "not run"

    def fused_path(self, x: Tensor) -> str | None:
        """The fused path a forward pass on `x` takes ("fused-cpu", "fused-cuda"), or None for the eager
        unroll (builds or imports the kernel on first use)."""
        if not self.fused or active_probe() is not None:
            return None
        return select.path(self.kernel, x)

    def forward(self, x: Tensor) -> Tensor:
        path = self.fused_path(x)
        fused = path is not None
        self.implementation = path or "eager"
        for cell in self.layers:
            x = cell.fused(x) if fused else unroll(cell, x)[0]
            x = self.dropout(x)
        return x

    def extra_info(self) -> dict[str, Any]:
        """The implementation that ran (and why the kernel was unavailable, if it was)."""
        info: dict[str, Any] = {"implementation": self.implementation}
        error = select.unavailable(self.kernel)
        if error is not None:
            info["fused_unavailable"] = error
        return info
