"""The comparison table of a task (issue 19): one row per (model, T) that answers "which model is best at long
sequences, and at what cost?" on one screen (the dashboard's Leaderboard page, downloadable as CSV).

Per arm of the leaderboard (`seqarena.platform.leaderboard.leaderboard`: each arm's best configuration, the one
ranking rule), in leaderboard order (T, then best mean first):

- the test metric's mean and sample standard deviation over the n runs (seeds) of the best configuration;
- solved k / n seeds and the median steps to solve of the solved ones (`seqarena.platform.solving`, each task's
  `solved_when`: never the looser "beats the baseline");
- the best trial's trainable parameters, peak memory of a training step (MB) and sequences per second in training
  and in inference, with where they were measured: device, implementation (`Trial.facts`, read as
  `publication.provenance`) and how the throughput was timed (`TIMING`: steady state, or a record from before
  the warm-up was left out, which may include a kernel build);
- the arm's trials and how many of them ASHA stopped early (they are ranked, with the metric of the step they
  were stopped at), and how an arm without a result ended (`oom`, ...);
- the search, trial and MLflow run behind the numbers (the dashboard links each row to its run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from seqarena.platform.leaderboard import ArmBest
from seqarena.platform.publication import NOT_RECORDED, Provenance, provenance, trial_facts
from seqarena.workers.measure import STEADY

TIMING = {"steady": "steady state", "warm": "may include warm-up", "none": NOT_RECORDED}
"""How a row's throughput was timed: its best trial recorded `STEADY`; it recorded facts from before the warm-up
was left out; it recorded no facts."""


def metric_columns(metric: str) -> tuple[str, str]:
    """The names of the mean and std columns of `metric`, e.g. ("test mse mean", "test mse std")."""
    return f"test {metric} mean", f"test {metric} std"


def columns(metric: str) -> tuple[str, ...]:
    """The table's columns, in order."""
    return ("model", "T", *metric_columns(metric), "n", "solved", "steps to solve", "params", "peak memory (MB)",
            "training seq/s", "inference seq/s", "device", "implementation", "timing", "trials",
            "stopped by ASHA", "ended", "search_id", "trial_id", "mlflow_run_id")


def comparison_table(engine: Engine, rows: Sequence[ArmBest]) -> pd.DataFrame:
    """The table of `rows` (one task's leaderboard), one row per arm; empty with `columns` when `rows` is."""
    if not rows:
        return pd.DataFrame(columns=columns("metric"))
    facts = trial_facts(engine, rows)
    lines = [_line(row, provenance([facts.get((row.search_id, row.trial_id))] if row.trial_id else []))
             for row in rows]
    return pd.DataFrame(lines, columns=columns(rows[0].metric_name))


def timing(best: Provenance) -> str:
    """`TIMING`'s word for how the best trial's throughput was timed."""
    if best.recorded == 0:
        return TIMING["none"]
    return TIMING["steady"] if best.timing == (STEADY,) else TIMING["warm"]


def _line(row: ArmBest, best: Provenance) -> list[Any]:
    solve = row.solve
    measured = row.trial_id is not None
    return [row.model, row.seq_len, row.mean, row.std, row.n,
            None if solve is None else f"{solve.solved} / {solve.seeds}",
            None if solve is None else solve.steps_median,
            row.params, row.peak_mem_mb, row.train_seq_per_s, row.infer_seq_per_s,
            best.text("device") if measured else None, best.text("implementation") if measured else None,
            timing(best) if measured else None, row.trials, row.stopped, row.failure,
            row.search_id, row.trial_id, row.mlflow_run_id]


def mixed_measurements(frame: pd.DataFrame) -> str | None:
    """What makes the cost figures of `frame` (this module's table) not alike, or None: several devices (with
    the rows on each), or a model measured through different implementations at different T (its own figures
    then do not compare). Different models running through different implementations (a fused kernel, torch's
    modules) is what a comparison compares, and is not flagged."""
    measured = frame[frame["trial_id"].notna()]
    notes = []
    devices = sorted(set(measured["device"]))
    if len(devices) > 1:
        notes.append("devices " + "; ".join(
            f"{device}: " + ", ".join(f"{r.model} T={r.T}" for r in measured[measured["device"] == device].itertuples())
            for device in devices))
    for model, rows in measured.groupby("model", sort=True):
        if rows["implementation"].nunique() > 1:
            notes.append(f"{model} through " + ", ".join(f"{r.implementation} at T={r.T}" for r in rows.itertuples()))
    return "; ".join(notes) or None
