"""The platform database on SQLite: schema by Alembic, searches, idempotent trial records, leaderboards."""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, func, inspect, select

from seqarena.errors import BadInput
from seqarena.platform import database, schema, searches
from seqarena.platform.leaderboard import (
    TRIAL_COLUMNS,
    ArmBest,
    Run,
    arm_trials,
    beats_baseline,
    board_frame,
    leaderboard,
    table,
    to_json,
    trials_frame,
)
from tests.helpers import record_from_threads

LSTM_100 = "adding/T=100/lstm"
RNN_100 = "adding/T=100/rnn"
LSTM_500 = "adding/T=500/lstm"
SMNIST = "smnist/T=784/lstm"


def arm(key: str, higher_is_better: bool = False, baseline: float = 0.167) -> dict[str, Any]:
    task, t, model = key.split("/")
    metric = "accuracy" if higher_is_better else "mse"
    return {"task": task, "seq_len": int(t[2:]), "model": model, "key": key, "metric_name": metric,
            "higher_is_better": higher_is_better, "baseline": baseline}


def new_search(engine: Engine, keys: list[str], name: str = "study") -> str:
    arms = [arm(k, higher_is_better=True, baseline=0.1) if k.startswith("smnist") else arm(k) for k in keys]
    return searches.create_search(engine, name=name, spec_yaml="name: study\n", spec_hash="abc",
                                  mlflow_experiment_id="7", arms=arms)


def trial(trial_id: str, metric: float | None, lr: float, role: str = "search", status: str = "completed",
          seed: int = 0, **extra: Any) -> dict[str, Any]:
    return {"trial_id": trial_id, "seed": seed, "hparams": {"lr": lr, "hidden": 64, "seed": seed}, "role": role,
            "status": status, "metric": metric, "steps": 100, "wall_s": 1.5, **extra}


def count(engine: Engine, model: type[schema.Base]) -> int:
    with engine.connect() as conn:
        return conn.scalar(select(func.count()).select_from(model))


# ---------------------------------------------------------------------------------------- engine, schema

def test_database_url_defaults_to_sqlite_in_seqarena_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("SEQARENA_HOME", str(home))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    assert database.database_url() == f"sqlite:///{home / 'seqarena.db'}"
    assert home.is_dir()
    monkeypatch.setenv("SEQARENA_DB_URL", "postgresql+psycopg://u@db.example/seqarena")
    assert database.database_url() == "postgresql+psycopg://u@db.example/seqarena"


def test_default_engine_creates_the_database_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("SEQARENA_DB_URL", raising=False)
    engine = database.get_engine()
    assert Path(engine.url.database) == tmp_path / "home" / "seqarena.db"
    assert (tmp_path / "home" / "seqarena.db").is_file()


def test_schema_is_created_by_alembic_and_matches_the_models(engine: Engine) -> None:
    assert database.head_revision() == "0009"
    assert database.schema_revision(engine) == "0009"
    tables = set(inspect(engine).get_table_names())
    assert tables == {"alembic_version", "searches", "arms", "trials", "trial_lengths", "jobs", "profile_runs",
                      "profile_rows", "workers"}
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), schema.Base.metadata) == []
    indexes = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("trials")}
    assert indexes["ix_trials_arm_id_metric"] == ["arm_id", "metric"]


def test_migration_downgrades_to_empty_and_upgrades_again(engine: Engine) -> None:
    with engine.connect() as conn:
        command.downgrade(database.alembic_config(conn), "base")
        conn.commit()
    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    assert database.schema_revision(engine) is None
    database._upgrade(engine)
    assert database.schema_revision(engine) == database.head_revision()
    assert {"searches", "arms", "trials"} <= set(inspect(engine).get_table_names())


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_engines_are_cached_per_url(url: str, tmp_path: Path) -> None:
    assert database.get_engine(url) is database.get_engine(url)
    assert database.get_engine(f"sqlite:///{tmp_path / 'other.db'}") is not database.get_engine(url)


