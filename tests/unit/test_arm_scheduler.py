"""Arm isolation: each arm's trials are early-stopped only against trials of the same arm.

These drive the real ASHA (`ray.tune.schedulers.AsyncHyperBandScheduler`) inside `ArmScheduler`
with real Tune trials and results as Tune would deliver them; no Ray cluster is needed for the
scheduling decision.
"""

from __future__ import annotations

from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler

from seqarena.platform.arms import ArmScheduler
from seqarena.workers.config import SearchTrial, TrialConfig
from seqarena.workers.tune_trainable import OBJECTIVE, STEP

STRONG, WEAK = "adding/T=100/gru", "adding/T=100/rnn"


def trial(arm: str, number: int, role: str = "search") -> Trial:
    planned = SearchTrial(arm=arm, role=role, metric_name="mse", higher_is_better=False,
                          trial=TrialConfig(model=arm.split("/")[-1], task="adding", seq_len=100))
    return Trial("run_tune_trial", config=planned.to_tune(), trial_id=f"{arm.split('/')[-1]}{number}", stub=True)


def feed(scheduler: object, trials: list[Trial], objective: dict[str, float], step: int) -> dict[str, str]:
    decisions = {}
    for item in trials:
        result = {STEP: step, OBJECTIVE: objective[item.trial_id]}
        decisions[item.trial_id] = scheduler.on_trial_result(None, item, result)
    return decisions


def test_a_weak_arm_is_not_stopped_because_a_strong_arm_is_better() -> None:
    strong = [trial(STRONG, i) for i in range(4)]
    weak = [trial(WEAK, i) for i in range(4)]
    objective = {t.trial_id: -0.001 * (i + 1) for i, t in enumerate(strong)}   # MSE ~ 0.001
    objective.update({t.trial_id: -0.160 - 0.001 * i for i, t in enumerate(weak)})  # MSE ~ 0.16

    per_arm = ArmScheduler([STRONG, WEAK], max_t=1000, grace_period=100, reduction_factor=2)
    for item in strong + weak:
        per_arm.on_trial_add(None, item)
    feed(per_arm, strong, objective, 100)
    first_weak = feed(per_arm, weak[:1], objective, 100)
    # the first weak trial is the best its own arm has seen at this rung: it continues
    assert first_weak == {weak[0].trial_id: TrialScheduler.CONTINUE}
    later_weak = feed(per_arm, weak[1:], objective, 100)
    # later weak trials are each worse than the weak arm's median so far: stopped by their own arm
    assert set(later_weak.values()) == {TrialScheduler.STOP}

    # The same results through one shared ASHA stop the first weak trial at once.
    shared = AsyncHyperBandScheduler(time_attr=STEP, metric=OBJECTIVE, mode="max", max_t=1000,
                                     grace_period=100, reduction_factor=2, stop_last_trials=False)
    for item in strong + weak:
        shared.on_trial_add(None, item)
    feed(shared, strong, objective, 100)
    assert feed(shared, weak[:1], objective, 100) == {weak[0].trial_id: TrialScheduler.STOP}


def test_repeats_are_never_stopped() -> None:
    scheduler = ArmScheduler([WEAK], max_t=1000, grace_period=100, reduction_factor=2)
    searched = [trial(WEAK, i) for i in range(3)]
    repeat = trial(WEAK, 9, role="repeat")
    for item in [*searched, repeat]:
        scheduler.on_trial_add(None, item)
    feed(scheduler, searched, {t.trial_id: -0.01 for t in searched}, 100)
    assert feed(scheduler, [repeat], {repeat.trial_id: -10.0}, 100) == {repeat.trial_id: TrialScheduler.CONTINUE}


def test_a_trial_removed_after_it_completed_is_not_removed_twice() -> None:
    scheduler = ArmScheduler([WEAK], max_t=1000, grace_period=100, reduction_factor=2)
    done, stopped = trial(WEAK, 0), trial(WEAK, 1)
    for item in (done, stopped):
        scheduler.on_trial_add(None, item)
    scheduler.on_trial_complete(None, done, {STEP: 1000, OBJECTIVE: -0.01})
    scheduler.on_trial_remove(None, done)  # the real ASHA raises KeyError on a second forget
    scheduler.on_trial_remove(None, stopped)
    scheduler.on_trial_remove(None, stopped)
    assert scheduler.held == set()
