"""The job store on the local PostgreSQL (a fresh database per test): schema, concurrent claims, leases, cancel, resume.

The server is `SEQARENA_TEST_PG_URL` (default `postgresql+psycopg://postgres@127.0.0.1:5432/test`), as in
test_db_postgres.py.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, create_engine, exc, inspect, text, update

from seqarena.errors import BadInput
from seqarena.platform import database, jobs, schema, searches
from tests.helpers import claim_until_empty

pytestmark = pytest.mark.integration

SPEC = "name: j\ntask: adding\nseq_lens: [10]\nmodels: [lstm]\nbudget: {max_steps: 2, eval_every: 1}\n"


@pytest.fixture
def engine(pg_url: str) -> Engine:
    return database.get_engine(pg_url)


@pytest.fixture
def other_connection(pg_url: str) -> Iterator[Any]:
    """A second connection, outside the engine's pool, for holding row locks against the code under test."""
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def test_schema_at_head_includes_jobs(engine: Engine) -> None:
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [database.head_revision()]
        assert compare_metadata(MigrationContext.configure(conn), schema.Base.metadata) == []
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "searches", "arms", "trials", "jobs",
                                                   "profile_runs", "profile_rows", "trial_lengths", "workers"}
    columns = {c["name"]: c for c in inspect(engine).get_columns("jobs")}
    assert columns["created_at"]["type"].timezone is True
    assert [n for n, c in columns.items() if c["nullable"]] == [
        "started_at", "finished_at", "worker_id", "lease_expires_at", "search_id", "mlflow_parent_run_id", "error"]
    assert [c["name"] for c in inspect(engine).get_check_constraints("jobs")] == ["ck_jobs_state"]
    job_id = jobs.submit(engine, SPEC)
    with pytest.raises(exc.IntegrityError, match="ck_jobs_state"), engine.begin() as conn:
        conn.execute(update(schema.Job).where(schema.Job.id == job_id).values(state="paused"))


def test_four_processes_claim_each_of_twenty_jobs_once(engine: Engine, pg_url: str) -> None:
    ids = {jobs.submit(engine, SPEC, priority=i % 3) for i in range(20)}
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            taken = pool.starmap(claim_until_empty, [(pg_url, f"w{i}", barrier) for i in range(4)])
    flat = [job_id for one in taken for job_id in one]
    assert sorted(flat) == sorted(ids)  # each once, none lost
    assert sum(1 for one in taken if one) >= 2  # the workers really competed
    holders = {job.id: (job.worker_id, job.attempts) for job in jobs.list_jobs(engine, "running")}
    assert holders == {job_id: (f"w{i}", 1) for i, one in enumerate(taken) for job_id in one}


def test_claim_skips_a_locked_row_and_keeps_the_order(engine: Engine, other_connection: Any) -> None:
    low = jobs.submit(engine, SPEC)
    high = jobs.submit(engine, SPEC, priority=9)
    other_connection.execute(text("SELECT id FROM jobs WHERE id = :id FOR UPDATE"), {"id": high})
    with ThreadPoolExecutor(1) as pool:
        claimed = pool.submit(jobs.claim, engine, "w1", 60)
        try:  # the locked best candidate is skipped, not waited for
            assert claimed.result(timeout=5).id == low
        finally:
            other_connection.rollback()
    assert jobs.claim(engine, "w1", 60).id == high


def test_takeover_after_the_lease_expires(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    first = jobs.claim(engine, "w1", 0.2)
    assert jobs.claim(engine, "w2", 60) is None
    time.sleep(0.3)
    taken = jobs.claim(engine, "w2", 60)
    assert (taken.id, taken.worker_id, taken.attempts, taken.started_at) == (job_id, "w2", 2, first.started_at)
    assert taken.lease_expires_at.tzinfo is not None
    assert jobs.heartbeat(engine, job_id, "w1", 60) == jobs.Lease(held=False, cancel_requested=False)
    assert jobs.finish(engine, job_id, "w1", "failed") is False
    assert jobs.heartbeat(engine, job_id, "w2", 60) == jobs.Lease(held=True, cancel_requested=False)
    assert jobs.finish(engine, job_id, "w2", "succeeded") is True
    job = jobs.get_job(engine, job_id)
    assert (job.state, job.worker_id, job.lease_expires_at) == ("succeeded", None, None)


def test_cancel_and_resume(engine: Engine) -> None:
    queued, running = jobs.submit(engine, SPEC), jobs.submit(engine, SPEC, priority=1)
    assert jobs.claim(engine, "w1", 60).id == running
    search_id = searches.create_search(engine, name="j", spec_yaml=SPEC, spec_hash="h",
                                       mlflow_experiment_id="1", arms=[])
    assert jobs.attach_search(engine, running, "w1", search_id, "run-1")
    assert jobs.cancel(engine, queued[:6]) == "cancelled"
    assert jobs.cancel(engine, running) == "cancel requested"
    assert jobs.heartbeat(engine, running, "w1", 60) == jobs.Lease(held=True, cancel_requested=True)
    assert jobs.claim(engine, "w2", 60) is None
    assert jobs.finish(engine, running, "w1", "cancelled")
    with pytest.raises(BadInput, match="only queued or running jobs can be cancelled"):
        jobs.cancel(engine, running)
    jobs.resume(engine, running)
    jobs.resume(engine, queued)
    with pytest.raises(BadInput, match="only those jobs can be resumed"):
        jobs.resume(engine, queued)
    again = jobs.claim(engine, "w2", 60)
    assert (again.id, again.attempts, again.search_id, again.mlflow_parent_run_id, again.cancel_requested) == (
        running, 2, search_id, "run-1", False)
    assert [j.id for j in jobs.list_jobs(engine, "queued")] == [queued]

