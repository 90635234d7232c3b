"""Searches end to end on real Ray, real MLflow and the real results database (no mocks)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import ray
from mlflow.tracking import MlflowClient
from ray import tune

from seqarena.platform import database, searches
from seqarena.platform.leaderboard import leaderboard, trials_frame
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import COMMAND_TAG, PARENT_TAG, TRIAL_TAG, tracking_uri

from .conftest import child_env, seqarena_cli, tiny_spec, wait_for

pytestmark = pytest.mark.integration


def child_runs(uri: str, parent_id: str) -> list:
    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'", max_results=1000)


def check_records(search_id: str, uri: str, expected_trials: int, steps: int = 30) -> None:
    """MLflow holds one finished child run per trial, and the database one matching row each."""
    engine = database.get_engine()
    search = searches.get_search(engine, search_id)
    assert search.status == "succeeded"
    runs = child_runs(uri, search.mlflow_parent_run_id)
    frame = trials_frame(engine, search_id)
    assert len(frame) == expected_trials and frame["trial_id"].is_unique
    assert len(runs) == expected_trials
    assert sorted(run.data.tags[TRIAL_TAG] for run in runs) == sorted(frame["trial_id"])
    assert {run.info.status for run in runs} <= {"FINISHED", "KILLED", "FAILED"}
    parent = MlflowClient(uri).get_run(search.mlflow_parent_run_id)
    assert parent.info.status == "FINISHED"
    by_trial = {run.data.tags[TRIAL_TAG]: run for run in runs}
    for row in frame.itertuples():
        run = by_trial[row.trial_id]
        assert row.mlflow_run_id == run.info.run_id
        assert "lr" in run.data.params and run.data.params["hidden_size"] == "8"
        assert run.data.tags["model"] in ("lstm", "gru") and run.data.tags["arm"].startswith("adding/T=20/")
        if row.status == "completed":
            assert run.data.tags["device"] == "cpu" and run.data.tags["implementation"] == "torch-cpu"
            assert run.data.tags[COMMAND_TAG].startswith(f"seqarena train --model {run.data.tags['model']} ")
            assert {"seed", "steps", "num_layers", "optimizer", "task.n_val"} <= set(run.data.params)
            assert run.data.metrics["metric"] == pytest.approx(row.metric)
            assert run.data.metrics["params"] == row.params and "train_seq_per_s" in run.data.metrics
            history = MlflowClient(uri).get_metric_history(run.info.run_id, "val_mse")
            logged = [m.step for m in history]
            assert logged == list(range(10, steps + 1, 10))  # the curve, each step once


def test_a_search_records_every_trial_in_mlflow_and_the_database(home: Path, local_ray: None,
                                                                 tmp_path: Path) -> None:
    spec = load_spec(tiny_spec(tmp_path))
    assert spec.trial_count() == 2 * (3 + 1)
    outcome = run_search(spec)
    check_records(outcome.search_id, tracking_uri(), spec.trial_count())

    frame = trials_frame(database.get_engine(), outcome.search_id)
    assert set(frame["role"]) == {"search", "repeat"}
    board = {row.key: row for row in outcome.leaderboard}
    assert set(board) == {"adding/T=20/lstm", "adding/T=20/gru"}
    for key, row in board.items():
        arm = frame[(frame["arm_key"] == key) & (frame["role"] == "search") & frame["metric"].notna()]
        best = arm.loc[arm["metric"].idxmin()]
        assert row.trial_id == best["trial_id"] and row.metric == pytest.approx(best["metric"])
        assert row.n == 2  # the best search trial and its repeat
        repeat = frame[(frame["arm_key"] == key) & (frame["role"] == "repeat")].iloc[0]
        assert repeat["hparams"] == {**best["hparams"]} and repeat["seed"] == best["seed"] + 1
    assert [r.key for r in leaderboard(database.get_engine(), task="adding", seq_len=20)] == list(board)
    best_run = MlflowClient(tracking_uri()).list_artifacts(board["adding/T=20/gru"].mlflow_run_id, "checkpoint")
    assert [item.path for item in best_run] == ["checkpoint/checkpoint.pt"]
    completed = set(frame.loc[frame["status"] == "completed", "trial_id"])
    assert completed  # the repeats at least ran to their budget
    check_facts(outcome.search_id, completed)


def check_facts(search_id: str, trained: set[str]) -> None:
    """Every trial's row holds the driver's versions, and each trial in `trained` where and how it ran
    (`trials.facts`: what `seqarena report` names beside each number)."""
    from importlib import metadata

    from sqlalchemy import select

    import seqarena
    from seqarena.platform.schema import Trial

    with database.get_engine().connect() as conn:
        facts = dict(conn.execute(select(Trial.trial_id, Trial.facts).where(Trial.search_id == search_id)).all())
    assert all(item["ray_version"] == metadata.version("ray") and item["mlflow_version"] == metadata.version("mlflow")
               for item in facts.values())
    for trial_id in trained:
        assert facts[trial_id]["device"] == "cpu" and facts[trial_id]["implementation"] == "torch-cpu"
        assert facts[trial_id]["seqarena_version"] == seqarena.__version__


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (("models: [lstm, gru]", "models: [lstm, grue]"), "models"),
        (("task: adding", "task: sorting"), "task"),
        (("seq_lens: [20]", "seq_lens: []"), "seq_lens"),
        (("max_steps: 30", "max_steps: -5"), "budget.max_steps"),
        (("repeats: 2", "repeats: 2\ncolour: red"), "colour"),
        (("repeats: 2", "repeats: 2\nspace: {lstm: {lr: [0.0, 100.0, log]}}"), "space.lstm.lr"),
    ],
)
def test_a_bad_spec_starts_nothing(home: Path, tmp_path: Path, change: tuple[str, str], field: str,
                                   run_cli) -> None:
    path = tiny_spec(tmp_path)
    path.write_text(path.read_text().replace(*change))
    code, _, err = run_cli(["run", str(path)])
    assert code == 2, err
    assert err.startswith(f"error: {field}") and "allowed" in err
    assert not home.exists() or sorted(p.name for p in home.iterdir()) == []  # no database, no MLflow store
    assert not ray.is_initialized()


#: The driver is killed once three trials are in the database; Tune's stored state may lag behind
#: them (the searcher settles that, see `seqarena.platform.arms`). Its trials used to go missing when
#: a trial reused the actor of one that ASHA had stopped (see `tune_adapter.worker_env` and the test
#: below this one).
def test_a_killed_driver_resumes_without_rerunning_or_rerecording(home: Path, tmp_path: Path,
                                                                  ray_tmp: Path) -> None:
    spec_path = tiny_spec(tmp_path, name="resumable", steps=60, samples=4)
    env = child_env(SEQARENA_HOME=str(home), RAY_TMPDIR=str(ray_tmp))
    driver = subprocess.Popen([sys.executable, "-m", "seqarena.cli", "run", str(spec_path)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def finished_trials() -> int:
        if not (home / "seqarena.db").exists():
            return 0
        frame = trials_frame(database.get_engine())
        return len(frame)

    try:
        wait_for(lambda: finished_trials() >= 3, timeout=300, what="three finished trials")
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=30)
    before = trials_frame(database.get_engine())
    assert 3 <= len(before) < 10
    search = searches.find_search(database.get_engine(), "resumable")
    before_runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(tracking_uri(), search.mlflow_parent_run_id)}

    done = seqarena_cli("-v", "run", str(spec_path), "--resume", "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["search_id"] == search.id
    try:
        check_records(search.id, tracking_uri(), expected_trials=10, steps=60)
    except AssertionError as failure:  # say what the resumed driver saw
        raise AssertionError(f"{failure}\n--- resumed driver's stderr ---\n{done.stderr[-6000:]}") from None
    after = trials_frame(database.get_engine(), search.id)
    after_runs = {run.data.tags[TRIAL_TAG]: run for run in child_runs(tracking_uri(), search.mlflow_parent_run_id)}
    for trial_id in before["trial_id"]:  # finished before the kill: same run, not trained again
        assert after_runs[trial_id].info.run_id == before_runs[trial_id].info.run_id
        row_before = before[before["trial_id"] == trial_id].iloc[0]
        row_after = after[after["trial_id"] == trial_id].iloc[0]
        for column in ("wall_s", "metric", "status"):  # an early-stopped trial has no metric (NaN == NaN here)
            after_value, before_value = row_after[column], row_before[column]
            assert after_value == before_value or (pd.isna(after_value) and pd.isna(before_value))


def test_diverging_trials_are_recorded_and_the_search_goes_on(home: Path, local_ray: None, tmp_path: Path) -> None:
    path = tmp_path / "unstable.yaml"
    path.write_text(
        "name: unstable\ntask: adding\ntask_options: {n_val: 32, n_test: 32}\nseq_lens: [20]\nmodels: [cornn, gru]\n"
        "budget: {max_steps: 20, eval_every: 10}\nsearch: {algorithm: random, num_samples: 2, scheduler: none}\n"
        "fixed: {all: {hidden_size: 8, batch_size: 16}, cornn: {dt: 2.0, gamma: 1000.0, epsilon: 0.0}}\n"
    )
    outcome = run_search(load_spec(path))
    frame = trials_frame(database.get_engine(), outcome.search_id)
    statuses = frame.groupby("model")["status"].apply(set).to_dict()
    assert statuses == {"cornn": {"diverged"}, "gru": {"completed"}}
    assert searches.get_search(database.get_engine(), outcome.search_id).status == "succeeded"
    runs = child_runs(tracking_uri(), outcome.parent_run_id)
    assert {run.data.tags["status"] for run in runs if run.data.tags["model"] == "cornn"} == {"diverged"}
    assert {run.info.status for run in runs if run.data.tags["model"] == "cornn"} == {"FAILED"}


def test_a_trial_stopped_while_it_cleans_up_leaves_its_actor_to_the_next_trial(local_ray: None,
                                                                               tmp_path: Path) -> None:
    """Tune stops each trial at its first report; the trial's thread then ends through its cleanup
    (as `run_tune_trial` frees its memory when ASHA stops it). The next trial reuses the actor once
    that thread has ended, instead of failing unrecorded after Tune's default 2 s wait."""

    def cleans_up(config: dict) -> None:
        try:
            tune.report({"score": float(config["x"])})
            tune.report({"score": float(config["x"]) + 1})
        finally:
            time.sleep(4)  # the cleanup of a stopped trial, longer than Tune's default wait

    tuner = tune.Tuner(
        tune.with_resources(cleans_up, {"cpu": 2}), param_space={"x": tune.grid_search([1, 2, 3])},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), stop={"training_iteration": 1}, verbose=0),
    )
    results = tuner.fit()
    assert results.num_errors == 0
    assert sorted(result.metrics["score"] for result in results) == [1.0, 2.0, 3.0]
