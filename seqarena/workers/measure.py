"""Measurements of a training step: peak memory and wall-clock timing.

Peak memory of one training step (forward + backward + optimiser step):

* on CUDA, torch's own counter `torch.cuda.max_memory_allocated` around the step;
* on CPU, torch keeps no allocator statistics, so seqarena counts the tensors that must be alive
  at the start of the backward pass, the usual peak: the bytes of every tensor autograd saves for
  backward (found with `torch.autograd.graph.saved_tensors_hooks`, counted once per storage),
  plus the parameters, their gradients and the optimiser's state. This grows linearly with T for a
  recurrent model (each step saves its activations) and with hidden size, which is what a
  comparison needs; it omits transient buffers freed during the forward pass.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

CPU_METHOD = "cpu: tensors saved for backward (one count per storage) + params, grads, optimiser state"
CUDA_METHOD = "cuda: torch.cuda.max_memory_allocated over one training step"
MB = 1024.0 * 1024.0
R = TypeVar("R")


@dataclass
class SavedTensorCounter:
    """Sums the bytes of the distinct storages autograd saves while active."""

    exclude: set[int]
    total_bytes: int = 0

    def pack(self, tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        key = storage.data_ptr()
        if key not in self.exclude:
            self.exclude.add(key)
            self.total_bytes += storage.nbytes()
        return tensor


def _tensor_bytes(tensors: Iterator[torch.Tensor]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes held in the optimiser's per-parameter state (Adam: two moments)."""
    return _tensor_bytes(
        value for state in optimizer.state.values() for value in state.values() if torch.is_tensor(value)
    )


def measure_step_memory(model: nn.Module, optimizer: torch.optim.Optimizer,
                        step: Callable[[], R], device: torch.device) -> tuple[R, float, str]:
    """Run one training `step` (forward, backward and optimiser step) while measuring peak memory.

    Returns the step's result, the peak in MiB and the method used (`CPU_METHOD` or `CUDA_METHOD`).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        result = step()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) / MB, CUDA_METHOD
    params = list(model.parameters())
    counter = SavedTensorCounter(exclude={p.untyped_storage().data_ptr() for p in params})
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda tensor: tensor):
        result = step()
    state_bytes = 2 * _tensor_bytes(iter(params)) + optimizer_state_bytes(optimizer)
    return result, (counter.total_bytes + state_bytes) / MB, CPU_METHOD


WARMUP_STEPS = 2
"""Training steps a trial leaves out of its throughput and memory: the first steps build and load the
kernels (C++ through `cpp_extension`, Triton's compile and autotune), fill torch's caches and allocate the
optimiser's state, once per process; a first trial that built a kernel measured 670 sequences/s where the
same model runs 22 000 (issue 19). The step after them is the one whose peak memory is measured (hooks on
the CPU, synchronisations on CUDA), so it is left out of the timing too."""
STEADY = f"steady state: {WARMUP_STEPS} warm-up steps and the memory step left out, first evaluation batch left out"
"""How a trial's throughput was timed (`RunFacts.timing`); records without it may include the warm-up."""


@dataclass
class Stopwatch:
    """Accumulated seconds and items (sequences) over several timed sections.

    The first `skip` sections are warm-up: timed into `warm_seconds` and `warm_items`, not into the rate,
    unless nothing else was timed (a trial shorter than its warm-up reports what it has).
    """

    seconds: float = 0.0
    items: int = 0
    skip: int = 0
    """sections still to leave out of the rate"""
    warm_seconds: float = 0.0
    warm_items: int = 0

    @contextmanager
    def timing(self, items: int, device: torch.device) -> Iterator[None]:
        """Time a section that processes `items` sequences (synchronising CUDA around it)."""
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        yield
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - start
        if self.skip > 0:
            self.skip -= 1
            self.warm_seconds += elapsed
            self.warm_items += items
        else:
            self.seconds += elapsed
            self.items += items

    def rate(self) -> float:
        """Items per second over the steady sections (the warm-up ones when there are none), 0 when nothing
        was timed."""
        if self.seconds > 0:
            return self.items / self.seconds
        return self.warm_items / self.warm_seconds if self.warm_seconds > 0 else 0.0
