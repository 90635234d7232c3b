"""Run a search spec on Ray Tune.

`run_search(spec)` records the search (a database row with its arms, an MLflow parent run with the
spec), then runs one Tune experiment over every arm: `ArmSearcher` (Optuna per arm), `ArmScheduler`
(ASHA per arm), the trainable `run_tune_trial`, `SearchRecorder` writing MLflow and the database,
failures retried by `FailureConfig`. Ray is the cluster at `RAY_ADDRESS`, or a local Ray with this
machine's resources. The experiment and its checkpoints go to the storage of `SEQARENA_STORAGE`
(`seqarena.platform.storage`: a folder, or an S3-compatible bucket through Tune's storage
filesystem), checked writable before anything starts; the arms' Optuna studies go to the platform
database (`arm_study.study_storage`). `resume_search(id or name)` restores the Tune experiment of a
search whose driver died, from the storage it recorded: finished trials are kept, running ones
continue from their last checkpoint.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import ray
from ray import tune

from seqarena import tasks
from seqarena.platform import database, reachable, searches, storage, tune_adapter
from seqarena.platform.arms import ArmPlan, ArmScheduler, ArmSearcher, ladder_skips
from seqarena.platform.capacity import check_placeable, ray_cluster
from seqarena.platform.domains import fixed_hparams, grid, search_space
from seqarena.platform.leaderboard import ArmBest, leaderboard
from seqarena.platform.placement_watch import PlacementWatch
from seqarena.platform.progress import ArmCounts, SearchProgress
from seqarena.platform.recorder import RecorderTarget, SearchRecorder
from seqarena.platform.schema import Search
from seqarena.platform.spec import Arm, Resources, Spec, load_spec
from seqarena.platform.tracking import Tracker
from seqarena.workers.config import SearchTrial, TrialConfig, TrialResources
from seqarena.workers.tune_trainable import one_line, run_tune_trial

log = logging.getLogger(__name__)
#: The spec `seqarena demo` runs.
DEMO_SPEC = Path(__file__).with_name("demo.yaml")
#: Object store of a local Ray started by seqarena (trials exchange only small results).
LOCAL_OBJECT_STORE_BYTES = 256 * 1024 * 1024


@dataclass
class SearchOutcome:
    """A search that ended: its id, the MLflow parent run, the best trial per arm, why it stopped
    early (None when it ran to the end), and the arms a T-ladder never reached."""

    search_id: str
    parent_run_id: str
    tracking_uri: str
    leaderboard: list[ArmBest]
    stopped: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    """arms a T-ladder never reached: key -> why"""


#: The stop reason of a search whose worker lost its job (taken over, or its lease not renewed in time).
LOST = "lost"
#: Called with (search id, MLflow parent run id) once a new search is recorded.
OnRegistered = Callable[[str, str], None]
#: Returns why the search was asked to stop early (cancelled, interrupted), or None.
StopReason = Callable[[], str | None]


def arm_plans(spec: Spec) -> list[ArmPlan]:
    """One plan per arm: the trial template (with the options and the name of the task's data protocol the
    arm follows), fixed values, search space and trial counts."""
    built: dict[tuple[int, str], tasks.Task] = {}
    plans = []
    for arm in spec.arms():
        protocol = spec.task_protocol(arm.model)
        if (arm.seq_len, protocol.name) not in built:
            built[arm.seq_len, protocol.name] = tasks.build(spec.task, arm.seq_len, **protocol.options)
        task = built[arm.seq_len, protocol.name]
        template = TrialConfig(model=arm.model, task=arm.task, seq_len=arm.seq_len,
                               task_options=dict(protocol.options), protocol=protocol.name,
                               steps=spec.budget.max_steps, eval_every=spec.budget.eval_every,
                               eval_lengths=spec.other_lengths(arm))
        space = search_space(spec, arm)
        plans.append(ArmPlan(
            key=arm.key, template=template, fixed=fixed_hparams(spec, arm), space=space,
            grid=grid(spec, arm) if spec.search.algorithm == "grid" else {},
            n_search=spec.searched_per_arm(arm.model), repeats=spec.repeats, top_k=spec.repeat_top_k,
            seed=spec.search.seed, metric_name=task.metric_name, higher_is_better=task.higher_is_better,
            baseline=task.baseline, resources=trial_resources(spec), below=_below(spec, arm),
        ))
    return plans


def _below(spec: Spec, arm: Arm) -> str | None:
    below = spec.below(arm)
    return below.key if below else None


def trial_resources(spec: Spec) -> TrialResources:
    """What each trial of `spec` reserves on the cluster."""
    return TrialResources(cpu=spec.resources.cpus_per_trial, gpu=spec.resources.gpus_per_trial)


def _with_resources(resources: TrialResources) -> Any:
    """The trainable with the resources every trial of the search reserves."""
    return tune.with_resources(run_tune_trial, resources.model_dump())


def quiet_libraries() -> None:
    """Keep Tune's and Optuna's own tables and notices off the terminal: progress is ours."""
    # Tune warns on every checkpoint-triggered snapshot when trials are short; the snapshots are wanted.
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the legacy reporter honours verbose=0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("ray.tune", "mlflow"):
        logging.getLogger(name).setLevel(logging.WARNING)


def ensure_ray() -> None:
    """Connect to the cluster at `RAY_ADDRESS`, or start a local Ray with this machine's CPUs; either
    way with the worker environment of `tune_adapter.worker_env`."""
    quiet_libraries()
    tune_adapter.keep_credentials_home()  # the S3 keys never travel in (and get logged with) a runtime env
    if ray.is_initialized():
        return
    runtime_env = {"env_vars": tune_adapter.worker_env()}
    if address := os.environ.get("RAY_ADDRESS"):
        reachable.check_ray_address(address)
        ray.init(log_to_driver=False, runtime_env=runtime_env)
        return
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=LOCAL_OBJECT_STORE_BYTES, runtime_env=runtime_env)


def make_tuner(spec: Spec, plans: list[ArmPlan], search_id: str, recorder: SearchRecorder,
           name: str | None = None) -> tune.Tuner:
    """The Tune experiment of a search (`name`: of one later round of it, `seqarena.platform.campaigns`;
    its Tune folder and its arms' Optuna studies are named after it)."""
    name = name or search_id
    searcher = ArmSearcher(plans, spec.search.algorithm, None, study_prefix=name,  # studies: the platform database
                           max_concurrent=spec.search.max_concurrent_trials)
    store = storage.storage()
    scheduler = ArmScheduler([plan.key for plan in plans], spec.budget.max_steps, spec.search.grace_period,
                             spec.search.reduction_factor, asha=spec.search.scheduler == "asha")
    return tune.Tuner(
        _with_resources(trial_resources(spec)),
        tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True,
                                    trial_name_creator=_trial_name, trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name=name, storage_path=store.root, storage_filesystem=store.filesystem(), verbose=0,
            callbacks=[recorder, PlacementWatch(spec.resources.cpus_per_trial, spec.resources.gpus_per_trial)],
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )


def _trial_name(trial: Any) -> str:
    return f"{SearchTrial.from_tune(trial.config).arm.replace('/', '_')}_{trial.trial_id}"


def progress_of(spec: Spec, plans: list[ArmPlan]) -> SearchProgress:
    arms = {plan.key: ArmCounts(total=plan.expected, metric_name=plan.metric_name,
                                higher_is_better=plan.higher_is_better) for plan in plans}
    return SearchProgress(arms, title=f"search {spec.name}")


def register_search(spec: Spec, tracker: Tracker, plans: list[ArmPlan]) -> RecorderTarget:
    """Write the search row (with its arms) and the MLflow parent run.

    Should MLflow fail after the row was written, the row is marked `failed` with the error, so
    no search is left looking alive.
    """
    engine = database.get_engine()
    arms = arm_rows(plans)
    experiment_id = tracker.experiment_id(f"seqarena/{spec.name}")
    search_id = searches.create_search(engine, name=spec.name, spec_yaml=spec.to_yaml(), spec_hash=spec.spec_hash(),
                                       mlflow_experiment_id=experiment_id, arms=arms)
    try:
        parent = tracker.start_parent(experiment_id, search_id, spec.name, spec.to_yaml())
    except Exception as error:
        searches.set_search_status(engine, search_id, "failed",
                                   error=f"MLflow: {type(error).__name__}: {one_line(error)}")
        raise
    searches.set_search_status(engine, search_id, "running", mlflow_parent_run_id=parent,
                               storage_path=storage.storage().location(search_id))
    return RecorderTarget(search_id, experiment_id, parent)


def arm_rows(plans: list[ArmPlan]) -> list[dict[str, Any]]:
    """The database rows of the plans' arms (`seqarena.platform.searches.create_search`)."""
    return [{"task": plan.template.task, "seq_len": plan.template.seq_len, "model": plan.template.model,
             "key": plan.key, "metric_name": plan.metric_name, "higher_is_better": plan.higher_is_better,
             "baseline": plan.baseline, "protocol": plan.template.protocol} for plan in plans]


def run_search(spec: Spec, on_registered: OnRegistered | None = None,
               stop_reason: StopReason | None = None) -> SearchOutcome:
    """Run `spec` on Ray Tune and return the leaderboard of its arms.

    `stop_reason` tells, after Tune returns, whether the run was stopped early on purpose (Tune's
    interrupt: the experiment state is saved and `resume_search` continues it).
    """
    quiet_libraries()
    reachable.check_environment()  # an unreachable Ray or MLflow: one line now, not retries for minutes
    check_storage()
    plans = arm_plans(spec)
    tracker = Tracker()
    target = register_search(spec, tracker, plans)
    if on_registered is not None:
        on_registered(target.search_id, target.parent_run_id)
    recorder = SearchRecorder(target, progress_of(spec, plans))
    return drive(lambda: make_tuner(spec, plans, target.search_id, recorder), target, tracker, plans,
                 spec.resources.cpus_per_trial, stop_reason, resources=spec.resources)


def resume_search(id_or_name: str, stop_reason: StopReason | None = None) -> SearchOutcome:
    """Continue a search whose driver stopped; finished trials are not run again."""
    quiet_libraries()
    reachable.check_environment()
    engine = database.get_engine()
    row = searches.find_search(engine, id_or_name)
    store, _ = recorded_storage(row)
    store.check()
    tracker = Tracker()
    target = RecorderTarget(row.id, row.mlflow_experiment_id, row.mlflow_parent_run_id)
    tracker.reopen(target.parent_run_id)
    searches.set_search_status(engine, row.id, "running")

    spec = load_spec(row.spec_yaml)

    def restore() -> tune.Tuner:
        store, name = recorded_storage(row)
        return tune.Tuner.restore(store.experiment(name), _with_resources(trial_resources(spec)),
                                  resume_unfinished=True, resume_errored=True,
                                  storage_filesystem=store.filesystem())

    return drive(restore, target, tracker, arm_plans(spec), spec.resources.cpus_per_trial, stop_reason,
                 resources=spec.resources)


def recorded_storage(row: Search) -> tuple[storage.Storage, str]:
    """The storage and the Tune experiment name of a search, from where it recorded them (the
    storage of now for a search that recorded none)."""
    if row.storage_path:
        return storage.at(row.storage_path)
    return storage.storage(), row.id


def check_storage() -> None:
    """Refuse, in one line, a storage (`SEQARENA_STORAGE`) that cannot be reached or written."""
    storage.storage().check()


def allow_concurrent_pending(cpus_per_trial: float) -> None:
    """Let Tune start as many trials at once as the cluster has CPUs for.

    With a search algorithm Tune keeps one trial pending at a time by default, so short trials
    never fill a cluster; `TUNE_MAX_PENDING_TRIALS_PG` lifts that to the cluster's trial slots.
    """
    slots = int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_trial, 1e-9))
    os.environ["TUNE_MAX_PENDING_TRIALS_PG"] = str(max(slots, 1))


