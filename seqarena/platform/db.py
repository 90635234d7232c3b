"""The platform database: searches, their arms and one row per finished trial.

Where it lives: `SEQARENA_DB_URL` (any SQLAlchemy URL, PostgreSQL in
a cluster) or `sqlite:///$SEQARENA_HOME/seqarena.db`. `get_engine` brings the schema to the newest
Alembic revision (`seqarena/platform/migrations/`) before handing the engine out, so every process
sees the same tables; concurrent upgrades are serialised by the database itself (`BEGIN IMMEDIATE`
on SQLite, an advisory lock on PostgreSQL).

Who writes: the search driver creates the search and its arms and
records each finished trial once, keyed by (search id, Ray Tune trial id); `record_trial` is an
insert that cannot duplicate a row even when two writers race.

Tables:
    searches  one per search job; status `running`, `succeeded`, `failed` or `interrupted`.
    arms      one per (task, seq_len, model) of a search, with the task's metric, its direction
              (`higher_is_better`) and the trivial-baseline value of the metric.
    trials    one per finished Ray Tune trial: role `search` (a sampled configuration) or `repeat`
              (the best configuration rerun with another seed), status, hyperparameters, the test
              metric at the best validation step, throughput, memory, MLflow run id, and
              `config_key` (`config_key(hparams)`: equal for runs of one configuration).
    profile_runs  one per `seqarena profile` run (device, torch version, batch size, hidden size, settings);
    profile_rows  one per (model, seq_len) of a profile run: step times, sequences/s, peak memory, status.
Times are timezone-aware UTC on every backend.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    exc,
    insert,
    make_url,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship, selectinload
from sqlalchemy.types import TypeDecorator

from seqarena.errors import BadInput, one_of
from seqarena.platform.home import seqarena_home

log = logging.getLogger(__name__)

SEARCH_STATUSES = ("running", "succeeded", "failed", "interrupted")
TRIAL_ROLES = ("search", "repeat")
TRIAL_STATUSES = ("completed", "stopped", "diverged", "oom", "failed")
RANKED_STATUSES = ("completed", "stopped")
"""Statuses whose trials carry a usable metric (leaderboards rank only these)."""

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x5E9A_2E4A  # pg_advisory_xact_lock key held while the schema is upgraded

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class DatabaseUnavailable(BadInput):
    """The configured platform database cannot be reached or opened (the CLI exits with 2: the
    URL in `SEQARENA_DB_URL` or `SEQARENA_HOME` is the user's to fix)."""

    def __init__(self, url_text: str, reason: str) -> None:
        super().__init__("SEQARENA_DB_URL", url_text, f"a database that can be reached and opened ({reason})")


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

    arms: Mapped[list[Arm]] = relationship(back_populates="search", cascade="all, delete-orphan",
                                           passive_deletes=True, order_by="Arm.id")


class Arm(Base):
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


# --------------------------------------------------------------------------------------------- engine

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def database_url() -> str:
    """`$SEQARENA_DB_URL` if set, else the embedded SQLite file `$SEQARENA_HOME/seqarena.db`."""
    return os.environ.get("SEQARENA_DB_URL") or f"sqlite:///{seqarena_home() / 'seqarena.db'}"


def safe_url(url: str | URL) -> str:
    """The URL as text with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<not a database URL>"


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default `database_url()`), its schema upgraded to the newest revision.

    Cached per URL, so callers may ask for it per use. SQLite connections run in WAL mode with a
    30 s busy timeout and enforce foreign keys.
    """
    raw = url or database_url()
    with _engines_lock:
        if raw not in _engines:
            engine = _create_engine(raw)
            try:
                _upgrade(engine)
            except exc.DBAPIError as error:
                engine.dispose()
                raise DatabaseUnavailable(safe_url(engine.url), _unavailable(engine.url, error)) from None
            _engines[raw] = engine
        return _engines[raw]


def _unavailable(url: URL, error: exc.DBAPIError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def _create_engine(raw: str) -> Engine:
    try:
        url = make_url(raw)
    except exc.ArgumentError:
        raise BadInput("SEQARENA_DB_URL", safe_url(raw),
                       "a SQLAlchemy URL such as postgresql+psycopg://user@host/db or sqlite:///path") from None
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        try:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailable(safe_url(url), f"cannot create its folder: {error}") from None
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _set_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _set_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried with backoff for up to the busy timeout: while another
    connection converts a fresh file to WAL, SQLite answers "database is locked" at once, without
    calling its busy handler (seen with four processes opening one new file together)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.2)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations (pass `connection` to migrate through it).

    New revisions: `command.revision(alembic_config(), "message")`, then edit the file by hand.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest Alembic revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(engine: Engine) -> None:
    """Upgrade the schema to head, one process at a time (the others wait, then find it done)."""
    if schema_revision(engine) == head_revision():
        return
    log.info("upgrading the schema of %s to %s", safe_url(engine.url), head_revision())
    with _migration_connection(engine) as conn:
        command.upgrade(alembic_config(conn), "head")


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's migration lock until commit."""
    with engine.connect() as conn:
        sqlite_db = engine.dialect.name == "sqlite"
        if sqlite_db:
            # a batch migration recreates tables: with foreign keys on, dropping one would cascade
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, waited for up to busy_timeout
        elif engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        try:
            yield conn
            conn.commit()
        finally:
            if sqlite_db:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# ------------------------------------------------------------------------------------------- searches

_ARM_FIELDS = ("task", "seq_len", "model", "key", "metric_name", "higher_is_better", "baseline")


def create_search(engine: Engine, *, name: str, spec_yaml: str, spec_hash: str, mlflow_experiment_id: str,
                  arms: list[dict[str, Any]]) -> str:
    """Write a search (status `running`) with its arms in one transaction; return its id.

    Either the search and every arm are written, or nothing is (a bad arm raises `BadInput`).
    """
    checked = [_checked_arm(i, arm) for i, arm in enumerate(arms)]
    search = Search(name=name, spec_yaml=spec_yaml, spec_hash=spec_hash, status="running",
                    mlflow_experiment_id=str(mlflow_experiment_id), arms=[Arm(**arm) for arm in checked])
    try:
        with session_scope(engine) as session:
            session.add(search)
    except exc.IntegrityError:
        keys = [arm["key"] for arm in checked]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise BadInput("arms.key", duplicates, "a distinct key per arm of a search") from None
        raise
    return search.id


def _checked_arm(index: int, arm: Mapping[str, Any]) -> dict[str, Any]:
    field = f"arms[{index}]"
    if set(arm) != set(_ARM_FIELDS):
        raise BadInput(field, sorted(arm), "exactly the fields " + ", ".join(_ARM_FIELDS))
    for name in ("task", "model", "key", "metric_name"):
        if not isinstance(arm[name], str) or not arm[name]:
            raise BadInput(f"{field}.{name}", arm[name], "a non-empty string")
    if isinstance(arm["seq_len"], bool) or not isinstance(arm["seq_len"], int) or arm["seq_len"] < 1:
        raise BadInput(f"{field}.seq_len", arm["seq_len"], "a positive integer")
    if arm["higher_is_better"] not in (True, False):
        raise BadInput(f"{field}.higher_is_better", arm["higher_is_better"], "true or false")
    baseline = _finite(arm["baseline"])
    if baseline is None:
        raise BadInput(f"{field}.baseline", arm["baseline"], "a finite number")
    return {**arm, "higher_is_better": bool(arm["higher_is_better"]), "baseline": baseline}


def get_search(engine: Engine, search_id: str) -> Search | None:
    """The search with this id (its `arms` loaded), or None."""
    with session_scope(engine) as session:
        return session.get(Search, search_id, options=[selectinload(Search.arms)])


def find_search(engine: Engine, id_or_name: str) -> Search:
    """The search with this id, else the latest search with this name; `BadInput` if neither exists."""
    found = get_search(engine, id_or_name)
    if found is not None:
        return found
    with session_scope(engine) as session:
        found = session.scalars(select(Search).where(Search.name == id_or_name)
                                .order_by(Search.created_at.desc(), Search.id.desc())
                                .options(selectinload(Search.arms)).limit(1)).first()
    if found is None:
        raise BadInput("search", id_or_name, "an existing search id or name")
    return found


def set_search_status(engine: Engine, search_id: str, status: str, *, error: str | None = None,
                      mlflow_parent_run_id: str | None = None, storage_path: str | None = None) -> None:
    """Move a search to `status`.

    `running` (a start or a resume) clears `finished_at` and `error`; the other statuses stamp
    `finished_at`. `error`, `mlflow_parent_run_id` and `storage_path` are written when given.
    """
    if status not in SEARCH_STATUSES:
        raise BadInput("status", status, one_of(SEARCH_STATUSES))
    with session_scope(engine) as session:
        search = session.get(Search, search_id)
        if search is None:
            raise BadInput("search", search_id, "an existing search id")
        search.status = status
        search.finished_at = None if status == "running" else utcnow()
        if status == "running" or error is not None:
            search.error = error
        if mlflow_parent_run_id is not None:
            search.mlflow_parent_run_id = mlflow_parent_run_id
        if storage_path is not None:
            search.storage_path = storage_path


# --------------------------------------------------------------------------------------------- trials

_REQUIRED = ("trial_id", "seed", "hparams", "status", "steps")
_OPTIONAL: dict[str, Any] = {
    "role": "search", "config_key": None, "metric": None, "best_val_metric": None, "test_metrics": None,
    "params": None, "train_seq_per_s": None, "infer_seq_per_s": None, "peak_mem_mb": None, "wall_s": None,
    "mlflow_run_id": None,
}


def config_key(hparams: Mapping[str, Any]) -> str:
    """The identity of a configuration: sha256 of its hyperparameters as canonical JSON, `seed` left out.

    Runs of one configuration with different seeds (a best trial and its repeats) share it.
    """
    canonical = json.dumps(_plain({k: v for k, v in hparams.items() if k != "seed"}), sort_keys=True,
                           separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_trial(engine: Engine, search_id: str, arm_key: str, row: Mapping[str, Any]) -> bool:
    """Record a finished trial of arm `arm_key`; False (and nothing changed) if it is already recorded.

    `row` holds `trial_id`, `seed`, `hparams`, `status`, `steps` and optionally `role` (default
    `search`), `config_key` (default `config_key(hparams)`), `metric`, `best_val_metric`,
    `test_metrics`, `params`, `train_seq_per_s`, `infer_seq_per_s`, `peak_mem_mb`, `wall_s`,
    `mlflow_run_id`. NaN and infinite numbers are stored as NULL (a diverged trial has no metric).
    Safe against concurrent writers: the insert skips an existing (search_id, trial_id).
    """
    values = _trial_values(row)
    with session_scope(engine) as session:
        arm_id = session.scalar(select(Arm.id).where(Arm.search_id == search_id, Arm.key == arm_key))
        if arm_id is None:
            raise BadInput("arm", arm_key, f"an arm key of search {search_id}")
        values.update(search_id=search_id, arm_id=arm_id, created_at=utcnow())
        return _insert_once(session, values)


def _insert_once(session: Session, values: dict[str, Any]) -> bool:
    dialect = session.get_bind().dialect
    if dialect.name in ("sqlite", "postgresql"):
        make = sqlite.insert if dialect.name == "sqlite" else postgresql.insert
        table = Trial.__table__
        stmt = make(table).values(**values).on_conflict_do_nothing(index_elements=["search_id", "trial_id"])
        if not dialect.insert_returning:  # SQLite before 3.35
            return session.execute(stmt).rowcount == 1
        # the row comes back only when it was inserted (rowcount is not reliable with RETURNING)
        return session.execute(stmt.returning(table.c.id)).first() is not None
    try:
        with session.begin_nested():
            session.execute(insert(Trial.__table__).values(**values))
    except exc.IntegrityError:
        if session.scalar(select(Trial.id).where(Trial.search_id == values["search_id"],
                                                 Trial.trial_id == values["trial_id"])) is None:
            raise
        return False
    return True


def _trial_values(row: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(row) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise BadInput("row", unknown, one_of([*_REQUIRED, *_OPTIONAL]))
    missing = [name for name in _REQUIRED if row.get(name) is None]
    if missing:
        raise BadInput("row", missing, "values for " + ", ".join(_REQUIRED))
    values = {**_OPTIONAL, **row}
    if values["role"] not in TRIAL_ROLES:
        raise BadInput("role", values["role"], one_of(TRIAL_ROLES))
    if values["status"] not in TRIAL_STATUSES:
        raise BadInput("status", values["status"], one_of(TRIAL_STATUSES))
    hparams = _plain(dict(values["hparams"]))
    return {
        "trial_id": str(values["trial_id"]), "role": values["role"], "seed": int(values["seed"]),
        "hparams": hparams, "config_key": values["config_key"] or config_key(hparams),
        "status": values["status"], "test_metrics": _plain(dict(values["test_metrics"] or {})),
        "steps": int(values["steps"]), "mlflow_run_id": values["mlflow_run_id"],
        "params": None if values["params"] is None else int(values["params"]),
        **{name: _finite(values[name]) for name in ("metric", "best_val_metric", "train_seq_per_s",
                                                    "infer_seq_per_s", "peak_mem_mb", "wall_s")},
    }


def _finite(value: Any) -> float | None:
    """`value` as a float, or None when it is missing, NaN or infinite."""
    if value is None or isinstance(value, bool):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _plain(value: Any) -> Any:
    """JSON-safe plain Python: numpy scalars unwrapped, NaN/inf as None (PostgreSQL rejects NaN in JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if not isinstance(value, str | int | float | None) and callable(getattr(value, "item", None)):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def recorded_trial_ids(engine: Engine, search_id: str) -> set[str]:
    """The Ray Tune trial ids already recorded for this search (a resumed driver skips them)."""
    with engine.connect() as conn:
        return set(conn.scalars(select(Trial.trial_id).where(Trial.search_id == search_id)))


_FRAME_COLUMNS = (
    Trial.search_id, Arm.key.label("arm_key"), Arm.task, Arm.seq_len, Arm.model, Arm.metric_name,
    Arm.higher_is_better, Arm.baseline, Trial.trial_id, Trial.role, Trial.seed, Trial.status, Trial.metric,
    Trial.best_val_metric, Trial.params, Trial.train_seq_per_s, Trial.infer_seq_per_s, Trial.peak_mem_mb,
    Trial.wall_s, Trial.steps, Trial.mlflow_run_id, Trial.created_at, Trial.config_key, Trial.hparams,
    Trial.test_metrics,
)


def trials_frame(engine: Engine, search_id: str | None = None, *, task: str | None = None,
                 seq_len: int | None = None, model: str | None = None, role: str | None = None,
                 status: str | None = None) -> pd.DataFrame:
    """Recorded trials with their arm's columns, one row each, filtered by any of the arguments.

    For the dashboard's per-trial views; leaderboards use `leaderboard.leaderboard` (SQL aggregates).
    """
    stmt = select(*_FRAME_COLUMNS).join(Arm, Arm.id == Trial.arm_id).order_by(Trial.id)
    filters = {Trial.search_id: search_id, Arm.task: task, Arm.seq_len: seq_len, Arm.model: model,
               Trial.role: role, Trial.status: status}
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(column == value)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


# ----------------------------------------------------------------------------------------------- jobs

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


# ------------------------------------------------------------------------------------------- profiles

PROFILE_STATUSES = ("ok", "oom", "skipped")
"""ok: measured; oom: ran out of memory; skipped: not run (its estimated memory exceeded the limit)."""


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


_PROFILE_NUMBERS = ("train_step_s", "infer_step_s", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb")


def record_profile(engine: Engine, name: str, settings: Mapping[str, Any], rows: list[Mapping[str, Any]],
                   out_dir: str | None = None) -> str:
    """Store a profile run and its rows in one transaction; return the run's id.

    `settings` holds `device`, `torch_version`, `batch_size` and `hidden` (anything else is kept in
    the JSON column `settings`); each row holds `model`, `seq_len`, `status` and optionally the
    numbers of `ProfileResult` (other keys are ignored; NaN and infinities are stored as NULL).
    """
    missing = [key for key in ("device", "torch_version", "batch_size", "hidden") if settings.get(key) is None]
    if missing:
        raise BadInput("settings", missing, "values for device, torch_version, batch_size, hidden")
    run = ProfileRun(name=name, device=str(settings["device"]), torch_version=str(settings["torch_version"]),
                     batch_size=int(settings["batch_size"]), hidden=int(settings["hidden"]),
                     settings=_plain(dict(settings)), out_dir=out_dir, created_at=utcnow())
    results = [ProfileResult(**_profile_values(i, row)) for i, row in enumerate(rows)]
    with session_scope(engine) as session:
        session.add(run)
        session.flush()
        for result in results:
            result.run_id = run.id
        session.add_all(results)
    return run.id


def _profile_values(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    if row.get("status") not in PROFILE_STATUSES:
        raise BadInput(f"rows[{index}].status", row.get("status"), one_of(PROFILE_STATUSES))
    optional_int = {key: None if row.get(key) is None else int(row[key]) for key in ("num_layers", "params")}
    return {"model": str(row["model"]), "seq_len": int(row["seq_len"]), "status": row["status"], **optional_int,
            "path": row.get("path"), "peak_mem_method": row.get("peak_mem_method"), "note": row.get("note") or None,
            **{key: _finite(row.get(key)) for key in _PROFILE_NUMBERS},
            **{key: _plain(list(row.get(key) or [])) for key in ("train_step_s_all", "infer_step_s_all")}}


def profile_runs_frame(engine: Engine) -> pd.DataFrame:
    """Every profile run, newest first: id, name, created_at, device, torch_version, batch_size, hidden."""
    columns = (ProfileRun.id, ProfileRun.name, ProfileRun.created_at, ProfileRun.device, ProfileRun.torch_version,
               ProfileRun.batch_size, ProfileRun.hidden)
    stmt = select(*columns).order_by(ProfileRun.created_at.desc(), ProfileRun.id.desc())
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


def profile_rows_frame(engine: Engine, run_id: str) -> pd.DataFrame:
    """The rows of one profile run, by model then T."""
    names = ("model", "seq_len", "status", "num_layers", "params", "path", *_PROFILE_NUMBERS, "peak_mem_method",
             "note")
    stmt = (select(*(getattr(ProfileResult, name) for name in names)).where(ProfileResult.run_id == run_id)
            .order_by(ProfileResult.model, ProfileResult.seq_len))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))
