"""Shared fixtures: the real data in ../shared/data, an isolated SEQARENA_DATA, no network."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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
