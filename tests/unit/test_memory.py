"""The one out-of-memory test and the release of a trial's memory."""

from __future__ import annotations

import gc
import weakref

import pytest
import torch

from seqarena.workers.memory import is_out_of_memory, release_memory


def test_the_cpu_allocator_running_out_is_out_of_memory() -> None:
    with pytest.raises(RuntimeError) as raised:
        torch.empty(2**62, dtype=torch.uint8)  # 4 EiB: refused by the allocator, not the shape check
    assert is_out_of_memory(raised.value)


@pytest.mark.parametrize("error", [
    torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 139 GiB"),
    RuntimeError("CUDA error: out of memory\nCUDA kernel errors might be asynchronously reported"),
    RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried"),
    RuntimeError("MPS backend out of memory"),
    MemoryError(),
])
def test_allocator_errors_are_out_of_memory(error: BaseException) -> None:
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", [
    RuntimeError("mat1 and mat2 shapes cannot be multiplied (64x3 and 2x128)"),
    RuntimeError("CUDA error: an illegal memory access was encountered"),
    ValueError("out of memory"),  # not an allocator's error, whatever it says
    KeyError("out of memory"),
])
def test_other_errors_are_not_out_of_memory(error: BaseException) -> None:
    assert not is_out_of_memory(error)


def test_release_memory_frees_tensors_held_only_by_a_cycle() -> None:
    """A failed trial's traceback keeps its frames (and their tensors) in a reference cycle."""
    gc.disable()
    try:
        holder: dict = {"tensor": torch.ones(1000)}
        holder["self"] = holder
        alive = weakref.ref(holder["tensor"])
        del holder
        assert alive() is not None  # only the cycle holds it, and the collector is off
        release_memory()
        assert alive() is None
    finally:
        gc.enable()
