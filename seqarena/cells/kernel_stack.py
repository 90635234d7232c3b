"""Stacked recurrences whose layers run through their model's kernel, or through the eager unroll.

A `KernelStackedRecurrent` is a `StackedRecurrent` of `KernelCell`s: cells that can also run a whole
layer through the kernel named by the model's `kernel` (the folder `seqarena/cells/kernels/<kernel>/`,
a compiled time loop with its own backward). Each forward call asks `kernels.backend.choose` once which
backend runs the input and hands its ops to every layer; `implementation` says what ran (also in
`extra_info`, recorded with every trial):

* `"fused-cpu"` (default for float32/float64 CPU tensors): the kernel's C++ source.
* `"fused-cuda"` (default for float32 CUDA tensors): the kernel's Triton source.
* `"fused-triton-interpreted"`: the Triton source on CPU tensors under Triton's interpreter (tests).
* `"eager"`: the shared unroller through `step`, autograd through every step. Used on other devices
  and dtypes (float64 on a GPU among them), inside `probing()` (which needs every step's state),
  with `use_kernel=False`, and when the kernel cannot be built or imported (warned once, reason in
  `extra_info`). It is the reference the kernels are tested against (`tests/unit/test_fused.py`,
  `tests/unit/test_fused_cells.py`, `tests/unit/test_fused_gpu.py`).

`use_kernel` is a constructor argument, not a declared hyperparameter: `cells.build` never passes it,
so searches and specs cannot change it.
"""

from __future__ import annotations

from abc import abstractmethod
from types import ModuleType
from typing import Any, ClassVar

from torch import Tensor

from seqarena.cells.base import RecurrentCell, StackedRecurrent, active_probe, unroll
from seqarena.cells.kernels import backend as kernel_backend
from seqarena.cells.kernels.backend import Backend


class KernelCell(RecurrentCell):
    """A recurrent cell whose whole layer can also run through its model's kernel."""

    @abstractmethod
    def run_kernel(self, u: Tensor, ops: ModuleType) -> Tensor:
        """The layer's features `[B, T, H]` from its input `u [B, T, d]` and a zero initial state, through
        `ops` (the chosen backend's `forward`/`backward`)."""


class KernelStackedRecurrent(StackedRecurrent):
    """A stack of `KernelCell`s that runs through their kernel where a backend serves the input; see the
    module docstring."""

    #: The kernel's folder under `seqarena/cells/kernels/`.
    kernel: ClassVar[str]

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0,
                 use_kernel: bool = True, dropout_placement: str = "variational") -> None:
        super().__init__(input_size, hidden_size, num_layers, dropout, dropout_placement)
        self.use_kernel = use_kernel
        #: What the last forward pass ran: "fused-cpu", "fused-cuda", "fused-triton-interpreted" or "eager"
        #: ("not run" before the first).
        self.implementation = "not run"

    @abstractmethod
    def make_cell(self, input_size: int) -> KernelCell:
        """A cell of this model reading `input_size` features."""

    def choose_backend(self, x: Tensor) -> Backend | None:
        """The backend that runs a forward pass on `x`, or None for the eager unroll (loads the kernel's
        source on first use)."""
        if not self.use_kernel or active_probe() is not None:
            return None
        return kernel_backend.choose(self.kernel, x)

    def forward(self, x: Tensor) -> Tensor:
        backend = self.choose_backend(x)
        self.implementation = "eager" if backend is None else backend.implementation
        for layer, cell in enumerate(self.layers):
            x = unroll(cell, x)[0] if backend is None else cell.run_kernel(x, backend.ops)
            x = self.drop(x, layer)
        return x

    def extra_info(self) -> dict[str, Any]:
        """The implementation that ran (and why the kernel was unavailable, if it was)."""
        info: dict[str, Any] = {"implementation": self.implementation}
        error = kernel_backend.unavailable(self.kernel)
        if error is not None:
            info["fused_unavailable"] = error
        return info
