"""The dashboard's reads of the platform database: small, aggregated in SQL, independent of Streamlit.

Every function takes an engine and returns plain data sized by the number of arms or by one
arm's (or one sequence length's) trials, never by the whole trials table, so pages stay fast with
tens of thousands of trials (`benchmarks/dashboard_pages.py` measures it). The Streamlit
layer (`seqarena.dashboard.data`) caches these per database URL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select

from seqarena.platform.leaderboard import ArmBest
from seqarena.platform.schema import RANKED_STATUSES, ArmRow, Job, Search, Trial


@dataclass(frozen=True)
class SearchInfo:
    """A search as the filters list it."""

    id: str
    name: str
    status: str
    created_at: datetime
    mlflow_experiment_id: str
    mlflow_parent_run_id: str | None

    @property
    def label(self) -> str:
        return f"{self.name} · {self.created_at:%Y-%m-%d %H:%M} · {self.id[:8]}"


@dataclass(frozen=True)
class Options:
    """What the filters can choose from: tasks, searches (newest first) and models, per task."""

    tasks: tuple[str, ...]
    searches: tuple[SearchInfo, ...]
    search_tasks: dict[str, tuple[str, ...]]
    models: dict[str, tuple[str, ...]]


def options(engine: Engine) -> Options:
    """The tasks, searches and models present in the database (three small DISTINCT queries)."""
    with engine.connect() as conn:
        search_rows = conn.execute(select(Search.id, Search.name, Search.status, Search.created_at,
                                          Search.mlflow_experiment_id, Search.mlflow_parent_run_id)
                                   .order_by(Search.created_at.desc(), Search.id.desc())).all()
        pairs = conn.execute(select(ArmRow.search_id, ArmRow.task).distinct()).all()
        models = conn.execute(select(ArmRow.task, ArmRow.model).distinct().order_by(ArmRow.task, ArmRow.model)).all()
    search_tasks: dict[str, list[str]] = {}
    for search_id, task in pairs:
        search_tasks.setdefault(search_id, []).append(task)
    by_task: dict[str, list[str]] = {}
    for task, model in models:
        by_task.setdefault(task, []).append(model)
    return Options(
        tasks=tuple(sorted(by_task)),
        searches=tuple(SearchInfo(*row) for row in search_rows),
        search_tasks={key: tuple(sorted(value)) for key, value in search_tasks.items()},
        models={key: tuple(value) for key, value in by_task.items()},
    )


TRIAL_COLUMNS = ("trial_id", "role", "seed", "status", "metric", "best_val_metric", "params", "train_seq_per_s",
                 "infer_seq_per_s", "peak_mem_mb", "wall_s", "steps", "mlflow_run_id", "hparams")


def arm_trials(engine: Engine, search_id: str, arm_key: str) -> pd.DataFrame:
    """Every recorded trial of one arm of one search, in recording order."""
    stmt = (select(*(getattr(Trial, name) for name in TRIAL_COLUMNS))
            .join(ArmRow, ArmRow.id == Trial.arm_id)
            .where(ArmRow.search_id == search_id, ArmRow.key == arm_key).order_by(Trial.id))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


def status_counts(engine: Engine, search_id: str, arm_key: str) -> dict[str, int]:
    """How many of the arm's recorded trials ended in each status (a GROUP BY)."""
    stmt = (select(Trial.status, func.count()).join(ArmRow, ArmRow.id == Trial.arm_id)
            .where(ArmRow.search_id == search_id, ArmRow.key == arm_key).group_by(Trial.status))
    with engine.connect() as conn:
        return {status: int(count) for status, count in conn.execute(stmt)}


def ranked_trials(engine: Engine, task: str, seq_len: int, search_ids: Sequence[str],
                  models: Sequence[str] | None = None) -> pd.DataFrame:
    """The ranked search trials of one (task, seq_len) in the given searches: the Pareto view's points."""
    stmt = (select(ArmRow.model, ArmRow.search_id, ArmRow.higher_is_better, Trial.trial_id, Trial.metric, Trial.params,
                   Trial.train_seq_per_s, Trial.infer_seq_per_s, Trial.peak_mem_mb, Trial.mlflow_run_id)
            .join(ArmRow, ArmRow.id == Trial.arm_id)
            .where(ArmRow.task == task, ArmRow.seq_len == seq_len, ArmRow.search_id.in_(tuple(search_ids)),
                   Trial.role == "search", Trial.status.in_(RANKED_STATUSES), Trial.metric.is_not(None)))
    if models is not None:
        stmt = stmt.where(ArmRow.model.in_(tuple(models)))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


JOB_COLUMNS = ("id", "name", "state", "priority", "submitted_by", "created_at", "started_at", "finished_at",
               "attempts", "worker_id", "cancel_requested", "search_id", "mlflow_parent_run_id", "error")


def jobs_frame(engine: Engine, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` jobs, newest first (queued and running ones are always among them)."""
    active = Job.state.in_(("queued", "running"))
    stmt = (select(*(getattr(Job, name) for name in JOB_COLUMNS))
            .order_by(active.desc(), Job.created_at.desc(), Job.id.desc()).limit(limit))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


def board_frame(rows: Sequence[ArmBest]) -> pd.DataFrame:
    """Leaderboard rows as a frame (one row per arm), for plots and CSV downloads."""
    columns = ["task", "seq_len", "model", "metric_name", "higher_is_better", "baseline", "metric", "mean", "std",
               "n", "solved", "trials", "params", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb", "search_id",
               "trial_id", "mlflow_run_id"]
    return pd.DataFrame([{name: getattr(row, name) for name in columns} for row in rows], columns=columns)


def pareto_front(points: pd.DataFrame, metric_higher_is_better: bool, cost: str, cost_higher_is_better: bool) -> Any:
    """A boolean Series: the points no other point beats in both the metric and `cost`.

    A point is dominated when another is at least as good in both and strictly better in one.
    """
    metric = points["metric"] if metric_higher_is_better else -points["metric"]
    other = points[cost] if cost_higher_is_better else -points[cost]
    order = sorted(range(len(points)), key=lambda i: (-other.iloc[i], -metric.iloc[i]))
    front = pd.Series(False, index=points.index)
    best_metric = float("-inf")
    for i in order:  # walk from the best cost down: a point is on the front if it beats every better-cost one
        if metric.iloc[i] > best_metric:
            front.iloc[i] = True
            best_metric = metric.iloc[i]
    return front


@dataclass(frozen=True)
class ArmProgress:
    """How far one arm of a job has come: trials recorded out of those its spec implies, best so far."""

    key: str
    done: int
    total: int
    best: str


def arm_progress(engine: Engine, search_id: str | None, spec_yaml: str) -> list[ArmProgress]:
    """Per arm of a job's spec: recorded trials (a GROUP BY of its search) against the spec's count."""
    from seqarena.platform.leaderboard import cell, leaderboard
    from seqarena.platform.spec import load_spec  # imports the model zoo: only when a job is shown

    spec = load_spec(spec_yaml)
    rows = {row.key: row for row in leaderboard(engine, search_id=search_id)} if search_id else {}
    progress = []
    for arm in spec.arms():
        row = rows.get(arm.key)
        progress.append(ArmProgress(arm.key, row.trials if row else 0, spec.trials_per_arm(arm.model),
                                    cell(row) if row else "—"))
    return progress
