"""Fixtures for searches on real Ray, MLflow and databases, each isolated in its own folders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TINY_SPEC = """
name: {name}
task: adding
task_options: {{n_val: 64, n_test: 64}}
seq_lens: [20]
models: [lstm, gru]
budget: {{max_steps: {steps}, eval_every: 10}}
search: {{algorithm: tpe, num_samples: {samples}, scheduler: asha, seed: 0}}
fixed: {{all: {{hidden_size: 8, batch_size: 16}}}}
repeats: 2
resources: {{cpus_per_trial: 1}}
"""


def tiny_spec(tmp: Path, name: str = "tiny", steps: int = 30, samples: int = 3) -> Path:
    """A two-arm adding search small enough for a test; returns the YAML file."""
    path = tmp / f"{name}.yaml"
    path.write_text(TINY_SPEC.format(name=name, steps=steps, samples=samples))
    return path


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh SEQARENA_HOME; no tracking server, database URL or Ray cluster from outside."""
    home = tmp_path / "home"
    monkeypatch.setenv("SEQARENA_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "SEQARENA_DB_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(scope="session")
def ray_tmp() -> Iterator[Path]:
    """A short private temp root for Ray (socket paths must stay short)."""
    path = Path(tempfile.mkdtemp(prefix="sa-ray-", dir="/tmp"))
    yield path


@pytest.fixture
def local_ray(ray_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray in this process (2 CPUs, a small object store), shut down after the test."""
    import ray

    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, object_store_memory=150 * 1024 * 1024)
    yield
    ray.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def seqarena_cli(*args: str, env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `seqarena ARGS` in a subprocess and wait for it."""
    return subprocess.run([sys.executable, "-m", "seqarena.cli", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def wait_for(condition, timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll `condition()` until it is true, or fail naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess: this one plus `extra`."""
    env = dict(os.environ)
    env.update(extra)
    return env
