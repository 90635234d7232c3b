"""Fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from sqlalchemy import Engine

from seqarena.platform import database


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Run a module of tiny-tensor tests on one intra-op thread.

    With tiny tensors, torch's extra threads only spin-wait; on a busy 2-core machine that made
    each forward pass 10-100x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    """A fresh SQLite platform database file; its cached engine is closed after the test."""
    before = set(database._engines)
    yield f"sqlite:///{tmp_path / 'platform.db'}"
    for opened in set(database._engines) - before:
        database._engines.pop(opened).dispose()


@pytest.fixture
def engine(url: str) -> Engine:
    """The engine of `url`, schema at the newest migration."""
    return database.get_engine(url)
