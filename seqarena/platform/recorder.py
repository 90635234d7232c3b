"""The search driver's Tune callback: the one writer of MLflow and the results database.

Trials only compute and report; this callback, running in the driver, turns their reports into
MLflow runs (a child run per trial under the search's parent run, its curve as step metrics,
its final numbers) and into one database row per finished trial.
Everything is keyed by Tune's trial id, so a resumed driver neither creates a second MLflow run
nor writes a second row for a trial it already recorded. The callback is pickled into Tune's
experiment state (`tuner.pkl`, on storage every node shares); it holds only plain data and no
secret: the database and MLflow are those of the driver's environment (`SEQARENA_DB_URL`,
`MLFLOW_TRACKING_URI`), read when the clients are opened lazily in the driver, never stored.

Through a database outage the row of a finished trial is written again with backoff
(`database.retry`); under `seqarena worker` every row is written under the worker's fence
(`jobs.Fence`, checked in the row's transaction), so a worker whose job was taken over records
nothing. A trial whose row could not be written (the outage outlasted the lease) is recorded by the
next driver of the search, which records every finished trial Tune restored without a row.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from ray.tune import Callback

from seqarena import cells
from seqarena.cells.space import resolve
from seqarena.platform import database, jobs, searches
from seqarena.platform.progress import SearchProgress
from seqarena.platform.run_record import finished_record, recorded_facts
from seqarena.platform.tracking import FINAL_STATUS, RETRY_TAG, SEARCH_TAG, TRIAL_TAG, Tracker
from seqarena.workers.config import SearchTrial
from seqarena.workers.results import TrialRecord
from seqarena.workers.tune_trainable import OBJECTIVE, STEP

log = logging.getLogger(__name__)
CURVE_KEYS = ("train_loss",)


#: The fence of each search this process drives for a job (`seqarena worker` sets it; a search run by
#: hand has none). Looked up by search id: the callback itself is restored from Tune's pickle.
FENCES: dict[str, jobs.Fence] = {}


@dataclass(frozen=True)
class RecorderTarget:
    """What a search is recorded as: its id, its MLflow experiment and parent run (no URL: those
    come from the driver's environment, so no password is pickled with the callback)."""

    search_id: str
    experiment_id: str
    parent_run_id: str


class SearchRecorder(Callback):
    """Writes each trial to MLflow as it runs and to the database when it ends."""

    def __init__(self, target: RecorderTarget, progress: SearchProgress) -> None:
        self.target, self.progress = target, progress
        self._tracker: Tracker | None = None
        self._runs: dict[str, str] | None = None
        self._recorded: set[str] | None = None
        self._last_step: dict[str, int] = {}
        self._complete: set[str] = set()
        self._swept = False

    def __getstate__(self) -> dict[str, Any]:
        return {"target": self.target, "progress": self.progress}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Only the target and the progress travel (in Tune's experiment state); the rest is rebuilt
        lazily, so a search saved by an older seqarena (whose target held the URLs) resumes under a newer one."""
        old = state["target"]
        self.__init__(RecorderTarget(old.search_id, old.experiment_id, old.parent_run_id), state["progress"])

    # lazily opened state -------------------------------------------------------------------
    @property
    def tracker(self) -> Tracker:
        if self._tracker is None:
            self._tracker = Tracker()
        return self._tracker

    @property
    def runs(self) -> dict[str, str]:
        if self._runs is None:
            self._runs = self.tracker.child_runs(self.target.experiment_id, self.target.parent_run_id)
        return self._runs

    @property
    def recorded(self) -> set[str]:
        if self._recorded is None:
            self._recorded = searches.recorded_trial_ids(database.get_engine(), self.target.search_id)
        return self._recorded

    # Tune callback hooks -------------------------------------------------------------------
    def setup(self, **info: Any) -> None:
        self.progress.start()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.progress.stop()

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._run_id(trial)
        self.progress.started(SearchTrial.from_tune(trial.config).arm, trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        if result.get("final"):
            return
        step = int(result[STEP])
        run_id = self._run_id(trial)
        if step <= self._logged_step(trial.trial_id, run_id):
            return  # a trial restarted from an older checkpoint replays steps already in its curve
        metrics = {key: value for key, value in result.items()
                   if key.startswith("val_") or key in CURVE_KEYS}
        self.tracker.log_metrics(run_id, metrics, step=step)
        self._last_step[trial.trial_id] = step
        planned = SearchTrial.from_tune(trial.config)
        self.progress.result(planned.arm, result.get(f"val_{planned.metric_name}"))

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, trial.last_result or {}, error=None)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._finish(trial, trial.last_result or {}, error="failed")

    # recording ---------------------------------------------------------------------------------
    def _logged_step(self, trial_id: str, run_id: str) -> int:
        """The last curve step already in the trial's MLflow run (read once per driver)."""
        if trial_id not in self._last_step:
            self._last_step[trial_id] = self.tracker.last_step(run_id, CURVE_KEYS[0])
        return self._last_step[trial_id]

    def _run_id(self, trial: Any) -> str:
        planned = SearchTrial.from_tune(trial.config)
        if trial.trial_id not in self.runs:
            self.runs[trial.trial_id] = self.tracker.start_child(
                self.target.experiment_id, self.target.parent_run_id, f"{planned.arm} {trial.trial_id}",
                run_tags(self.target.search_id, trial.trial_id, planned), planned.trial.hparams)
        elif trial.trial_id not in self._complete:
            # a run found again after a restart: a driver killed between creating it and logging
            # its params left it without them
            self.tracker.log_missing_params(self.runs[trial.trial_id], planned.trial.hparams)
        self._complete.add(trial.trial_id)
        return self.runs[trial.trial_id]

    def _finish(self, trial: Any, last: dict, error: str | None) -> None:
        arm = SearchTrial.from_tune(trial.config).arm
        self.progress.finished(arm, trial.trial_id)
        if self._is_recorded(trial.trial_id):
            return
        run_id = self._run_id(trial)
        planned = SearchTrial.from_tune(trial.config)
        record = trial_record(trial, last, error).model_copy(update={"mlflow_run_id": run_id,
                                                                     "facts": recorded_facts(last)})
        self.tracker.log_metrics(run_id, record.numbers(), step=record.steps)
        params, tags = finished_record(planned.trial, last)
        self.tracker.log_missing_params(run_id, params)
        self.tracker.set_tags(run_id, {**tags, "status": record.status, "node_id": last.get("node_id", "")})
        self.tracker.finish(run_id, FINAL_STATUS[record.status])
        self._record(arm, planned, record)

    def _is_recorded(self, trial_id: str) -> bool | None:
        """Whether the trial has its row (read through an outage); None (treated as recorded: nothing is
        written) when the database stayed unreachable past the worker's lease."""
        fence = FENCES.get(self.target.search_id)
        try:
            return database.retry(lambda: trial_id in self.recorded, f"reading the trials of {self.target.search_id}",
                                  give_up=fence.expired if fence else _never)
        except Exception as error:
            if not database.unreachable(error):
                raise
            log.warning("trial %s not recorded now: the database stayed unreachable past this worker's lease "
                        "(the job's next run records it)", trial_id)
            return None

    def _record(self, arm: str, planned: SearchTrial, record: TrialRecord) -> None:
        """Write the trial's row: retried through a database outage, and under the worker's fence (a worker
        whose job was taken over writes nothing)."""
        fence = FENCES.get(self.target.search_id)
        guard = None if fence is None else (lambda session: jobs.fence_holds(session, fence))

        def write() -> bool:
            engine = database.get_engine()
            if planned.retry_of is None:
                return searches.record_trial(engine, self.target.search_id, arm, record, guard=guard)
            # a rerun of a failed cell takes that cell's row (`seqarena retry`)
            return searches.replace_trial(engine, self.target.search_id, planned.retry_of, record, guard=guard)

        try:
            database.retry(write, f"recording trial {record.trial_id}", give_up=fence.expired if fence else _never)
        except searches.Fenced as fenced:
            log.warning("%s", fenced)
            return
        except Exception as error:
            if not database.unreachable(error):
                raise
            log.warning("trial %s not recorded now: the database stayed unreachable past this worker's lease "
                        "(the job's next run records it)", record.trial_id)
            return
        self.recorded.add(record.trial_id)

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        """Once per driver: record the trials Tune restored as finished that have no row yet (a driver that
        stopped, or lost its lease, between a trial's end and its row)."""
        if self._swept:
            return
        self._swept = True
        for trial in trials:
            if trial.status == "TERMINATED" and self._is_recorded(trial.trial_id) is False:
                self._finish(trial, trial.last_result or {}, error=None)


def _never() -> bool:
    return False


def run_tags(search_id: str, trial_id: str, planned: SearchTrial) -> dict[str, Any]:
    """The tags of a trial's MLflow run: its search, trial id, arm, role and what it trains (and, for a rerun
    of a failed cell, the trial it reran)."""
    config = planned.trial
    tags = {SEARCH_TAG: search_id, TRIAL_TAG: trial_id, "task": config.task, "seq_len": config.seq_len,
            "model": config.model, "arm": planned.arm, "role": planned.role, "seed": config.seed}
    return tags if planned.retry_of is None else {**tags, RETRY_TAG: planned.retry_of}


def trial_record(trial: Any, last: dict, error: str | None) -> TrialRecord:
    """The record of a finished trial from its last Tune result.

    `hparams` holds every hyperparameter the trial ran with (the declared defaults resolved);
    `config_key` identifies the searched and fixed values, shared by a best trial and its repeats.
    """
    planned = SearchTrial.from_tune(trial.config)
    config = planned.trial
    identity = {"trial_id": trial.trial_id, "role": planned.role, "seed": config.seed,
                "hparams": resolve(cells.space(config.model), config.hparams, task=config.task),
                "config_key": searches.config_key(config.hparams)}
    if error is None and last.get("final") and "trial_result" in last:
        return TrialRecord.from_result(json.loads(last["trial_result"]), **identity)
    steps = last.get(STEP, 0)
    if error is None and last.get("final"):
        return TrialRecord.checked({**identity, "status": last.get("status", "failed"), "steps": steps})
    best = _unsigned_best(trial, last, planned.higher_is_better) if OBJECTIVE in last else None
    return TrialRecord.checked({**identity, "status": error or "stopped", "steps": steps, "best_val_metric": best})


def _unsigned_best(trial: Any, last: dict, higher_is_better: bool) -> float | None:
    """The best validation metric of a trial stopped early, from Tune's per-trial analysis."""
    best = getattr(trial, "metric_analysis", {}).get(OBJECTIVE, {}).get("max", last.get(OBJECTIVE))
    if best is None:
        return None
    return best if higher_is_better else -best
