"""Shared by the kernel benchmarks (`fused_unicornn.py`, `fused_cells.py`, `fused_gpu.py`): the training
step they time, interleaved median timings, the machine's facts, and replacing one section of
benchmarks/RESULTS.md. Needs torch only (`fused_gpu.py` runs on a GPU machine without seqarena's other
dependencies)."""

from __future__ import annotations

import os
import platform
import shlex
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

ROOT = Path(__file__).resolve().parents[1]


def last_step_loss(model: nn.Module, u: Tensor) -> Tensor:
    """Sum of the last step's features (nn.LSTM returns a tuple)."""
    out = model(u)
    out = out[0] if isinstance(out, tuple) else out
    return out[:, -1].sum()


def training_step(model: nn.Module, u: Tensor) -> Callable[[], None]:
    """One timed step: gradients cleared, forward, `last_step_loss`, backward."""
    def step() -> None:
        model.zero_grad(set_to_none=True)
        last_step_loss(model, u).backward()
    return step


def median_seconds(steps: dict[str, Callable[[], None]], repeats: int) -> dict[str, float]:
    """Median seconds per step of each model after one warm-up round; the models take turns within
    each round, so a change of load on a shared machine hits all of them."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for repeat in range(repeats + 1):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            if repeat > 0:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def machine() -> dict[str, Any]:
    """CPU model, cores, versions, torch's CPU capability, thread setting and the git revision."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True,
                           text=True).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "device": "cpu", "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "git_sha": sha.strip() + (" + uncommitted changes" if dirty else ""),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average": [round(v, 1) for v in os.getloadavg()]}


def replace_section(path: Path, heading: str, section: str) -> None:
    """Replace (or append) the `heading` section of `path` up to the next `## ` heading."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(heading)
    if start < 0:
        path.write_text(text.rstrip("\n") + "\n\n" + section)
        return
    end = text.find("\n## ", start + len(heading))
    rest = text[end + 1:] if end >= 0 else ""
    path.write_text(text[:start] + section + ("\n" + rest if rest else ""))


def command_line(script: str, argv: list[str]) -> str:
    """The command that reproduces a run, for RESULTS.md; a `--note` text is shown as a placeholder
    (the section prints the note itself)."""
    shown = [("'<the note below>'" if i > 0 and argv[i - 1] == "--note" else shlex.quote(arg))
             for i, arg in enumerate(argv)]
    return " ".join([f"OMP_NUM_THREADS=1 .venv/bin/python benchmarks/{script}", *shown])