def test_sqlite_url_in_a_missing_folder_is_created(tmp_path: Path) -> None:
    engine = database.get_engine(f"sqlite:///{tmp_path / 'a' / 'b' / 'x.db'}")
    assert database.schema_revision(engine) == database.head_revision()


def test_concurrent_upgrades_of_one_file_are_serialised(url: str) -> None:
    """Four engines (as in four processes) upgrade a fresh file at once: one migrates, the rest wait."""
    engines = [database._create_engine(url) for _ in range(4)]
    barrier, errors = threading.Barrier(4), []

    def upgrade(engine: Engine) -> None:
        barrier.wait()
        try:
            database._upgrade(engine)
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=upgrade, args=(e,)) for e in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert database.schema_revision(engines[0]) == database.head_revision()
    with engines[0].connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def test_sqlite_file_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "plain-file").write_text("")
    with pytest.raises(database.DatabaseUnavailable, match="plain-file"):
        database.get_engine(f"sqlite:///{tmp_path / 'plain-file' / 'x.db'}")


def test_unparseable_url_is_bad_input_without_its_password() -> None:
    with pytest.raises(BadInput) as caught:
        database.get_engine("not a url user:hunter2@host")
    assert caught.value.field == "SEQARENA_DB_URL"
    assert "hunter2" not in str(caught.value)


# -------------------------------------------------------------------------------------------- searches

def test_create_search_writes_the_search_and_its_arms(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100, SMNIST])
    found = searches.get_search(engine, search_id)
    assert len(search_id) == 32 and int(search_id, 16) >= 0
    assert found is not None and found.status == "running" and found.finished_at is None
    assert [a.key for a in found.arms] == [LSTM_100, SMNIST]
    assert [a.higher_is_better for a in found.arms] == [False, True]
    assert found.created_at.tzinfo is not None


def test_create_search_with_a_duplicate_arm_writes_nothing(engine: Engine) -> None:
    """The database rejects the second arm after the search row was sent: the whole search rolls back."""
    with pytest.raises(BadInput) as caught:
        searches.create_search(engine, name="dup", spec_yaml="", spec_hash="h", mlflow_experiment_id="1",
                               arms=[arm(LSTM_100), arm(RNN_100), arm(LSTM_100)])
    assert caught.value.field == "arms.key" and caught.value.value == [LSTM_100]
    assert count(engine, schema.Search) == 0
    assert count(engine, schema.ArmRow) == 0


@pytest.mark.parametrize(("field", "value"), [("seq_len", 0), ("baseline", math.nan), ("task", ""),
                                              ("higher_is_better", "yes")])
def test_create_search_with_a_bad_arm_field_writes_nothing(engine: Engine, field: str, value: Any) -> None:
    with pytest.raises(BadInput) as caught:
        searches.create_search(engine, name="bad", spec_yaml="", spec_hash="h", mlflow_experiment_id="1",
                               arms=[arm(LSTM_100), {**arm(RNN_100), field: value}])
    assert caught.value.field == f"arms[1].{field}"
    assert count(engine, schema.Search) == 0


def test_create_search_with_a_missing_arm_field_is_bad_input(engine: Engine) -> None:
    incomplete = {k: v for k, v in arm(LSTM_100).items() if k != "baseline"}
    with pytest.raises(BadInput, match="baseline"):
        searches.create_search(engine, name="bad", spec_yaml="", spec_hash="h", mlflow_experiment_id="1",
                               arms=[incomplete])
    assert count(engine, schema.Search) == 0


def test_find_search_by_id_or_latest_name(engine: Engine) -> None:
    first = new_search(engine, [LSTM_100], name="study")
    second = new_search(engine, [LSTM_100], name="study")
    other = new_search(engine, [LSTM_100], name="other")
    assert searches.find_search(engine, first).id == first
    assert searches.find_search(engine, "study").id == second
    assert searches.find_search(engine, "other").id == other
    with pytest.raises(BadInput) as caught:
        searches.find_search(engine, "nope")
    assert (caught.value.field, caught.value.value) == ("search", "nope")


