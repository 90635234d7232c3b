"""Out of memory: the one test of whether an error is the allocator running out, and the release
of what a trial held, so the next trial in the same process (Ray reuses its workers) starts clean.
"""

from __future__ import annotations

import gc

import torch

#: Phrases of the allocators' messages when they run out: CUDA's caching allocator ("CUDA out of
#: memory"), a CUDA call failing with cudaErrorMemoryAllocation ("CUDA error: out of memory"), the
#: CPU allocator ("DefaultCPUAllocator: can't allocate memory"), MPS ("not enough memory").
OUT_OF_MEMORY_PHRASES = ("out of memory", "can't allocate memory", "not enough memory")


def is_out_of_memory(error: BaseException) -> bool:
    """Whether `error` is torch (or Python) running out of device or host memory.

    `torch.OutOfMemoryError` and `MemoryError` always are; a `RuntimeError` (CUDA errors and the
    CPU allocator raise plain ones) is when its message says so. Any other error is not, whatever
    its message.
    """
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and any(phrase in text for phrase in OUT_OF_MEMORY_PHRASES)


def release_memory() -> None:
    """Free what unreachable objects hold: collect reference cycles (a traceback that kept a
    trial's tensors alive), then return CUDA's cached blocks to the driver when CUDA was used."""
    gc.collect()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
