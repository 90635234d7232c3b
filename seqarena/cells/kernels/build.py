"""Build and load the C++ CPU kernels with torch's `cpp_extension`, once per source and machine.

The compiled module lives in `$SEQARENA_EXT_CACHE/<name>-<key>/` (default `~/.cache/seqarena/ext`), where
`key` hashes the source, the compiler flags, the torch and Python versions and the CPU's vector
capability (the code is built with `-march=native`): a changed source, or a worker with another
CPU on a shared home, builds its own copy; otherwise a process only loads the cached `.so`. A
file lock makes concurrent processes take turns, so one builds and the others load. Loading is
lazy (first use) and memoised per process; a failure is logged once and remembered, and callers
fall back to the eager path (`extension_error` says why).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import shutil
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch
from torch import Tensor

log = logging.getLogger(__name__)

#: Extension name -> C++ source, one module per fused cell.
SOURCES = {name: Path(__file__).with_name(f"{name}_cpu.cpp") for name in ("unicornn", "cornn", "janet", "lem")}
#: The header the BPTT kernels include (next to the sources); part of the build key of each source that includes it.
HEADER = Path(__file__).with_name("kernel_common.h")
#: -ffast-math lets GCC call glibc's vectorised tanh (libmvec); it is a compile flag only, so no
#: process-wide flush-to-zero start-up code is linked in.
CFLAGS = ("-O3", "-march=native", "-ffast-math")

_loaded: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}
#: Seconds the last `load` took in this process, by extension name (build or cached load).
load_seconds: dict[str, float] = {}


def cache_root() -> Path:
    """`$SEQARENA_EXT_CACHE`, default `~/.cache/seqarena/ext`: a machine-wide build cache, shared by
    every SEQARENA_HOME (a build takes about 40 s; a cached load well under a second)."""
    configured = os.environ.get("SEQARENA_EXT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "seqarena" / "ext"


def build_key(name: str) -> str:
    """Hash of what the compiled module depends on: source (and the shared header if it includes it),
    flags, versions, CPU capability."""
    source = SOURCES[name].read_bytes()
    digest = hashlib.sha256(source)
    if f'#include "{HEADER.name}"'.encode() in source:
        digest.update(HEADER.read_bytes())
    cpu = (platform.machine(), torch.backends.cpu.get_cpu_capability())
    facts = (CFLAGS, torch.__version__, sys.version_info[:2], cpu)
    digest.update(repr(facts).encode())
    return digest.hexdigest()[:16]


def _ninja_on_path() -> None:
    """Put the `ninja` Python package's binary on PATH when no `ninja` is there (cpp_extension runs it)."""
    if shutil.which("ninja") is None:
        import ninja  # the `ninja` dependency

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _compile(name: str) -> ModuleType:
    """Build (or load the cached build of) extension `name` under the cache, holding a file lock."""
    from torch.utils import cpp_extension

    _ninja_on_path()
    key = build_key(name)
    directory = cache_root() / f"{name}-{key}"
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return cpp_extension.load(name=f"seqarena_{name}_{key}", sources=[str(SOURCES[name])],
                                      extra_cflags=list(CFLAGS), build_directory=str(directory), verbose=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def load(name: str) -> ModuleType | None:
    """The compiled extension `name`, or None when it cannot be built (logged and warned once)."""
    if name in _loaded:
        return _loaded[name]
    if name in _errors:
        return None
    start = time.perf_counter()
    try:
        module = _compile(name)
    except Exception as error:  # a compiler, ninja or import failure: the eager path takes over
        _errors[name] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        message = f"seqarena: the fused CPU kernel '{name}' is unavailable ({_errors[name]}); using the eager path"
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return None
    load_seconds[name] = time.perf_counter() - start
    log.info("loaded fused CPU kernel %s in %.1f s", name, load_seconds[name])
    _loaded[name] = module
    return module


def extension_error(name: str) -> str | None:
    """Why extension `name` could not be loaded in this process, if it was tried and failed."""
    return _errors.get(name)


def require(name: str) -> ModuleType:
    """The compiled extension `name`; `RuntimeError` with the reason when it cannot be loaded."""
    module = load(name)
    if module is None:
        raise RuntimeError(f"the fused CPU kernel '{name}' is unavailable: {extension_error(name)}")
    return module


def supported(x: Tensor) -> bool:
    """Whether a tensor can go through the CPU kernels (device and dtype; the build is separate)."""
    return x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)


def time_major(x: Tensor) -> Tensor:
    """`[B, T, K] -> [T, B, K]` as the kernels read it: a view (free when the memory is already
    time-major, as the kernels' own outputs are), copied only when the last stride is not 1."""
    x = x.transpose(0, 1)
    return x if x.stride(2) == 1 else x.contiguous()
