"""Campaigns that grow, end to end on real Ray, MLflow, Optuna and the results database: a search
extended with more trials and another model (warm-started, nothing rerun), the failed cells of a
search rerun (and only those), and a T-ladder that stops a model that cannot solve at its first T."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient

from seqarena.errors import BadInput
from seqarena.platform import database, searches
from seqarena.platform.arm_study import study_storage
from seqarena.platform.campaigns import extend_search, retry_search
from seqarena.platform.leaderboard import trials_frame
from seqarena.platform.search import run_search
from seqarena.platform.spec import load_spec
from seqarena.platform.tracking import RETRY_TAG, TRIAL_TAG, tracking_uri

from .test_search import child_runs

pytestmark = pytest.mark.integration

SPEC = """
name: {name}
task: adding
task_options: {{n_val: 32, n_test: 32}}
seq_lens: {seq_lens}
models: {models}
budget: {{max_steps: {steps}, eval_every: {every}}}
search: {{algorithm: random, num_samples: {samples}, scheduler: none, seed: 0, ladder: {ladder}}}
fixed: {fixed}
repeats: {repeats}
"""


def write_spec(tmp: Path, file: str, *, name: str = "grow", seq_lens: str = "[10]", models: str = "[gru]",
               steps: int = 20, every: int = 10, samples: int = 2, ladder: bool = False, repeats: int = 1,
               fixed: str = "{all: {hidden_size: 6, batch_size: 16}}") -> Path:
    path = tmp / file
    path.write_text(SPEC.format(name=name, seq_lens=seq_lens, models=models, steps=steps, every=every, samples=samples,
                                ladder=str(ladder).lower(), fixed=fixed, repeats=repeats))
    return path


def study_sizes(search_id: str) -> dict[str, int]:
    """Optuna study name -> its number of trials, for the search's studies in the platform database."""
    return {summary.study_name: summary.n_trials for summary in optuna.get_all_study_summaries(study_storage())
            if summary.study_name.startswith(search_id)}


