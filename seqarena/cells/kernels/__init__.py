"""Fused recurrences: compiled time loops with their own backward, checked against the eager unroll.

Per cell, one C++ CPU kernel (`<name>_cpu.cpp`, built by torch's `cpp_extension` on first use and
cached on disk by `build`) and one Triton GPU kernel (`<name>_cuda.py`, compiled by Triton on first
use; `triton_common` holds their shared pieces); `select` picks the one for a tensor's device. The cells:
`unicornn_layer` (Rusch & Mishra 2021, ICML; reversible backward, memory independent of
T), `cornn_layer` (Rusch & Mishra 2021, ICLR), `janet_layer` (van der Westhuizen & Lasenby 2018) and
`lem_layer` (Rusch et al. 2022, ICLR), the last three with a BPTT backward over saved per-step
activations. `build.load(name)` loads a CPU kernel (None when it cannot be built). Every fused
path has the eager path (`cells.base.unroll`) as its reference (`tests/unit/test_fused.py`,
`tests/unit/test_fused_cells.py`, `tests/unit/test_fused_gpu.py`); `seqarena.cells.fused` chooses
between them.
"""

from __future__ import annotations

from seqarena.cells.kernels.build import extension_error, supported
from seqarena.cells.kernels.cornn import CoRNNRecurrence, cornn_layer
from seqarena.cells.kernels.janet import JANETRecurrence, janet_layer
from seqarena.cells.kernels.lem import LEMRecurrence, lem_layer
from seqarena.cells.kernels.unicornn import UnICORNNRecurrence, unicornn_layer

__all__ = ["CoRNNRecurrence", "JANETRecurrence", "LEMRecurrence", "UnICORNNRecurrence", "cornn_layer",
           "extension_error", "janet_layer", "lem_layer", "supported", "unicornn_layer"]
