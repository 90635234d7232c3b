"""The job store: specs queued in the platform database, and the one state machine of a job.

States and the moves between them are written down once (`STATES`, `TRANSITIONS`) and enforced in
one place (`_change`, which every state change goes through):

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled | interrupted
       └──cancel──▶ cancelled    failed | cancelled | interrupted ──resume──▶ queued
    running ──claim──▶ running: a takeover, once the holder's lease has expired (its worker died)

Who calls what: the CLI and the dashboard `submit`, `get_job`,
`list_jobs`, `cancel` and `resume`; a worker `claim`s a job, renews its lease with `heartbeat`
(which also tells it whether a cancel was requested), records its search with `attach_search`
and ends it with `finish`. A worker whose job was taken over changes nothing any more: its
`heartbeat` says `held=False` and its `attach_search`/`finish` return False.

Locking: every change reads and writes the row in one transaction that holds a lock on it:
`SELECT ... FOR UPDATE` on PostgreSQL (`claim`: `FOR UPDATE SKIP LOCKED`, so workers never wait for
one another's candidate), `BEGIN IMMEDIATE` (the database's write lock) on SQLite. Times are UTC,
from the database server's clock on PostgreSQL (one clock for leases of workers on many machines)
and from this machine's clock on SQLite.
"""

from __future__ import annotations

import getpass
import logging
import math
import re
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy import ColumnElement, Engine, and_, delete, func, or_, select
from sqlalchemy.orm import Session

from seqarena.errors import BadInput, one_of
from seqarena.platform.database import session_scope
from seqarena.platform.leaderboard import cell, leaderboard
from seqarena.platform.redaction import redact
from seqarena.platform.schema import JOB_STATES, Job, Search, WorkerRow, utcnow

log = logging.getLogger(__name__)

STATES: tuple[str, ...] = JOB_STATES
TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"running", "succeeded", "failed", "cancelled", "interrupted"}),  # running: a takeover
    "succeeded": frozenset(),
    "failed": frozenset({"queued"}),  # resume
    "cancelled": frozenset({"queued"}),
    "interrupted": frozenset({"queued"}),
}
FINISHED = ("succeeded", "failed", "cancelled", "interrupted")
"""The states `finish` may set."""

_ID = re.compile(r"[0-9a-f]{6,32}")
_ID_ALLOWED = "an existing job id, or a unique prefix of one (at least 6 hex characters)"
_INT32 = (-(2**31), 2**31 - 1)
_TEXT_MAX = 200  # submitted_by and worker_id columns

if set(TRANSITIONS) != set(STATES) or not set().union(*TRANSITIONS.values()) <= set(STATES):
    raise RuntimeError("TRANSITIONS must name exactly the job STATES")  # a broken table fails at import


@dataclass(frozen=True)
class Lease:
    """What `heartbeat` tells the worker: whether it still holds the job, and whether to stop it."""

    held: bool
    cancel_requested: bool


@dataclass
class Fence:
    """The claim a worker's search writes under (fencing): its trial rows are recorded only while the
    worker still holds the job with this very claim (`token`: the job's `attempts` when it was claimed)
    and the lease has not expired (`fence_holds`, checked in the transaction that writes the row).
    `deadline` (this machine's monotonic clock) is when the worker stops its search and its writes
    because it could not renew the lease: before the lease can expire and another worker take over."""

    job_id: str
    worker_id: str
    token: int
    deadline: float = math.inf

    def expired(self) -> bool:
        """Whether the worker is past its deadline (it stops trying to write)."""
        return time.monotonic() >= self.deadline


def fence_holds(session: Session, fence: Fence) -> bool:
    """Whether `fence`'s claim still holds the job: running, same worker, same claim, lease unexpired. Locks
    the job's row for the rest of the caller's transaction, so no takeover slips in before its write."""
    job = session.scalars(select(Job).where(Job.id == fence.job_id).with_for_update()
                          .execution_options(populate_existing=True)).one_or_none()
    return (job is not None and _held(job, fence.worker_id) and job.attempts == fence.token
            and not _expired(job, _now(session)))


