"""Campaigns that grow: extend a finished search, and run its failed cells again.

`extend_search(search, spec)`: a search takes more trials, another T or another model. The new spec
must agree with the search's on what makes trials comparable (`spec.COMPARABLE_FIELDS`: task,
protocol, task options, budget, parameter budget), or it is refused in one line naming the field.
Each arm of the new spec gets `num_samples` search trials in all: those the search recorded count,
so only the missing ones run. Its Optuna study is a new study of this round, warm-started with the
recorded trials (`ArmStudy.warm`: `Study.add_trials` of `optuna.trial.create_trial`), so the sampler
learns from them and nothing is run or recorded twice; the repeats recorded of the best
configuration count as well. A grid search runs the points of its grid that no recorded trial ran,
queued in the warm-started study (`Study.enqueue_trial`). Arms the search lacked are added to it,
and its stored spec becomes the union (the models and lengths of both, the rest from the new spec);
the new spec is kept as an artifact of the MLflow parent run (`extension-<n>.yaml`).

`retry_search(search)`: reruns only the trials whose status is `failed` or `oom`
(`schema.RETRIED_STATUSES`), each with every hyperparameter and the seed it ran with. A rerun's
record replaces the failed one (`searches.replace_trial`: the cell is recorded once, with its
configuration key), and its MLflow run names the attempt it reran (`tracking.RETRY_TAG`); the
failed attempt's run stays in MLflow.

Each round is its own Tune experiment, `<search id>-x<n>` (extend) or `<search id>-r<n>` (retry),
recorded under the search and its MLflow parent run. A round stopped half-way is finished by running
it again: what it recorded counts.
"""

from __future__ import annotations

import itertools
from typing import Any

from seqarena.errors import BadInput
from seqarena.platform import database, searches, storage
from seqarena.platform.arms import ArmPlan, ArmPrior, Rerun
from seqarena.platform.leaderboard import leaderboard
from seqarena.platform.recorder import RecorderTarget, SearchRecorder
from seqarena.platform.schema import RANKED_STATUSES, Search
from seqarena.platform.search import (
    SearchOutcome,
    StopReason,
    arm_plans,
    arm_rows,
    drive,
    make_tuner,
    progress_of,
    quiet_libraries,
)
from seqarena.platform.spec import Spec, check_extends, load_spec, parse_spec
from seqarena.platform.tracking import Tracker
from seqarena.workers.tune_trainable import signed


def extend_search(id_or_name: str, spec: Spec, stop_reason: StopReason | None = None) -> SearchOutcome:
    """Run the trials `spec` adds to a finished search (see the module docstring)."""
    quiet_libraries()
    storage.storage().check()
    engine = database.get_engine()
    row = _finished(searches.find_search(engine, id_or_name))
    old = load_spec(row.spec_yaml)
    check_extends(old, spec, row.id)
    recorded = searches.recorded_trials(engine, row.id)
    plans = arm_plans(spec)
    for plan in plans:
        plan.prior = arm_prior(plan, [trial for trial in recorded if trial.arm == plan.key])
        plan.n_search = len(plan.prior.queued) if plan.grid else max(plan.n_search - plan.prior.searched, 0)
    searches.add_arms(engine, row.id, arm_rows(plans))
    grown = merged(old, spec)
    searches.set_search_spec(engine, row.id, grown.to_yaml(), grown.spec_hash())
    name = round_name(row.id, "x")
    Tracker().log_text(row.mlflow_parent_run_id or "", spec.to_yaml(), f"extension-{name.rsplit('-x', 1)[1]}.yaml")
    return _run_round(row, spec, plans, name, stop_reason)


