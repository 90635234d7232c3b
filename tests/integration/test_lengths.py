"""Length generalisation end to end: a real local Ray search whose spec names other lengths T′."""

from __future__ import annotations

from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from seqarena.platform import database
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.lengths import length_points
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import tracking_uri

pytestmark = pytest.mark.integration

SPEC = """
name: reach
task: adding
task_options: {n_val: 32, n_test: 32}
seq_lens: [10]
models: [gru]
budget: {max_steps: 10, eval_every: 5}
search: {algorithm: random, num_samples: 2, scheduler: none, seed: 0}
fixed: {all: {hidden_size: 6, batch_size: 8}}
repeats: 2
repeat_top_k: 1
length_generalisation: {factors: [2], lengths: [35]}
resources: {cpus_per_trial: 1}
"""


def test_a_search_tests_every_completed_trial_at_the_other_lengths(home: Path, local_ray: None,
                                                                   tmp_path: Path) -> None:
    """Every completed trial has its points at T′ = 20 and 35 in MLflow (test_mse_at_T20 / _T35); the
    lengths read gives the mean over the best configuration's seeds of exactly those MLflow numbers."""
    path = tmp_path / "reach.yaml"
    path.write_text(SPEC)
    outcome = run_search(load_spec(path))
    engine = database.get_engine()
    frame = trials_frame(engine, outcome.search_id)
    completed = frame[frame["status"] == "completed"]
    assert len(completed) == 3  # two search trials and one repeat
    client = MlflowClient(tracking_uri())
    at = {row.trial_id: client.get_run(row.mlflow_run_id).data.metrics for row in completed.itertuples()}
    assert all({"test_mse_at_T20", "test_mse_at_T35"} <= set(metrics) for metrics in at.values())
    (arm,) = outcome.leaderboard
    points = {point.seq_len: point for point in length_points(engine, "adding", search_id=outcome.search_id)}
    assert sorted(points) == [10, 20, 35] and points[10].trained
    for seq_len in (20, 35):
        mine = [at[run.trial_id][f"test_mse_at_T{seq_len}"] for run in arm.runs]
        assert points[seq_len].n == len(mine) == 2
        assert points[seq_len].mean == pytest.approx(sum(mine) / len(mine))