def test_set_search_status_stamps_and_clears_finished_at(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    searches.set_search_status(engine, search_id, "running", mlflow_parent_run_id="run1", storage_path="/tune/x")
    searches.set_search_status(engine, search_id, "failed", error="RuntimeError: lost node")
    failed = searches.get_search(engine, search_id)
    assert failed.status == "failed" and failed.error == "RuntimeError: lost node"
    assert failed.finished_at is not None and failed.finished_at >= failed.created_at
    assert (failed.mlflow_parent_run_id, failed.storage_path) == ("run1", "/tune/x")
    searches.set_search_status(engine, search_id, "running")
    resumed = searches.get_search(engine, search_id)
    assert (resumed.status, resumed.finished_at, resumed.error) == ("running", None, None)
    assert resumed.mlflow_parent_run_id == "run1"


def test_set_search_status_rejects_unknown_status_and_search(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    with pytest.raises(BadInput, match="succeeded"):
        searches.set_search_status(engine, search_id, "done")
    with pytest.raises(BadInput):
        searches.set_search_status(engine, "0" * 32, "succeeded")
    assert searches.get_search(engine, search_id).status == "running"


# ---------------------------------------------------------------------------------------------- trials

def test_record_trial_is_idempotent(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    assert searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.02, lr=1e-3)) is True
    assert searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.99, lr=5e-3)) is False
    frame = trials_frame(engine, search_id)
    assert len(frame) == 1
    assert frame.loc[0, "metric"] == 0.02 and frame.loc[0, "hparams"]["lr"] == 1e-3
    assert searches.recorded_trial_ids(engine, search_id) == {"t1"}


def test_same_trial_id_in_two_searches_is_two_rows(engine: Engine) -> None:
    first, second = new_search(engine, [LSTM_100]), new_search(engine, [LSTM_100])
    assert searches.record_trial(engine, first, LSTM_100, trial("t1", 0.02, lr=1e-3))
    assert searches.record_trial(engine, second, LSTM_100, trial("t1", 0.03, lr=1e-3))
    assert searches.recorded_trial_ids(engine, first) == {"t1"} == searches.recorded_trial_ids(engine, second)
    assert count(engine, schema.Trial) == 2


def test_concurrent_record_of_one_trial_writes_one_row(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    results, errors = record_from_threads(engine, search_id, LSTM_100, trial("t1", 0.02, lr=1e-3))
    assert errors == []
    assert sorted(results) == [False, False, False, True]
    assert count(engine, schema.Trial) == 1


def test_record_trial_stores_nan_as_null_and_unwraps_numpy(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    row = trial("t1", float("nan"), lr=np.float32(0.5), status="diverged", params=np.int64(1234),
                test_metrics={"mse": float("inf"), "acc": np.float64(0.5)})
    assert searches.record_trial(engine, search_id, LSTM_100, row)
    stored = trials_frame(engine, search_id).iloc[0]
    assert stored["metric"] is None or math.isnan(stored["metric"])
    with engine.connect() as conn:
        assert conn.scalar(select(schema.Trial.metric)) is None
    assert stored["test_metrics"] == {"mse": None, "acc": 0.5}
    assert stored["hparams"]["lr"] == 0.5 and stored["params"] == 1234


def test_record_trial_rejects_bad_rows(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    with pytest.raises(BadInput) as unknown_arm:
        searches.record_trial(engine, search_id, "adding/T=100/gru", trial("t1", 0.1, lr=1.0))
    assert unknown_arm.value.field == "arm"
    with pytest.raises(BadInput, match="completed"):
        searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.1, lr=1.0, status="running"))
    with pytest.raises(BadInput, match="repeat"):
        searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.1, lr=1.0, role="extra"))
    with pytest.raises(BadInput, match="lossy"):
        searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.1, lr=1.0, lossy=1))
    missing = {k: v for k, v in trial("t1", 0.1, lr=1.0).items() if k != "seed"}
    with pytest.raises(BadInput, match="seed"):
        searches.record_trial(engine, search_id, LSTM_100, missing)
    assert count(engine, schema.Trial) == 0


