"""Build and load the kernels' C++ sources (`<kernel>/cpu.cpp`) with torch's `cpp_extension`, once per machine.

The compiled module lives in `$SEQARENA_EXT_CACHE/<kernel>-<key>/` (default `~/.cache/seqarena/ext`),
where `key` hashes the source's path inside this package and its text, the text of every header
it includes with `#include "..."` (the shared `cpp_common.h`), the compiler flags, the torch and
Python versions and the CPU's vector capability (the code is built with `-march=native`): a
changed or moved source, a changed header, or a worker with another CPU on a shared home builds
its own copy; otherwise a process only loads the cached `.so`. A file lock makes concurrent
processes take turns, so one builds and the others load. Loading is lazy (first use) and
memoised per process; a failure is logged once and remembered, and callers fall back to the
eager path (`build_error` says why).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import platform
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from types import ModuleType

import torch

log = logging.getLogger(__name__)

#: The kernels package: one folder per kernel, its C++ source named `SOURCE_NAME`.
KERNELS_DIR = Path(__file__).parent
SOURCE_NAME = "cpu.cpp"
#: -ffast-math lets GCC call glibc's vectorised tanh (libmvec); it is a compile flag only, so no
#: process-wide flush-to-zero start-up code is linked in.
CFLAGS = ("-O3", "-march=native", "-ffast-math")
_QUOTED_INCLUDE = re.compile(rb'^\s*#\s*include\s+"([^"]+)"', re.MULTILINE)

_loaded: dict[str, ModuleType] = {}
_errors: dict[str, str] = {}
#: Seconds the last `load` took in this process, by kernel (build or cached load).
load_seconds: dict[str, float] = {}


def source(kernel: str) -> Path:
    """The C++ source of `kernel`: `<kernels>/<kernel>/cpu.cpp`."""
    return KERNELS_DIR / kernel / SOURCE_NAME


def cache_root() -> Path:
    """`$SEQARENA_EXT_CACHE`, default `~/.cache/seqarena/ext`: a machine-wide build cache, shared by
    every SEQARENA_HOME (a build takes about 40 s; a cached load well under a second)."""
    configured = os.environ.get("SEQARENA_EXT_CACHE")
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "seqarena" / "ext"


def cache_dir(kernel: str) -> Path:
    """Where `kernel`'s C++ source is built and cached: `<cache root>/<kernel>-<key>`."""
    return cache_root() / f"{kernel}-{build_key(source(kernel))}"


def included_headers(path: Path) -> list[Path]:
    """The files `path` includes with `#include "..."`, resolved against its folder (torch's own
    `<...>` headers are covered by the torch version in the key)."""
    return [(path.parent / name.decode()).resolve() for name in _QUOTED_INCLUDE.findall(path.read_bytes())]


def build_key(path: Path) -> str:
    """Hash of what the module compiled from `path` depends on: where the source sits in this package
    (or its absolute path outside it), its text and its included headers' text, flags, versions,
    CPU capability."""
    resolved = path.resolve()
    where = resolved.relative_to(KERNELS_DIR) if resolved.is_relative_to(KERNELS_DIR) else resolved
    digest = hashlib.sha256(where.as_posix().encode() + b"\0" + resolved.read_bytes())
    for header in included_headers(resolved):
        digest.update(header.name.encode() + b"\0" + header.read_bytes())
    cpu = (platform.machine(), torch.backends.cpu.get_cpu_capability())
    facts = (CFLAGS, torch.__version__, sys.version_info[:2], cpu)
    digest.update(repr(facts).encode())
    return digest.hexdigest()[:16]


def _ninja_on_path() -> None:
    """Put the `ninja` Python package's binary on PATH when no `ninja` is there (cpp_extension runs it)."""
    if shutil.which("ninja") is None:
        import ninja  # the `ninja` dependency

        os.environ["PATH"] = ninja.BIN_DIR + os.pathsep + os.environ.get("PATH", "")


def _compile(kernel: str) -> ModuleType:
    """Build (or load the cached build of) `kernel`'s C++ source under the cache, holding a file lock."""
    from torch.utils import cpp_extension

    _ninja_on_path()
    directory = cache_dir(kernel)
    directory.mkdir(parents=True, exist_ok=True)
    module_name = "seqarena_" + directory.name.replace("-", "_")  # seqarena_<kernel>_<key>
    with open(directory / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            _drop_stale_baton(directory)
            return cpp_extension.load(name=module_name, sources=[str(source(kernel))], extra_cflags=list(CFLAGS),
                                      build_directory=str(directory), verbose=False)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _drop_stale_baton(directory: Path) -> None:
    """Remove torch's own build lock (`lock`) that a process killed while building left behind.

    `cpp_extension.load` creates `lock` before it builds or loads, deletes it afterwards, and waits
    without a timeout while one exists. Called with `build.lock` held, which every process takes
    first, a `lock` found here belongs to no live build.
    """
    baton = directory / "lock"
    if baton.exists():
        log.warning("removing %s, left by a build that was killed", baton)
        baton.unlink(missing_ok=True)


def load(kernel: str) -> ModuleType | None:
    """The compiled C++ module of `kernel`, or None when it cannot be built (logged and warned once)."""
    if kernel in _loaded:
        return _loaded[kernel]
    if kernel in _errors:
        return None
    start = time.perf_counter()
    try:
        module = _compile(kernel)
    except Exception as error:  # a compiler, ninja or import failure: the eager path takes over
        _errors[kernel] = f"{type(error).__name__}: {str(error).strip().splitlines()[-1] if str(error).strip() else ''}"
        message = f"seqarena: the C++ kernel '{kernel}' is unavailable ({_errors[kernel]}); using the eager path"
        log.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        return None
    load_seconds[kernel] = time.perf_counter() - start
    log.info("loaded C++ kernel %s in %.1f s", kernel, load_seconds[kernel])
    _loaded[kernel] = module
    return module


def build_error(kernel: str) -> str | None:
    """Why `kernel`'s C++ source could not be built in this process, if it was tried and failed."""
    return _errors.get(kernel)


def require(kernel: str) -> ModuleType:
    """The compiled C++ module of `kernel`; `RuntimeError` with the reason when it cannot be loaded."""
    module = load(kernel)
    if module is None:
        raise RuntimeError(f"the C++ kernel '{kernel}' is unavailable: {build_error(kernel)}")
    return module
