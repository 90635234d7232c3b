"""Which backend runs a model's kernel on an input: its C++ source, its Triton source, or none (eager).

Each kernel folder has two sources with the same `forward`/`backward` functions (their "ops"): the
C++ source `cpu.cpp` (built by `cpp_build`) for float32/float64 CPU tensors and the Triton source
`triton.py` for float32 CUDA tensors. `choose(kernel, x)` decides, once per forward call of a model,
which one runs `x` and loads it (building or importing it on first use); it returns a `Backend`, or
None where neither applies (other devices and dtypes, or a source that cannot be loaded: the caller
takes the eager unroll). A Triton source that cannot be imported (no Triton) is logged and warned
once, like a failed C++ build.

With Triton's interpreter on (`TRITON_INTERPRET=1` when the Triton sources are first imported and
when they run), CPU tensors of float32 or float64 go through the Triton source instead, reported as
`"fused-triton-interpreted"`: the GPU code runs, slowly, on a machine without a GPU (the tests do
this on such machines; `tests/unit/test_fused_gpu.py`).

Both sources read and write time-major sequences `[T, B, ·]` (`time_major` makes the view).
"""

from __future__ import annotations

import importlib
import logging
import os
import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

import torch
from torch import Tensor

from seqarena.cells.kernels import cpp_build

log = logging.getLogger(__name__)

#: What a model reports (its `implementation`, recorded with every trial) for each way a kernel runs.
CPP_ON_CPU, TRITON_ON_CUDA, TRITON_INTERPRETED = "fused-cpu", "fused-cuda", "fused-triton-interpreted"
#: Each source's file in a kernel's folder.
SOURCE_FILES = {"cpp": cpp_build.SOURCE_NAME, "triton": "triton.py"}

_triton_errors: dict[str, str] = {}


@dataclass(frozen=True)
class Backend:
    """The source of one kernel that runs an input, loaded: `ops.forward`/`ops.backward` are its entry points."""

    kernel: str
    source: Literal["cpp", "triton"]
    #: "fused-cpu", "fused-cuda" or "fused-triton-interpreted" (the values trials record).
    implementation: str
    ops: ModuleType


def interpreted() -> bool:
    """Whether Triton's CPU interpreter is on (`TRITON_INTERPRET`, Triton's own switch)."""
    return os.environ.get("TRITON_INTERPRET", "").lower() in ("1", "true", "on", "yes")


def cpp_serves(x: Tensor) -> bool:
    """Whether the C++ sources take `x` (device and dtype; the build is separate)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def triton_serves(x: Tensor) -> bool:
    """Whether the Triton sources take `x`: float32 on a CUDA device, or float32/float64 on the CPU
    while the interpreter is on."""
    if x.device.type == "cuda":
        return x.dtype == torch.float32
    return interpreted() and cpp_serves(x)


def triton_ops(kernel: str) -> ModuleType | None:
    """The Triton source `<kernel>/triton.py`, imported, or None when it cannot be (warned once)."""
    if kernel in _triton_errors:
        return None
    try:
        return importlib.import_module(f"seqarena.cells.kernels.{kernel}.triton")
    except ImportError as error:
        _triton_errors[kernel] = f"{type(error).__name__}: {error}"
        reason = _triton_errors[kernel]
        message = f"seqarena: the Triton kernel '{kernel}' is unavailable ({reason}); using the eager path"
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return None


def has_source(kernel: str, source: Literal["cpp", "triton"]) -> bool:
    """Whether `kernel`'s folder has that source (`cpu.cpp`, `triton.py`)."""
    return (cpp_build.KERNELS_DIR / kernel / SOURCE_FILES[source]).is_file()


def choose(kernel: str, x: Tensor) -> Backend | None:
    """The backend that runs `kernel` on `x` (loading its source on first use), or None for the eager unroll."""
    if triton_serves(x):
        ops = triton_ops(kernel) if has_source(kernel, "triton") else None
        if ops is None:
            return None
        return Backend(kernel, "triton", TRITON_ON_CUDA if x.device.type == "cuda" else TRITON_INTERPRETED, ops)
    if cpp_serves(x) and has_source(kernel, "cpp"):
        ops = cpp_build.load(kernel)
        return None if ops is None else Backend(kernel, "cpp", CPP_ON_CPU, ops)
    return None


def require(kernel: str, x: Tensor) -> Backend:
    """`choose(kernel, x)`, or `RuntimeError` saying why no backend runs `x` (for tests and benchmarks)."""
    backend = choose(kernel, x)
    if backend is None:
        reason = unavailable(kernel) or f"no backend for {x.dtype} tensors on {x.device.type}"
        raise RuntimeError(f"the kernel '{kernel}' cannot run this input: {reason}")
    return backend


def unavailable(kernel: str) -> str | None:
    """Why a source of `kernel` could not be loaded in this process, if one was tried and failed."""
    return cpp_build.build_error(kernel) or _triton_errors.get(kernel)


def time_major(x: Tensor) -> Tensor:
    """`[B, T, K] -> [T, B, K]` as the sources read it: a view (free when the memory is already
    time-major, as the sources' own outputs are), copied only when the last stride is not 1."""
    x = x.transpose(0, 1)
    return x if x.stride(2) == 1 else x.contiguous()
