"""ArmSearcher: round-robin over arms, its own concurrency limit, and how it settles after a restore.

After a SIGKILL, Tune's stored trial list and the searcher's stored state can disagree; the trial
list is the ground truth (see `seqarena.platform.arms`). These tests drive the real OptunaSearch
on a real SQLite Optuna storage and feed the searcher what Tune's scheduler hook would show it:
real Tune `Trial` objects and a real `SearchGenerator`, read and changed through their public calls.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from ray import tune
from ray.tune.experiment import Trial
from ray.tune.search import Searcher, SearchGenerator

from seqarena.platform.arms import ArmPlan, ArmScheduler, ArmSearcher
from seqarena.workers.config import TrialConfig
from seqarena.workers.tune_trainable import OBJECTIVE, STEP

ARM = "adding/T=50/gru"
OTHER = "adding/T=50/rnn"


def plan(key: str, n_search: int, repeats: int = 1, top_k: int = 1) -> ArmPlan:
    template = TrialConfig(model=key.split("/")[-1], task="adding", seq_len=50, steps=20, eval_every=10)
    return ArmPlan(key=key, template=template, fixed={"hidden_size": 8},
                   space={"learning_rate": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)},
                   grid={}, n_search=n_search, repeats=repeats, seed=7, metric_name="mse",
                   higher_is_better=False, baseline=0.167, top_k=top_k)


def searcher(tmp_path: Path, *plans: ArmPlan, max_concurrent: int | None = None) -> ArmSearcher:
    return ArmSearcher(list(plans), "tpe", f"sqlite:///{tmp_path / 'optuna.db'}", study_prefix="s",
                       max_concurrent=max_concurrent)


def final(objective: float) -> dict:
    return {OBJECTIVE: objective, STEP: 20, "final": True, "status": "completed"}


def tune_trial(trial_id: str, config: dict, result: dict | None = None) -> Trial:
    """A Tune trial as Tune restores it: finished (TERMINATED, with its last result) or still pending."""
    trial = Trial("run_tune_trial", config=config, trial_id=trial_id, stub=True)
    if result is not None:
        trial.set_status(Trial.TERMINATED)
        trial.update_last_result(result)
    return trial


def generator_of(arm_searcher: ArmSearcher, finished: bool) -> SearchGenerator:
    """Tune's search generator around the searcher, as restored from its snapshot."""
    generator = SearchGenerator(arm_searcher)
    generator.add_configurations([tune.Experiment("search", run=lambda config: None, num_samples=1000)])
    generator.set_state({**generator.get_state(), "finished": finished})
    return generator


def show_restored(arm_searcher: ArmSearcher, trials: list[Trial], finished: bool = True) -> SearchGenerator:
    """What Tune's resume does: each restored trial goes through `scheduler.on_trial_add`.

    The controller stands in for Tune's `TuneController`, of which the hook reads `search_alg` only.
    """
    generator = generator_of(arm_searcher, finished)
    controller = SimpleNamespace(search_alg=generator)
    scheduler = ArmScheduler([ARM, OTHER], max_t=20, grace_period=10, reduction_factor=2, asha=False)
    for trial in trials:
        scheduler.on_trial_add(controller, trial)
    return generator


def study(tmp_path: Path, key: str) -> optuna.Study:
    """The arm's study, read back from its storage as any Optuna client would."""
    return optuna.load_study(study_name=f"s/{key}", storage=f"sqlite:///{tmp_path / 'optuna.db'}")


def study_states(tmp_path: Path, key: str) -> list[str]:
    return sorted(trial.state.name for trial in study(tmp_path, key).get_trials(deepcopy=False))


def test_trials_go_round_robin_over_arms_then_the_searcher_finishes(tmp_path: Path) -> None:
    arm_searcher = searcher(tmp_path, plan(ARM, 2), plan(OTHER, 2))
    configs = [arm_searcher.suggest(f"t{i}") for i in range(4)]
    assert [config["arm"] for config in configs] == [ARM, OTHER, ARM, OTHER]
    assert arm_searcher.suggest("t4") is None  # all handed out, none complete yet
    for i in range(4):
        arm_searcher.on_trial_complete(f"t{i}", final(-0.1 - i / 100))
    assert arm_searcher.suggest("t5") == Searcher.FINISHED


