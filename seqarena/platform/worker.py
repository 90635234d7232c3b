"""`seqarena worker`: take queued jobs from the job store and run their searches on Ray.

The worker claims the highest-priority job atomically (`jobs.claim`), keeps its lease alive from a
heartbeat thread while the search runs, and records the outcome (`jobs.finish`). A job whose
search already exists (a resumed job, or one taken over after its worker died and its lease
expired) continues that search from its Tune checkpoints instead of starting a new one. The job
worker owns a job's state transitions.

Database outages: the claim loop and the heartbeat retry with backoff (one log line when the
database goes away, one when it is back), so an idle worker waits for the database instead of
exiting. A worker that cannot renew its lease for two thirds of it stops its search (`LOST`) before
the lease can expire, and every trial row its search writes is checked against its claim
(`jobs.Fence`, in the row's transaction): a worker whose job was taken over records nothing. The job
then runs again from its Tune checkpoints under its next claim (this worker's or another's).

Stopping: the heartbeat thread stops a running search the way Tune documents for an interrupted
experiment (the SIGUSR1 it handles like Ctrl+C: trials stop, the experiment state is saved, and
the search can be resumed) when the job is cancelled or the worker receives SIGTERM. The signal is
sent again at every heartbeat while the reason holds: one sent before Tune installed its handler
(the worker ignores SIGUSR1 until then) is not lost, and Tune takes repeats as the same request.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Engine

from seqarena.platform import database, jobs, reachable, storage
from seqarena.platform.recorder import FENCES
from seqarena.platform.redaction import redact
from seqarena.platform.search import LOST, SearchOutcome, ensure_ray, resume_search, run_search
from seqarena.platform.spec import load_spec
from seqarena.workers.tune_trainable import one_line

log = logging.getLogger(__name__)


@dataclass
class WorkerSettings:
    """How a worker runs: lease length, heartbeat period, idle polling, how many jobs to take."""

    lease_seconds: float = 60.0
    poll_seconds: float = 2.0
    max_jobs: int | None = None
    once: bool = False
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")


class StopSignal:
    """Why the running search should stop (cancel or shutdown), set from another thread."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.shutdown = threading.Event()

    def request(self, reason: str) -> None:
        """Ask the running Tune experiment to stop, keeping it resumable; the first reason given stays."""
        if self.reason is None:
            self.reason = reason
        os.kill(os.getpid(), signal.SIGUSR1)


def _heartbeat(engine: Engine, job_id: str, settings: WorkerSettings, stop: StopSignal,
               done: threading.Event, fence: jobs.Fence | None = None) -> None:
    """Renew the lease every third of it. Through a database outage it keeps trying (every third of the
    period) and, when the lease could not be renewed for two thirds of it, stops the search (`LOST`)
    before the lease can expire and another worker take the job over: `fence.deadline`."""
    period = max(settings.lease_seconds / 3.0, 0.1)
    fence = fence or jobs.Fence(job_id, settings.worker_id, token=0)
    fence.deadline = time.monotonic() + settings.lease_seconds - period
    failing = False
    while not done.wait(period / 3.0 if failing else period):
        attempt = time.monotonic()
        try:
            lease = jobs.heartbeat(engine, job_id, settings.worker_id, settings.lease_seconds)
        except Exception as error:
            if not database.unreachable(error):
                raise
            if not failing:
                log.warning("job %s: cannot renew the lease, the database is unreachable; retrying", job_id)
            failing = True
            if fence.expired():
                if stop.reason != LOST:
                    log.warning("job %s: the lease could not be renewed in time; stopping its search", job_id)
                stop.request(LOST)
            continue
        if failing:
            log.warning("job %s: the database is reachable again", job_id)
        failing = False
        _renewed(lease, job_id, attempt + settings.lease_seconds - period, stop, fence)


def _renewed(lease: jobs.Lease, job_id: str, deadline: float, stop: StopSignal, fence: jobs.Fence) -> None:
    """Act on a heartbeat's answer: move the fence's deadline on, or stop the search (taken over, cancelled,
    shutting down)."""
    if not lease.held:
        log.warning("lost the lease of job %s: another worker took it over", job_id)
        stop.request(LOST)
        return
    fence.deadline = deadline
    if lease.cancel_requested:
        stop.request("cancelled")
    elif stop.shutdown.is_set():
        stop.request("interrupted")