def test_config_key_ignores_seed_and_key_order() -> None:
    key = searches.config_key({"lr": 0.1, "dt": 0.05, "seed": 1})
    assert key == searches.config_key({"dt": 0.05, "lr": 0.1, "seed": 2})
    assert key == searches.config_key({"dt": 0.05, "lr": 0.1})
    assert key != searches.config_key({"lr": 0.1, "dt": 0.06})
    assert len(key) == 64


def test_record_trial_fills_config_key_unless_given(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    searches.record_trial(engine, search_id, LSTM_100, trial("t1", 0.1, lr=1.0))
    searches.record_trial(engine, search_id, LSTM_100, trial("t2", 0.1, lr=1.0, config_key="given"))
    frame = trials_frame(engine, search_id).set_index("trial_id")
    assert frame.loc["t1", "config_key"] == searches.config_key({"lr": 1.0, "hidden": 64})
    assert frame.loc["t2", "config_key"] == "given"


def test_trials_frame_filters(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100, SMNIST])
    searches.record_trial(engine, search_id, LSTM_100, trial("a", 0.1, lr=1.0))
    searches.record_trial(engine, search_id, LSTM_100, trial("b", 0.1, lr=1.0, role="repeat", seed=1))
    searches.record_trial(engine, search_id, SMNIST, trial("c", 0.9, lr=1.0))
    assert sorted(trials_frame(engine).trial_id) == ["a", "b", "c"]
    assert list(trials_frame(engine, task="smnist").trial_id) == ["c"]
    assert list(trials_frame(engine, search_id, seq_len=100, role="repeat").trial_id) == ["b"]
    assert list(trials_frame(engine, "0" * 32).columns) == list(trials_frame(engine).columns)
    assert trials_frame(engine, "0" * 32).empty
    assert list(trials_frame(engine, search_id, arm_key=SMNIST).trial_id) == ["c"]
    assert list(arm_trials(engine, search_id, LSTM_100).trial_id) == ["a", "b"]
    assert list(arm_trials(engine, search_id, LSTM_100).columns) == list(TRIAL_COLUMNS)


# ----------------------------------------------------------------------------------------- leaderboard

def record_study(engine: Engine) -> str:
    """A search whose best trials, repeats and statistics are worked out by hand in the tests."""
    search_id = new_search(engine, [LSTM_100, RNN_100, LSTM_500, SMNIST])
    rows = {
        LSTM_100: [  # lower is better; best: b (0.010, lr=2); c is better but OOM; r3 is a repeat of another config
            trial("a", 0.050, lr=1), trial("b", 0.010, lr=2, status="stopped", mlflow_run_id="run-b", params=123,
                                             train_seq_per_s=900.0, peak_mem_mb=12.5),
            trial("c", 0.001, lr=3, status="oom"), trial("d", None, lr=4, status="diverged"),
            trial("r1", 0.012, lr=2, role="repeat", seed=1), trial("r2", 0.014, lr=2, role="repeat", seed=2),
            trial("r3", 0.0005, lr=1, role="repeat", seed=1), trial("r4", None, lr=2, role="repeat", seed=3,
                                                                    status="diverged"),
        ],
        RNN_100: [  # one run of the best config; a (diverged) repeat of lstm's best config here must not count for lstm
            trial("e", 0.160, lr=1), trial("f", 0.170, lr=2),
            trial("r5", None, lr=2, role="repeat", seed=1, status="diverged"),
        ],
        SMNIST: [  # higher is better; best: h (0.97); runs 0.97, 0.95, 0.96
            trial("g", 0.90, lr=1), trial("h", 0.97, lr=2), trial("i", 0.95, lr=3),
            trial("r6", 0.95, lr=2, role="repeat", seed=1), trial("r7", 0.96, lr=2, role="repeat", seed=2),
            trial("r8", 0.99, lr=3, role="repeat", seed=1),
        ],
    }
    for key, trials in rows.items():
        for row in trials:
            assert searches.record_trial(engine, search_id, key, row)
    return search_id


