"""Freed large blocks stay in the process heap, so that each training step's large tensors reuse memory that is
already mapped instead of page-faulting fresh pages.

glibc serves every allocation above its mmap threshold (at most 32 MiB) with a fresh `mmap` and unmaps it when it
is freed, and the kernel zero-fills each 4 KiB page at its first write: a [64, 1000, 128] float32 activation
(33 MB) costs 8,000 page faults every time it is allocated, and a training step of an SSM block allocates dozens
of them (a [16, 10000, 256] complex scan's gradient, 330 MB, 80,000). With `mmap` off for the heap
(`M_MMAP_MAX = 0`) and trimming off (`M_TRIM_THRESHOLD`), freed blocks return to malloc's free lists and the next
step's tensors reuse them, faulted in once. torch asks for 64-byte-aligned blocks, and glibc's memalign (2.36)
asks its bins for the size plus the alignment, so a freed block of exactly the size is not taken again until a
free neighbour makes room, and small allocations may take a freed block's front meanwhile: the heap grows over the
first allocations of a size (two to ten in `tests/unit/test_heap.py`, more in a process that has allocated much
before), then stays. A 300-step loop of a 64 MB, a ~32 MB and thousands of small allocations: 408 MB resident
against 248 MB without, and no page faults after its first 50 steps against 24,600 every step without.
The heap keeps that size for the life of the process (a training process reaches its peak every step anyway),
so it is turned on only where a process trains or measures training steps: `Trainer.run` (a trial, `seqarena
train`), `seqarena profile` and the benchmarks; never on import, so that long-lived processes that merely load
models (the dashboard's trace page, job workers, the driver) give a large evaluation's memory back. Elsewhere
than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging

log = logging.getLogger(__name__)

#: glibc's `mallopt` parameters (malloc.h).
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
#: Free memory at the top of the heap above which glibc returns it to the system (the largest `int`: 2 GiB).
TRIM_THRESHOLD = 2**31 - 1


@functools.cache
def keep_freed_blocks() -> bool:
    """Turn glibc's mmap for large blocks and heap trimming off in this process (once); True where it took."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc: nothing to do
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_MMAP_MAX, 0) == 1 and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    if not done:
        log.info("mallopt refused: freed large blocks go back to the system")
    return done
