"""The records of searches: a search and its arms, and one row per finished trial.

Who writes: the search driver creates the search and its arms and
records each finished trial once, keyed by (search id, Ray Tune trial id); `record_trial` is an
insert that cannot duplicate a row even when two writers race. Leaderboards read these tables
through `seqarena.platform.leaderboard`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine, exc, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, selectinload

from seqarena.errors import BadInput, one_of
from seqarena.platform.database import session_scope
from seqarena.platform.schema import SEARCH_STATUSES, ArmRow, Search, Trial, utcnow
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
            search.error = error
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


def record_trial(engine: Engine, search_id: str, arm_key: str, row: Mapping[str, Any] | TrialRecord) -> bool:
    """Record a finished trial of arm `arm_key`; False (and nothing changed) if it is already recorded.

    `row` is a `TrialRecord` or its fields (validated as one; `config_key` defaults to
    `config_key(hparams)`). NaN and infinite numbers are stored as NULL (a diverged trial has no
    metric). Safe against concurrent writers: the insert skips an existing (search_id, trial_id).
    """
    values = _trial_values(row)
    with session_scope(engine) as session:
        arm_id = session.scalar(select(ArmRow.id).where(ArmRow.search_id == search_id, ArmRow.key == arm_key))
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


def _trial_values(row: Mapping[str, Any] | TrialRecord) -> dict[str, Any]:
    """The columns of a trial's row: the fields of its `TrialRecord`, `config_key` filled in."""
    values = (row if isinstance(row, TrialRecord) else TrialRecord.checked(row)).row()
    return {**values, "config_key": values["config_key"] or config_key(values["hparams"])}


def recorded_trial_ids(engine: Engine, search_id: str) -> set[str]:
    """The Ray Tune trial ids already recorded for this search (a resumed driver skips them)."""
    with engine.connect() as conn:
        return set(conn.scalars(select(Trial.trial_id).where(Trial.search_id == search_id)))
