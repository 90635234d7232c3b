"""The platform database's tables (SQLAlchemy ORM), their allowed values and their time type.

Tables:
    searches  one per search job; status `running`, `succeeded`, `failed` or `interrupted`.
    arms      one per (task, seq_len, model) of a search, with the task's metric, its direction
              (`higher_is_better`), the trivial-baseline value of the metric and the task's data
              protocol its trials follow (`protocol`; NULL for arms recorded before protocols existed),
              and, for an arm a T-ladder never reached, why (`skipped`; NULL for every arm that ran).
    trials    one per finished Ray Tune trial: role `search` (a sampled configuration) or `repeat`
              (the best configuration rerun with another seed), status, hyperparameters, the test
              metric at the best validation step, throughput, memory, MLflow run id, and
              `config_key` (`config_key(hparams)`: equal for runs of one configuration), and the
              learning curve (`curve`: step, train_loss, val_<metric> per evaluation; NULL for trials
              recorded before it was kept, empty for a trial that ended without a result), and where and
              how it ran with the versions that ran and recorded it (`facts`: device, implementation,
              git commit, torch, seqarena, ray, optuna, mlflow; NULL for trials recorded before it was kept).
    trial_lengths  one per (trial, other length T′) of a search whose spec names `length_generalisation`: the
              trained model tested at T′, status (`completed`, `diverged`, `oom`, `failed`), headline and every
              test metric, and a note (an error, a receptive field shorter than the input); deleted with its trial.
    jobs      one per submitted spec in the job queue (`seqarena.platform.jobs`).
    profile_runs  one per `seqarena profile` run (device, torch version, batch size, hidden size, settings);
    profile_rows  one per (model, seq_len) of a profile run: step times, sequences/s, peak memory, status.
Times are timezone-aware UTC on every backend. The Alembic revisions in `migrations/versions/`
create these tables; `tests/unit/test_db.py` checks that the two agree.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any, get_args

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from seqarena.workers.config import TrialRole
from seqarena.workers.profile import PROFILE_STATUSES
from seqarena.workers.results import LengthStatus, TrialStatus

SEARCH_STATUSES = ("running", "succeeded", "failed", "interrupted")
TRIAL_ROLES = get_args(TrialRole)
TRIAL_STATUSES = get_args(TrialStatus)
LENGTH_STATUSES = get_args(LengthStatus)
RANKED_STATUSES = ("completed", "stopped")
RETRIED_STATUSES = ("failed", "oom")
"""Statuses of the trials `seqarena retry` reruns (a cell that could not run, not a result of its settings)."""
"""Statuses whose trials carry a usable metric (leaderboards rank only these)."""

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware time")
        return None if value is None else value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


def utcnow() -> datetime:
    return datetime.now(UTC)


def _new_id() -> str:
    return uuid.uuid4().hex


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Search(Base):
    """One search job (a validated spec) and where its records live in MLflow and Ray Tune."""

    __tablename__ = "searches"
    __table_args__ = (
        CheckConstraint(_in("status", SEARCH_STATUSES), name="status"),
        Index("ix_searches_name_created_at", "name", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200))
    spec_yaml: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="running")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    mlflow_experiment_id: Mapped[str] = mapped_column(String(64))
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64))
    storage_path: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)

    arms: Mapped[list[ArmRow]] = relationship(back_populates="search", cascade="all, delete-orphan",
                                              passive_deletes=True, order_by="ArmRow.id")


class ArmRow(Base):
    """One (task, seq_len, model) of a search; trials are only compared within an arm."""

    __tablename__ = "arms"
    __table_args__ = (UniqueConstraint("search_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    task: Mapped[str] = mapped_column(String(64))
    seq_len: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    metric_name: Mapped[str] = mapped_column(String(64))
    higher_is_better: Mapped[bool] = mapped_column(Boolean)
    baseline: Mapped[float] = mapped_column(Float)
    protocol: Mapped[str | None] = mapped_column(String(64))
    skipped: Mapped[str | None] = mapped_column(Text)

    search: Mapped[Search] = relationship(back_populates="arms")


class Trial(Base):
    """One finished Ray Tune trial of an arm (recorded once per (search_id, trial_id))."""

    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("search_id", "trial_id"),
        CheckConstraint(_in("role", TRIAL_ROLES), name="role"),
        CheckConstraint(_in("status", TRIAL_STATUSES), name="status"),
        Index("ix_trials_arm_id_metric", "arm_id", "metric"),
        Index("ix_trials_arm_id_config_key", "arm_id", "config_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    search_id: Mapped[str] = mapped_column(ForeignKey("searches.id", ondelete="CASCADE"))
    arm_id: Mapped[int] = mapped_column(ForeignKey("arms.id", ondelete="CASCADE"))
    trial_id: Mapped[str] = mapped_column(String(128))
    role: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer)
    hparams: Mapped[dict[str, Any]] = mapped_column(JSON)
    config_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    metric: Mapped[float | None] = mapped_column(Float)
    best_val_metric: Mapped[float | None] = mapped_column(Float)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[int | None] = mapped_column(Integer)
    train_seq_per_s: Mapped[float | None] = mapped_column(Float)
    infer_seq_per_s: Mapped[float | None] = mapped_column(Float)
    peak_mem_mb: Mapped[float | None] = mapped_column(Float)
    wall_s: Mapped[float | None] = mapped_column(Float)
    steps: Mapped[int] = mapped_column(Integer)
    mlflow_run_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    curve: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    facts: Mapped[dict[str, str] | None] = mapped_column(JSON)


class TrialLength(Base):
    """A recorded trial's trained model tested at another length T′ (`TrialRecord.lengths`)."""

    __tablename__ = "trial_lengths"
    __table_args__ = (
        UniqueConstraint("trial_row_id", "seq_len"),
        CheckConstraint(_in("status", LENGTH_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    trial_row_id: Mapped[int] = mapped_column(ForeignKey("trials.id", ondelete="CASCADE"))
    seq_len: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    metric: Mapped[float | None] = mapped_column(Float)
    test_metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)


JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
"""The states of a job; `seqarena.platform.jobs` holds the transitions between them and makes every change."""


class Job(Base):
    """One submitted spec in the job queue and its lifecycle (changed only through `seqarena.platform.jobs`).

    `priority`: higher runs first, then older first. `worker_id` and `lease_expires_at`: the worker
    holding a running job and until when (a running job whose lease expired may be taken over).
    `attempts`: how often a worker took the job. `search_id`: the search it runs, kept on resume.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(_in("state", JOB_STATES), name="state"),
        Index("ix_jobs_state_priority_created_at", "state", "priority", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200))
    spec_yaml: Mapped[str] = mapped_column(Text)
    spec_hash: Mapped[str] = mapped_column(String(64))
    submitted_by: Mapped[str] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    state: Mapped[str] = mapped_column(String(16), default="queued")
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    worker_id: Mapped[str | None] = mapped_column(String(200))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    search_id: Mapped[str | None] = mapped_column(ForeignKey("searches.id", ondelete="SET NULL"))
    mlflow_parent_run_id: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)




class WorkerRow(Base):
    """A `seqarena worker` process as the job store sees it (changed only through `seqarena.platform.jobs`).

    Every claim attempt (each idle poll) and every heartbeat moves `seen_until` to the database's now plus
    the worker's lease, so a worker is alive while `seen_until` is in the future, idle or busy; one that
    stops cleanly deletes its row, one that is killed ages out within its lease. `job_id`: the job it
    holds, None while idle.
    """

    __tablename__ = "workers"

    worker_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    seen_until: Mapped[datetime] = mapped_column(UTCDateTime())
    job_id: Mapped[str | None] = mapped_column(String(32))


class ProfileRun(Base):
    """One `seqarena profile` run: its settings and machine; its rows in `profile_rows`.

    `settings`: everything the profile file records besides the rows (repeats, warm-up, seed, the
    machine, the device's name, ...).
    """

    __tablename__ = "profile_runs"
    __table_args__ = (Index("ix_profile_runs_created_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=_new_id)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    device: Mapped[str] = mapped_column(String(64))
    torch_version: Mapped[str] = mapped_column(String(64))
    batch_size: Mapped[int] = mapped_column(Integer)
    hidden: Mapped[int] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    out_dir: Mapped[str | None] = mapped_column(Text)


class ProfileResult(Base):
    """One (model, T) of a profile run: seconds per training and inference step (median of the
    timed runs; every run in `*_all`), sequences per second, peak memory of a training step (MiB)."""

    __tablename__ = "profile_rows"
    __table_args__ = (
        UniqueConstraint("run_id", "model", "seq_len"),
        CheckConstraint(_in("status", PROFILE_STATUSES), name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("profile_runs.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    seq_len: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    num_layers: Mapped[int | None] = mapped_column(Integer)
    params: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str | None] = mapped_column(String(32))
    train_step_s: Mapped[float | None] = mapped_column(Float)
    infer_step_s: Mapped[float | None] = mapped_column(Float)
    train_seq_per_s: Mapped[float | None] = mapped_column(Float)
    infer_seq_per_s: Mapped[float | None] = mapped_column(Float)
    peak_mem_mb: Mapped[float | None] = mapped_column(Float)
    peak_mem_method: Mapped[str | None] = mapped_column(Text)
    train_step_s_all: Mapped[list[float]] = mapped_column(JSON)
    infer_step_s_all: Mapped[list[float]] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