def by_key(rows: list[ArmBest]) -> dict[str, ArmBest]:
    assert len({r.key for r in rows}) == len(rows)
    return {r.key: r for r in rows}


def test_leaderboard_best_trial_and_runs_for_min_metric(engine: Engine) -> None:
    search_id = record_study(engine)
    lstm = by_key(leaderboard(engine, search_id=search_id))[LSTM_100]
    assert (lstm.trial_id, lstm.metric, lstm.hparams["lr"]) == ("b", 0.010, 2)
    assert (lstm.mlflow_run_id, lstm.params, lstm.train_seq_per_s, lstm.peak_mem_mb) == ("run-b", 123, 900.0, 12.5)
    assert lstm.n == 3  # b, r1, r2 (r4 diverged, r3 is another configuration)
    assert lstm.mean == pytest.approx(0.012)
    assert lstm.std == pytest.approx(0.002)  # sqrt(((-0.002)² + 0² + 0.002²) / 2)
    assert lstm.trials == 8
    assert (lstm.search_place, lstm.rerun_configs) == (1, 2)  # lr=1 re-run too (a, r3: mean 0.02525), lost
    assert (lstm.search_id, lstm.task, lstm.seq_len, lstm.model) == (search_id, "adding", 100, "lstm")
    assert lstm.beats_baseline  # 0.012 < 0.167 - 0.0167


def test_leaderboard_runs_by_seed_and_their_bootstrap_interval(engine: Engine) -> None:
    search_id = record_study(engine)
    board = by_key(leaderboard(engine, search_id=search_id))
    lstm = board[LSTM_100]
    assert lstm.runs == (Run("b", 0, 0.010), Run("r1", 1, 0.012), Run("r2", 2, 0.014))
    # resampling {0.010, 0.012, 0.014}: all three 0.010 has probability 1/27 > 2.5 %: the 95 % interval is the range
    assert lstm.interval is not None
    assert (lstm.interval.mean, lstm.interval.low, lstm.interval.high, lstm.interval.n) == (
        pytest.approx(0.012), pytest.approx(0.010), pytest.approx(0.014), 3)
    assert board[RNN_100].runs == (Run("e", 0, 0.160),) and board[RNN_100].interval.n == 1
    assert board[LSTM_500].runs == () and board[LSTM_500].interval is None
    frame = board_frame(leaderboard(engine, search_id=search_id)).set_index("model")
    assert frame.loc["lstm"].query("seq_len == 100")[["ci_low", "ci_high"]].iloc[0].tolist() == pytest.approx(
        [0.010, 0.014])
    payload = to_json([lstm])[0]
    assert payload["interval"]["n"] == 3 and payload["runs"][1] == {"trial_id": "r1", "seed": 1, "metric": 0.012}


def test_leaderboard_rerun_winner_for_max_metric(engine: Engine) -> None:
    """Two configurations were re-run: lr=2 (h 0.97, r6 0.95, r7 0.96: mean 0.96) and lr=3 (i 0.95, r8 0.99:
    mean 0.97); the re-run's winner is lr=3, second in the search."""
    search_id = record_study(engine)
    smnist = by_key(leaderboard(engine, search_id=search_id))[SMNIST]
    assert (smnist.trial_id, smnist.metric, smnist.n, smnist.search_place, smnist.rerun_configs) == ("i", 0.95, 2, 2, 2)
    assert smnist.mean == pytest.approx(0.97)
    assert smnist.std == pytest.approx(math.sqrt(2 * 0.02**2))
    assert smnist.higher_is_better and smnist.metric_name == "accuracy" and smnist.beats_baseline


