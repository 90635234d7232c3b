"""Database outages and fencing (issue 18 §2), without a server to stop: an engine on a port nobody
listens on is a database that cannot be reached, and a job taken over on SQLite is a stale claim."""

from __future__ import annotations

import signal
import threading
import time

import pytest
from sqlalchemy import Engine, create_engine

from seqarena.platform import database, jobs, searches
from seqarena.platform.worker import StopSignal, WorkerSettings, _claim, _heartbeat
from tests.unit.test_db import LSTM_100, new_search, trial
from tests.unit.test_jobs import SPEC

DOWN = "postgresql+psycopg://postgres@127.0.0.1:1/none?connect_timeout=1"


@pytest.fixture
def down() -> Engine:
    engine = create_engine(DOWN)
    yield engine
    engine.dispose()


def test_the_heartbeat_survives_an_outage_and_stops_the_search_before_the_lease_expires(down: Engine) -> None:
    """It used to die on the first error (no handler in `_heartbeat`) while the search went on."""
    settings = WorkerSettings(lease_seconds=1.5)  # renewed every 0.5 s; the search stops 1.0 s after the last
    fence = jobs.Fence("abcdef012345", settings.worker_id, 1)
    received: list[float] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(time.monotonic()))
    stop, done = StopSignal(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(down, "abcdef012345", settings, stop, done, fence))
    started = time.monotonic()
    try:
        beat.start()
        while not received and time.monotonic() - started < 10:
            time.sleep(0.02)
        assert beat.is_alive()  # still trying
    finally:
        done.set()
        beat.join()
        signal.signal(signal.SIGUSR1, previous)
    assert stop.reason == "lost" and received
    assert received[0] - started < settings.lease_seconds  # before the lease could expire
    assert fence.expired()


def test_an_idle_worker_waits_for_the_database_instead_of_exiting(down: Engine) -> None:
    stop = StopSignal()
    threading.Timer(1.5, stop.shutdown.set).start()
    started = time.monotonic()
    assert _claim(down, WorkerSettings(), stop) is None  # it raised OperationalError at once before
    assert time.monotonic() - started >= 1.4


def test_retry_gives_up_only_when_told_and_never_on_a_refused_statement(down: Engine) -> None:
    calls = []

    def attempt() -> int:
        calls.append(1)
        if len(calls) < 3:
            with down.connect():
                pass
        return 7

    assert database.retry(attempt, "test") == 7 and len(calls) == 3
    with pytest.raises(ZeroDivisionError):
        database.retry(lambda: 1 / 0, "test")


def test_a_stale_claim_records_no_trial(engine: Engine) -> None:
    """Fencing: the trial rows of a worker whose job was taken over are refused in the row's transaction."""
    job_id, search_id = jobs.submit(engine, SPEC), new_search(engine, [LSTM_100])
    first = jobs.claim(engine, "w1", 1.0)
    stale = jobs.Fence(job_id, "w1", first.attempts)
    assert searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.1, lr=1e-3),
                                 guard=lambda session: jobs.fence_holds(session, stale))
    time.sleep(1.1)  # the lease expires
    with pytest.raises(searches.Fenced):  # not taken over yet, but its lease is over: nothing is written
        searches.record_trial(engine, search_id, LSTM_100, trial("t2", 0.1, lr=1e-3),
                              guard=lambda session: jobs.fence_holds(session, stale))
    second = jobs.claim(engine, "w2", 60)
    assert second.id == job_id and second.attempts == 2
    current = jobs.Fence(job_id, "w2", second.attempts)
    with pytest.raises(searches.Fenced):
        searches.record_trial(engine, search_id, LSTM_100, trial("t3", 0.1, lr=1e-3),
                              guard=lambda session: jobs.fence_holds(session, stale))
    assert searches.record_trial(engine, search_id, LSTM_100, trial("t3", 0.1, lr=1e-3),
                                 guard=lambda session: jobs.fence_holds(session, current))
    assert sorted(searches.recorded_trial_ids(engine, search_id)) == ["t1", "t3"]
