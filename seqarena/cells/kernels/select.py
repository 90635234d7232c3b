"""Which kernel runs a fused layer: the C++ CPU extension or the Triton GPU kernels.

Each fused cell has two kernel modules with the same `forward`/`backward` functions: the C++
extension `<name>_cpu.cpp` (built by `build`) for float32/float64 CPU tensors and the Triton module
`<name>_cuda.py` for float32 CUDA tensors. `kernel(name, x)` returns the one for `x`; `path(name, x)`
names the path a model reports (`"fused-cpu"`, `"fused-cuda"`) or None where neither applies (other
devices and dtypes, or a kernel that cannot be loaded: the caller takes the eager path). A GPU
kernel that cannot be imported (no Triton) is logged and warned once, like a failed CPU build.

With Triton's interpreter on (`TRITON_INTERPRET=1` when the Triton modules are first imported and
when they run), CPU tensors of float32 or float64 go through the Triton kernels instead, and the
path is `"fused-triton-interpreted"`: the GPU kernels' code runs, slowly, on a machine without a GPU
(the tests do this on such machines; `tests/unit/test_fused_gpu.py`).
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from types import ModuleType

import torch
from torch import Tensor

from seqarena.cells.kernels import build

log = logging.getLogger(__name__)

_cuda_errors: dict[str, str] = {}


def interpreted() -> bool:
    """Whether Triton's CPU interpreter is on (`TRITON_INTERPRET`, Triton's own switch)."""
    return os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")


def triton_supported(x: Tensor) -> bool:
    """Whether a tensor goes through the Triton kernels: float32 on a CUDA device, or float32/float64 on
    the CPU while the interpreter is on."""
    if x.device.type == "cuda":
        return x.dtype == torch.float32
    return interpreted() and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def cuda_kernel(name: str) -> ModuleType | None:
    """The Triton module of cell `name`, or None when it cannot be imported (warned once)."""
    if name in _cuda_errors:
        return None
    try:
        return importlib.import_module(f"seqarena.cells.kernels.{name}_cuda")
    except ImportError as error:
        _cuda_errors[name] = f"{type(error).__name__}: {error}"
        message = f"seqarena: the fused GPU kernel '{name}' is unavailable ({_cuda_errors[name]}); using the eager path"
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return None


def kernel(name: str, x: Tensor) -> ModuleType:
    """The kernel module for `x`'s device; `RuntimeError` with the reason when it is unavailable."""
    if triton_supported(x):
        module = cuda_kernel(name)
        if module is None:
            raise RuntimeError(f"the fused GPU kernel '{name}' is unavailable: {_cuda_errors[name]}")
        return module
    return build.require(name)


def path(name: str, x: Tensor) -> str | None:
    """`"fused-cpu"`, `"fused-cuda"` (or `"fused-triton-interpreted"`) when cell `name`'s kernel can run on
    `x` (building or importing it on first use), else None."""
    if triton_supported(x):
        if cuda_kernel(name) is None:
            return None
        return "fused-cuda" if x.device.type == "cuda" else "fused-triton-interpreted"
    if build.supported(x) and build.load(name) is not None:
        return "fused-cpu"
    return None


def unavailable(name: str) -> str | None:
    """Why a kernel of cell `name` could not be loaded in this process, if one was tried and failed."""
    return build.extension_error(name) or _cuda_errors.get(name)
