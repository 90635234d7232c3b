"""Shared fixtures: the small real datasets in tests/data, an isolated SEQARENA_DATA, no network;
the `slow` marks of the fast tier (`pytest -m "not slow"`)."""

from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from seqarena import cli
from seqarena.cells.kernels import cpp_build
from seqarena.tasks import mnist

CliResult = tuple[int, str, str]

#: Fixtures that build the C++ kernels, run the Triton kernels through the interpreter, or run every model.
KERNEL_FIXTURES = frozenset({"kernel", "kernels", "triton_mode", "every_model_rows"})
#: Models whose forward pass on the CPU builds a C++ kernel on first use (a folder with `cpu.cpp`).
KERNEL_MODELS = frozenset(path.parent.name for path in cpp_build.KERNELS_DIR.glob(f"*/{cpp_build.SOURCE_NAME}"))

REPO = Path(__file__).resolve().parents[1]
#: The small real datasets the suite reads, in the repository (tests/data/README.md).
TEST_DATA = REPO / "tests" / "data"
#: Content sha256 of the MNIST subset in tests/data/mnist (the first 4 000 training and 1 000 test
#: images of the official files; tests/data/README.md), which the fixtures pin in place of the full
#: files' digests in `seqarena.tasks.mnist.FILES`.
MNIST_SUBSET_SHA256 = {
    "train_images": "b3358b9a61a251a81c68ae570ea2d92d118ac42c2c0af55cc2f275960da94cc4",
    "train_labels": "2f27f08fa71eec1104defc563b61fcb2d9269d71a38c1898c9e4b6ce4f255449",
    "test_images": "de7c252b04f05e1f8309634180ccdf286dc6dbac8c579b74e76e02ae0331ca52",
    "test_labels": "832c0d20f0dc42e575488c75a83a970787d4c8d4d05831b2ef03701b4a478a90",
}
#: Optional folder holding full datasets (`mnist/` with the four official files), for the tests of
#: numbers only the full data has; without it those tests are skipped.
FULL_DATA = os.environ.get("SEQARENA_FULL_DATA")
#: Task options may name paths only inside $SEQARENA_DATA or $SEQARENA_DATA_ALLOW (issue 18 §5); the
#: suite's own files (tests/data, the temporary folders of tmp_path) are allowed for every test, in
#: the environment itself so that Ray workers and subprocesses inherit it.
os.environ.setdefault("SEQARENA_DATA_ALLOW", os.pathsep.join([str(TEST_DATA), tempfile.gettempdir()]))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` every test that starts real services (tests/integration: Ray, MLflow, PostgreSQL,
    Chromium), builds or interprets kernels (a kernel fixture), or runs a model whose C++ kernel
    builds on first use (parametrised by its name), so that `-m "not slow"` needs no build."""
    for item in items:
        if _is_slow(item):
            item.add_marker(pytest.mark.slow)


def _is_slow(item: pytest.Item) -> bool:
    if REPO / "tests" / "integration" in item.path.parents:
        return True
    if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        return True
    callspec = getattr(item, "callspec", None)
    return callspec is not None and any(isinstance(value, str) and value in KERNEL_MODELS
                                        for value in callspec.params.values())


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never download: a missing data file is an error, not a network call."""
    monkeypatch.setenv("SEQARENA_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _own_main_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test leaves `sys.modules["__main__"]` as it found it: Streamlit's AppTest puts its script there and
    does not put pytest's back, and a later test's `spawn` child runs the parent's `__main__` first (an
    `AppTest.from_function` script fails there: `_page(*__args)`, NameError, the parent's EOFError)."""
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])


@pytest.fixture
def small_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """`SEQARENA_DATA` pointing at tests/data (read-only), its MNIST subset's digests pinned."""
    for key, digest in MNIST_SUBSET_SHA256.items():
        monkeypatch.setitem(mnist.FILES, key, dataclasses.replace(mnist.FILES[key], sha256=digest))
    monkeypatch.setenv("SEQARENA_DATA", str(TEST_DATA))
    return TEST_DATA


@pytest.fixture
def full_mnist(monkeypatch: pytest.MonkeyPatch) -> Path:
    """`SEQARENA_DATA` pointing at `$SEQARENA_FULL_DATA`, whose `mnist/` holds the four official
    files (verified against their pinned digests when read); skipped when it is not there."""
    if not FULL_DATA or not (Path(FULL_DATA) / "mnist").is_dir():
        pytest.skip("needs the full MNIST: set SEQARENA_FULL_DATA to a folder holding mnist/ "
                    "(the four official *-ubyte.gz files)")
    monkeypatch.setenv("SEQARENA_DATA", FULL_DATA)
    return Path(FULL_DATA)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[[list[str]], CliResult]:
    """Run `seqarena ARGS` in this process; return (exit code, stdout, stderr)."""

    def run(args: list[str]) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["seqarena", *args])
        try:
            cli.main()
            code = 0
        except SystemExit as done:
            code = int(done.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