def check_transition(job_id: str, current: str, new: str) -> None:
    """Raise `BadInput` unless `TRANSITIONS` allows a job in state `current` to move to `new`."""
    allowed = TRANSITIONS.get(current)
    if allowed is None:
        raise BadInput("state", current, one_of(STATES))
    if new not in allowed:
        targets = one_of(allowed) if allowed else f"nothing, {current} is final"
        raise BadInput("state", new, f"from {current} (job {job_id}): {targets}")


# ------------------------------------------------------------------------------------------ the queue

def submit(engine: Engine, spec_source: str | Path, *, priority: int = 0, submitted_by: str | None = None) -> str:
    """Validate a spec (a file or YAML text) and queue it as a job; return the job's id.

    `priority`: higher runs first (then older first). `submitted_by` defaults to the OS user.
    An invalid spec or argument raises `BadInput` and queues nothing.
    """
    from seqarena.platform.spec import load_spec  # here: it imports the model zoo (torch), workers' claims need not

    spec = load_spec(spec_source)
    if isinstance(priority, bool) or not isinstance(priority, int) or not _INT32[0] <= priority <= _INT32[1]:
        raise BadInput("priority", priority, f"an integer from {_INT32[0]} to {_INT32[1]} (higher runs first)")
    user = _text("submitted_by", submitted_by if submitted_by is not None else _os_user())
    with session_scope(engine) as session:
        now = _now(session)
        job = Job(id=uuid.uuid4().hex, name=spec.name, spec_yaml=spec.to_yaml(), spec_hash=spec.spec_hash(),
                  submitted_by=user, priority=priority, state="queued", cancel_requested=False, attempts=0,
                  created_at=now, updated_at=now)
        session.add(job)
    log.info("queued job %s (%s, priority %d)", job.id, job.name, priority)
    return job.id


def get_job(engine: Engine, job_id: str) -> Job:
    """The job with this id, or with this unique id prefix (>= 6 characters); `BadInput` if none."""
    with session_scope(engine) as session:
        return _find(session, job_id)


def list_jobs(engine: Engine, state: str | None = None) -> list[Job]:
    """All jobs, or those in `state`, newest first."""
    stmt = select(Job).order_by(Job.created_at.desc(), Job.id.desc())
    if state is not None:
        if state not in STATES:
            raise BadInput("state", state, one_of(STATES))
        stmt = stmt.where(Job.state == state)
    with session_scope(engine) as session:
        return list(session.scalars(stmt))


def cancel(engine: Engine, job_id: str) -> str:
    """Cancel a job: `cancelled` for a queued one (it never starts), `cancel requested` for a running one.

    The worker holding a running job sees the request at its next heartbeat and ends the job; a
    running job whose lease expired (no worker holds it) is cancelled at once. Finished jobs raise `BadInput`.
    """
    with _write(engine) as session:
        job = _find(session, job_id, lock=True)
        now = _now(session)
        if job.state == "queued" or (job.state == "running" and _expired(job, now)):
            _end(_change(session, job.id, "cancelled", now), now)
            return "cancelled"
        if job.state == "running":
            job.cancel_requested, job.updated_at = True, now
            return "cancel requested"
        raise BadInput("state", job.state, f"queued or running: only queued or running jobs can be cancelled "
                                           f"(job {job.id} is {job.state})")


def resume(engine: Engine, job_id: str) -> None:
    """Queue a failed, cancelled or interrupted job again, keeping its search (the worker resumes it)."""
    with _write(engine) as session:
        job = _find(session, job_id, lock=True)
        if "queued" not in TRANSITIONS[job.state]:
            resumable = ", ".join(s for s in STATES if "queued" in TRANSITIONS[s])
            raise BadInput("state", job.state, f"{resumable}: only those jobs can be resumed "
                                               f"(job {job.id} is {job.state})")
        job = _change(session, job.id, "queued", _now(session))
        job.cancel_requested, job.error, job.finished_at = False, None, None
        job.worker_id, job.lease_expires_at = None, None


