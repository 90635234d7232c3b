"""The C++ sources of the coRNN, JANET and LEM kernels against their reference, the eager unroll (models.md §4, §5, §7).

Tolerance (float64): `rtol = 1e-9`, `atol = 1e-11` on the features and on every gradient (input and each
parameter; measured: largest difference over largest entry below 1e-14 up to T = 300: both paths
evaluate the same expressions, and only the order of the sums in the matrix products differs).
float32 at T = 2000, after dividing each tensor by its largest entry: `rtol = atol = 1e-4` for coRNN and
LEM (measured: at most 2e-6), 1e-3 for JANET (measured 1.2e-4; eager float32 is itself 3e-5 to 2e-4
away from float64 on this ill-conditioned chrono-initialised recurrence, depending on the seed).

The C++ sources are built once per machine and source (cached under `$SEQARENA_EXT_CACHE`, default
`~/.cache/seqarena/ext`); the session fixture `kernels` loads them, building on a fresh machine (~30 s
each), loading in well under a second afterwards.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor

from seqarena import cells
from seqarena.cells.base import RecurrentCell, State, probing, unroll
from seqarena.cells.cornn import CoRNNCell
from seqarena.cells.janet import JANETCell
from seqarena.cells.kernel_stack import KernelStackedRecurrent
from seqarena.cells.kernels import backend, cpp_build
from seqarena.cells.kernels.cornn import cornn_layer
from seqarena.cells.kernels.janet import janet_layer
from seqarena.cells.kernels.lem import lem_layer
from seqarena.cells.lem import LEMCell
from seqarena.cells.unicornn import UnICORNN
from tests.unit.fused_helpers import (
    F64,
    assert_all_close,
    assert_scaled_close,
    make_kernel_model,
    outputs_and_grads,
    recurrence_gradcheck_args,
    require_kernel,
)

pytestmark = pytest.mark.usefixtures("one_thread", "kernels")

NAMES = ("cornn", "janet", "lem")


@pytest.fixture(scope="session")
def kernels() -> None:
    """Build (first run on a machine) or load (cached) the three C++ sources once per test session."""
    for name in NAMES:
        require_kernel(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("steps", [1, 7, 50, 300])
@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize(("hidden", "layers"), [(5, 1), (13, 2)])
def test_fused_model_matches_eager_in_float64(name: str, steps: int, batch: int, hidden: int, layers: int) -> None:
    """Features and every gradient, with dropout between and after the layers (same masks on both paths)."""
    torch.manual_seed(steps * 100 + batch * 10 + layers)
    model = make_kernel_model(name, 3, hidden, layers).double()
    u = torch.randn(batch, steps, 3, dtype=torch.float64)
    fused, eager = outputs_and_grads(model, u, True), outputs_and_grads(model, u, False)
    assert len(fused) == 2 + len(list(model.parameters()))
    assert_all_close(fused, eager, **F64)


@pytest.mark.parametrize("name", NAMES)
def test_losses_with_odd_gradient_layouts(name: str) -> None:
    """`features.sum()` sends an expanded (stride 0) gradient, `features[:, -1]` a mostly-zero one, and a
    non-contiguous input comes in: all take the fused path and match eager."""
    torch.manual_seed(5)
    model = make_kernel_model(name, 4, 6, 2, dropout=0.0).double()
    u = torch.randn(6, 3, 11, dtype=torch.float64).permute(1, 2, 0)[..., :4]  # [3, 11, 4], strided
    assert not u.is_contiguous()
    for loss in (lambda f: f.sum(), lambda f: f[:, -1].square().sum()):
        runs = []
        for use_kernel in (True, False):
            model.use_kernel = use_kernel
            model.zero_grad()
            leaf = u.detach().requires_grad_(True)
            features = model(leaf)
            loss(features).backward()
            runs.append([features.detach(), leaf.grad, *(p.grad for p in model.parameters())])
        assert_all_close(*runs, **F64)


@pytest.mark.parametrize("name", NAMES)
def test_batch_rows_split_over_two_threads_match_eager(name: str) -> None:
    """With 2 intra-op threads and 400 rows the elementwise passes run in parallel blocks of rows."""
    torch.manual_seed(6)
    model = make_kernel_model(name, 2, 13, 1, dropout=0.0).double()
    u = torch.randn(400, 4, 2, dtype=torch.float64)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        fused = outputs_and_grads(model, u, True)
    finally:
        torch.set_num_threads(previous)
    assert_all_close(fused, outputs_and_grads(model, u, False), **F64)


def _cornn_fused(cell: CoRNNCell, u: Tensor, state: State) -> tuple[Tensor, State]:
    return cornn_layer(cpp_build.require("cornn"), cell.project_inputs(u), cell.recurrent, cell.dt, cell.gamma,
                       cell.epsilon, (state[0], state[1]))


def _janet_fused(cell: JANETCell, u: Tensor, state: State) -> tuple[Tensor, State]:
    return janet_layer(cpp_build.require("janet"), cell.project_inputs(u), cell.U, cell.beta, (state[0],))


def _lem_fused(cell: LEMCell, u: Tensor, state: State) -> tuple[Tensor, State]:
    return lem_layer(cpp_build.require("lem"), cell.project_inputs(u), cell.hid2hid.weight, cell.hid2hid.bias,
                     cell.transform_z.weight, cell.transform_z.bias, cell.dt, (state[0], state[1]))


LAYERS: dict[str, tuple[Callable[[], RecurrentCell], Callable[..., tuple[Tensor, State]]]] = {
    "cornn": (lambda: CoRNNCell(3, 6, dt=0.2, gamma=1.5, epsilon=2.0), _cornn_fused),
    "janet": (lambda: JANETCell(3, 6, beta=1.0, chrono=False), _janet_fused),
    "lem": (lambda: LEMCell(3, 6, dt=0.7), _lem_fused),
}


@pytest.mark.parametrize("name", NAMES)
def test_initial_and_final_states_carry_gradients(name: str) -> None:
    """The layer function from a non-zero state, with a loss on the features and on the final state."""
    torch.manual_seed(2)
    make_cell, fused_layer = LAYERS[name]
    cell = make_cell().double()
    u = torch.randn(2, 9, 3, dtype=torch.float64)
    state = tuple(0.5 * torch.randn(2, 6, dtype=torch.float64) for _ in range(cell.state_size))

    def run(fused: bool) -> list[Tensor]:
        cell.zero_grad()
        leaves = [t.detach().requires_grad_(True) for t in (u, *state)]
        ys, final = (fused_layer if fused else unroll)(cell, leaves[0], tuple(leaves[1:]))
        (ys.sin().sum() + sum((k + 1) * s.square().sum() for k, s in enumerate(final))).backward()
        return [ys.detach(), *(s.detach() for s in final), *(t.grad for t in leaves),
                *(p.grad for p in cell.parameters())]

    fused, eager = run(True), run(False)
    assert all(g is not None and g.abs().max() > 0 for g in fused[1 + cell.state_size:])
    assert_all_close(fused, eager, **F64)


@pytest.mark.parametrize("name", NAMES)
def test_autograd_gradcheck_of_the_recurrence(name: str) -> None:
    """The hand-written backward against finite differences, independently of the eager path."""
    torch.manual_seed(3)
    function, args = recurrence_gradcheck_args(name, cpp_build.require(name))
    args = [a.double().requires_grad_(True) for a in args]
    assert torch.autograd.gradcheck(function, args)


#: float32 tolerance after scaling by the largest entry. JANET's chrono-initialised memory amplifies rounding:
#: at T = 2000 eager float32 is itself 4e-5 away from float64 there, against 1e-6 for coRNN and LEM.
F32 = {"cornn": 1e-4, "janet": 1e-3, "lem": 1e-4}


@pytest.mark.parametrize("name", NAMES)
def test_float32_over_2000_steps_is_close(name: str) -> None:
    torch.manual_seed(4)
    model = make_kernel_model(name, 2, 16, 1, dropout=0.0)
    u = torch.randn(2, 2000, 2)
    assert_scaled_close(outputs_and_grads(model, u, True), outputs_and_grads(model, u, False), F32[name])


def make_any(name: str, input_size: int, hidden: int, layers: int) -> KernelStackedRecurrent:
    """A model with a kernel, by name, UnICORNN (whose kernel has its own tests in test_fused.py) included."""
    if name == "unicornn":
        return UnICORNN(input_size, hidden, layers)
    return make_kernel_model(name, input_size, hidden, layers)


@pytest.mark.parametrize("name", [*NAMES, "unicornn"])
def test_the_model_reports_the_path_it_took(name: str) -> None:
    model = make_any(name, 2, 8, 2)
    assert model.extra_info() == {"implementation": "not run"}
    model(torch.randn(1, 3, 2))
    assert model.extra_info() == {"implementation": "fused-cpu"}
    with probing() as probe:
        model(torch.randn(1, 3, 2))
    assert model.implementation == "eager" and len(probe.states) == 2 and len(probe.states[0]) == 3
    model(torch.randn(1, 3, 2))
    assert model.implementation == "fused-cpu"
    model.half()(torch.randn(1, 3, 2).half())
    assert model.implementation == "eager"
    assert not backend.cpp_serves(torch.empty(2, device="meta"))
    model.float().use_kernel = False
    model(torch.randn(1, 3, 2))
    assert model.implementation == "eager"


@pytest.mark.parametrize("name", NAMES)
def test_use_kernel_is_a_constructor_argument_not_a_hyperparameter(name: str) -> None:
    assert "use_kernel" not in cells.model_hparams(name)
    assert cells.build(name, 2, 8).use_kernel is True
    with pytest.raises(ValueError, match="use_kernel"):
        cells.build(name, 2, 8, use_kernel=False)


@pytest.mark.parametrize("name", [*NAMES, "unicornn"])
def test_a_kernel_that_cannot_build_falls_back_to_eager_with_one_warning(
        name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every model with a kernel (UnICORNN included) runs eager when its kernel cannot be built,
    warns once, and says why in `extra_info`."""
    def broken(kernel: str) -> None:
        raise RuntimeError(f"Error building extension '{kernel}'\nc++: not found")

    monkeypatch.setattr(cpp_build, "_loaded", {})
    monkeypatch.setattr(cpp_build, "_errors", {})
    monkeypatch.setattr(cpp_build, "_compile", broken)
    model = make_any(name, 2, 8, 1)
    with pytest.warns(RuntimeWarning, match=f"'{name}' is unavailable"):
        model(torch.randn(1, 3, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(1, 3, 2))
    assert model.extra_info() == {"implementation": "eager", "fused_unavailable": "RuntimeError: c++: not found"}


def test_the_backend_is_chosen_once_per_forward_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """A three-layer model asks `backend.choose` once per forward call and hands the same ops to every layer."""
    choices: list[str] = []
    handed: list[object] = []
    choose, run_kernel = backend.choose, CoRNNCell.run_kernel
    monkeypatch.setattr(backend, "choose", lambda kernel, x: choices.append(kernel) or choose(kernel, x))
    monkeypatch.setattr(CoRNNCell, "run_kernel", lambda cell, u, ops: handed.append(ops) or run_kernel(cell, u, ops))
    model = make_kernel_model("cornn", 2, 8, 3)
    model(torch.randn(2, 4, 2))
    assert choices == ["cornn"] and model.implementation == "fused-cpu"
    assert len(handed) == 3 and all(ops is cpp_build.require("cornn") for ops in handed)


@pytest.mark.parametrize("name", NAMES)
def test_a_kernel_folder_without_a_cpp_source_runs_eager_without_a_warning(
        name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel whose folder has no `cpu.cpp` (a Triton-only kernel) is not an error on the CPU."""
    monkeypatch.setattr(cpp_build, "KERNELS_DIR", tmp_path)
    model = make_kernel_model(name, 2, 8, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(1, 3, 2))
    assert model.extra_info() == {"implementation": "eager"}


def test_the_cache_key_follows_the_shared_header(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A changed `cpp_common.h` rebuilds the sources that include it, and only those."""
    assert cpp_build.included_headers(cpp_build.source("unicornn")) == []
    shared = (cpp_build.KERNELS_DIR / "cpp_common.h").resolve()
    assert all(cpp_build.included_headers(cpp_build.source(name)) == [shared] for name in NAMES)
    kernels = tmp_path / "kernels"
    for name, text in (("with", '#include "../cpp_common.h"\nint a;'), ("without", "int a;")):
        (kernels / name).mkdir(parents=True)
        (kernels / name / "cpu.cpp").write_text(text)
    monkeypatch.setattr(cpp_build, "KERNELS_DIR", kernels)
    header = kernels / "cpp_common.h"
    header.write_text("// one")
    before = {name: cpp_build.build_key(cpp_build.source(name)) for name in ("with", "without")}
    header.write_text("// two")
    after = {name: cpp_build.build_key(cpp_build.source(name)) for name in ("with", "without")}
    assert after["without"] == before["without"] and after["with"] != before["with"]
