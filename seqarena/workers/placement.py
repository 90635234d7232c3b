"""Where a trial trains, decided by what the cluster gave it, and the facts of where it ran.

A Ray trial that reserved GPUs (`gpus_per_trial` > 0) runs in a worker process whose
`CUDA_VISIBLE_DEVICES` Ray has set to the GPUs it assigned; inside that process they are `cuda:0`,
`cuda:1`, ... so the trial trains on `cuda` (the first of them). A trial given no GPU trains on the
CPU. A trial given GPUs in a process where torch cannot use CUDA is not moved to the CPU: `prepare`
refuses the device `cuda` and the trial ends `failed` with that one line (it would otherwise train
silently, and slowly, on the CPU while its GPU share stays reserved).

`RunFacts` is what a trial's MLflow run records about where and how it ran.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

import seqarena
from seqarena.workers.measure import STEADY

REPOSITORY = Path(__file__).resolve().parents[2]


def trial_device(gpu_ids: Sequence[object]) -> str:
    """`cuda` when the trial was assigned GPUs (Ray's `ray.get_gpu_ids()`), else `cpu`."""
    return "cuda" if len(gpu_ids) > 0 else "cpu"


def assigned_gpus() -> list[object]:
    """The GPU ids Ray assigned to this trial's process (empty outside Ray or without GPUs)."""
    import ray

    return list(ray.get_gpu_ids()) if ray.is_initialized() else []


@dataclass(frozen=True)
class RunFacts:
    """Where and how a trial ran (tags of its MLflow run)."""

    device: str
    gpu_name: str
    implementation: str
    torch_version: str
    cuda_version: str
    seqarena_version: str
    git_commit: str
    timing: str = ""
    """how its throughput was timed (`seqarena.workers.measure.STEADY`); empty in reports that predate it"""

    def tags(self) -> dict[str, str]:
        """The facts as MLflow tags (every key present; `-` for what does not apply)."""
        return {key: value or "-" for key, value in asdict(self).items()}


def run_facts(device: torch.device, implementation: str) -> RunFacts:
    """The facts of a trial that trained on `device` through `implementation`."""
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else ""
    return RunFacts(device=device.type, gpu_name=gpu, implementation=implementation,
                    torch_version=torch.__version__, cuda_version=torch.version.cuda or "",
                    seqarena_version=seqarena.__version__, git_commit=git_commit(), timing=STEADY)


def implementation_of(extra: dict[str, object], device: torch.device) -> str:
    """What ran the recurrence: the model's own word (`fused-cuda`, `fused-cpu`, `eager`, ...) when it
    reports one, else torch's modules (cuDNN on CUDA, ATen on the CPU)."""
    said = extra.get("implementation")
    if isinstance(said, str) and said:
        return said
    return "torch-cudnn" if device.type == "cuda" else "torch-cpu"


def git_commit(repository: Path = REPOSITORY) -> str:
    """The commit of the checkout seqarena runs from (`+dirty` with uncommitted changes); empty when
    it is not run from a git checkout."""
    if not (repository / ".git").exists():
        return ""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repository, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repository,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""
    return sha + ("+dirty" if sha and dirty else "")
