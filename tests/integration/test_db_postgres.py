"""The platform database on the local PostgreSQL: a fresh database per test, dropped afterwards.

The server is `SEQARENA_TEST_PG_URL` (default `postgresql+psycopg://postgres@127.0.0.1:5432/test`, a
user allowed to create databases). Start it with
`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`.
"""

from __future__ import annotations

import multiprocessing
import traceback
import uuid
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, make_url, select, text

from seqarena.errors import BadInput
from seqarena.platform import database, schema, searches
from seqarena.platform.leaderboard import leaderboard, table, trials_frame
from tests.helpers import record_from_threads

pytestmark = pytest.mark.integration

LSTM = "adding/T=100/lstm"
SMNIST = "smnist/T=784/lstm"
COPY = "copy/T=200/lstm"


@pytest.fixture
def engine(pg_url: str) -> Engine:
    return database.get_engine(pg_url)


def arm(key: str) -> dict[str, Any]:
    task, t, model = key.split("/")
    higher = task == "smnist"
    return {"task": task, "seq_len": int(t[2:]), "model": model, "key": key,
            "metric_name": "accuracy" if higher else "mse", "higher_is_better": higher,
            "baseline": 0.1 if higher else 0.167}


def new_search(engine: Engine, keys: list[str], name: str = "study") -> str:
    return searches.create_search(engine, name=name, spec_yaml="name: study\n", spec_hash="abc",
                                  mlflow_experiment_id="1", arms=[arm(k) for k in keys])


def trial(trial_id: str, metric: float | None, lr: float, role: str = "search", status: str = "completed",
          seed: int = 0, **extra: Any) -> dict[str, Any]:
    return {"trial_id": trial_id, "seed": seed, "hparams": {"lr": lr}, "role": role, "status": status,
            "metric": metric, "steps": 10, "wall_s": 2.0, **extra}


def count(engine: Engine, model: type[schema.Base]) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


def test_schema_is_created_by_alembic_at_head(engine: Engine) -> None:
    with engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert versions == [database.head_revision()]
        assert compare_metadata(MigrationContext.configure(conn), schema.Base.metadata) == []
    assert set(inspect(engine).get_table_names()) == {"alembic_version", "searches", "arms", "trials", "jobs",
                                                   "profile_runs", "profile_rows", "trial_lengths", "workers"}
    uniques = {u["name"]: u["column_names"] for u in inspect(engine).get_unique_constraints("trials")}
    assert uniques == {"uq_trials_search_id_trial_id": ["search_id", "trial_id"]}


def _open_and_report(url: str, barrier: Any) -> str | None:
    barrier.wait()
    return database.schema_revision(database.get_engine(url))


def _record_once(url: str, search_id: str, barrier: Any) -> bool:
    engine = database.get_engine(url)
    barrier.wait()
    return searches.record_trial(engine, search_id, LSTM, trial("same", 0.02, lr=0.1))


def test_four_processes_open_a_fresh_database_at_once(pg_url: str) -> None:
    """Each process upgrades the empty schema; the advisory lock makes one migrate and the rest wait."""
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            revisions = pool.starmap(_open_and_report, [(pg_url, barrier)] * 4)
    assert revisions == [database.head_revision()] * 4
    with database.get_engine(pg_url).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_four_processes_record_the_same_trial_once(engine: Engine, pg_url: str) -> None:
    search_id = new_search(engine, [LSTM])
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        barrier = manager.Barrier(4)
        with context.Pool(4) as pool:
            inserted = pool.starmap(_record_once, [(pg_url, search_id, barrier)] * 4)
    assert sorted(inserted) == [False, False, False, True]
    assert count(engine, schema.Trial) == 1


def test_four_threads_record_the_same_trial_once(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM])
    results, errors = record_from_threads(engine, search_id, LSTM, trial("same", 0.02, lr=0.1))
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert count(engine, schema.Trial) == 1


def test_record_trial_is_idempotent(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM])
    assert searches.record_trial(engine, search_id, LSTM, trial("t1", 0.02, lr=0.1)) is True
    assert searches.record_trial(engine, search_id, LSTM, trial("t1", 0.5, lr=0.2)) is False
    frame = trials_frame(engine, search_id)
    assert len(frame) == 1 and frame.loc[0, "metric"] == 0.02
    assert searches.recorded_trial_ids(engine, search_id) == {"t1"}


def test_nan_metrics_are_stored_as_null(engine: Engine) -> None:
    """PostgreSQL would sort NaN above every number and rejects NaN inside JSON."""
    search_id = new_search(engine, [LSTM])
    row = trial("t1", float("nan"), lr=0.1, status="diverged", test_metrics={"mse": float("nan")})
    assert searches.record_trial(engine, search_id, LSTM, row)
    with engine.connect() as conn:
        assert conn.execute(select(schema.Trial.metric, schema.Trial.test_metrics)).one() == (None, {"mse": None})


def test_create_search_is_all_or_nothing(engine: Engine) -> None:
    with pytest.raises(BadInput) as caught:
        searches.create_search(engine, name="dup", spec_yaml="", spec_hash="h", mlflow_experiment_id="1",
                               arms=[arm(LSTM), arm(SMNIST), arm(LSTM)])
    assert caught.value.field == "arms.key"
    assert count(engine, schema.Search) == 0 and count(engine, schema.ArmRow) == 0
    search_id = new_search(engine, [LSTM, SMNIST])
    assert searches.find_search(engine, "study").id == search_id
    assert [a.key for a in searches.get_search(engine, search_id).arms] == [LSTM, SMNIST]


