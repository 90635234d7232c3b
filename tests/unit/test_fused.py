"""UnICORNN's C++ kernel source against its reference, the eager unroll (docs/reference/models.md §6).

Tolerance (float64): `rtol = 1e-9`, `atol = 1e-11` on outputs and on every gradient (measured: largest
difference over largest entry ~1e-15 at T <= 50 and ~2e-14 at T = 2000; the backward rebuilds the
states with the inverse step, whose rounding error grows with T). float32 at T = 2000:
`rtol = atol = 1e-4` after dividing by the largest entry (measured ≤ 5e-6).

The C++ source is built once per machine and source (cached under `$SEQARENA_EXT_CACHE`, default
`~/.cache/seqarena/ext`); the session fixture `kernel` loads it, building on a fresh machine (~40 s),
loading in ~0.2 s afterwards.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import Tensor

from seqarena.cells.base import unroll
from seqarena.cells.kernels import cpp_build
from seqarena.cells.kernels import unicornn as unicornn_kernel
from seqarena.cells.unicornn import UnICORNN, UnICORNNCell
from seqarena.workers.measure import SavedTensorCounter
from tests.unit.fused_helpers import (
    F64,
    assert_all_close,
    assert_scaled_close,
    outputs_and_grads,
    recurrence_gradcheck_args,
    require_kernel,
)

pytestmark = pytest.mark.usefixtures("one_thread", "kernel")


@pytest.fixture(scope="session")
def kernel() -> None:
    """Build (first run on a machine) or load (cached) the extension once per test session."""
    require_kernel("unicornn")


@pytest.fixture(params=["small input", "projected input"])
def input_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Both ways the kernel gets x_n: computed from u step by step (a layer with at most
    `SMALL_INPUT` features: the first layer of these models) or read from the projected sequence
    (deeper layers; every layer with `SMALL_INPUT = 0`)."""
    if request.param == "projected input":
        monkeypatch.setattr(unicornn_kernel, "SMALL_INPUT", 0)
    return request.param


@pytest.mark.usefixtures("input_path")
@pytest.mark.parametrize("steps", [1, 7, 50])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize(("hidden", "layers"), [(5, 1), (70, 3)])
def test_fused_model_matches_eager_in_float64(steps: int, batch: int, hidden: int, layers: int) -> None:
    """70 units are two blocks of the kernel (64 + 6): dL/du sums the blocks' shares."""
    torch.manual_seed(steps * 100 + batch * 10 + layers)
    model = UnICORNN(4, hidden, layers, dropout=0.1, dt=0.3, alpha=2.0).double()
    u = torch.randn(batch, steps, 4, dtype=torch.float64)
    assert_all_close(outputs_and_grads(model, u, True), outputs_and_grads(model, u, False), **F64)


def test_layers_with_few_input_features_take_the_small_input_path() -> None:
    """Up to `SMALL_INPUT` features the CPU kernel computes x_n = V u_n + b itself; wider inputs (a
    deeper layer's) go through the projected sequence; the GPU kernel always does the latter."""
    ops = cpp_build.require("unicornn")
    assert unicornn_kernel.small_input(ops, torch.empty(2, 5, unicornn_kernel.SMALL_INPUT))
    assert not unicornn_kernel.small_input(ops, torch.empty(2, 5, unicornn_kernel.SMALL_INPUT + 1))


