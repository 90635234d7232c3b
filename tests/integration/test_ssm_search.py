"""A search over an oscillator RNN and an oscillatory state-space model, end to end on real Ray, MLflow and SQLite."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from seqarena.platform import database
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SPEC = """
name: ssm-tiny
task: adding
task_options: {n_val: 64, n_test: 64}
seq_lens: [20]
models: [cornn, linoss]
budget: {max_steps: 20, eval_every: 10}
search: {algorithm: tpe, num_samples: 2, scheduler: none, seed: 0}
fixed: {all: {hidden_size: 8, batch_size: 16}, linoss: {state_size: 8, num_layers: 1}}
repeats: 1
resources: {cpus_per_trial: 1}
"""


@pytest.mark.timeout(1800)  # Ray, MLflow and two C++ kernel builds on a cold cache; minutes on a loaded 2-core machine
def test_a_search_over_cornn_and_linoss_ranks_both(home: Path, local_ray: None, tmp_path: Path) -> None:
    path = tmp_path / "ssm.yaml"
    path.write_text(SPEC)
    spec = load_spec(path)
    outcome = run_search(spec)
    frame = trials_frame(database.get_engine(), outcome.search_id)
    assert len(frame) == spec.trial_count() == 4
    assert set(frame["status"]) <= {"completed", "stopped"}
    assert all(math.isfinite(v) for v in frame["metric"])
    assert {row.key for row in outcome.leaderboard} == {"adding/T=20/cornn", "adding/T=20/linoss"}
