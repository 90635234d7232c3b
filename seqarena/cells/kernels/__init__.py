"""The kernels: one model's time loop each, compiled, with its own backward, checked against the eager unroll.

Words used throughout: a **kernel** is one model's recurrence as one autograd Function over the whole
sequence (one folder here); a **source** is one implementation of its forward and backward passes
(C++ or Triton); a **backend** is the source chosen to run an input (`backend.choose`), and its loaded
module, the **ops**, is what the Function calls. **Eager** is the shared unroll through the cell's
`step` (`seqarena.cells.base.unroll`), the reference every kernel is tested against. What ran is
reported by the model as `implementation` ("fused-cpu", "fused-cuda", "fused-triton-interpreted",
"eager"; recorded with every trial).

Layout, one folder per kernel (the folder's name is the model's `kernel` attribute):

    <kernel>/__init__.py   the autograd Function (`<Model>Recurrence`), its equations and their
                           derivatives, and the layer entry `<kernel>_layer(ops, ...)`
    <kernel>/cpu.cpp       the C++ source: float32/float64 CPU tensors (built by `cpp_build`)
    <kernel>/triton.py     the Triton source: float32 CUDA tensors (and CPU tensors under
                           `TRITON_INTERPRET=1`, which the tests use without a GPU)

and the pieces they share, at the top of this package:

    backend.py             which source runs an input (`choose`, once per forward call of a model),
                           the `Backend` it returns, and the time-major layout both sources read
    cpp_build.py           builds `<kernel>/cpu.cpp` with torch's `cpp_extension`, cached per source
                           and machine under `~/.cache/seqarena/ext`
    cpp_common.h           helpers the C++ sources include (`#include "../cpp_common.h"`)
    triton_common.py       helpers and launch configuration the Triton sources import

Both sources of a kernel expose `forward` and `backward` with the same arguments and results, so the
Function runs either unchanged. A new kernel is a new folder with these files (a source may be
missing: `backend.choose` then takes the eager path for inputs only it would serve), a
`KernelCell.run_kernel` on the model's cell calling `<kernel>_layer`, and `kernel = "<kernel>"` on
the model (`seqarena.cells.kernel_stack`); `cpp_build` and `backend` find the files by these names.
Tests: `tests/unit/test_fused.py` (UnICORNN), `tests/unit/test_fused_cells.py` (coRNN, JANET, LEM),
`tests/unit/test_fused_gpu.py` (every Triton source).

The kernels: `unicornn` (Rusch & Mishra 2021, ICML; reversible backward, memory independent of T),
`cornn` (Rusch & Mishra 2021, ICLR), `janet` (van der Westhuizen & Lasenby 2018) and `lem` (Rusch et
al. 2022, ICLR), the last three with a BPTT backward over saved per-step activations. Beside them, for the
state-space models: `scan/` (the diagonal linear recurrence, its modal form and Mamba's selective scan: C++ and
Triton sources with their own Functions), `dropout/` (the SSM block's dropout, its mask hashed from a seed in
C++) and `heap.py` (freed large blocks kept in the process heap, turned on by processes that train:
`cells.keep_freed_blocks`).
"""