def drive(make_tuner: Any, target: RecorderTarget, tracker: Tracker, plans: list[ArmPlan], cpus_per_trial: float,
          stop_reason: StopReason | None = None, resources: Resources | None = None) -> SearchOutcome:
    """Run the Tune experiment `make_tuner()` builds, then close the search's records: its status, its
    MLflow parent run, the arms a T-ladder never reached (`plans`), the best checkpoints. With
    `resources`, a search whose trial no node can hold ends `failed` with the reason before Tune starts.

    The database writes are retried through an outage (`database.retry`). A search stopped because its
    worker lost the job (`LOST`: taken over, or its lease could not be renewed) touches no record: the
    job's next holder owns them."""
    engine = database.get_engine()
    reason = stop_reason or (lambda: None)

    def lost() -> bool:
        return reason() == LOST

    try:
        ensure_ray()
        if resources is not None:  # no node can hold a trial: fail now, with the reason, instead of waiting
            check_placeable(resources, ray_cluster("the Ray cluster of this search"))
        allow_concurrent_pending(cpus_per_trial)
        results = make_tuner().fit()
    except BaseException as error:
        if not lost():
            status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
            _end_records(target, tracker, status, f"{type(error).__name__}: {one_line(error)}", lost)
        raise
    if lost():
        return SearchOutcome(target.search_id, target.parent_run_id, tracker.uri, [], stopped=LOST)
    board = database.retry(lambda: leaderboard(engine, search_id=target.search_id), "reading the leaderboard",
                           give_up=lost)
    if (stopped := reason()) is not None:
        _end_records(target, tracker, "interrupted", f"stopped early: {stopped}", lost)
        return SearchOutcome(target.search_id, target.parent_run_id, tracker.uri, board, stopped=stopped)
    skipped = database.retry(lambda: record_ladder_skips(target.search_id, plans), "recording skipped arms",
                             give_up=lost)
    _log_best_checkpoints(results, board, tracker)
    tracker.close_running(target.experiment_id, target.parent_run_id, "KILLED")
    tracker.finish(target.parent_run_id, "FINISHED")
    database.retry(lambda: searches.set_search_status(engine, target.search_id, "succeeded"),
                   "recording the search's end", give_up=lost)
    return SearchOutcome(target.search_id, target.parent_run_id, tracker.uri, board, skipped=skipped)