# ------------------------------------------------------------------------------------------- workers

def claim(engine: Engine, worker_id: str, lease_seconds: float) -> Job | None:
    """Take the next job for `worker_id`, or None when there is none.

    The next job: highest priority, then oldest, among queued jobs and running jobs whose lease
    expired (a takeover). It becomes `running`, held by `worker_id` until now + `lease_seconds`,
    its `attempts` counted up; jobs with a cancel request are never taken (one whose lease expired
    is cancelled instead). Atomic: concurrent workers never take the same job.
    """
    worker, lease = _text("worker_id", worker_id), _lease(lease_seconds)
    with _write(engine) as session:
        now = _now(session)
        _cancel_abandoned(session, now)
        candidate = session.scalars(
            select(Job.id).where(_claimable(now)).order_by(*_queue_order())
            .limit(1).with_for_update(skip_locked=True)).first()
        if candidate is None:
            _seen(session, worker, now + lease, None)
            return None
        job = _change(session, candidate, "running", now)
        if job.worker_id is not None:
            log.warning("worker %s takes over job %s from %s (lease expired)", worker, job.id, job.worker_id)
        job.started_at = job.started_at or now
        job.attempts += 1
        job.worker_id, job.lease_expires_at = worker, now + lease
        _seen(session, worker, now + lease, job.id)
        return job


def _seen(session: Session, worker_id: str, until: datetime, job_id: str | None) -> None:
    """The worker is alive until `until`, holding `job_id` (None: idle); its `workers` row made or moved on."""
    row = session.get(WorkerRow, worker_id)
    if row is None:
        session.add(WorkerRow(worker_id=worker_id, started_at=_now(session), seen_until=until, job_id=job_id))
    else:
        row.seen_until, row.job_id = until, job_id


def worker_left(engine: Engine, worker_id: str) -> None:
    """A worker that stops cleanly is no longer seen (its `workers` row deleted)."""
    with _write(engine) as session:
        session.execute(delete(WorkerRow).where(WorkerRow.worker_id == worker_id))


def heartbeat(engine: Engine, job_id: str, worker_id: str, lease_seconds: float) -> Lease:
    """Extend the lease to now + `lease_seconds` if `worker_id` still holds the running job.

    `held=False` (and nothing changed): the job was taken over or has finished; the worker stops it.
    """
    lease = _lease(lease_seconds)
    with _write(engine) as session:
        job = _find(session, job_id, lock=True)
        if not _held(job, worker_id):
            return Lease(held=False, cancel_requested=job.cancel_requested)
        now = _now(session)
        job.lease_expires_at, job.updated_at = now + lease, now
        _seen(session, worker_id, now + lease, job_id)
        return Lease(held=True, cancel_requested=job.cancel_requested)


def attach_search(engine: Engine, job_id: str, worker_id: str, search_id: str,
                  mlflow_parent_run_id: str | None = None) -> bool:
    """Record the search a held job runs (and its MLflow parent run); False if `worker_id` does not hold it."""
    with _write(engine) as session:
        job = _find(session, job_id, lock=True)
        if not _held(job, worker_id):
            return False
        if session.get(Search, search_id) is None:
            raise BadInput("search_id", search_id, "an existing search id")
        job.search_id, job.updated_at = search_id, _now(session)
        if mlflow_parent_run_id is not None:
            job.mlflow_parent_run_id = mlflow_parent_run_id
        return True


def finish(engine: Engine, job_id: str, worker_id: str, state: str, error: str | None = None) -> bool:
    """End a held job in `state` (succeeded, failed, cancelled or interrupted) with `error`.

    Clears the worker and its lease, stamps `finished_at`. False (and nothing changed) if
    `worker_id` does not hold the job: it was taken over or has finished.
    """
    if state not in FINISHED:
        raise BadInput("state", state, one_of(FINISHED))
    with _write(engine) as session:
        job = _find(session, job_id, lock=True)
        if not _held(job, worker_id):
            log.warning("worker %s no longer holds job %s (%s): not marking it %s", worker_id, job.id,
                        job.state, state)
            return False
        now = _now(session)
        _end(_change(session, job.id, state, now), now)
        job.error = redact(error) if error else error
        return True