def run_job(engine: Engine, job: jobs.Job, settings: WorkerSettings, stop: StopSignal) -> str:
    """Run (or resume) one claimed job's search; return the job's final state (`LOST`: another worker
    holds it now, or will once its lease expires, and finishes it)."""
    fence = jobs.Fence(job.id, settings.worker_id, job.attempts)
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job.id, settings, stop, done, fence), daemon=True)
    beat.start()
    try:
        _search_of(engine, job, settings, stop, fence)
    except Exception as error:  # a failed search fails the job, not the worker
        if stop.reason == LOST or fence.expired():
            log.warning("job %s: stopped, its lease lost (%s)", job.id, redact(f"{type(error).__name__}: {error}"))
            return LOST
        log.exception("job %s failed", job.id)
        _finish(engine, job.id, settings.worker_id, "failed", fence, error=f"{type(error).__name__}: {one_line(error)}")
        return "failed"
    finally:
        done.set()
        beat.join()
        FENCES.clear()
    if stop.reason == LOST:
        return LOST  # another worker holds the job now (or will) and will finish it
    state = stop.reason or "succeeded"
    return state if _finish(engine, job.id, settings.worker_id, state, fence) else LOST


def _finish(engine: Engine, job_id: str, worker_id: str, state: str, fence: jobs.Fence,
            error: str | None = None) -> bool:
    """`jobs.finish`, retried through a database outage until the lease would have expired."""
    try:
        return database.retry(lambda: jobs.finish(engine, job_id, worker_id, state, error=error),
                              f"job {job_id}: recording its end", give_up=fence.expired)
    except Exception as failure:
        if not database.unreachable(failure):
            raise
        log.warning("job %s: its end was not recorded (the database stayed unreachable); it runs again", job_id)
        return False


def _search_of(engine: Engine, job: jobs.Job, settings: WorkerSettings, stop: StopSignal,
               fence: jobs.Fence) -> SearchOutcome:
    """Run the job's search under `fence` (`recorder.FENCES`: its trial rows are written only while this
    worker holds the job with this claim)."""
    if job.search_id:
        FENCES[job.search_id] = fence
        return resume_search(job.search_id, stop_reason=lambda: stop.reason)

    def attach(search_id: str, parent_run_id: str) -> None:
        FENCES[search_id] = fence
        database.retry(lambda: jobs.attach_search(engine, job.id, settings.worker_id, search_id, parent_run_id),
                       f"job {job.id}: recording its search", give_up=fence.expired)

    return run_search(load_spec(job.spec_yaml), on_registered=attach, stop_reason=lambda: stop.reason)


def serve(settings: WorkerSettings, engine: Engine | None = None) -> int:
    """Take and run jobs until stopped (SIGTERM), `max_jobs` ran, or with `once` the queue is empty."""
    reachable.check_environment()  # an unreachable Ray or MLflow: one line at start, exit 2
    storage.storage().check()  # and a storage it cannot write to (SEQARENA_STORAGE)
    engine = engine or database.get_engine()
    stop = StopSignal()
    ensure_ray()  # before our handlers: Ray's core installs its own SIGTERM handler, which aborts
    signal.signal(signal.SIGTERM, lambda *_: (stop.shutdown.set(), stop.request("interrupted")))
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # Tune installs its own handler while a search runs
    try:
        return _take_jobs(engine, settings, stop)
    finally:
        _leave(engine, settings.worker_id)


def _take_jobs(engine: Engine, settings: WorkerSettings, stop: StopSignal) -> int:
    ran = 0
    while not stop.shutdown.is_set() and (settings.max_jobs is None or ran < settings.max_jobs):
        job = _claim(engine, settings, stop)
        if job is None:
            if settings.once:
                break
            stop.shutdown.wait(settings.poll_seconds)
            continue
        log.info("worker %s took job %s (attempt %d)", settings.worker_id, job.id, job.attempts)
        stop.reason = None
        run_job(engine, job, settings, stop)
        ran += 1
    return ran


def _leave(engine: Engine, worker_id: str) -> None:
    """No longer seen alive (`jobs.worker_left`); a database that cannot be reached now only delays that by
    the lease, so it is logged, not raised."""
    try:
        jobs.worker_left(engine, worker_id)
    except Exception as error:  # leaving must not hide why the worker stopped
        if not database.unreachable(error):
            raise
        log.warning("worker %s: could not say it left (%s); it ages out within its lease", worker_id, error)


def _claim(engine: Engine, settings: WorkerSettings, stop: StopSignal) -> jobs.Job | None:
    """The next job (`jobs.claim`); an idle worker waits through a database outage instead of exiting."""
    try:
        return database.retry(lambda: jobs.claim(engine, settings.worker_id, settings.lease_seconds),
                              f"worker {settings.worker_id}: taking a job", give_up=stop.shutdown.is_set)
    except Exception as error:
        if stop.shutdown.is_set() and database.unreachable(error):
            return None
        raise


__all__ = ["StopSignal", "WorkerSettings", "run_job", "serve"]
