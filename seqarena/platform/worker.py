"""`seqarena worker`: take queued jobs from the job store and run their searches on Ray.

The worker claims the highest-priority job atomically (`jobs.claim`), keeps its lease alive from a
heartbeat thread while the search runs, and records the outcome (`jobs.finish`). A job whose
search already exists (a resumed job, or one taken over after its worker died and its lease
expired) continues that search from its Tune checkpoints instead of starting a new one. The job
worker owns a job's state transitions.

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
import uuid
from dataclasses import dataclass, field

from sqlalchemy import Engine

from seqarena.platform import database, jobs, reachable
from seqarena.platform.search import SearchOutcome, ensure_ray, resume_search, run_search
from seqarena.platform.spec import load_spec

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
               done: threading.Event) -> None:
    period = max(settings.lease_seconds / 3.0, 0.1)
    while not done.wait(period):
        lease = jobs.heartbeat(engine, job_id, settings.worker_id, settings.lease_seconds)
        if not lease.held:
            log.warning("lost the lease of job %s: another worker took it over", job_id)
            stop.request("lost")
        elif lease.cancel_requested:
            stop.request("cancelled")
        elif stop.shutdown.is_set():
            stop.request("interrupted")


def run_job(engine: Engine, job: jobs.Job, settings: WorkerSettings, stop: StopSignal) -> str:
    """Run (or resume) one claimed job's search; return the job's final state."""
    done = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job.id, settings, stop, done), daemon=True)
    beat.start()
    try:
        _search_of(engine, job, settings, stop)
    except Exception as error:  # a failed search fails the job, not the worker
        log.exception("job %s failed", job.id)
        jobs.finish(engine, job.id, settings.worker_id, "failed", error=f"{type(error).__name__}: {error}"[:2000])
        return "failed"
    finally:
        done.set()
        beat.join()
    if stop.reason == "lost":
        return "lost"  # another worker holds the job now and will finish it
    state = stop.reason or "succeeded"
    jobs.finish(engine, job.id, settings.worker_id, state)
    return state


def _search_of(engine: Engine, job: jobs.Job, settings: WorkerSettings, stop: StopSignal) -> SearchOutcome:
    if job.search_id:
        return resume_search(job.search_id, stop_reason=lambda: stop.reason)

    def attach(search_id: str, parent_run_id: str) -> None:
        jobs.attach_search(engine, job.id, settings.worker_id, search_id, parent_run_id)

    return run_search(load_spec(job.spec_yaml), on_registered=attach, stop_reason=lambda: stop.reason)


def serve(settings: WorkerSettings, engine: Engine | None = None) -> int:
    """Take and run jobs until stopped (SIGTERM), `max_jobs` ran, or with `once` the queue is empty."""
    reachable.check_environment()  # an unreachable Ray or MLflow: one line at start, exit 2
    engine = engine or database.get_engine()
    stop = StopSignal()
    ensure_ray()  # before our handlers: Ray's core installs its own SIGTERM handler, which aborts
    signal.signal(signal.SIGTERM, lambda *_: (stop.shutdown.set(), stop.request("interrupted")))
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # Tune installs its own handler while a search runs
    ran = 0
    while not stop.shutdown.is_set() and (settings.max_jobs is None or ran < settings.max_jobs):
        job = jobs.claim(engine, settings.worker_id, settings.lease_seconds)
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


__all__ = ["StopSignal", "WorkerSettings", "run_job", "serve"]