def test_leaderboard_single_run_and_empty_arm(engine: Engine) -> None:
    search_id = record_study(engine)
    board = by_key(leaderboard(engine, search_id=search_id))
    rnn = board[RNN_100]
    assert (rnn.trial_id, rnn.metric, rnn.mean, rnn.std, rnn.n, rnn.trials) == ("e", 0.160, 0.160, None, 1, 3)
    assert not rnn.beats_baseline  # 0.160 is not below 0.1503
    empty = board[LSTM_500]
    assert (empty.metric, empty.mean, empty.n, empty.trial_id, empty.trials, empty.beats_baseline) == (
        None, None, 0, None, 0, False)


def test_leaderboard_filters_and_order(engine: Engine) -> None:
    record_study(engine)
    assert [r.key for r in leaderboard(engine)] == [LSTM_100, RNN_100, LSTM_500, SMNIST]
    assert [r.key for r in leaderboard(engine, task="smnist")] == [SMNIST]
    assert [r.key for r in leaderboard(engine, seq_len=100)] == [LSTM_100, RNN_100]
    assert [r.key for r in leaderboard(engine, task="adding", seq_len=500)] == [LSTM_500]
    assert leaderboard(engine, task="copy") == []


def test_leaderboard_takes_the_latest_search_with_results_per_arm(engine: Engine) -> None:
    old = record_study(engine)
    newer = new_search(engine, [LSTM_100, SMNIST], name="again")
    searches.record_trial(engine, newer, LSTM_100, trial("n1", 0.03, lr=5))
    newest = new_search(engine, [LSTM_100], name="running")  # no ranked trial yet
    searches.record_trial(engine, newest, LSTM_100, trial("n2", None, lr=6, status="diverged"))
    board = by_key(leaderboard(engine))
    assert (board[LSTM_100].search_id, board[LSTM_100].metric) == (newer, 0.03)
    assert (board[SMNIST].search_id, board[SMNIST].metric) == (old, 0.95)  # newer has no SMNIST result
    assert board[RNN_100].search_id == old
    assert by_key(leaderboard(engine, search_id=old))[LSTM_100].metric == 0.010
    assert by_key(leaderboard(engine, search_id=newest))[LSTM_100].metric is None
    with pytest.raises(BadInput):
        leaderboard(engine, search_id="0" * 32)


def test_leaderboard_picks_the_best_configuration_by_validation_as_the_search_repeats_it(engine: Engine) -> None:
    """A search repeats the configuration with the best validation metric; the leaderboard takes the same one,
    never the trial that happens to score best on the test set (seen in a real search: n = 1, repeats ignored)."""
    search_id = new_search(engine, [LSTM_100])
    rows = [trial("val_best", 0.177, lr=1, best_val_metric=0.168),
            trial("test_best", 0.176, lr=2, best_val_metric=0.169),
            trial("r1", 0.175, lr=1, role="repeat", seed=1), trial("r2", 0.179, lr=1, role="repeat", seed=2)]
    for row in rows:
        searches.record_trial(engine, search_id, LSTM_100, row)
    best = leaderboard(engine)[0]
    assert (best.trial_id, best.metric, best.n) == ("val_best", 0.177, 3)
    assert best.mean == pytest.approx(0.177)  # (0.177 + 0.175 + 0.179) / 3


def test_leaderboard_ties_go_to_the_earlier_trial(engine: Engine) -> None:
    search_id = new_search(engine, [LSTM_100])
    searches.record_trial(engine, search_id, LSTM_100, trial("first", 0.05, lr=1))
    searches.record_trial(engine, search_id, LSTM_100, trial("second", 0.05, lr=2))
    assert leaderboard(engine)[0].trial_id == "first"


@pytest.mark.parametrize(("mean", "baseline", "higher", "solved"), [
    (0.150, 0.167, False, True), (0.151, 0.167, False, False), (0.2, 0.167, False, False),
    (0.111, 0.1, True, True), (0.109, 0.1, True, False), (-1.2, -1.0, False, True), (-0.95, -1.0, True, False),
    (None, 0.167, False, False),
])
def test_solved_rule(mean: float | None, baseline: float, higher: bool, solved: bool) -> None:
    assert beats_baseline(mean, baseline, higher) is solved