# ------------------------------------------------------------------------------------------ internals

@contextmanager
def _write(engine: Engine) -> Iterator[Session]:
    """A transaction that changes jobs (commits on success); on SQLite it holds the write lock throughout."""
    with session_scope(engine) as session:
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")  # waited for up to busy_timeout
        yield session


def _change(session: Session, job_id: str, new: str, now: datetime) -> Job:
    """The one place a job's state changes: load the row locked, check the move, set it, stamp `updated_at`.

    Runs inside `_write` (on SQLite the write lock is the row lock); the caller sets the other
    columns of the move on the returned job in the same transaction.
    """
    job = session.scalars(select(Job).where(Job.id == job_id).with_for_update()
                          .execution_options(populate_existing=True)).one()
    check_transition(job.id, job.state, new)
    job.state, job.updated_at = new, now
    return job


def _end(job: Job, now: datetime) -> None:
    """The bookkeeping of a job that just reached a finished state."""
    job.finished_at, job.worker_id, job.lease_expires_at = now, None, None


def _find(session: Session, job_id: str, *, lock: bool = False) -> Job:
    """The job whose id is `job_id` or begins with it (unique); its row locked with `lock`."""
    key = job_id.strip().lower() if isinstance(job_id, str) else ""
    if not _ID.fullmatch(key):
        raise BadInput("job", job_id, _ID_ALLOWED)
    stmt = select(Job).where(Job.id.startswith(key)).limit(2)
    if lock:
        stmt = stmt.with_for_update()
    found = list(session.scalars(stmt))
    if len(found) != 1:
        raise BadInput("job", job_id, _ID_ALLOWED if not found else f"a unique id prefix ({job_id!r} matches "
                                                                    f"{found[0].id}, {found[1].id}, ...)")
    return found[0]


def _queue_order() -> tuple[ColumnElement, ...]:
    """The order jobs are taken in: highest priority, then oldest (then id, so ties are stable)."""
    return Job.priority.desc(), Job.created_at, Job.id


def _claimable(now: datetime) -> ColumnElement[bool]:
    expired = and_(Job.state == "running", Job.lease_expires_at < now)
    return and_(Job.cancel_requested.is_(False), or_(Job.state == "queued", expired))


def _cancel_abandoned(session: Session, now: datetime) -> None:
    """Cancel running jobs with a cancel request whose worker is gone (lease expired): nobody else will."""
    abandoned = session.scalars(select(Job.id).where(Job.state == "running", Job.cancel_requested.is_(True),
                                                     Job.lease_expires_at < now)
                                .with_for_update(skip_locked=True)).all()
    for job_id in abandoned:
        log.info("job %s: cancel requested and its worker's lease expired; cancelled", job_id)
        _end(_change(session, job_id, "cancelled", now), now)


def _held(job: Job, worker_id: str) -> bool:
    """Whether `worker_id` holds the job (it stays held after its lease expires until another worker takes it)."""
    return job.state == "running" and job.worker_id == worker_id


def _expired(job: Job, now: datetime) -> bool:
    return job.lease_expires_at is not None and job.lease_expires_at < now


