"""`seqarena.cells.kernels.heap`: after `keep_freed_blocks` a freed large tensor's memory is reused without page
faults (glibc), where a fresh mmap would fault every page in again."""

from __future__ import annotations

import resource
import sys

import pytest
import torch

from seqarena.cells.kernels import heap


def faults_of_a_fresh_64_mb_tensor() -> int:
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20, dtype=torch.float32).fill_(1.0)  # 64 MB, written, then freed
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_freed_large_tensor_is_reused_without_page_faults() -> None:
    assert heap.keep_freed_blocks()
    faults_of_a_fresh_64_mb_tensor()  # the heap grows once
    assert faults_of_a_fresh_64_mb_tensor() < 100  # 16,384 4-KiB pages if it were mapped afresh