def retry_search(id_or_name: str, stop_reason: StopReason | None = None) -> SearchOutcome:
    """Rerun the failed and out-of-memory trials of a finished search (see the module docstring)."""
    quiet_libraries()
    storage.storage().check()
    engine = database.get_engine()
    row = _finished(searches.find_search(engine, id_or_name))
    spec = load_spec(row.spec_yaml)
    recorded = searches.recorded_trials(engine, row.id)
    plans = []
    for plan in arm_plans(spec):
        trials = [trial for trial in recorded if trial.arm == plan.key]
        plan.reruns = [Rerun(trial.role, trial.hparams, trial.seed, trial.trial_id)  # type: ignore[arg-type]
                       for trial in trials if trial.retried]
        if plan.reruns:
            plan.prior = arm_prior(plan, trials)
            plan.n_search, plan.repeats, plan.below = 0, 1, None
            plans.append(plan)
    return _run_round(row, spec, plans, round_name(row.id, "r"), stop_reason)


def arm_prior(plan: ArmPlan, trials: list[searches.RecordedTrial]) -> ArmPrior:
    """What arm `plan` recorded (`trials`, all of this arm): its search trials' count, their searched values
    and objectives for the study (those run with other fixed values are left out: another setting), and
    the best completed configuration with its recorded repeats."""
    searched = [trial for trial in trials if trial.role == "search"]
    warm, best, best_key = [], None, None
    for trial in searched:
        if any(trial.hparams.get(name) != value for name, value in plan.fixed.items()):
            continue
        values = {name: trial.hparams[name] for name in plan.space if name in trial.hparams}
        ranked = trial.status in RANKED_STATUSES
        objective = signed(trial.best_val_metric, plan.higher_is_better) if ranked else None
        warm.append((values, objective))
        if trial.status != "completed" or objective is None or (best is not None and objective <= best[0]):
            continue
        if searches.config_key({**plan.fixed, **values}) == trial.config_key:  # the configuration it ran
            best, best_key = (objective, values), trial.config_key
    repeats = sum(1 for trial in trials if trial.role == "repeat" and trial.config_key == best_key)
    queued = [point for point in grid_points(plan.grid) if point not in [values for values, _ in warm]]
    return ArmPrior(searched=len(searched), warm=warm, queued=queued, best=best, best_key=best_key,
                    best_repeats=repeats)


def grid_points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Every point of a grid (name -> values), in order; none for an empty grid (not a grid search)."""
    if not grid:
        return []
    return [dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())]


def merged(old: Spec, new: Spec) -> Spec:
    """The spec of a search `old` extended by `new`: the models and lengths of both (the old ones first),
    the rest from `new`, the search's name kept."""
    data = new.model_dump(mode="json")
    data.update(name=old.name, models=[*old.models, *(m for m in new.models if m not in old.models)],
                seq_lens=[*old.seq_lens, *(t for t in new.seq_lens if t not in old.seq_lens)])
    return parse_spec(data)


def round_name(search_id: str, kind: str) -> str:
    """`<search id>-<kind><n>`: the Tune experiment of the search's next round of this kind."""
    done = len(storage.storage().names(f"{search_id}-{kind}"))
    return f"{search_id}-{kind}{done + 1}"


def _finished(row: Search) -> Search:
    if row.status == "running":
        raise BadInput("search", row.id, "a search that is not running (resume a search whose driver stopped "
                       "with `seqarena run --resume`)")
    return row


def _run_round(row: Search, spec: Spec, plans: list[ArmPlan], name: str,
               stop_reason: StopReason | None) -> SearchOutcome:
    """Run one round of the search `row` (its Tune experiment `name`) and close its records; a round with
    nothing to run starts nothing."""
    tracker = Tracker()
    if not any(plan.expected for plan in plans):
        board = leaderboard(database.get_engine(), search_id=row.id)
        return SearchOutcome(row.id, row.mlflow_parent_run_id or "", tracker.uri, board,
                             skipped=searches.skipped_arms(database.get_engine(), row.id))
    target = RecorderTarget(row.id, row.mlflow_experiment_id, row.mlflow_parent_run_id or "")
    tracker.reopen(target.parent_run_id)
    searches.set_search_status(database.get_engine(), row.id, "running")
    recorder = SearchRecorder(target, progress_of(spec, plans))
    return drive(lambda: make_tuner(spec, plans, row.id, recorder, name), target, tracker, plans,
                 spec.resources.cpus_per_trial, stop_reason)