def record_ladder_skips(search_id: str, plans: list[ArmPlan]) -> dict[str, str]:
    """Mark in the database the arms of a T-ladder that have no trial because a lower rung did not solve
    (`seqarena.platform.arms.ladder_skips`, from each arm's recorded best validation metric), and unmark
    the arms of `plans` that ran; return the skipped ones."""
    engine = database.get_engine()
    recorded = searches.recorded_trials(engine, search_id)
    best = {plan.key: best_val(plan, [t for t in recorded if t.arm == plan.key]) for plan in plans}
    ran = {trial.arm for trial in recorded}
    skipped = {key: why for key, why in ladder_skips(plans, best).items() if key not in ran}
    for plan in plans:  # an arm skipped before that a later round ran is skipped no more
        searches.skip_arm(engine, search_id, plan.key, skipped.get(plan.key))
    return skipped


def best_val(plan: ArmPlan, trials: list[searches.RecordedTrial]) -> float | None:
    """The best validation metric of the arm's completed search trials (None: none completed)."""
    values = [t.best_val_metric for t in trials
              if t.role == "search" and t.status == "completed" and t.best_val_metric is not None]
    if not values:
        return None
    return max(values) if plan.higher_is_better else min(values)


def _end_records(target: RecorderTarget, tracker: Tracker, status: str, message: str,
                 give_up: Callable[[], bool] = lambda: False) -> None:
    """Close the MLflow runs and the search row of a search that did not run to its end."""
    tracker.close_running(target.experiment_id, target.parent_run_id, "KILLED")
    tracker.finish(target.parent_run_id, "KILLED" if status == "interrupted" else "FAILED")
    database.retry(lambda: searches.set_search_status(database.get_engine(), target.search_id, status, error=message),
                   "recording the search's end", give_up=give_up)


def _log_best_checkpoints(results: tune.ResultGrid, board: list[ArmBest], tracker: Tracker) -> None:
    """Upload each arm's best trial checkpoint as an artifact of that trial's MLflow run."""
    by_trial = {result.metrics.get("trial_id"): result for result in results if result.metrics}
    for row in board:
        result = by_trial.get(row.trial_id)
        if result is None or result.checkpoint is None or row.mlflow_run_id is None:
            continue
        with result.checkpoint.as_directory() as directory:
            tracker.log_artifacts(row.mlflow_run_id, Path(directory), "checkpoint")


__all__ = ["Arm", "SearchOutcome", "arm_plans", "resume_search", "run_search"]
