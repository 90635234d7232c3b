"""The records of searches: a search and its arms, and one row per finished trial.

Who writes: the search driver creates the search and its arms and
records each finished trial once, keyed by (search id, Ray Tune trial id); `record_trial` is an
insert that cannot duplicate a row even when two writers race. Leaderboards read these tables
through `seqarena.platform.leaderboard`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, exc, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from seqarena.errors import BadInput, one_of
from seqarena.platform.database import session_scope
from seqarena.platform.redaction import redact
from seqarena.platform.schema import RETRIED_STATUSES, SEARCH_STATUSES, ArmRow, Search, Trial, TrialLength, utcnow
from seqarena.workers.results import TrialRecord, finite, plain

_ARM_FIELDS = ("task", "seq_len", "model", "key", "metric_name", "higher_is_better", "baseline")
#: Arm fields that may be left out: `protocol`, the name of the task's data protocol (None: not recorded).
_OPTIONAL_ARM_FIELDS = ("protocol",)


def create_search(engine: Engine, *, name: str, spec_yaml: str, spec_hash: str, mlflow_experiment_id: str,
                  arms: list[dict[str, Any]]) -> str:
    """Write a search (status `running`) with its arms in one transaction; return its id.

    Either the search and every arm are written, or nothing is (a bad arm raises `BadInput`).
    """
    checked = [_checked_arm(i, arm) for i, arm in enumerate(arms)]
    search = Search(name=name, spec_yaml=spec_yaml, spec_hash=spec_hash, status="running",
                    mlflow_experiment_id=str(mlflow_experiment_id), arms=[ArmRow(**arm) for arm in checked])
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
    if not set(_ARM_FIELDS) <= set(arm) <= {*_ARM_FIELDS, *_OPTIONAL_ARM_FIELDS}:
        raise BadInput(field, sorted(arm), "the fields " + ", ".join(_ARM_FIELDS) + ", and optionally "
                       + ", ".join(_OPTIONAL_ARM_FIELDS))
    protocol = arm.get("protocol")
    if protocol is not None and (not isinstance(protocol, str) or not protocol):
        raise BadInput(f"{field}.protocol", protocol, "a non-empty string (a protocol name of the task) or null")
    for name in ("task", "model", "key", "metric_name"):
        if not isinstance(arm[name], str) or not arm[name]:
            raise BadInput(f"{field}.{name}", arm[name], "a non-empty string")
    if isinstance(arm["seq_len"], bool) or not isinstance(arm["seq_len"], int) or arm["seq_len"] < 1:
        raise BadInput(f"{field}.seq_len", arm["seq_len"], "a positive integer")
    if arm["higher_is_better"] not in (True, False):
        raise BadInput(f"{field}.higher_is_better", arm["higher_is_better"], "true or false")
    baseline = finite(arm["baseline"])
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
            search.error = redact(error) if error else error
        if mlflow_parent_run_id is not None:
            search.mlflow_parent_run_id = mlflow_parent_run_id
        if storage_path is not None:
            search.storage_path = storage_path


# --------------------------------------------------------------------------------------------- trials

def config_key(hparams: Mapping[str, Any]) -> str:
    """The identity of a configuration: sha256 of its hyperparameters as canonical JSON, `seed` left out.

    Runs of one configuration with different seeds (a best trial and its repeats) share it.
    """
    canonical = json.dumps(plain({k: v for k, v in hparams.items() if k != "seed"}), sort_keys=True,
                           separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


#: Checked in the transaction that writes a trial row, before the write (`jobs.fence_holds` of the claim
#: the writing worker holds); false: the row is not written (`Fenced`).
Guard = Callable[[Session], bool]


class Fenced(Exception):
    """A trial row was not written: the writer no longer holds the job its search runs for (taken over)."""


def _guarded(session: Session, guard: Guard | None, trial_id: str) -> None:
    if guard is not None and not guard(session):
        raise Fenced(f"trial {trial_id} not recorded: this worker no longer holds the search's job")


def record_trial(engine: Engine, search_id: str, arm_key: str, row: Mapping[str, Any] | TrialRecord,
                 guard: Guard | None = None) -> bool:
    """Record a finished trial of arm `arm_key`; False (and nothing changed) if it is already recorded.

    `row` is a `TrialRecord` or its fields (validated as one; `config_key` defaults to
    `config_key(hparams)`). NaN and infinite numbers are stored as NULL (a diverged trial has no
    metric). Safe against concurrent writers: the insert skips an existing (search_id, trial_id).
    With `guard` (a worker's fence), the row is written only if the guard holds (else `Fenced`).
    """
    record = row if isinstance(row, TrialRecord) else TrialRecord.checked(row)
    values = _trial_values(record)
    with session_scope(engine) as session:
        _guarded(session, guard, values["trial_id"])
        arm_id = session.scalar(select(ArmRow.id).where(ArmRow.search_id == search_id, ArmRow.key == arm_key))
        if arm_id is None:
            raise BadInput("arm", arm_key, f"an arm key of search {search_id}")
        values.update(search_id=search_id, arm_id=arm_id, created_at=utcnow())
        return _insert_once(session, values) and _insert_lengths(session, search_id, record)


def _insert_lengths(session: Session, search_id: str, record: TrialRecord) -> bool:
    """The rows of the trial's tests at other lengths T′ (`TrialRecord.lengths`), after its own row; True."""
    if record.lengths:
        row_id = session.scalar(select(Trial.id).where(Trial.search_id == search_id, Trial.trial_id == record.trial_id))
        session.execute(insert(TrialLength.__table__), [
            {"trial_row_id": row_id, **point.model_dump(exclude_none=False)} for point in record.lengths])
    return True


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


def _trial_values(row: Mapping[str, Any] | TrialRecord) -> dict[str, Any]:
    """The columns of a trial's row: the fields of its `TrialRecord`, `config_key` filled in."""
    values = (row if isinstance(row, TrialRecord) else TrialRecord.checked(row)).row()
    return {**values, "config_key": values["config_key"] or config_key(values["hparams"])}


def recorded_trial_ids(engine: Engine, search_id: str) -> set[str]:
    """The Ray Tune trial ids already recorded for this search (a resumed driver skips them)."""
    with engine.connect() as conn:
        return set(conn.scalars(select(Trial.trial_id).where(Trial.search_id == search_id)))


# ------------------------------------------------------------------------------ campaigns that grow

def add_arms(engine: Engine, search_id: str, arms: list[dict[str, Any]]) -> list[str]:
    """Add to a search the arms (fields as in `create_search`) whose key it lacks; return the keys added.

    An arm already there keeps its row (an extension's arm of an existing key is that arm).
    """
    checked = [_checked_arm(i, arm) for i, arm in enumerate(arms)]
    with session_scope(engine) as session:
        known = set(session.scalars(select(ArmRow.key).where(ArmRow.search_id == search_id)))
        new = [arm for arm in checked if arm["key"] not in known]
        session.add_all(ArmRow(search_id=search_id, **arm) for arm in new)
    return [arm["key"] for arm in new]


def set_search_spec(engine: Engine, search_id: str, spec_yaml: str, spec_hash: str) -> None:
    """Replace the spec of a search that grew (`seqarena.platform.campaigns.extend_search`)."""
    with session_scope(engine) as session:
        session.execute(update(Search).where(Search.id == search_id).values(spec_yaml=spec_yaml, spec_hash=spec_hash))


def skip_arm(engine: Engine, search_id: str, arm_key: str, reason: str | None) -> None:
    """Record why arm `arm_key` of the search was never run (a T-ladder that stopped below it); None: it
    ran (a later round reached it)."""
    with session_scope(engine) as session:
        session.execute(update(ArmRow).where(ArmRow.search_id == search_id, ArmRow.key == arm_key)
                        .values(skipped=reason))


def skipped_arms(engine: Engine, search_id: str) -> dict[str, str]:
    """arm key -> why it was never run, for the search's skipped arms."""
    with engine.connect() as conn:
        rows = conn.execute(select(ArmRow.key, ArmRow.skipped).where(ArmRow.search_id == search_id,
                                                                     ArmRow.skipped.is_not(None)))
        return dict(rows.all())


@dataclass(frozen=True)
class RecordedTrial:
    """A trial as the database holds it, for a search that grows: what ran, with which seed, and how it ended.

    `hparams` are every hyperparameter resolved; `config_key` identifies the configuration the search
    handed out (`config_key` of its given, unresolved values).
    """

    arm: str
    trial_id: str
    role: str
    seed: int
    hparams: dict[str, Any]
    config_key: str
    status: str
    best_val_metric: float | None

    @property
    def retried(self) -> bool:
        """Whether `seqarena retry` reruns this trial (its status is one of `RETRIED_STATUSES`)."""
        return self.status in RETRIED_STATUSES


def recorded_trials(engine: Engine, search_id: str) -> list[RecordedTrial]:
    """Every trial recorded for the search, in the order they were recorded."""
    query = (select(ArmRow.key, Trial.trial_id, Trial.role, Trial.seed, Trial.hparams, Trial.config_key, Trial.status,
                    Trial.best_val_metric)
             .join(ArmRow, ArmRow.id == Trial.arm_id).where(Trial.search_id == search_id).order_by(Trial.id))
    with engine.connect() as conn:
        return [RecordedTrial(*row) for row in conn.execute(query)]


def replace_trial(engine: Engine, search_id: str, retried: str, row: TrialRecord, guard: Guard | None = None) -> bool:
    """Record `row`, the rerun of trial `retried` (failed or oom), in its place: one transaction deletes the
    old row and inserts the new one with the old one's `config_key` (the same cell), so the cell is
    recorded once. False (nothing changed) when `row` is
    recorded already; `BadInput` when `retried` is not a failed or oom trial of the search."""
    values = _trial_values(row)
    with session_scope(engine) as session:
        _guarded(session, guard, values["trial_id"])
        old = session.execute(select(Trial.arm_id, Trial.status, Trial.config_key).where(
            Trial.search_id == search_id, Trial.trial_id == retried)).first()
        if old is None or old.status not in RETRIED_STATUSES:
            if session.scalar(select(Trial.id).where(Trial.search_id == search_id,
                                                     Trial.trial_id == values["trial_id"])) is not None:
                return False
            raise BadInput("retry_of", retried, f"a {' or '.join(RETRIED_STATUSES)} trial of search {search_id}")
        session.execute(delete(Trial).where(Trial.search_id == search_id, Trial.trial_id == retried))
        values.update(search_id=search_id, arm_id=old.arm_id, config_key=old.config_key, created_at=utcnow())
        return _insert_once(session, values) and _insert_lengths(session, search_id, row)