def test_max_concurrent_caps_the_trials_not_yet_complete(tmp_path: Path) -> None:
    arm_searcher = searcher(tmp_path, plan(ARM, 3), max_concurrent=1)
    assert arm_searcher.suggest("t0") is not None
    assert arm_searcher.suggest("t1") is None
    arm_searcher.on_trial_complete("t0", final(-0.1))
    assert arm_searcher.suggest("t1") is not None


def test_repeats_rerun_the_best_search_configuration_with_new_seeds(tmp_path: Path) -> None:
    arm_searcher = searcher(tmp_path, plan(ARM, 2, repeats=3))
    first, second = arm_searcher.suggest("t0"), arm_searcher.suggest("t1")
    arm_searcher.on_trial_complete("t0", final(-0.02))
    arm_searcher.on_trial_complete("t1", final(-0.09))
    repeats = [arm_searcher.suggest("r0"), arm_searcher.suggest("r1")]
    assert [r["role"] for r in repeats] == ["repeat", "repeat"]
    assert all(r["trial"]["hparams"] == first["trial"]["hparams"] != second["trial"]["hparams"] for r in repeats)
    assert [r["trial"]["seed"] for r in repeats] == [8, 9]
    arm_searcher.on_trial_complete("r0", final(-0.03))
    arm_searcher.on_trial_complete("r1", final(-0.03))
    assert arm_searcher.suggest("x") == Searcher.FINISHED


def test_the_top_k_configurations_are_rerun_on_the_same_fresh_seeds(tmp_path: Path) -> None:
    """Four search trials with objectives -0.02, -0.09, -0.01, -0.05 (higher is better): the best is t2,
    the runner-up t0; with top_k = 2 and repeats = 3 each gets seeds 8 and 9, t1 and t3 none."""
    arm_searcher = searcher(tmp_path, plan(ARM, 4, repeats=3, top_k=2))
    searched = [arm_searcher.suggest(f"t{i}") for i in range(4)]
    for i, objective in enumerate((-0.02, -0.09, -0.01, -0.05)):
        arm_searcher.on_trial_complete(f"t{i}", final(objective))
    assert arm_searcher.plans[ARM].expected == 4 + 2 + 2
    repeats = [arm_searcher.suggest(f"r{i}") for i in range(4)]
    assert [r["role"] for r in repeats] == ["repeat"] * 4
    hparams = [r["trial"]["hparams"] for r in repeats]
    assert hparams == [searched[2]["trial"]["hparams"]] * 2 + [searched[0]["trial"]["hparams"]] * 2
    assert [r["trial"]["seed"] for r in repeats] == [8, 9, 8, 9]
    assert arm_searcher.suggest("x") == Searcher.FINISHED  # all handed out


def test_a_restored_search_hands_out_the_runner_up_repeats_it_still_owes(tmp_path: Path) -> None:
    before = searcher(tmp_path, plan(ARM, 2, repeats=2, top_k=2))
    handed = {tid: before.suggest(tid) for tid in ("t0", "t1")}
    before.on_trial_complete("t0", final(-0.05))
    before.on_trial_complete("t1", final(-0.02))
    handed["r0"] = before.suggest("r0")  # t1's repeat; t0's (the runner-up) is still owed
    before.save(str(tmp_path / "searcher.pkl"))

    after = searcher(tmp_path, plan(ARM, 2, repeats=2, top_k=2))
    after.restore(str(tmp_path / "searcher.pkl"))
    show_restored(after, [tune_trial("t0", handed["t0"], final(-0.05)), tune_trial("t1", handed["t1"], final(-0.02)),
                          tune_trial("r0", handed["r0"])])
    owed = after.suggest("r1")
    assert owed["role"] == "repeat" and owed["trial"]["hparams"] == handed["t0"]["trial"]["hparams"]
    assert owed["trial"]["seed"] == 8
    assert after.suggest("r2") == Searcher.FINISHED  # every repeat handed out, none twice