def test_search_status_round_trip(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM])
    searches.set_search_status(engine, search_id, "interrupted", error="KeyboardInterrupt: ")
    stopped = searches.get_search(engine, search_id)
    assert (stopped.status, stopped.error) == ("interrupted", "KeyboardInterrupt: ")
    assert stopped.finished_at is not None and stopped.finished_at.tzinfo is not None


def record_study(engine: Engine) -> str:
    search_id = new_search(engine, [LSTM, SMNIST, COPY])
    rows = {
        LSTM: [trial("a", 0.05, lr=1), trial("b", 0.01, lr=2, mlflow_run_id="run-b"),
               trial("c", 0.001, lr=3, status="failed"), trial("r1", 0.013, lr=2, role="repeat", seed=1),
               trial("r2", 0.016, lr=2, role="repeat", seed=2), trial("r3", 0.0001, lr=1, role="repeat", seed=1)],
        SMNIST: [trial("g", 0.90, lr=1), trial("h", 0.98, lr=2, status="stopped"), trial("i", None, lr=3,
                                                                                        status="diverged"),
                 trial("r4", 0.94, lr=2, role="repeat", seed=1), trial("r5", 0.99, lr=1, role="repeat", seed=1)],
        COPY: [trial("k", 0.16, lr=1)],
    }
    for key, trials in rows.items():
        for row in trials:
            assert searches.record_trial(engine, search_id, key, row)
    return search_id


def test_leaderboard_min_and_max_metrics(engine: Engine) -> None:
    search_id = record_study(engine)
    board = {row.key: row for row in leaderboard(engine, search_id=search_id)}
    lstm, smnist, copy = board[LSTM], board[SMNIST], board[COPY]
    # lstm: runs of b = 0.010, 0.013, 0.016 -> mean 0.013, std sqrt((0.003² + 0 + 0.003²) / 2) = 0.003
    assert (lstm.trial_id, lstm.metric, lstm.n, lstm.mlflow_run_id, lstm.trials) == ("b", 0.01, 3, "run-b", 6)
    assert lstm.mean == pytest.approx(0.013) and lstm.std == pytest.approx(0.003) and lstm.beats_baseline
    # smnist (higher is better): runs of h = 0.98, 0.94 -> mean 0.96, std sqrt(2 * 0.02² / 1) = 0.028284
    assert (smnist.trial_id, smnist.metric, smnist.n) == ("h", 0.98, 2)
    assert smnist.mean == pytest.approx(0.96) and smnist.std == pytest.approx(0.0282843, rel=1e-5)
    assert smnist.beats_baseline
    assert (copy.metric, copy.n, copy.std, copy.beats_baseline) == (0.16, 1, None, False)
    assert table(list(board.values())).loc["lstm", ("adding", 100)] == "0.013 ± 0.003"


def test_leaderboard_filters_and_latest_search(engine: Engine) -> None:
    old = record_study(engine)
    assert [r.key for r in leaderboard(engine, task="smnist")] == [SMNIST]
    assert [r.key for r in leaderboard(engine, seq_len=200)] == [COPY]
    assert leaderboard(engine, task="adding", seq_len=200) == []
    newer = new_search(engine, [LSTM], name="again")
    searches.record_trial(engine, newer, LSTM, trial("n1", 0.04, lr=9))
    latest = {row.key: row for row in leaderboard(engine)}
    assert (latest[LSTM].search_id, latest[LSTM].metric) == (newer, 0.04)
    assert latest[SMNIST].search_id == old


@pytest.mark.parametrize("where", ["missing database", "closed port"])
def test_password_is_in_no_error_message(pg_url: str, where: str) -> None:
    secret = f"pw-{uuid.uuid4().hex}"
    url = make_url(pg_url).set(password=secret)
    url = url.set(database="no_such_db_" + uuid.uuid4().hex[:8]) if where == "missing database" else url.set(port=1)
    with pytest.raises(database.DatabaseUnavailable) as caught:
        database.get_engine(url.render_as_string(hide_password=False))
    message = "".join(traceback.format_exception(caught.value))
    assert message.count("SEQARENA_DB_URL: got ") == 1 and "***" in message
    assert secret not in message
    assert secret not in repr(caught.value.args)


def test_an_arm_s_data_protocol_reaches_the_leaderboard(engine: Engine) -> None:
    search_id = searches.create_search(engine, name="p", spec_yaml="name: p\n", spec_hash="p", mlflow_experiment_id="1",
                                       arms=[{**arm(LSTM), "protocol": "tcn"}, arm(COPY)])
    searches.record_trial(engine, search_id, LSTM, trial("a", 0.05, lr=1))
    board = {row.key: row.protocol for row in leaderboard(engine, search_id=search_id)}
    assert board == {LSTM: "tcn", COPY: None}
    assert set(trials_frame(engine, search_id)["protocol"]) == {"tcn"}


def test_solved_k_of_n_steps_to_solve_and_the_rerun_winner_on_postgresql(engine: Engine) -> None:
    """The solve statistics and the re-run winner of tests/unit/test_solving.py, on PostgreSQL (JSON curves,
    row-value IN, window functions)."""
    from tests.unit.test_solving import SOLVED, UNSOLVED, solve_study

    board = {row.key: row for row in leaderboard(engine, search_id=solve_study(engine))}
    solved = board[SOLVED].solve
    assert solved is not None and solved.cell() == "3 / 5 in 1800 (1200–2400) steps"
    assert board[UNSOLVED].solve is not None and board[UNSOLVED].solve.cell() == "0 / 3 within 2000 steps"
    assert (board[SOLVED].search_place, board[SOLVED].rerun_configs) == (1, 1)
