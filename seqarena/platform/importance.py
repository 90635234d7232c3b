"""Hyperparameter importance of one arm, from the trials it already ran (`seqarena importance`, trials page).

The arm's ranked search trials (role `search`, status completed or stopped, with a test metric) are
added to a fresh in-memory Optuna study (`optuna.create_study` + `add_trials`), each as a finished
trial with its recorded hyperparameters and its test metric (the leaderboard's metric), and Optuna's
fANOVA evaluator (`optuna.importance.FanovaImportanceEvaluator`, seeded, `TREES` trees; Hutter, Hoos & Leyton-Brown
2014, "An Efficient Approach for Assessing Hyperparameter Importance", ICML) gives each searched
hyperparameter its share of the metric's variance (normalised to sum to 1).

The distributions are the ones the search sampled from: the arm's searched space of the search's
stored spec (`seqarena.platform.domains.search_space`). When that spec no longer parses, or a recorded
value lies outside its space, they are read off the recorded values instead (choices for strings and
booleans, an integer or float interval from the smallest to the largest value, log-scaled when the
values are positive and span more than a factor 10). Only hyperparameters that take more than one
value among the trials are evaluated. The arm's own Optuna study (under the search's Tune folder,
`platform/arm_study.py`) is not read: its objective is the signed validation metric and it lives on
the driver's disk, whereas the database holds every recorded trial wherever it ran.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine

from seqarena.errors import BadInput, one_of
from seqarena.platform import searches
from seqarena.platform.leaderboard import check_task_models, leaderboard, trials_frame
from seqarena.platform.schema import RANKED_STATUSES

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

MIN_TRIALS = 2
TREES = 32
"""Trees of fANOVA's random forest (Optuna's default is 64): the evaluation's cost grows with them, ~1 s for
100 trials at 32 on a busy 2-core machine, within the trials page's budget; the shares move by a few hundredths."""
LOG_SPAN = 10.0
"""Inferred intervals are log-scaled when their positive values span more than this factor."""


@dataclass(frozen=True)
class ParamImportance:
    name: str
    importance: float
    """share of the metric's variance (fANOVA), the shares of one arm summing to 1"""


@dataclass(frozen=True)
class ArmImportance:
    """The importances of one arm's searched hyperparameters, most important first."""

    search_id: str
    key: str
    metric_name: str
    n_trials: int
    """ranked search trials evaluated"""
    params: tuple[ParamImportance, ...]
    distributions: str
    """where the distributions came from: "spec" or "recorded values\""""


def find_arm(engine: Engine, task: str, seq_len: int, model: str, search_id: str | None = None) -> tuple[str, str]:
    """(search id, arm key) of the arm the leaderboard reports for (task, seq_len, model)."""
    check_task_models(engine, task, (model,), field="model")
    rows = leaderboard(engine, task=task, search_id=search_id, models=(model,))
    for row in rows:
        if row.seq_len == seq_len:
            return row.search_id, row.key
    raise BadInput("seq_len", seq_len, one_of(str(row.seq_len) for row in rows))


def arm_importance(engine: Engine, search_id: str, key: str, *, seed: int = 0, trees: int = TREES) -> ArmImportance:
    """fANOVA importances of the arm's varied hyperparameters (see the module docstring)."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # as the search driver does: no note per study
    trials = _ranked_search_trials(engine, search_id, key)
    hparams = pd.json_normalize(trials["hparams"].tolist()) if len(trials) else pd.DataFrame()
    varied = hparams[[name for name in hparams.columns if hparams[name].astype(str).nunique() > 1]]
    if len(trials) < MIN_TRIALS or varied.empty or trials["metric"].nunique() < 2:
        raise BadInput("arm", key, f"an arm with at least {MIN_TRIALS} ranked search trials that differ in a "
                                   f"hyperparameter and in the metric (this one has {len(trials)} ranked, "
                                   f"{trials['metric'].nunique()} distinct metric values)")
    study, source = _study(engine, search_id, key, varied, trials)
    found = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(n_trees=trees, seed=seed), normalize=True)
    params = tuple(ParamImportance(name, float(value)) for name, value in found.items())
    return ArmImportance(search_id=search_id, key=key, metric_name=str(trials["metric_name"].iloc[0]),
                         n_trials=len(trials), params=params, distributions=source)


def _study(engine: Engine, search_id: str, key: str, varied: pd.DataFrame, trials: pd.DataFrame) -> tuple[Any, str]:
    """An in-memory study of the trials, on the spec's distributions when they hold every recorded value
    (Optuna's `create_trial` refuses a value outside its distribution), else on distributions read off the values."""
    import optuna

    spec_space = _spec_space(engine, search_id, key)
    inferred = {name: _inferred(varied[name]) for name in varied.columns}
    candidates = [(spec_space, "spec")] if spec_space is not None and set(varied.columns) <= set(spec_space) else []
    for space, source in [*candidates, (inferred, "recorded values")]:
        try:
            finished = [optuna.trial.create_trial(params={name: _plain(row[name]) for name in varied.columns},
                                                  distributions={name: space[name] for name in varied.columns},
                                                  value=float(metric))
                        for (_, row), metric in zip(varied.iterrows(), trials["metric"], strict=True)]
        except ValueError:
            continue
        study = optuna.create_study(direction="maximize" if bool(trials["higher_is_better"].iloc[0]) else "minimize")
        study.add_trials(finished)
        return study, source
    raise BadInput("arm", key, "recorded hyperparameters Optuna can read back (numbers, strings or booleans)")


def _ranked_search_trials(engine: Engine, search_id: str, key: str) -> pd.DataFrame:
    trials = trials_frame(engine, search_id, arm_key=key, role="search")
    if trials.empty and searches.get_search(engine, search_id) is None:
        raise BadInput("search", search_id, "an existing search id")
    ranked = trials[trials["status"].isin(RANKED_STATUSES) & trials["metric"].notna()]
    return ranked.reset_index(drop=True)


def _spec_space(engine: Engine, search_id: str, key: str) -> dict[str, BaseDistribution] | None:
    from seqarena.platform.domains import search_space
    from seqarena.platform.spec import load_spec

    search = searches.get_search(engine, search_id)
    try:
        spec = load_spec(search.spec_yaml)
        arm = next((arm for arm in spec.arms() if arm.key == key), None)
        return None if arm is None else search_space(spec, arm)
    except BadInput:
        return None


def _inferred(values: pd.Series) -> BaseDistribution:
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    plain = [_plain(value) for value in values]
    if any(isinstance(value, bool | str) or value is None for value in plain):
        return CategoricalDistribution(sorted(set(plain), key=str))
    low, high = min(plain), max(plain)
    log = low > 0 and high / low > LOG_SPAN
    if all(isinstance(value, int) for value in plain):
        return IntDistribution(int(low), int(high), log=log)
    return FloatDistribution(float(low), float(high), log=log)


def _plain(value: Any) -> Any:
    """A numpy scalar as its Python value (Optuna checks choices by equality and type)."""
    return value.item() if hasattr(value, "item") else value