@pytest.mark.parametrize("chunk_elements", [1, 40, 1 << 20])
def test_time_chunks_give_the_same_result(chunk_elements: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 1 step, of 4 steps with a ragged last one, and the whole sequence in one chunk (every
    layer through the projected sequence, the path that chunks)."""
    monkeypatch.setattr(unicornn_kernel, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(unicornn_kernel, "SMALL_INPUT", 0)
    torch.manual_seed(1)
    model = UnICORNN(3, 10, 2, dropout=0.0).double()
    u = torch.randn(1, 23, 3, dtype=torch.float64)
    assert_all_close(outputs_and_grads(model, u, True), outputs_and_grads(model, u, False), **F64)


@pytest.mark.usefixtures("input_path")
def test_initial_and_final_states_carry_gradients() -> None:
    """`unicornn_layer` from a non-zero state, with a loss on y_1..y_T and on the final (y_T, z_T)."""
    torch.manual_seed(2)
    cell = UnICORNNCell(3, 6, dt=0.2, alpha=5.0).double()
    u = torch.randn(2, 9, 3, dtype=torch.float64)
    state = tuple(torch.randn(2, 6, dtype=torch.float64) for _ in range(2))

    def run(fused: bool) -> list[Tensor]:
        cell.zero_grad()
        leaves = [t.detach().requires_grad_(True) for t in (u, *state)]
        if fused:
            ys, (y, z) = unicornn_kernel.unicornn_layer(cpp_build.require("unicornn"), leaves[0], cell.V.weight,
                                                        cell.V.bias, cell.w, cell.delta(), cell.alpha,
                                                        (leaves[1], leaves[2]))
        else:
            ys, (y, z) = unroll(cell, leaves[0], (leaves[1], leaves[2]))
        (ys.sin().sum() + (y * z).sum() + z.square().sum()).backward()
        return [ys.detach(), y.detach(), z.detach(), *(t.grad for t in leaves), *(p.grad for p in cell.parameters())]

    assert_all_close(run(True), run(False), **F64)


@pytest.mark.usefixtures("input_path")
def test_autograd_gradcheck_of_the_recurrence() -> None:
    torch.manual_seed(3)
    function, args = recurrence_gradcheck_args("unicornn", cpp_build.require("unicornn"))
    assert torch.autograd.gradcheck(function, args)


def _long_run(dtype: torch.dtype) -> tuple[list[Tensor], list[Tensor]]:
    torch.manual_seed(4)
    model = UnICORNN(2, 16, 1, dropout=0.0, dt=0.19, alpha=30.65).to(dtype)
    u = torch.randn(2, 2000, 2, dtype=dtype)
    return outputs_and_grads(model, u, True), outputs_and_grads(model, u, False)


@pytest.mark.usefixtures("input_path")
def test_reconstruction_stays_exact_over_2000_steps_in_float64() -> None:
    fused, eager = _long_run(torch.float64)
    assert_all_close(fused, eager, **F64)


def test_reconstruction_over_2000_steps_in_float32_is_close() -> None:
    fused, eager = _long_run(torch.float32)
    assert_scaled_close(fused, eager, 1e-4)


def _saved_bytes(model: UnICORNN, steps: int) -> int:
    counter = SavedTensorCounter(exclude={p.untyped_storage().data_ptr() for p in model.parameters()})
    u = torch.randn(4, steps, 1)
    with torch.autograd.graph.saved_tensors_hooks(counter.pack, lambda tensor: tensor):
        features = model(u)
    features[:, -1].sum().backward()
    return counter.total_bytes


def test_fused_saves_no_per_step_state() -> None:
    """From T = 100 to 1000 the fused layer's saved tensors grow by the input u only (4 bytes per step
    and sequence here); the eager unroll's by its per-step activations."""
    model = UnICORNN(1, 32, 1, dropout=0.0)
    growth_fused = _saved_bytes(model, 1000) - _saved_bytes(model, 100)
    assert growth_fused == 4 * 900 * 4
    model.use_kernel = False
    assert _saved_bytes(model, 1000) - _saved_bytes(model, 100) > 50 * growth_fused


def test_the_cache_key_follows_the_source_and_its_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The key changes with the source's text and with where it sits in the kernels package, so no cached
    module of another source (or of the same text under an old name) is ever loaded for it."""
    source = tmp_path / "kernel.cpp"
    source.write_text("int a;")
    before = cpp_build.build_key(source)
    assert cpp_build.build_key(source) == before
    source.write_text("int b;")
    assert cpp_build.build_key(source) != before
    kernels = tmp_path / "kernels"
    for name in ("one", "two"):
        (kernels / name).mkdir(parents=True)
        (kernels / name / "cpu.cpp").write_text("int a;")
    monkeypatch.setattr(cpp_build, "KERNELS_DIR", kernels)
    assert cpp_build.build_key(cpp_build.source("one")) != cpp_build.build_key(cpp_build.source("two"))
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))  # one build cache for every home
    monkeypatch.delenv("SEQARENA_EXT_CACHE", raising=False)
    assert cpp_build.cache_root() == Path.home() / ".cache" / "seqarena" / "ext"
    monkeypatch.setenv("SEQARENA_EXT_CACHE", str(tmp_path / "ext"))
    assert cpp_build.cache_root() == tmp_path / "ext"


def test_a_lock_left_by_a_killed_build_does_not_block_the_next_load(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """torch's cpp_extension waits with no timeout on the `lock` file a build killed midway leaves in
    the build folder; the next load (holding seqarena's own build.lock) removes it and loads."""
    built = cpp_build.cache_dir("unicornn")  # built by the `kernel` fixture
    monkeypatch.setenv("SEQARENA_EXT_CACHE", str(tmp_path / "ext"))
    copy = cpp_build.cache_dir("unicornn")
    shutil.copytree(built, copy, ignore=shutil.ignore_patterns("lock", "build.lock"))
    (copy / "lock").touch()
    code = "from seqarena.cells.kernels import cpp_build; assert cpp_build.load('unicornn') is not None"
    done = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not (copy / "lock").exists()
