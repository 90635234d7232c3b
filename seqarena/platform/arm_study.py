"""One arm's Optuna study, driven through Optuna's ask-and-tell interface.

The study lives in an RDB storage (SQLite under the search's Tune folder) so that a resumed search
continues it. Each Tune trial of the arm is one Optuna trial: `ask` samples every searched value
at once (`Study.ask(fixed_distributions=...)`), `report` records the objective at a step, and
`tell` finishes it; `warm` adds the trials a search recorded before (`Study.add_trials`, for a
search that grows). Optuna's trial numbers, not its `Trial` objects, are what this class keeps
across a save (`ArmSearcher.save`, JSON), so a restored study is the same study read back from its
storage, sampled by a sampler reseeded from the arm's seed and the trials it handed out.
The objective is maximised (`seqarena.platform.arms`: the validation metric signed so
that higher is better).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.trial import TrialState


class ArmStudy:
    """The Optuna study of one arm, keyed by Tune's trial ids."""

    def __init__(self, storage_url: str, study_name: str, sampler: optuna.samplers.BaseSampler,
                 space: dict[str, optuna.distributions.BaseDistribution]) -> None:
        self.storage_url, self.study_name, self.sampler, self.space = storage_url, study_name, sampler, space
        self.numbers: dict[str, int] = {}
        self.told: set[str] = set()
        self._study: optuna.Study | None = None
        self._asked: dict[str, optuna.Trial] = {}
        self.study  # noqa: B018 -- create the study (or load it) now, as the search starts

    @property
    def study(self) -> optuna.Study:
        """The study, created in its storage on first use (loaded if it exists)."""
        if self._study is None:
            self._study = optuna.create_study(storage=self.storage_url, study_name=self.study_name,
                                              sampler=self.sampler, pruner=optuna.pruners.NopPruner(),
                                              direction="maximize", load_if_exists=True)
        return self._study

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in ("_study", "_asked")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, _study=None, _asked={})

    def reseed(self, sampler: optuna.samplers.BaseSampler) -> None:
        """Sample from now on with `sampler` (a restored search: its saved state holds no sampler)."""
        self.sampler, self._study, self._asked = sampler, None, {}

    def asked(self, trial_id: str) -> bool:
        """Whether this study handed out Tune trial `trial_id`."""
        return trial_id in self.numbers

    def ask(self, trial_id: str) -> dict[str, Any]:
        """Sample the searched values of a new trial."""
        trial = self.study.ask(fixed_distributions=self.space)
        self.numbers[trial_id] = trial.number
        self._asked[trial_id] = trial
        return dict(trial.params)

    def report(self, trial_id: str, objective: float, step: int) -> None:
        """Record an intermediate objective (for trials asked by this process and not yet told)."""
        if trial_id in self._asked and trial_id not in self.told:
            self._asked[trial_id].report(objective, step)

    def tell(self, trial_id: str, objective: float | None, error: bool) -> None:
        """Finish an asked trial: complete with its objective; without one, failed (`error`) or pruned."""
        if trial_id in self.told:
            return
        state = TrialState.COMPLETE if objective is not None else TrialState.FAIL if error else TrialState.PRUNED
        self.study.tell(self.numbers[trial_id], objective, state=state, skip_if_finished=True)
        self.told.add(trial_id)
        self._asked.pop(trial_id, None)

    def add(self, params: dict[str, Any], objective: float | None) -> None:
        """Add a trial this study never asked for (complete with `objective`, or failed without one)."""
        state = TrialState.COMPLETE if objective is not None else TrialState.FAIL
        self.study.add_trial(optuna.trial.create_trial(state=state, value=objective, params=params,
                                                       distributions=self.space))

    def warm(self, trials: list[tuple[dict[str, Any], float | None]], queued: Sequence[dict[str, Any]] = ()) -> int:
        """Warm-start a new study with trials recorded before (searched values, objective or None: failed),
        in one `Study.add_trials`, then queue the `queued` values (`Study.enqueue_trial`: a grid's points
        not run yet, asked before anything is sampled); return how many trials it took. Nothing is added
        to a study that has trials already (it was warmed before), nor a trial outside this study's space
        (`create_trial` refuses it: the space changed since)."""
        if self.study.get_trials(deepcopy=False):
            return 0
        frozen = []
        for params, objective in trials:
            state = TrialState.COMPLETE if objective is not None else TrialState.FAIL
            try:
                frozen.append(optuna.trial.create_trial(state=state, value=objective, params=params,
                                                        distributions=self.space))
            except ValueError:  # a value outside the space, or a searched name it lacks
                continue
        self.study.add_trials(frozen)
        for params in queued:
            self.study.enqueue_trial(params)
        return len(frozen)

    def fail_abandoned(self, live: set[str]) -> None:
        """Fail every running trial of the study that no live Tune trial in `live` stands behind."""
        alive = {self.numbers[trial_id] for trial_id in live if trial_id in self.numbers}
        failed = set()
        for frozen in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if frozen.number not in alive:
                self.study.tell(frozen.number, state=TrialState.FAIL, skip_if_finished=True)
                failed.add(frozen.number)
        self.told |= {trial_id for trial_id, number in self.numbers.items() if number in failed}
