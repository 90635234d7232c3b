"""Per-arm search on one Ray Tune experiment: a searcher and a scheduler that keep arms apart.

An arm (task, seq_len, model) is searched and early-stopped on its own:

* `ArmSearcher` holds one Optuna study per arm (`ArmStudy`: TPE, random or grid sampler, seeded,
  stored in an RDB so that a resumed search continues it, driven by Optuna's ask and tell), and
  hands out trials round-robin over the arms so that every arm is busy at once. When an arm's
  search trials are all done, it hands out the repeats: the best configuration with new seeds, then
  each of the next `top_k - 1` configurations (`ArmPlan.top`, by objective) with the same seeds, so
  that the leaderboard picks its winner on fresh seeds, not as the optimistic extreme of a noisy search.
* `ArmScheduler` holds one `AsyncHyperBandScheduler` (ASHA) per arm and routes each search
  trial's results to its arm's ASHA only, so a trial is only ever compared with trials of its own
  arm. Repeats (the best configuration with other seeds) are replicates and always run to the end.

Both maximise `objective` (the validation metric signed so that higher is better).

Campaigns that grow (`seqarena.platform.campaigns`): an arm's plan may carry what its search recorded
before (`ArmPrior`: the study is warm-started with those trials through `Study.add_trials`, the best
so far and its repeats count, so nothing is run twice), cells to run again (`Rerun`, for `seqarena
retry`), and, on a T-ladder (`search.ladder`), the arm of the same model at the next smaller T
(`below`): the arm waits until that one's search trials are done, and runs only if it solved
(`ladder_solves`); otherwise it never starts, and neither does any arm above it.

Resume after SIGKILL: Tune saves its trial list and the searcher's state as two files and copies
them to storage one after the other, so after a kill the two can disagree (a trial the searcher
handed out that Tune never stored, or the reverse). The trial list is the ground truth: on restore
the scheduler shows every trial Tune restored to the searcher (`ArmSearcher.note_restored`), and
the searcher rebuilds its counters, its live set and its best-so-far from them, fails the Optuna
trials whose Tune trial was lost, and tells Optuna the results of trials it never saw. The searcher
also limits concurrency itself (`max_concurrent`), so that no wrapper keeps a count of its own.
The one step that Ray offers no public call for (letting Tune's search generator ask a restored
searcher again) is in `seqarena.platform.tune_adapter`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.platform import tune_adapter
from seqarena.platform.arm_study import ArmStudy
from seqarena.platform.searches import config_key
from seqarena.workers.config import SearchTrial, TrialConfig, TrialResources, TrialRole
from seqarena.workers.results import finite
from seqarena.workers.tune_trainable import OBJECTIVE, STEP

MODE = "max"
log = logging.getLogger(__name__)


def ladder_solves(task: str, best_val_metric: float | None, baseline: float, higher_is_better: bool) -> bool:
    """Whether an arm's best validation metric lets its model climb the T-ladder to the next T: it solves
    the task as the task defines it (`Task.solved_when`, e.g. adding: MSE under a tenth of the baseline)."""
    return tasks.task_class(task).solved_when.met(best_val_metric, baseline, higher_is_better)


def ladder_skips(plans: list[ArmPlan], best: dict[str, float | None]) -> dict[str, str]:
    """The arms of a T-ladder a model never reaches, each with why: the arm below it (or one further
    down) did not solve (`ladder_solves` of `best`, each arm's best validation metric)."""
    by_key = {plan.key: plan for plan in plans}

    def why(plan: ArmPlan) -> str | None:
        if plan.below is None:
            return None
        lower = by_key[plan.below]
        if (reason := why(lower)) is not None:
            return reason
        if ladder_solves(lower.template.task, best.get(lower.key), lower.baseline, lower.higher_is_better):
            return None
        value = best.get(lower.key)
        shown = "no completed trial" if value is None else f"best val {lower.metric_name} {value:.4g}"
        return f"T-ladder: {lower.key} did not solve ({shown}; baseline {lower.baseline:.4g})"

    return {plan.key: reason for plan in plans if (reason := why(plan)) is not None}


@dataclass(frozen=True)
class ArmPrior:
    """What an arm recorded before this run of its search (`seqarena extend`).

    `searched`: its search trials (any status); `warm`: each one's searched values and objective
    (None: no metric), for the study; `queued`: on a grid, the points still to run; `best`: the best
    completed one's objective and searched values, with the `config_key` of its configuration and how
    many repeats of it were recorded.
    """

    searched: int
    warm: list[tuple[dict[str, Any], float | None]]
    queued: list[dict[str, Any]] = field(default_factory=list)
    """a grid search's points that no recorded trial ran, in grid order"""
    best: tuple[float, dict[str, Any]] | None = None
    best_key: str | None = None
    best_repeats: int = 0


@dataclass(frozen=True)
class Rerun:
    """A recorded cell to run again (`seqarena retry`): its role, every hyperparameter it ran with, its
    seed, and the trial id whose record it replaces."""

    role: TrialRole
    hparams: dict[str, Any]
    seed: int
    retry_of: str


@dataclass
class ArmPlan:
    """What one arm runs: its trial template, search space and how many trials of each role.

    `template` is the arm's `TrialConfig` (model, task, T, options, budget) before the
    hyperparameters and the seed of a trial are filled in by `trial`.
    """

    key: str
    template: TrialConfig
    fixed: dict[str, Any]
    space: dict[str, optuna.distributions.BaseDistribution]
    grid: dict[str, list[Any]]
    n_search: int
    repeats: int
    seed: int
    metric_name: str
    higher_is_better: bool
    baseline: float
    resources: TrialResources = field(default_factory=TrialResources)
    suggested: int = 0
    completed: int = 0
    repeats_suggested: int = 0
    best: tuple[float, dict[str, Any]] | None = None
    study: ArmStudy | None = field(default=None, repr=False)
    prior: ArmPrior | None = None
    reruns: list[Rerun] = field(default_factory=list)
    reruns_suggested: int = 0
    below: str | None = None
    top_k: int = 1
    """configurations re-run with `repeats` seeds: the best, then the next best (`runners_up`)"""
    top: tuple[tuple[float, dict[str, Any]], ...] = ()
    """the best completed search configurations (objective, searched values), best first, at most top_k"""
    runner_up_repeats: int = 0
    """repeats of the runners-up handed out"""

    def trial(self, hparams: dict[str, Any], role: TrialRole, seed: int, retry_of: str | None = None) -> SearchTrial:
        """One trial of this arm: the template with the fixed and the searched values and a seed."""
        config = self.template.model_copy(update={"hparams": {**self.fixed, **hparams}, "seed": seed})
        return SearchTrial(arm=self.key, role=role, metric_name=self.metric_name,
                           higher_is_better=self.higher_is_better, trial=config, resources=self.resources,
                           retry_of=retry_of)

    @property
    def expected(self) -> int:
        """Trials this run hands out at most: reruns, new search trials and the repeats still missing."""
        recorded = self.prior.best_repeats if self.prior and self.n_search == 0 else 0
        runners_up = 0 if self.prior else (min(self.top_k, self.n_search) - 1) * (self.repeats - 1)
        return len(self.reruns) + self.n_search + max(self.repeats - 1 - recorded, 0) + max(runners_up, 0)

    def runners_up(self) -> list[dict[str, Any]]:
        """The configurations re-run after the best: the next `top_k - 1` of `top`. None in a round that
        extends a recorded search (`prior`): its repeats are counted for the best configuration only."""
        if self.prior is not None or self.best is None:
            return []
        return [hparams for _, hparams in self.top if hparams != self.best[1]][:self.top_k - 1]

    def runner_up_repeat(self) -> tuple[dict[str, Any], int] | None:
        """The next runner-up repeat to hand out (searched values, seed), None when all are out. Each
        runner-up gets the seeds the best's repeats got (seed + 1 ...), so the configurations are
        compared on the same seeds."""
        per = self.repeats - 1
        runners = self.runners_up()
        if per < 1 or self.runner_up_repeats >= len(runners) * per:
            return None
        index = self.runner_up_repeats
        return runners[index // per], self.seed + 1 + index % per

    def repeats_done(self) -> int:
        """Repeats of the current best configuration: handed out in this run, plus those recorded before
        when the best is still the prior best configuration."""
        prior = self.prior
        same = (prior is not None and self.best is not None and prior.best_key is not None
                and config_key({**self.fixed, **self.best[1]}) == prior.best_key)
        return self.repeats_suggested + (prior.best_repeats if same and prior else 0)


def make_sampler(algorithm: str, grid: dict[str, list[Any]], seed: int) -> optuna.samplers.BaseSampler:
    """Optuna's sampler for `tpe`, `random` or `grid` (seeded)."""
    if algorithm == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if algorithm == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler(grid, seed=seed)


@dataclass(frozen=True)
class RestoredTrial:
    """What Tune restored of one trial: its arm and role, its sampled values, whether it had finished."""

    arm: str
    role: str
    hparams: dict[str, Any]
    finished: bool
    result: dict[str, Any]


#: The version of the searcher's saved JSON state (`ArmSearcher.save`).
STATE_VERSION = 1


class SearcherStateRefused(BadInput):
    """A saved searcher state that is not seqarena's JSON (one line; nothing in the file is run)."""

    def __init__(self, path: str, error: BaseException) -> None:
        reason = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
        super().__init__("searcher_state", path, f"the JSON searcher state seqarena writes (refused: {reason})")


def _plan_state(plan: ArmPlan) -> dict[str, Any]:
    """An arm's counters, best configuration and Optuna trial numbers as plain data."""
    study = plan.study
    return {"suggested": plan.suggested, "completed": plan.completed, "repeats_suggested": plan.repeats_suggested,
            "reruns_suggested": plan.reruns_suggested, "best": list(plan.best) if plan.best else None,
            "numbers": dict(study.numbers) if study else {}, "told": sorted(study.told) if study else []}


def _load_plan_state(plan: ArmPlan, state: dict[str, Any]) -> None:
    plan.suggested, plan.completed = int(state["suggested"]), int(state["completed"])
    plan.repeats_suggested = int(state["repeats_suggested"])
    plan.reruns_suggested = int(state.get("reruns_suggested", 0))
    best = state["best"]
    plan.best = (float(best[0]), dict(best[1])) if best else None
    if plan.study is not None:
        plan.study.numbers = {str(trial_id): int(number) for trial_id, number in state["numbers"].items()}
        plan.study.told = {str(trial_id) for trial_id in state["told"]}


class ArmSearcher(Searcher):
    """One Optuna study per arm; trials handed out round-robin over arms, then the repeats.

    `max_concurrent` (None: no limit) caps the trials handed out and not yet complete.
    """

    def __init__(self, plans: list[ArmPlan], algorithm: str, storage_url: str | None, study_prefix: str,
                 max_concurrent: int | None = None) -> None:
        super().__init__(metric=OBJECTIVE, mode=MODE)
        self.plans = {plan.key: plan for plan in plans}
        self.algorithm = algorithm
        self.trial_arm: dict[str, tuple[str, str]] = {}
        self.trial_hparams: dict[str, dict[str, Any]] = {}
        self.live: set[str] = set()
        self.max_concurrent = max_concurrent
        self._restored: dict[str, RestoredTrial] | None = None
        self._cursor = 0
        for plan in plans:
            plan.best = plan.prior.best if plan.prior else None
            if plan.space:
                # a warm-started study's sampler gets another seed, or it would draw the recorded trials again
                seed = plan.seed + (len(plan.prior.warm) if plan.prior else 0)
                plan.study = ArmStudy(storage_url, f"{study_prefix}/{plan.key}",
                                      make_sampler(algorithm, plan.grid, seed), plan.space)
                if plan.prior:
                    plan.study.warm(plan.prior.warm, plan.prior.queued)

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        self._settle()
        if all(self._exhausted(plan) for plan in self.plans.values()):
            return Searcher.FINISHED
        if self.max_concurrent is not None and len(self.live) >= self.max_concurrent:
            return None
        keys = list(self.plans)
        for offset in range(len(keys)):
            plan = self.plans[keys[(self._cursor + offset) % len(keys)]]
            config = self._next_of(plan, trial_id)
            if config is not None:
                self._cursor = (self._cursor + offset + 1) % len(keys)
                self.live.add(trial_id)
                return config
        return None

    def _next_of(self, plan: ArmPlan, trial_id: str) -> dict[str, Any] | None:
        if plan.reruns_suggested < len(plan.reruns):
            return self._rerun(plan, trial_id)
        if self.ladder_state(plan) != "open":
            return None
        if plan.suggested < plan.n_search:
            plan.suggested += 1
            hparams = plan.study.ask(trial_id) if plan.study else {}
            self.trial_arm[trial_id] = (plan.key, "search")
            self.trial_hparams[trial_id] = hparams
            return plan.trial(hparams, "search", plan.seed).to_tune()
        if plan.completed < plan.n_search or not plan.best:
            return None
        if plan.repeats_done() < plan.repeats - 1:
            seed = plan.seed + plan.repeats_done() + 1
            plan.repeats_suggested += 1
            self.trial_arm[trial_id] = (plan.key, "repeat")
            return plan.trial(plan.best[1], "repeat", seed).to_tune()
        if (runner_up := plan.runner_up_repeat()) is not None:
            plan.runner_up_repeats += 1
            self.trial_arm[trial_id] = (plan.key, "repeat")
            return plan.trial(runner_up[0], "repeat", runner_up[1]).to_tune()
        return None

    def _rerun(self, plan: ArmPlan, trial_id: str) -> dict[str, Any]:
        """Hand out the next recorded cell to run again, with every value it ran with and its seed."""
        rerun = plan.reruns[plan.reruns_suggested]
        plan.reruns_suggested += 1
        self.trial_arm[trial_id] = (plan.key, rerun.role)
        self.trial_hparams[trial_id] = rerun.hparams
        return plan.trial(rerun.hparams, rerun.role, rerun.seed, retry_of=rerun.retry_of).to_tune()

    def ladder_state(self, plan: ArmPlan) -> str:
        """`open` (off a ladder, at its foot, or the arm below solved), `wait` (the arm below is still
        searching) or `closed` (an arm below did not solve: this one never runs)."""
        if plan.below is None:
            return "open"
        lower = self.plans[plan.below]
        state = self.ladder_state(lower)
        if state != "open":
            return state
        if lower.completed < lower.n_search:
            return "wait"
        best = lower.best[0] if lower.best else None
        unsigned = None if best is None else (best if lower.higher_is_better else -best)
        solves = ladder_solves(lower.template.task, unsigned, lower.baseline, lower.higher_is_better)
        return "open" if solves else "closed"

    def _exhausted(self, plan: ArmPlan) -> bool:
        if plan.reruns_suggested < len(plan.reruns):
            return False
        state = self.ladder_state(plan)
        if state != "open":
            return state == "closed"
        if plan.suggested < plan.n_search:
            return False
        if plan.completed < plan.n_search:
            return False
        if plan.best is None:
            return True
        return plan.repeats_done() >= plan.repeats - 1 and plan.runner_up_repeat() is None

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        self._settle()
        plan, role = self._plan_of(trial_id)
        if plan and role == "search" and plan.study and OBJECTIVE in result and not result.get("final"):
            plan.study.report(trial_id, float(result[OBJECTIVE]), int(result[STEP]))

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        self._settle()
        self.live.discard(trial_id)
        plan, role = self._plan_of(trial_id)
        if plan is None or role != "search":
            return
        plan.completed += 1
        self._consider_best(plan, trial_id, result)
        self._tell_optuna(plan, trial_id, result, error)

    def _tell_optuna(self, plan: ArmPlan, trial_id: str, result: dict | None, error: bool) -> None:
        """Tell the arm's study how a trial ended. A failure here is logged, never raised: Tune runs
        the searcher before the callbacks that record the trial, and an exception would skip them."""
        try:
            self._tell_study(plan, trial_id, result, error)
        except Exception:
            log.warning("arm %s: could not tell Optuna how trial %s ended", plan.key, trial_id, exc_info=True)

    def _tell_study(self, plan: ArmPlan, trial_id: str, result: dict | None, error: bool) -> None:
        if plan.study is None:
            return
        objective = finite(result.get(OBJECTIVE)) if result else None
        if plan.study.asked(trial_id):
            plan.study.tell(trial_id, objective, error=error)
            return
        # a trial restored from Tune's state that this study never handed out (see the module docstring)
        searched = {name: value for name, value in self.trial_hparams.get(trial_id, {}).items() if name in plan.space}
        plan.study.add(searched, objective)

    def _consider_best(self, plan: ArmPlan, trial_id: str, result: dict | None) -> None:
        if result and result.get("final") and result.get("status") == "completed":
            objective = float(result[OBJECTIVE])
            hparams = self.trial_hparams.get(trial_id, {})
            if plan.best is None or objective > plan.best[0]:
                plan.best = (objective, hparams)
            others = [entry for entry in plan.top if entry[1] != hparams]
            same = [entry[0] for entry in plan.top if entry[1] == hparams]
            entry = (max([objective, *same]), hparams)
            plan.top = tuple(sorted([*others, entry], key=lambda item: -item[0])[:plan.top_k])

    def _plan_of(self, trial_id: str) -> tuple[ArmPlan | None, str]:
        if trial_id not in self.trial_arm:
            return None, ""
        key, role = self.trial_arm[trial_id]
        return self.plans[key], role

    def save(self, checkpoint_path: str) -> None:
        """Write the searcher's state as JSON (plain data: Tune's experiment folder is shared, and a
        pickle read back from it could run code)."""
        with open(checkpoint_path, "w", encoding="utf-8") as out:
            json.dump(self.state(), out)

    def restore(self, checkpoint_path: str) -> None:
        """Load the saved state, then wait for Tune's restored trials (`note_restored`) to correct it.

        Raises:
            SearcherStateRefused: the file is not the JSON state `save` writes (a pickle of an older
                seqarena, or a crafted file): refused in one line, nothing in it is run.
        """
        try:
            with open(checkpoint_path, encoding="utf-8") as source:
                state = json.load(source)
            self.load_state(state)
        except (OSError, UnicodeDecodeError, ValueError, TypeError, KeyError) as error:
            raise SearcherStateRefused(checkpoint_path, error) from None
        self._restored = {}

    def state(self) -> dict[str, Any]:
        """The searcher's counters and trial maps as plain JSON data (`load_state` reads it back)."""
        return {"version": STATE_VERSION, "cursor": self._cursor, "live": sorted(self.live),
                "trial_arm": {trial_id: list(pair) for trial_id, pair in self.trial_arm.items()},
                "trial_hparams": self.trial_hparams,
                "plans": {key: _plan_state(plan) for key, plan in self.plans.items()}}

    def load_state(self, state: dict[str, Any]) -> None:
        """Set the counters and trial maps from `state()`'s JSON (ValueError when it does not fit this search)."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            raise ValueError(f"not a searcher state of version {STATE_VERSION}")
        if set(state["plans"]) != set(self.plans):
            raise ValueError("its arms are not this search's arms")
        self._cursor = int(state["cursor"])
        self.live = {str(trial_id) for trial_id in state["live"]}
        self.trial_arm = {str(trial_id): (str(key), str(role)) for trial_id, (key, role) in state["trial_arm"].items()}
        self.trial_hparams = {str(trial_id): dict(values) for trial_id, values in state["trial_hparams"].items()}
        for key, plan in self.plans.items():
            _load_plan_state(plan, state["plans"][key])
            if plan.study is not None:  # a sampler fresh from its seed would hand out the first values again
                handed = len(plan.study.numbers) + (len(plan.prior.warm) if plan.prior else 0)
                plan.study.reseed(make_sampler(self.algorithm, plan.grid, plan.seed + handed))

    def note_restored(self, trial_id: str, trial: SearchTrial, finished: bool, result: dict[str, Any]) -> None:
        """Tune re-added a trial from its saved state (called by `ArmScheduler.on_trial_add` on resume)."""
        if self._restored is None or trial.arm not in self.plans:
            return
        plan = self.plans[trial.arm]
        hparams = {name: value for name, value in trial.trial.hparams.items() if name in plan.space}
        self._restored[trial_id] = RestoredTrial(trial.arm, trial.role, hparams, finished, dict(result or {}))

    @property
    def restoring(self) -> bool:
        """Whether the searcher was restored and has not yet seen Tune's trials through."""
        return self._restored is not None

    def _settle(self) -> None:
        """After a restore: rebuild the counters from the trials Tune restored (the ground truth)."""
        if self._restored is None:
            return
        restored, self._restored = self._restored, None
        known = set(self.trial_arm)
        lost = known - set(restored)
        self.trial_arm, self.trial_hparams, self.live = {}, {}, set()
        for plan in self.plans.values():
            plan.suggested = plan.completed = plan.repeats_suggested = plan.reruns_suggested = 0
            plan.runner_up_repeats, plan.top = 0, ()
            plan.best = plan.prior.best if plan.prior else None
        for trial_id, trial in restored.items():
            self._adopt(trial_id, trial)
        for trial in restored.values():
            self._adopt_repeat(trial)
        for plan in self.plans.values():
            self._settle_study(plan)
        log.info("restored %d trials (%d unknown to the saved searcher, %d it handed out lost): %s",
                 len(restored), len(set(restored) - known), len(lost),
                 "; ".join(f"{p.key} {p.suggested}+{p.repeats_suggested} handed out, {p.completed} done, "
                           f"best {p.best[0] if p.best else None}" for p in self.plans.values()))

    def _adopt(self, trial_id: str, trial: RestoredTrial) -> None:
        plan = self.plans[trial.arm]
        self.trial_arm[trial_id] = (trial.arm, trial.role)
        if not trial.finished:
            self.live.add(trial_id)
        if trial.role != "search":
            return  # counted by `_adopt_repeat`, once every search trial has been adopted
        plan.suggested += 1
        self.trial_hparams[trial_id] = trial.hparams
        if trial.finished:
            plan.completed += 1
            if plan.study and trial_id not in plan.study.told:
                self._tell_optuna(plan, trial_id, trial.result, error=False)
            self._consider_best(plan, trial_id, trial.result)

    def _adopt_repeat(self, trial: RestoredTrial) -> None:
        """Count a restored repeat: of the best configuration, or of a runner-up (known once the search
        trials are adopted: the same ones rank the same way)."""
        if trial.role == "search":
            return
        plan = self.plans[trial.arm]
        if plan.best is not None and trial.role == "repeat" and trial.hparams in plan.runners_up():
            plan.runner_up_repeats += 1
        else:
            plan.repeats_suggested += 1

    def _settle_study(self, plan: ArmPlan) -> None:
        """Fail the Optuna trials of this arm that no live Tune trial stands behind."""
        if plan.study is not None:
            plan.study.fail_abandoned(self.live)


class ArmScheduler(FIFOScheduler):
    """Routes each trial to its own arm's ASHA (`asha=False`: no early stopping); trials run first-in,
    first-out. On resume it also shows each trial Tune restored to the `ArmSearcher`."""

    def __init__(self, arm_keys: list[str], max_t: int, grace_period: int, reduction_factor: float,
                 asha: bool = True) -> None:
        super().__init__()
        self._metric = OBJECTIVE
        self.by_arm = {
            key: AsyncHyperBandScheduler(time_attr=STEP, metric=OBJECTIVE, mode=MODE, max_t=max_t,
                                         grace_period=grace_period, reduction_factor=reduction_factor,
                                         stop_last_trials=False)
            for key in arm_keys
        } if asha else {}
        self.held: set[str] = set()  # the trials an ASHA above still holds (added, neither completed nor removed)

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return True

    def _asha(self, trial: Any) -> AsyncHyperBandScheduler | None:
        """The trial's arm's ASHA; None for repeats (replicates of the best run are never stopped)."""
        planned = SearchTrial.from_tune(trial.config)
        return self.by_arm.get(planned.arm) if planned.role == "search" else None

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        _show_restored(tune_controller, trial)
        if asha := self._asha(trial):
            asha.on_trial_add(tune_controller, trial)
            self.held.add(trial.trial_id)

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        asha = self._asha(trial)
        return asha.on_trial_result(tune_controller, trial, result) if asha else TrialScheduler.CONTINUE

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        """ASHA forgets a trial that completes with a step and an objective (and ignores it without)."""
        if asha := self._asha(trial):
            asha.on_trial_complete(tune_controller, trial, result)
            if STEP in result and OBJECTIVE in result:
                self.held.discard(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        """A trial stopped or failed: its ASHA forgets it, unless it did already (ASHA refuses twice)."""
        asha = self._asha(trial)
        if asha and trial.trial_id in self.held:
            asha.on_trial_remove(tune_controller, trial)
            self.held.discard(trial.trial_id)

    def debug_string(self) -> str:
        return "ASHA per arm: " + ", ".join(f"{key}" for key in self.by_arm)


def _show_restored(tune_controller: Any, trial: Any) -> None:
    """On resume, tell the `ArmSearcher` of a trial Tune restored, and let its generator ask it again.

    The generator's own "finished" flag was saved with the searcher, so it may be stale as well;
    the searcher answers FINISHED again once its rebuilt counters say so.
    """
    searcher = tune_adapter.searcher_of(tune_controller)
    if not isinstance(searcher, ArmSearcher) or not searcher.restoring:
        return
    searcher.note_restored(trial.trial_id, SearchTrial.from_tune(trial.config), trial.status == "TERMINATED",
                           trial.last_result)
    tune_adapter.reopen_generator(tune_controller)
