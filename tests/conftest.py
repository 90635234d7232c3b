"""Shared fixtures: the real data in ../shared/data, an isolated SEQARENA_DATA, no network."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from seqarena import cli

CliResult = tuple[int, str, str]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SEQARENA_TEST_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never download: a missing data file is an error, not a network call."""
    monkeypatch.setenv("SEQARENA_OFFLINE", "1")


@pytest.fixture
def shared_data(monkeypatch: pytest.MonkeyPatch) -> Path:
    """`SEQARENA_DATA` pointing at the real MNIST copy in ../shared/data (read-only)."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.fail(f"the shared test data is missing: {SHARED_DATA}/mnist (see shared/data/README.md)")
    monkeypatch.setenv("SEQARENA_DATA", str(SHARED_DATA))
    return SHARED_DATA


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
