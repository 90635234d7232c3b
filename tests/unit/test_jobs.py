"""The job store on SQLite: the state machine, the queue order, leases and takeovers, cancel and resume."""

from __future__ import annotations

import itertools
import multiprocessing
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, exc, func, inspect, select, text, update

from seqarena.dashboard import jobs as dashboard_jobs
from seqarena.errors import BadInput
from seqarena.platform import database, jobs, schema, searches
from seqarena.platform.spec import load_spec
from tests.helpers import claim_until_empty

SPEC = "name: j\ntask: adding\nseq_lens: [10]\nmodels: [lstm]\nbudget: {max_steps: 2, eval_every: 1}\n"
ALLOWED = sorted((current, new) for current, targets in jobs.TRANSITIONS.items() for new in targets)
REFUSED = sorted(set(itertools.product(jobs.STATES, jobs.STATES)) - set(ALLOWED))


def job_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(schema.Job))


def set_row(engine: Engine, job_id: str, **values: Any) -> None:
    """Write columns directly (a test's setup only: the code under test never writes rows this way)."""
    with engine.begin() as conn:
        conn.execute(update(schema.Job).where(schema.Job.id == job_id).values(**values))


# ------------------------------------------------------------------------------------- state machine

def test_the_table_names_every_state_and_only_states() -> None:
    assert jobs.STATES == ("queued", "running", "succeeded", "failed", "cancelled", "interrupted")
    assert set(jobs.TRANSITIONS) == set(jobs.STATES)
    assert len(ALLOWED) == 10 and len(REFUSED) == 26
    assert jobs.TRANSITIONS["succeeded"] == frozenset()
    assert {s for s in jobs.STATES if "queued" in jobs.TRANSITIONS[s]} == {"failed", "cancelled", "interrupted"}


@pytest.mark.parametrize(("current", "new"), ALLOWED)
def test_allowed_transitions_pass(current: str, new: str) -> None:
    jobs.check_transition("abc123", current, new)


@pytest.mark.parametrize(("current", "new"), REFUSED)
def test_refused_transitions_raise_naming_what_is_allowed(current: str, new: str) -> None:
    with pytest.raises(BadInput) as caught:
        jobs.check_transition("abc123", current, new)
    assert (caught.value.field, caught.value.value) == ("state", new)
    assert f"from {current}" in caught.value.allowed and "abc123" in caught.value.allowed
    assert all(target in caught.value.allowed for target in jobs.TRANSITIONS[current])


def test_unknown_current_state_is_refused() -> None:
    with pytest.raises(BadInput, match="interrupted"):
        jobs.check_transition("abc123", "paused", "queued")


# -------------------------------------------------------------------------------------------- schema

def test_migration_0002_creates_the_jobs_table_matching_the_model(engine: Engine) -> None:
    assert database.schema_revision(engine) == database.head_revision()
    assert "jobs" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.Base.metadata) == []
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("jobs")}
    assert indexes == {"ix_jobs_state_priority_created_at": ["state", "priority", "created_at"]}
    assert [fk["referred_table"] for fk in inspect(engine).get_foreign_keys("jobs")] == ["searches"]


def test_migration_0002_downgrades_to_0001_and_upgrades_again(engine: Engine) -> None:
    search_id = searches.create_search(engine, name="kept", spec_yaml="", spec_hash="h",
                                       mlflow_experiment_id="1", arms=[])
    jobs.submit(engine, SPEC)
    with engine.connect() as conn:
        command.downgrade(database.alembic_config(conn), "0001")
        conn.commit()
    assert database.schema_revision(engine) == "0001"
    assert "jobs" not in inspect(engine).get_table_names()
    database._upgrade(engine)
    assert database.schema_revision(engine) == database.head_revision() and job_count(engine) == 0
    assert searches.get_search(engine, search_id).name == "kept"