def _now(session: Session) -> datetime:
    """The current UTC time: the database server's on PostgreSQL, this machine's otherwise."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(select(func.clock_timestamp())).astimezone(UTC)
    return utcnow()


def _lease(lease_seconds: float) -> timedelta:
    if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int | float) or not (
            math.isfinite(lease_seconds) and lease_seconds > 0):
        raise BadInput("lease_seconds", lease_seconds, "a positive number of seconds")
    return timedelta(seconds=lease_seconds)


def _text(field: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > _TEXT_MAX:
        raise BadInput(field, value, f"a non-empty string of at most {_TEXT_MAX} characters")
    return value


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no user database entry (some containers)
        return "unknown"


JOB_COLUMNS = ("id", "name", "state", "priority", "submitted_by", "created_at", "started_at", "finished_at",
               "attempts", "worker_id", "cancel_requested", "search_id", "mlflow_parent_run_id", "error")


def jobs_frame(engine: Engine, limit: int = 500) -> pd.DataFrame:
    """The newest `limit` jobs, newest first (queued and running ones are always among them), with
    `queue_position`: a queued job's place in the order workers take jobs (1: taken next), else empty."""
    active = Job.state.in_(("queued", "running"))
    stmt = (select(*(getattr(Job, name) for name in JOB_COLUMNS))
            .order_by(active.desc(), Job.created_at.desc(), Job.id.desc()).limit(limit))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        frame = pd.DataFrame.from_records(list(result), columns=list(result.keys()))
        queued = conn.scalars(select(Job.id).where(Job.state == "queued").order_by(*_queue_order())).all()
    positions = {job_id: place for place, job_id in enumerate(queued, start=1)}
    frame.insert(3, "queue_position", frame["id"].map(positions).astype("Int64"))
    return frame


@dataclass(frozen=True)
class WorkersSeen:
    """What the job store tells of the workers: those alive (`workers` rows seen until a time still to come:
    every idle poll and every heartbeat moves it on by the worker's lease; a killed worker ages out within
    its lease), which of them hold a running job (`busy`), and the queue's length and oldest wait."""

    alive: tuple[str, ...]
    busy: tuple[str, ...]
    queued: int
    oldest_wait_s: float | None

    @property
    def idle(self) -> tuple[str, ...]:
        """The live workers that hold no job (they take the next queued one within their poll interval)."""
        return tuple(worker for worker in self.alive if worker not in self.busy)


def workers_seen(engine: Engine) -> WorkersSeen:
    """The live workers (idle and busy), and the queue's length and oldest wait (database clock on PostgreSQL)."""
    with session_scope(engine) as session:
        now = _now(session)
        alive = session.execute(select(WorkerRow.worker_id, WorkerRow.job_id).where(WorkerRow.seen_until >= now)
                                .order_by(WorkerRow.worker_id)).all()
        holding = set(session.scalars(select(Job.worker_id).where(Job.state == "running",
                                                                  Job.lease_expires_at >= now)).all())
        queued, oldest = session.execute(select(func.count(), func.min(Job.created_at))
                                         .where(Job.state == "queued")).one()
    wait = (now - oldest).total_seconds() if oldest is not None else None
    busy = tuple(worker for worker, _ in alive if worker in holding)
    return WorkersSeen(tuple(worker for worker, _ in alive), busy, int(queued), wait)


@dataclass(frozen=True)
class ArmProgress:
    """How far one arm of a job has come: trials recorded out of those its spec implies, best so far."""

    key: str
    done: int
    total: int
    best: str


def arm_progress(engine: Engine, search_id: str | None, spec_yaml: str) -> list[ArmProgress]:
    """Per arm of a job's spec: recorded trials (a GROUP BY of its search) against the spec's count."""
    from seqarena.platform.spec import load_spec  # imports the model zoo: only when a job is shown

    spec = load_spec(spec_yaml)
    rows = {row.key: row for row in leaderboard(engine, search_id=search_id)} if search_id else {}
    progress = []
    for arm in spec.arms():
        row = rows.get(arm.key)
        progress.append(ArmProgress(arm.key, row.trials if row else 0, spec.trials_per_arm(arm.model),
                                    cell(row) if row else "—"))
    return progress


__all__ = [
    "FINISHED",
    "STATES",
    "TRANSITIONS",
    "ArmProgress",
    "Job",
    "Lease",
    "WorkersSeen",
    "arm_progress",
    "attach_search",
    "cancel",
    "check_transition",
    "claim",
    "finish",
    "get_job",
    "heartbeat",
    "jobs_frame",
    "list_jobs",
    "resume",
    "submit",
    "worker_left",
    "workers_seen",
]
