"""Campaigns that grow, without Ray: what an extension must agree on, the T-ladder's gate and its
skipped arms, the prior an arm carries into an extension, and a study warm-started with it (real
Optuna on a SQLite storage)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import optuna
import pytest
from ray.tune.search import Searcher

from seqarena.errors import BadInput
from seqarena.platform import database, searches
from seqarena.platform.arm_study import ArmStudy
from seqarena.platform.arms import ArmPlan, ArmSearcher, ladder_skips, ladder_solves
from seqarena.platform.campaigns import arm_prior, merged
from seqarena.platform.search import arm_plans, arm_rows, record_ladder_skips
from seqarena.platform.searches import RecordedTrial, config_key
from seqarena.platform.spec import check_extends, describe, parse_spec
from seqarena.workers.config import SearchTrial
from seqarena.workers.results import TrialRecord
from seqarena.workers.tune_trainable import OBJECTIVE, STEP

BASE = {"name": "grow", "task": "adding", "task_options": {"n_val": 32}, "seq_lens": [10], "models": ["gru"],
        "budget": {"max_steps": 20, "eval_every": 10}, "search": {"algorithm": "random", "num_samples": 2},
        "fixed": {"all": {"hidden_size": 6}}}
LR = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)


def spec(**changes: object) -> object:
    return parse_spec({**BASE, **changes})


@pytest.mark.parametrize(("changes", "field"), [
    ({"budget": {"max_steps": 30, "eval_every": 10}}, "budget.max_steps"),
    ({"task_options": {"n_val": 64}}, "task_options.n_val"),
    ({"task_options": {"n_val": 32, "n_test": 50}}, "task_options.n_test"),
    ({"protocol": "tcn"}, "protocol"),
    ({"param_budget": 500, "fixed": {}}, "param_budget"),
])
def test_an_extension_that_would_not_be_comparable_is_refused_naming_the_field(changes: dict, field: str) -> None:
    with pytest.raises(BadInput) as refused:
        check_extends(spec(), spec(**changes), "s1")
    assert refused.value.field == field and "as in search s1" in str(refused.value)


def test_more_trials_lengths_and_models_extend_and_the_search_keeps_their_union() -> None:
    wider = spec(models=["lstm", "gru"], seq_lens=[20], search={"algorithm": "tpe", "num_samples": 5}, repeats=3)
    check_extends(spec(), wider, "s1")
    union = merged(spec(), wider)
    assert (union.name, union.models, union.seq_lens, union.repeats) == ("grow", ["gru", "lstm"], [10, 20], 3)


def ladder_plans(solves_at_10: bool) -> tuple[list[ArmPlan], dict[str, float | None]]:
    plans = arm_plans(spec(seq_lens=[40, 10, 20], search={"algorithm": "random", "num_samples": 1, "ladder": True}))
    best = {"adding/T=10/gru": 0.01 if solves_at_10 else 0.16, "adding/T=20/gru": None, "adding/T=40/gru": None}
    return plans, best


def test_a_ladder_climbs_by_length_and_skips_every_arm_above_one_that_did_not_solve() -> None:
    plans, best = ladder_plans(solves_at_10=False)
    assert {plan.key: plan.below for plan in plans} == {
        "adding/T=40/gru": "adding/T=20/gru", "adding/T=10/gru": None, "adding/T=20/gru": "adding/T=10/gru"}
    laddered = spec(seq_lens=[40, 10, 20], search={"algorithm": "random", "num_samples": 1, "ladder": True})
    assert [(row["arm"], row["after"]) for row in describe(laddered)] == [
        ("adding/T=40/gru", "adding/T=20/gru solved"), ("adding/T=10/gru", "-"),
        ("adding/T=20/gru", "adding/T=10/gru solved")]
    assert "after" not in describe(spec())[0]
    # 1/6 is the baseline; the adding problem is solved under a tenth of it (1/60): 0.16 and 0.0167 do not, 0.01 does
    assert not ladder_solves("adding", 0.16, 1 / 6, False) and not ladder_solves("adding", 0.0167, 1 / 6, False)
    assert ladder_solves("adding", 0.0166, 1 / 6, False)
    why = "T-ladder: adding/T=10/gru did not solve (best val mse 0.16; baseline 0.1667)"
    assert ladder_skips(plans, best) == {"adding/T=20/gru": why, "adding/T=40/gru": why}
    plans, best = ladder_plans(solves_at_10=True)
    assert ladder_skips(plans, best) == {"adding/T=40/gru": "T-ladder: adding/T=20/gru did not solve "
                                         "(no completed trial; baseline 0.1667)"}


def final(objective: float) -> dict:
    return {OBJECTIVE: objective, STEP: 20, "final": True, "status": "completed"}


@pytest.mark.parametrize("val_mse", [0.01, 0.16])
def test_the_searcher_hands_out_a_higher_length_only_once_the_lower_one_solved(tmp_path: Path,
                                                                                val_mse: float) -> None:
    plans, _ = ladder_plans(solves_at_10=True)
    searcher = ArmSearcher(plans, "random", f"sqlite:///{tmp_path / 'optuna.db'}", study_prefix="s")
    first = searcher.suggest("t1")
    assert SearchTrial.from_tune(first).arm == "adding/T=10/gru"
    assert searcher.suggest("t2") is None  # T=20 waits for T=10, T=40 for T=20
    searcher.on_trial_complete("t1", final(-val_mse))
    following = searcher.suggest("t3")
    if val_mse > 0.15:
        assert following == Searcher.FINISHED
    else:
        assert SearchTrial.from_tune(following).arm == "adding/T=20/gru"


def recorded(trial_id: str, role: str, lr: float, status: str, val: float | None, seed: int = 0) -> RecordedTrial:
    hparams = {"hidden_size": 6, "lr": lr, "num_layers": 1}
    return RecordedTrial("adding/T=10/gru", trial_id, role, seed, hparams, config_key({"hidden_size": 6, "lr": lr}),
                         status, val)


def test_an_arms_prior_counts_its_search_trials_and_the_repeats_of_its_best() -> None:
    plan = replace(arm_plans(spec())[0], space={"lr": LR})
    trials = [recorded("a", "search", 1e-3, "completed", 0.05), recorded("b", "search", 3e-3, "completed", 0.02),
              recorded("c", "search", 5e-3, "diverged", None), recorded("d", "search", 2e-3, "stopped", 0.1),
              recorded("e", "repeat", 3e-3, "completed", 0.03, seed=1)]
    prior = arm_prior(plan, trials)
    assert prior.searched == 4
    assert prior.warm == [({"lr": 1e-3}, -0.05), ({"lr": 3e-3}, -0.02), ({"lr": 5e-3}, None), ({"lr": 2e-3}, -0.1)]
    assert prior.best == (-0.02, {"lr": 3e-3}) and prior.best_repeats == 1
    assert prior.best_key == config_key({"hidden_size": 6, "lr": 3e-3})
    other = replace(plan, fixed={"hidden_size": 8})  # another fixed value: another setting, nothing carried
    assert arm_prior(other, trials).warm == [] and arm_prior(other, trials).best is None


def test_a_warm_started_study_holds_the_recorded_trials_once(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = ArmStudy(storage, "x1/arm", optuna.samplers.RandomSampler(seed=2), {"lr": LR})
    assert study.warm([({"lr": 1e-3}, -0.05), ({"lr": 5e-3}, None), ({"lr": 0.5}, -0.01)]) == 2  # 0.5: outside
    assert study.warm([({"lr": 1e-3}, -0.05)]) == 0  # warmed already
    states = [t.state for t in optuna.load_study(study_name="x1/arm", storage=storage).trials]
    assert states == [optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL]


def recorded_search(home: Path, monkeypatch: pytest.MonkeyPatch, status: str) -> str:
    """A search of `spec()` in a fresh SEQARENA_HOME's database, with no trial, left in `status`."""
    monkeypatch.setenv("SEQARENA_HOME", str(home))
    for name in ("MLFLOW_TRACKING_URI", "SEQARENA_DB_URL", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    engine = database.get_engine()
    grown = spec()
    search_id = searches.create_search(engine, name="grow", spec_yaml=grown.to_yaml(), spec_hash=grown.spec_hash(),
                                       mlflow_experiment_id="0", arms=arm_rows(arm_plans(grown)))
    searches.set_search_status(engine, search_id, status)
    return search_id


def test_the_cli_refuses_an_extension_in_one_line_and_a_running_search(tmp_path: Path, run_cli,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    search_id = recorded_search(tmp_path / "home", monkeypatch, "succeeded")
    longer = tmp_path / "longer.yaml"
    longer.write_text(spec(budget={"max_steps": 30, "eval_every": 10}).to_yaml())
    code, _, err = run_cli(["extend", search_id, "--spec", str(longer)])
    assert code == 2 and err.startswith("error: budget.max_steps: got 30; allowed: 20, as in search ")
    assert len(err.strip().splitlines()) == 1
    searches.set_search_status(database.get_engine(), search_id, "running")
    code, _, err = run_cli(["retry", search_id])
    assert code == 2 and err.startswith(f"error: search: got '{search_id}'; allowed: a search that is not running")


def test_an_extended_grid_runs_only_its_points_no_recorded_trial_ran(tmp_path: Path) -> None:
    grid = spec(search={"algorithm": "grid"}, space={"gru": {"lr": {"choices": [1e-3, 3e-3, 1e-2, 3e-2]}}})
    plan = arm_plans(grid)[0]
    plan.prior = arm_prior(plan, [recorded("a", "search", 3e-3, "completed", 0.05),
                                  recorded("b", "search", 1e-2, "failed", None)])
    assert plan.prior.queued == [{"lr": 1e-3}, {"lr": 3e-2}]
    plan.n_search = len(plan.prior.queued)
    searcher = ArmSearcher([plan], "grid", f"sqlite:///{tmp_path / 'optuna.db'}", study_prefix="x1")
    handed = [SearchTrial.from_tune(searcher.suggest(trial_id)).trial.hparams["lr"] for trial_id in ("t1", "t2")]
    assert handed == [1e-3, 3e-2]
    assert searcher.suggest("t3") is None  # both asked, neither done yet
    stored = optuna.load_study(study_name="x1/adding/T=10/gru", storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    assert [(t.params["lr"], t.state.name) for t in stored.trials] == [
        (3e-3, "COMPLETE"), (1e-2, "FAIL"), (1e-3, "RUNNING"), (3e-2, "RUNNING")]


def test_the_leaderboard_names_the_arms_a_ladder_skipped(tmp_path: Path, run_cli,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    search_id = recorded_search(tmp_path / "home", monkeypatch, "succeeded")
    why = "T-ladder: below did not solve"
    searches.skip_arm(database.get_engine(), search_id, "adding/T=10/gru", why)
    assert searches.skipped_arms(database.get_engine(), search_id) == {"adding/T=10/gru": why}
    code, _, err = run_cli(["leaderboard", "--search", search_id])
    assert code == 0 and "skipped adding/T=10/gru: T-ladder: below did not solve" in err


def test_a_skipped_arm_that_a_later_round_runs_is_skipped_no_more(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    search_id = recorded_search(tmp_path / "home", monkeypatch, "succeeded")
    plans = arm_plans(spec(seq_lens=[10, 20], search={"algorithm": "random", "num_samples": 1, "ladder": True}))
    engine = database.get_engine()
    searches.add_arms(engine, search_id, arm_rows(plans))

    def trial(trial_id: str, arm: str, val_mse: float) -> None:
        searches.record_trial(engine, search_id, arm, {"trial_id": trial_id, "seed": 0, "hparams": {"lr": 1e-3},
                                                       "status": "completed", "steps": 20, "metric": val_mse,
                                                       "best_val_metric": val_mse})

    trial("a", "adding/T=10/gru", 0.16)
    why = "T-ladder: adding/T=10/gru did not solve (best val mse 0.16; baseline 0.1667)"
    assert record_ladder_skips(search_id, plans) == {"adding/T=20/gru": why}
    assert searches.skipped_arms(engine, search_id) == {"adding/T=20/gru": why}
    trial("b", "adding/T=10/gru", 0.001)  # an extension's trial solves T=10, and T=20 then ran
    trial("c", "adding/T=20/gru", 0.1)
    assert record_ladder_skips(search_id, plans) == {}
    assert searches.skipped_arms(engine, search_id) == {}


def test_a_rerun_takes_the_place_of_its_failed_or_oom_cell_once(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    search_id = recorded_search(tmp_path / "home", monkeypatch, "succeeded")
    engine, arm = database.get_engine(), "adding/T=10/gru"
    base = {"seed": 3, "hparams": {"lr": 1e-3}, "steps": 20}
    searches.record_trial(engine, search_id, arm, {**base, "trial_id": "old", "status": "oom", "config_key": "k1"})
    searches.record_trial(engine, search_id, arm, {**base, "trial_id": "done", "status": "completed"})
    rerun = TrialRecord.checked({**base, "trial_id": "new", "status": "completed", "metric": 0.01,
                                 "hparams": {"lr": 1e-3, "hidden_size": 6}})
    assert searches.replace_trial(engine, search_id, "old", rerun)
    assert not searches.replace_trial(engine, search_id, "old", rerun)  # recorded already: nothing changes
    rows = {t.trial_id: t for t in searches.recorded_trials(engine, search_id)}
    assert set(rows) == {"done", "new"} and rows["new"].config_key == "k1" and rows["new"].seed == 3
    with pytest.raises(BadInput, match=r"^retry_of: got 'done'"):  # a completed trial is a result, never replaced
        searches.replace_trial(engine, search_id, "done", rerun.model_copy(update={"trial_id": "other"}))