def test_an_extended_search_runs_only_the_new_trials_warm_started(home: Path, local_ray: None,
                                                                  tmp_path: Path) -> None:
    first = run_search(load_spec(write_spec(tmp_path, "a.yaml", samples=2)))
    engine = database.get_engine()
    before = trials_frame(engine, first.search_id).set_index("trial_id")
    assert len(before) == 2

    # budget differs: refused in one line naming the field, nothing run
    with pytest.raises(BadInput, match=r"^budget\.max_steps: got 30"):
        extend_search(first.search_id, load_spec(write_spec(tmp_path, "bad.yaml", steps=30, samples=3)))
    assert len(trials_frame(engine, first.search_id)) == 2

    # gru: 3 search trials in all (2 recorded, 1 new) and 1 repeat of its best; lstm (new): 3 + 1
    grown = extend_search(first.search_id, load_spec(write_spec(tmp_path, "b.yaml", models="[gru, lstm]",
                                                                samples=3, repeats=2)))
    assert grown.search_id == first.search_id
    after = trials_frame(engine, first.search_id)
    assert len(after) == 2 + (1 + 1) + (3 + 1) and after["trial_id"].is_unique
    counts = after.groupby(["model", "role"]).size().to_dict()
    assert counts == {("gru", "search"): 3, ("gru", "repeat"): 1, ("lstm", "search"): 3, ("lstm", "repeat"): 1}
    for trial_id, row in before.iterrows():  # the recorded trials: kept as they were, not trained again
        again = after[after["trial_id"] == trial_id].iloc[0]
        assert again["wall_s"] == row["wall_s"] and again["mlflow_run_id"] == row["mlflow_run_id"]
    gru = after[(after["model"] == "gru") & (after["role"] == "search")]
    assert gru["hparams"].map(lambda h: h["lr"]).is_unique  # the new trial is not a recorded one drawn again

    runs = child_runs(tracking_uri(), first.parent_run_id)
    assert sorted(run.data.tags[TRIAL_TAG] for run in runs) == sorted(after["trial_id"])
    round_one = f"{first.search_id}-x1"
    assert study_sizes(first.search_id) == {
        f"{first.search_id}/adding/T=10/gru": 2,  # the first run's study, untouched
        f"{round_one}/adding/T=10/gru": 2 + 1,    # warm-started with the 2 recorded, then 1 asked
        f"{round_one}/adding/T=10/lstm": 3,
    }
    warm = optuna.load_study(study_name=f"{round_one}/adding/T=10/gru", storage=study_storage())
    recorded_lrs = sorted(before["hparams"].map(lambda h: h["lr"]))
    assert sorted(t.params["lr"] for t in warm.trials[:2]) == pytest.approx(recorded_lrs)
    assert [t.state for t in warm.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    arms = {arm.key for arm in searches.get_search(engine, first.search_id).arms}
    assert arms == {"adding/T=10/gru", "adding/T=10/lstm"}
    assert load_spec(searches.get_search(engine, first.search_id).spec_yaml).models == ["gru", "lstm"]
    artifacts = MlflowClient(tracking_uri()).list_artifacts(first.parent_run_id)
    assert {item.path for item in artifacts} >= {"spec.yaml", "extension-1.yaml"}

    # the same spec again: every trial it asks for is recorded, so nothing runs
    again = extend_search(first.search_id, load_spec(write_spec(tmp_path, "b.yaml", models="[gru, lstm]",
                                                                samples=3, repeats=2)))
    assert len(trials_frame(engine, again.search_id)) == 8


def test_retry_reruns_only_the_failed_cells_and_records_each_once(home: Path, local_ray: None,
                                                                  tmp_path: Path) -> None:
    # nhead 4 does not divide hidden_size 6: the transformer refuses to be built when its trial starts
    spec = write_spec(tmp_path, "flaky.yaml", name="flaky", models="[gru, transformer]", samples=2,
                      fixed="{all: {hidden_size: 6, batch_size: 16}, transformer: {nhead: 4}}")
    first = run_search(load_spec(spec))
    engine = database.get_engine()
    before = trials_frame(engine, first.search_id)
    assert before.groupby("model")["status"].apply(set).to_dict() == {"gru": {"completed"}, "transformer": {"failed"}}
    failed = before[before["status"] == "failed"].set_index("trial_id")

    retried = retry_search(first.search_id)
    after = trials_frame(engine, retried.search_id)
    assert len(after) == 4  # each cell recorded once
    kept = after[after["model"] == "gru"].set_index("trial_id")
    gru_before = before[before["model"] == "gru"].set_index("trial_id")
    assert sorted(kept.index) == sorted(gru_before.index)  # the completed cells were not rerun
    assert (kept["wall_s"] == gru_before.loc[kept.index, "wall_s"]).all()
    reruns = after[after["model"] == "transformer"].set_index("trial_id")
    assert set(reruns.index).isdisjoint(failed.index) and len(reruns) == 2
    assert sorted(reruns["seed"]) == sorted(failed["seed"])
    assert sorted(reruns["config_key"]) == sorted(failed["config_key"])
    assert set(reruns["status"]) == {"failed"}  # the cause is in the configuration: it fails again

    runs = child_runs(tracking_uri(), first.parent_run_id)
    assert len(runs) == 4 + 2  # the failed attempts keep their runs; each rerun has one, naming the attempt
    assert sorted(run.data.tags[RETRY_TAG] for run in runs if RETRY_TAG in run.data.tags) == sorted(failed.index)
    assert searches.get_search(engine, first.search_id).status == "succeeded"


def test_a_ladder_stops_the_model_that_does_not_solve_at_its_first_length(home: Path, local_ray: None,
                                                                         tmp_path: Path) -> None:
    # GRU with lr 1e-2 solves adding at T = 10 (val MSE under 1/60) within 200 steps; the Elman RNN at lr 1e-6 does not
    spec = write_spec(tmp_path, "ladder.yaml", name="ladder", seq_lens="[20, 10]", models="[gru, rnn]", steps=200,
                      every=50, samples=1, ladder=True,
                      fixed="{all: {hidden_size: 32, batch_size: 50, num_layers: 1}, gru: {lr: 0.01}, "
                            "rnn: {lr: 1.0e-6}}")
    outcome = run_search(load_spec(spec))
    engine = database.get_engine()
    frame = trials_frame(engine, outcome.search_id)
    assert sorted(frame["arm_key"]) == ["adding/T=10/gru", "adding/T=10/rnn", "adding/T=20/gru"]
    assert outcome.skipped == searches.skipped_arms(engine, outcome.search_id)
    assert list(outcome.skipped) == ["adding/T=20/rnn"]
    assert outcome.skipped["adding/T=20/rnn"].startswith("T-ladder: adding/T=10/rnn did not solve (best val mse ")
    by_arm = {run.data.tags["arm"]: run.info for run in child_runs(tracking_uri(), outcome.parent_run_id)}
    assert by_arm["adding/T=20/gru"].start_time >= by_arm["adding/T=10/gru"].end_time  # it climbed once T=10 was done
