"""A search that reserves GPUs trains on them or fails, never silently on the CPU (real Ray, MLflow, DB)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from mlflow.tracking import MlflowClient

from seqarena.platform import database
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import PARENT_TAG, tracking_uri

pytestmark = [pytest.mark.integration, pytest.mark.slow]

GPU_SPEC = """
name: fake-gpu
task: adding
task_options: {n_val: 16, n_test: 16}
seq_lens: [20]
models: [gru]
budget: {max_steps: 10, eval_every: 5}
search: {algorithm: random, num_samples: 2, scheduler: none, seed: 0}
fixed: {all: {hidden_size: 8, batch_size: 16}}
resources: {cpus_per_trial: 1, gpus_per_trial: 1}
"""


@pytest.fixture
def ray_with_a_fake_gpu(ray_tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A local Ray that advertises one GPU this machine does not have."""
    import ray

    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, log_to_driver=False,
             object_store_memory=150 * 1024 * 1024)
    yield
    ray.shutdown()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the GPU must be one Ray advertises but torch cannot use")
def test_trials_given_a_gpu_torch_cannot_use_fail_with_one_line(home: Path, ray_with_a_fake_gpu: None,
                                                                tmp_path: Path) -> None:
    path = tmp_path / "gpu.yaml"
    path.write_text(GPU_SPEC)
    outcome = run_search(load_spec(path))
    engine = database.get_engine()
    frame = trials_frame(engine, outcome.search_id)
    assert len(frame) == 2 and set(frame["status"]) == {"failed"}
    assert frame["train_seq_per_s"].isna().all()  # nothing trained, on the CPU or anywhere
    client = MlflowClient(tracking_uri())
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.`{PARENT_TAG}` = '{outcome.parent_run_id}'")
    assert len(runs) == 2
    for run in runs:
        assert run.info.status == "FAILED" and run.data.tags["status"] == "failed"
        error = run.data.tags["error"]
        assert "\n" not in error and "device" in error and "cuda" in error and "is_available" in error
        assert run.data.tags.get("device") != "cpu"
        assert {"seed", "steps", "eval_every", "num_layers", "task.n_val"} <= set(run.data.params)