def test_a_trial_tune_lost_is_handed_out_again_and_failed_in_optuna(tmp_path: Path) -> None:
    before = searcher(tmp_path, plan(ARM, 3))
    handed = {tid: before.suggest(tid) for tid in ("t0", "t1", "t2")}
    before.on_trial_complete("t0", final(-0.05))
    before.save(str(tmp_path / "searcher.json"))

    after = searcher(tmp_path, plan(ARM, 3))
    after.restore(str(tmp_path / "searcher.json"))
    # Tune's stored list holds t0 (finished) and t1 (running); t2 never reached it
    generator = show_restored(after, [tune_trial("t0", handed["t0"], final(-0.05)), tune_trial("t1", handed["t1"])])
    assert generator.is_finished() is False
    replacement = after.suggest("t3")
    assert replacement is not None and replacement["arm"] == ARM and replacement["role"] == "search"
    assert study_states(tmp_path, ARM) == ["COMPLETE", "FAIL", "RUNNING", "RUNNING"]  # t0, t2, t1, t3
    assert after.suggest("t4") is None
    after.on_trial_complete("t1", final(-0.08))
    after.on_trial_complete("t3", final(-0.07))
    assert after.suggest("t4") == Searcher.FINISHED


def test_a_trial_the_searcher_never_saved_is_adopted_and_told_to_optuna(tmp_path: Path) -> None:
    before = searcher(tmp_path, plan(ARM, 3, repeats=2))
    first = before.suggest("t0")
    before.save(str(tmp_path / "searcher.json"))  # the searcher's snapshot stops here
    second = before.suggest("t1")  # ...but Tune's does not: t1 ran and finished

    after = searcher(tmp_path, plan(ARM, 3, repeats=2))
    after.restore(str(tmp_path / "searcher.json"))
    show_restored(after, [tune_trial("t0", first, final(-0.09)), tune_trial("t1", second, final(-0.01))])
    third = after.suggest("t2")
    assert third["role"] == "search"
    # t0 is told now, t1 added as an evaluated point; t1's dangling ask is failed; t2 runs
    states = study_states(tmp_path, ARM)
    assert states == ["COMPLETE", "COMPLETE", "FAIL", "RUNNING"]
    values = sorted(t.value for t in study(tmp_path, ARM).get_trials(deepcopy=False) if t.state.name == "COMPLETE")
    assert values == pytest.approx([-0.09, -0.01])
    assert after.suggest("t3") is None  # three search trials: wait for t2 before the repeat
    after.on_trial_complete("t2", final(-0.5))
    repeat = after.suggest("r0")
    assert repeat["role"] == "repeat" and repeat["trial"]["hparams"] == second["trial"]["hparams"]
    after.on_trial_complete("r0", final(-0.02))
    assert after.suggest("x") == Searcher.FINISHED


def test_without_a_restore_the_scheduler_hook_changes_nothing(tmp_path: Path) -> None:
    arm_searcher = searcher(tmp_path, plan(ARM, 1))
    config = arm_searcher.suggest("t0")
    generator = show_restored(arm_searcher, [tune_trial("t0", config)])
    assert generator.is_finished() is True and not arm_searcher.restoring
    assert arm_searcher.plans[ARM].suggested == 1


def test_a_restored_trial_the_study_never_asked_for_reports_and_completes(tmp_path: Path) -> None:
    before = searcher(tmp_path, plan(ARM, 2))
    first = before.suggest("t0")
    before.save(str(tmp_path / "searcher.json"))  # the searcher's snapshot stops here
    second = before.suggest("t1")  # ...Tune's holds t1, still running

    after = searcher(tmp_path, plan(ARM, 2))
    after.restore(str(tmp_path / "searcher.json"))
    show_restored(after, [tune_trial("t0", first, final(-0.09)), tune_trial("t1", second)])
    after.on_trial_result("t1", {OBJECTIVE: -0.2, STEP: 10})  # its ask was failed in Optuna: nothing to report to
    after.on_trial_complete("t1", final(-0.04))
    assert study_states(tmp_path, ARM) == ["COMPLETE", "COMPLETE", "FAIL"]  # t0, t1 added, t1's lost ask
    assert after.suggest("t2") == Searcher.FINISHED
