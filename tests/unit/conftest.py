"""Fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


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