def test_the_database_refuses_an_unknown_state(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    with pytest.raises(exc.IntegrityError, match="ck_jobs_state"):
        set_row(engine, job_id, state="paused")


def test_column_defaults_of_a_raw_insert(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO jobs (id, name, spec_yaml, spec_hash, submitted_by, state, created_at, "
                          "updated_at) VALUES ('ab', 'n', '', 'h', 'u', 'queued', '2025-01-01', '2025-01-01')"))
        row = conn.execute(text("SELECT priority, cancel_requested, attempts FROM jobs")).one()
    assert tuple(row) == (0, 0, 0)


# -------------------------------------------------------------------------------------- submit, find

def test_submit_queues_the_validated_spec(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs.getpass, "getuser", lambda: "alice")
    job_id = jobs.submit(engine, SPEC, priority=3)
    job = jobs.get_job(engine, job_id)
    assert len(job_id) == 32 and int(job_id, 16) >= 0
    assert (job.name, job.state, job.priority, job.submitted_by, job.attempts) == ("j", "queued", 3, "alice", 0)
    assert job.spec_hash == load_spec(SPEC).spec_hash() and load_spec(job.spec_yaml) == load_spec(SPEC)
    assert not job.cancel_requested and job.worker_id is None and job.search_id is None
    assert job.created_at.tzinfo is not None and job.created_at == job.updated_at
    assert (job.started_at, job.finished_at, job.lease_expires_at) == (None, None, None)


def test_submit_reads_a_file_and_takes_submitted_by(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.replace("name: j", "name: from-file"))
    job = jobs.get_job(engine, jobs.submit(engine, path, submitted_by="ci"))
    assert (job.name, job.submitted_by) == ("from-file", "ci")


@pytest.mark.parametrize(("spec", "field"), [(SPEC.replace("lstm", "lstn"), "models"),
                                             ("name: j\ntask: [", "spec"), (SPEC + "extra: 1\n", "extra")])
def test_submit_of_a_bad_spec_inserts_nothing(engine: Engine, spec: str, field: str) -> None:
    with pytest.raises(BadInput) as caught:
        jobs.submit(engine, spec)
    assert field in str(caught.value)
    assert job_count(engine) == 0


@pytest.mark.parametrize(("kwargs", "field"), [({"priority": 1.5}, "priority"), ({"priority": True}, "priority"),
                                               ({"priority": 2**31}, "priority"), ({"submitted_by": ""},
                                                                                   "submitted_by")])
def test_submit_with_a_bad_argument_inserts_nothing(engine: Engine, kwargs: dict[str, Any], field: str) -> None:
    with pytest.raises(BadInput) as caught:
        jobs.submit(engine, SPEC, **kwargs)
    assert caught.value.field == field
    assert job_count(engine) == 0


def test_get_job_by_id_or_unique_prefix(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    assert jobs.get_job(engine, job_id).id == job_id
    assert jobs.get_job(engine, job_id[:6].upper()).id == job_id
    for bad in ("0" * 32, job_id[:5], "zzzzzzzz", f"{job_id[:6]}%"):
        with pytest.raises(BadInput) as caught:
            jobs.get_job(engine, bad)
        assert (caught.value.field, caught.value.value) == ("job", bad)
        assert "an existing job id" in caught.value.allowed


def test_an_ambiguous_prefix_is_refused(engine: Engine) -> None:
    first, second = jobs.submit(engine, SPEC), jobs.submit(engine, SPEC)
    set_row(engine, first, id="abcdef01" + "0" * 24)
    set_row(engine, second, id="abcdef02" + "0" * 24)
    with pytest.raises(BadInput, match="unique id prefix"):
        jobs.get_job(engine, "abcdef")
    assert jobs.get_job(engine, "abcdef02").id == "abcdef02" + "0" * 24


def test_list_jobs_newest_first_and_by_state(engine: Engine) -> None:
    ids = [jobs.submit(engine, SPEC) for _ in range(3)]
    jobs.cancel(engine, ids[1])
    assert [j.id for j in jobs.list_jobs(engine)] == ids[::-1]
    assert [j.id for j in jobs.list_jobs(engine, "queued")] == [ids[2], ids[0]]
    assert [j.id for j in jobs.list_jobs(engine, "cancelled")] == [ids[1]]
    assert jobs.list_jobs(engine, "running") == []
    with pytest.raises(BadInput) as caught:
        jobs.list_jobs(engine, "done")
    assert all(state in caught.value.allowed for state in jobs.STATES)


# ------------------------------------------------------------------------------------ claim, leases

def test_claim_takes_highest_priority_then_oldest(engine: Engine) -> None:
    low_old = jobs.submit(engine, SPEC)
    high_old = jobs.submit(engine, SPEC, priority=5)
    low_new = jobs.submit(engine, SPEC)
    high_new = jobs.submit(engine, SPEC, priority=5)
    negative = jobs.submit(engine, SPEC, priority=-1)
    taken = [jobs.claim(engine, "w", 60) for _ in range(6)]
    assert [j.id if j else None for j in taken] == [high_old, high_new, low_old, low_new, negative, None]


def test_claim_marks_the_job_running_for_the_worker(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    before = schema.utcnow()
    job = jobs.claim(engine, "w1", 30.0)
    assert (job.id, job.state, job.worker_id, job.attempts) == (job_id, "running", "w1", 1)
    assert before <= job.started_at == job.updated_at <= schema.utcnow()
    assert job.lease_expires_at - job.started_at == timedelta(seconds=30)
    stored = jobs.get_job(engine, job_id)
    assert (stored.state, stored.worker_id, stored.lease_expires_at) == ("running", "w1", job.lease_expires_at)


def test_takeover_only_after_the_lease_expires(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    first = jobs.claim(engine, "w1", 0.2)
    assert jobs.claim(engine, "w2", 0.2) is None  # held
    time.sleep(0.3)
    taken = jobs.claim(engine, "w2", 60)
    assert (taken.id, taken.state, taken.worker_id, taken.attempts) == (job_id, "running", "w2", 2)
    assert taken.started_at == first.started_at and taken.lease_expires_at > first.lease_expires_at
    assert jobs.heartbeat(engine, job_id, "w1", 60) == jobs.Lease(held=False, cancel_requested=False)
    assert jobs.finish(engine, job_id, "w1", "failed", error="late") is False
    assert jobs.attach_search(engine, job_id, "w1", "0" * 32) is False
    stored = jobs.get_job(engine, job_id)
    assert (stored.state, stored.worker_id, stored.error) == ("running", "w2", None)
    assert jobs.finish(engine, job_id, "w2", "succeeded") is True
    assert jobs.get_job(engine, job_id).state == "succeeded"


def test_heartbeat_extends_only_the_holders_lease(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    claimed = jobs.claim(engine, "w1", 0.2)
    assert jobs.heartbeat(engine, job_id, "w2", 60) == jobs.Lease(held=False, cancel_requested=False)
    assert jobs.get_job(engine, job_id).lease_expires_at == claimed.lease_expires_at
    assert jobs.heartbeat(engine, job_id, "w1", 60) == jobs.Lease(held=True, cancel_requested=False)
    renewed = jobs.get_job(engine, job_id)
    assert renewed.lease_expires_at - claimed.lease_expires_at > timedelta(seconds=59)
    assert renewed.updated_at > claimed.updated_at
    time.sleep(0.3)  # past the first lease: the renewed one still holds
    assert jobs.claim(engine, "w2", 60) is None


def test_lease_and_worker_arguments_are_checked(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    for lease in (0, -1, float("nan"), "60"):
        with pytest.raises(BadInput, match="lease_seconds"):
            jobs.claim(engine, "w", lease)
    with pytest.raises(BadInput, match="worker_id"):
        jobs.claim(engine, "", 60)
    assert jobs.get_job(engine, job_id).state == "queued"


def test_finish_takes_only_finished_states_and_clears_the_lease(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 60)
    for state in ("running", "queued", "done"):
        with pytest.raises(BadInput) as caught:
            jobs.finish(engine, job_id, "w1", state)
        assert caught.value.allowed == "one of cancelled, failed, interrupted, succeeded"
    assert jobs.finish(engine, job_id, "w1", "failed", error="RuntimeError: lost node") is True
    job = jobs.get_job(engine, job_id)
    assert (job.state, job.error, job.worker_id, job.lease_expires_at) == ("failed", "RuntimeError: lost node",
                                                                           None, None)
    assert job.finished_at is not None and job.finished_at >= job.started_at
    assert jobs.finish(engine, job_id, "w1", "succeeded") is False  # no longer held
    assert jobs.claim(engine, "w2", 60) is None


# ---------------------------------------------------------------------------------- cancel, resume

def test_cancel_a_queued_job_ends_it_at_once(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    assert jobs.cancel(engine, job_id[:8]) == "cancelled"
    job = jobs.get_job(engine, job_id)
    assert (job.state, job.cancel_requested) == ("cancelled", False) and job.finished_at is not None
    assert jobs.claim(engine, "w", 60) is None


def test_cancel_a_running_job_asks_its_worker(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 60)
    assert jobs.cancel(engine, job_id) == "cancel requested"
    assert jobs.cancel(engine, job_id) == "cancel requested"
    job = jobs.get_job(engine, job_id)
    assert (job.state, job.cancel_requested, job.worker_id) == ("running", True, "w1")
    assert jobs.heartbeat(engine, job_id, "w1", 60) == jobs.Lease(held=True, cancel_requested=True)
    assert jobs.finish(engine, job_id, "w1", "cancelled") is True
    assert jobs.get_job(engine, job_id).state == "cancelled"


def test_a_requested_cancel_whose_worker_died_is_never_claimed(engine: Engine) -> None:
    abandoned, expired = jobs.submit(engine, SPEC), jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 0.2)
    jobs.claim(engine, "w2", 0.2)
    jobs.cancel(engine, abandoned)
    time.sleep(0.3)
    assert jobs.cancel(engine, expired) == "cancelled"  # nobody holds it: cancelled at once
    assert jobs.claim(engine, "w3", 60) is None
    assert [(j.state, j.worker_id) for j in jobs.list_jobs(engine)] == [("cancelled", None)] * 2
    flagged = jobs.submit(engine, SPEC)
    set_row(engine, flagged, cancel_requested=True)  # cannot happen through the API: claim refuses it anyway
    assert jobs.claim(engine, "w3", 60) is None


@pytest.mark.parametrize("state", ["succeeded", "failed", "interrupted", "cancelled"])
def test_cancel_a_finished_job_is_refused_naming_its_state(engine: Engine, state: str) -> None:
    job_id = jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 60)
    jobs.finish(engine, job_id, "w1", state)
    with pytest.raises(BadInput) as caught:
        jobs.cancel(engine, job_id)
    assert caught.value.value == state
    assert "only queued or running jobs can be cancelled" in caught.value.allowed
    assert jobs.get_job(engine, job_id).state == state


def test_resume_requeues_and_keeps_the_search(engine: Engine) -> None:
    search_id = searches.create_search(engine, name="j", spec_yaml=SPEC, spec_hash="h",
                                       mlflow_experiment_id="1", arms=[])
    job_id = jobs.submit(engine, SPEC)
    jobs.claim(engine, "w1", 60)
    with pytest.raises(BadInput, match="search_id"):
        jobs.attach_search(engine, job_id, "w1", "f" * 32, "run-1")
    assert jobs.attach_search(engine, job_id, "w2", search_id, "run-1") is False
    assert jobs.get_job(engine, job_id).search_id is None
    assert jobs.attach_search(engine, job_id, "w1", search_id, "run-1") is True
    jobs.cancel(engine, job_id)
    jobs.finish(engine, job_id, "w1", "interrupted", error="KeyboardInterrupt")
    jobs.resume(engine, job_id)
    job = jobs.get_job(engine, job_id)
    assert (job.state, job.search_id, job.mlflow_parent_run_id) == ("queued", search_id, "run-1")
    assert (job.error, job.cancel_requested, job.finished_at, job.worker_id) == (None, False, None, None)
    again = jobs.claim(engine, "w2", 60)
    assert (again.id, again.attempts, again.search_id) == (job_id, 2, search_id)


@pytest.mark.parametrize("state", ["failed", "cancelled"])
def test_resume_failed_and_cancelled_jobs(engine: Engine, state: str) -> None:
    job_id = jobs.submit(engine, SPEC)
    if state == "cancelled":
        jobs.cancel(engine, job_id)
    else:
        jobs.claim(engine, "w1", 60)
        jobs.finish(engine, job_id, "w1", "failed", error="boom")
    jobs.resume(engine, job_id)
    assert jobs.get_job(engine, job_id).state == "queued"


@pytest.mark.parametrize("state", ["queued", "running", "succeeded"])
def test_resume_of_other_states_is_refused(engine: Engine, state: str) -> None:
    job_id = jobs.submit(engine, SPEC)
    if state != "queued":
        jobs.claim(engine, "w1", 60)
    if state == "succeeded":
        jobs.finish(engine, job_id, "w1", "succeeded")
    with pytest.raises(BadInput) as caught:
        jobs.resume(engine, job_id)
    assert caught.value.value == state and "failed, cancelled, interrupted" in caught.value.allowed
    assert jobs.get_job(engine, job_id).state == state


def test_every_change_stamps_updated_at(engine: Engine) -> None:
    job_id = jobs.submit(engine, SPEC)
    stamps = [jobs.get_job(engine, job_id).updated_at]
    for change in (lambda: jobs.claim(engine, "w1", 60), lambda: jobs.cancel(engine, job_id),
                   lambda: jobs.finish(engine, job_id, "w1", "cancelled"), lambda: jobs.resume(engine, job_id)):
        change()
        stamps.append(jobs.get_job(engine, job_id).updated_at)
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)


# ------------------------------------------------------------------------------------ concurrency

def test_two_processes_claim_each_job_exactly_once(engine: Engine, url: str) -> None:
    ids = {jobs.submit(engine, SPEC) for _ in range(10)}
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(2)
        with context.Pool(2) as pool:
            taken = pool.starmap(claim_until_empty, [(url, f"w{i}", barrier) for i in range(2)])
    flat = [job_id for ids_of_one in taken for job_id in ids_of_one]
    assert sorted(flat) == sorted(ids)  # each once, none lost
    assert all(taken)  # both workers took some
    by_worker = {job.id: job.worker_id for job in jobs.list_jobs(engine, "running")}
    assert by_worker == {job_id: f"w{i}" for i, one in enumerate(taken) for job_id in one}
    assert {job.attempts for job in jobs.list_jobs(engine)} == {1}


def test_a_cancel_is_signalled_again_at_every_heartbeat_until_the_job_ends(engine: Engine) -> None:
    """A stop sent before Tune listens (the worker ignores SIGUSR1 until then) is sent again."""
    import signal
    import threading

    from seqarena.platform.worker import StopSignal, WorkerSettings, _heartbeat

    settings = WorkerSettings(lease_seconds=0.3)
    job_id = jobs.submit(engine, SPEC)
    assert jobs.claim(engine, settings.worker_id, settings.lease_seconds).id == job_id
    jobs.cancel(engine, job_id)
    received: list[float] = []
    previous = signal.signal(signal.SIGUSR1, lambda *_: received.append(time.monotonic()))
    stop, done = StopSignal(), threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(engine, job_id, settings, stop, done))
    try:
        beat.start()
        deadline = time.monotonic() + 10
        while len(received) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        done.set()
        beat.join()
        signal.signal(signal.SIGUSR1, previous)
    assert stop.reason == "cancelled" and len(received) >= 3


# ------------------------------------------------------------------------------ the dashboard's view

def test_queue_positions_follow_the_claim_order_and_workers_seen_are_the_live_leases(engine: Engine) -> None:
    """Three jobs: b (priority 2), then a and c (priority 0, a older): positions b 1, a 2, c 3, as claim takes
    them. No worker yet: nobody alive; w1 takes b: alive and busy; w2 and w2b take a and c; w3 finds the
    queue empty: alive and idle; w1 killed (its lease and row expired): no longer alive; w3 leaves cleanly:
    gone at once."""
    a = jobs.submit(engine, SPEC)
    b = jobs.submit(engine, SPEC, priority=2)
    c = jobs.submit(engine, SPEC)
    set_row(engine, a, created_at=schema.utcnow() - timedelta(minutes=5))
    frame = jobs.jobs_frame(engine).set_index("id")
    assert frame["queue_position"].to_dict() == {b: 1, a: 2, c: 3}
    seen = jobs.workers_seen(engine)
    assert seen.alive == () and seen.queued == 3 and seen.oldest_wait_s >= 300
    assert jobs.claim(engine, "w1", 600).id == b
    positions = jobs.jobs_frame(engine).set_index("id")["queue_position"]
    assert positions.isna()[b] and positions[[a, c]].tolist() == [1, 2]
    seen = jobs.workers_seen(engine)
    assert (seen.alive, seen.busy, seen.idle) == (("w1",), ("w1",), ())
    assert jobs.claim(engine, "w2", 600).id == a and jobs.claim(engine, "w2b", 600).id == c
    assert jobs.claim(engine, "w3", 600) is None  # nothing left: w3 polls, idle
    seen = jobs.workers_seen(engine)
    assert (seen.alive, seen.idle, seen.queued) == (("w1", "w2", "w2b", "w3"), ("w3",), 0)
    set_row(engine, b, lease_expires_at=schema.utcnow() - timedelta(seconds=1))
    with database.session_scope(engine) as session:  # w1 killed: its lease and its row age out
        session.get(schema.WorkerRow, "w1").seen_until = schema.utcnow() - timedelta(seconds=1)
    jobs.worker_left(engine, "w3")
    seen = jobs.workers_seen(engine)
    assert (seen.alive, seen.busy, seen.idle) == (("w2", "w2b"), ("w2", "w2b"), ())


def test_the_jobs_page_line_names_busy_and_idle_workers_or_how_to_start_one() -> None:
    """The Jobs page's sentence: live workers with how many run a job; none alive with jobs waiting: a warning
    with the oldest wait and the command; none alive and nothing queued: how to start one."""
    line = dashboard_jobs.workers_line
    assert line(jobs.WorkersSeen(("a", "b"), ("a",), 0, None)) == (
        "success", "Workers alive: 2 (1 running a job, 1 idle): a, b.")
    kind, text = line(jobs.WorkersSeen((), (), 2, 61.4))
    assert kind == "warning" and text.startswith("No worker is alive: 2 job(s) wait, the oldest for 61 s; start "
                                                 "one with `seqarena worker`")
    assert line(jobs.WorkersSeen((), (), 0, None))[0] == "info"
