"""`seqarena.cells.kernels.heap`: after `keep_freed_blocks` a freed large tensor's memory is reused without page
faults (glibc), where a fresh mmap would fault every page in again; a process turns it on when it trains, not when
it merely imports the zoo (the dashboard and the workers give a large evaluation's memory back)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
#: Transparent huge pages on every anonymous mapping would fault a fresh 64 MB block in 32 pieces, not 16,384.
THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")
huge_pages_always = THP.exists() and "[always]" in THP.read_text()

#: A child process's page faults over four allocations of a 64 MB tensor, each freed, after `prelude` and ten
#: allocations that let the heap grow (in a child, so that what the test process allocated before does not count).
FAULTS_AFTER = """
import resource, torch
{prelude}
def faults():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    torch.empty(16 * 2**20, dtype=torch.float32).fill_(1.0)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
for _ in range(10):  # the heap grows until freed blocks fit (heap.py: memalign's over-ask)
    faults()
print(sum(faults() for _ in range(4)))
"""


def faults_in_a_child_after(prelude: str) -> int:
    done = subprocess.run([sys.executable, "-c", FAULTS_AFTER.format(prelude=prelude)], capture_output=True,
                          text=True, timeout=300, check=True)
    return int(done.stdout.split()[-1])


@linux_only
def test_a_freed_large_tensor_is_reused_without_page_faults() -> None:
    prelude = "from seqarena.cells.kernels import heap\nassert heap.keep_freed_blocks()"
    assert faults_in_a_child_after(prelude) < 400  # 4 × 16,384 if each were mapped afresh


@linux_only
@pytest.mark.skipif(huge_pages_always, reason="transparent huge pages on every mapping")
def test_importing_and_running_the_zoo_leaves_the_heap_as_glibc_keeps_it() -> None:
    prelude = ("from seqarena import cells\nfrom seqarena.cells.kernels import scan\n"
               "cells.build('lru', input_size=1, hidden_size=8)(torch.zeros(2, 5, 1))")
    assert faults_in_a_child_after(prelude) > 4 * 16_000  # each mapped afresh and given back when freed


@linux_only
def test_a_training_process_keeps_its_freed_blocks() -> None:
    prelude = ("from seqarena.workers import make_config, run_trial\n"
               "run_trial(make_config(model='lru', task='adding', seq_len=10, steps=1, eval_every=1, "
               "hparams={'hidden_size': 8, 'batch_size': 4}, task_options={'n_val': 8, 'n_test': 8}))")
    assert faults_in_a_child_after(prelude) < 400