def test_table_and_json(engine: Engine) -> None:
    record_study(engine)
    adding = leaderboard(engine, task="adding")
    frame = table(adding)
    assert list(frame.columns) == [100, 500]
    assert frame.loc["lstm", 100] == "0.012 ± 0.002"
    assert frame.loc["rnn", 100] == "0.16"
    assert frame.loc["lstm", 500] == "—"
    assert frame.loc["rnn", 500] == ""
    both = table(leaderboard(engine))
    assert ("smnist", 784) in both.columns and both.loc["lstm", ("smnist", 784)] == "0.97 ± 0.028"
    assert table([]).empty
    payload = to_json(adding)
    assert payload[0]["key"] == LSTM_100 and payload[0]["hparams"] == {"lr": 2, "hidden": 64, "seed": 0}
    assert set(payload[0]) == set(ArmBest.__dataclass_fields__) | {"reach"}


# ------------------------------------------------------------------------------------- data protocols

def test_an_arm_s_data_protocol_is_stored_and_shown_on_the_leaderboard(engine: Engine) -> None:
    arms = [{**arm(LSTM_100), "protocol": "tcn"}, {**arm(RNN_100), "protocol": "cornn"}, arm(LSTM_500)]
    search_id = searches.create_search(engine, name="protocols", spec_yaml="name: protocols\n", spec_hash="p",
                                       mlflow_experiment_id="7", arms=arms)
    with engine.connect() as conn:
        stored = dict(conn.execute(select(schema.ArmRow.key, schema.ArmRow.protocol)).all())
    assert stored == {LSTM_100: "tcn", RNN_100: "cornn", LSTM_500: None}  # None: recorded before protocols
    for key in (LSTM_100, RNN_100):
        searches.record_trial(engine, search_id, key, trial(f"t-{key}", 0.05, lr=1))
    board = by_key(leaderboard(engine, search_id=search_id))
    assert {key: row.protocol for key, row in board.items()} == stored
    frame = board_frame(list(board.values()))
    assert frame.set_index(["model", "seq_len"])["protocol"].fillna("-").to_dict() == {
        ("lstm", 100): "tcn", ("rnn", 100): "cornn", ("lstm", 500): "-"}
    assert set(trials_frame(engine, search_id)["protocol"]) == {"tcn", "cornn"}
    assert to_json([board[LSTM_100]])[0]["protocol"] == "tcn"


@pytest.mark.parametrize("protocol", ["", 7])
def test_an_arm_with_a_bad_protocol_writes_nothing(engine: Engine, protocol: Any) -> None:
    with pytest.raises(BadInput, match=r"^arms\[0\]\.protocol: got"):
        searches.create_search(engine, name="bad", spec_yaml="name: bad\n", spec_hash="b", mlflow_experiment_id="7",
                               arms=[{**arm(LSTM_100), "protocol": protocol}])
    assert count(engine, schema.Search) == 0


def test_the_protocol_migration_keeps_the_arms_and_leaves_old_ones_unrecorded(engine: Engine) -> None:
    search_id = searches.create_search(engine, name="m", spec_yaml="name: m\n", spec_hash="m",
                                       mlflow_experiment_id="7", arms=[{**arm(LSTM_100), "protocol": "tcn"}])
    with engine.connect() as conn:
        command.downgrade(database.alembic_config(conn), "0003")
        conn.commit()
    assert "protocol" not in {column["name"] for column in inspect(engine).get_columns("arms")}
    with engine.connect() as conn:
        command.upgrade(database.alembic_config(conn), "head")
        conn.commit()
    with engine.connect() as conn:
        rows = conn.execute(select(schema.ArmRow.search_id, schema.ArmRow.key, schema.ArmRow.protocol)).all()
    assert [tuple(row) for row in rows] == [(search_id, LSTM_100, None)]
