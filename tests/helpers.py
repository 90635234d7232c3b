"""Helpers shared by unit and integration tests."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Engine

from seqarena.platform import db


def record_from_threads(engine: Engine, search_id: str, arm_key: str, row: Mapping[str, Any],
                        threads: int = 4) -> tuple[list[bool], list[BaseException]]:
    """Record the same trial from `threads` threads released at once; return results and errors."""
    barrier, results, errors = threading.Barrier(threads), [], []

    def record() -> None:
        barrier.wait()
        try:
            results.append(db.record_trial(engine, search_id, arm_key, row))
        except Exception as error:
            errors.append(error)

    workers = [threading.Thread(target=record) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results, errors


def claim_until_empty(url: str, worker_id: str, barrier: Any, work_s: float = 0.02) -> list[str]:
    """Claim jobs of the database at `url` until none is left (a worker process); return their ids in order.

    Module-level (and light to import) so that a spawned process can run it; each claim is followed
    by `work_s` of "work" so that concurrent workers interleave.
    """
    import time

    from seqarena.platform import jobs

    engine = db.get_engine(url)
    barrier.wait()
    taken = []
    while (job := jobs.claim(engine, worker_id, 60)) is not None:
        taken.append(job.id)
        time.sleep(work_s)
    return taken
