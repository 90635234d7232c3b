"""Two models at the same task and T, seed by seed (`seqarena compare`, the dashboard's compare section).

Each model's arm at a T is the one the leaderboard reports (`seqarena.platform.leaderboard`: a given
search's arm, or else the latest search with a ranked trial for that arm key), and its runs are the
runs of that arm's best configuration (the best search trial and its `repeat` trials, one per seed:
`ArmBest.runs`). Per T the comparison gives each model's mean over its runs with a percentile
bootstrap interval, and the paired difference a − b over the seeds both ran, with its bootstrap
interval and the sign-flip p-value (`seqarena.platform.statistics`); `better` names a model only when
that difference is significant at the interval's level. Same seed means same training
data for a generated task (the trial seed draws it) and the same validation/test sets (fixed by the
task's `data_seed`) when both arms follow one data protocol; `same_protocol` says whether they did.
A seed that occurs twice in one arm's runs is paired through its first run (lowest trial id).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine

from seqarena.errors import BadInput, one_of
from seqarena.platform.leaderboard import ArmBest, check_task_models, leaderboard
from seqarena.platform.statistics import (
    LEVEL,
    RESAMPLES,
    SEED,
    Interval,
    Paired,
    bootstrap_mean,
    check_settings,
    interval_text,
    level_text,
    paired_difference,
)

MODELS_FORM = "two different model names separated by a comma, e.g. cornn,lstm"


@dataclass(frozen=True)
class Side:
    """One model's arm at a T: where it comes from and its mean over the runs of its best configuration."""

    model: str
    search_id: str | None
    protocol: str | None
    interval: Interval | None
    """None: no arm of this model at this T, or one without a ranked trial"""


@dataclass(frozen=True)
class Comparison:
    """Models a and b at one (task, T): each one's interval and their paired difference a − b."""

    task: str
    seq_len: int
    metric_name: str
    higher_is_better: bool
    a: Side
    b: Side
    paired: Paired | None
    """None: the two arms share no seed (or one has no runs)"""
    same_protocol: bool


@dataclass(frozen=True)
class Settings:
    """How the intervals and p-values are computed."""

    resamples: int = RESAMPLES
    level: float = LEVEL
    seed: int = SEED


def parse_models(text: str | Sequence[str]) -> tuple[str, str]:
    """`"cornn,lstm"` (or a pair) -> ("cornn", "lstm"); `BadInput` unless two different names."""
    names = [name.strip() for name in (text.split(",") if isinstance(text, str) else text)]
    if len(names) != 2 or not all(names) or names[0] == names[1]:
        raise BadInput("models", text, MODELS_FORM)
    return names[0], names[1]


def compare(engine: Engine, task: str, models: str | Sequence[str], *, seq_len: int | None = None,
            search_id: str | None = None, settings: Settings = Settings()) -> list[Comparison]:
    """Per T (ascending) at which either model has an arm: the two models side by side and paired."""
    a, b = parse_models(models)
    check_settings(settings.resamples, settings.level)
    check_task_models(engine, task, (a, b))
    rows = leaderboard(engine, task=task, seq_len=seq_len, search_id=search_id, models=(a, b))
    if seq_len is not None and not rows:
        recorded = {row.seq_len for row in leaderboard(engine, task=task, search_id=search_id, models=(a, b))}
        raise BadInput("seq_len", seq_len, one_of(str(t) for t in sorted(recorded)) if recorded
                       else f"none: {a} and {b} have no arm at {task}")
    return pair(rows, a, b, settings)


def pair(rows: Sequence[ArmBest], a: str, b: str, settings: Settings = Settings()) -> list[Comparison]:
    """Per T (ascending) of one task at which `a` or `b` has a row among leaderboard `rows`: the two paired."""
    check_settings(settings.resamples, settings.level)
    by_arm = {(row.seq_len, row.model): row for row in rows if row.model in (a, b)}
    return [_compare_at(by_arm.get((t, a)), by_arm.get((t, b)), a, b, settings)
            for t in sorted({seq_len for seq_len, _ in by_arm})]


def _compare_at(row_a: ArmBest | None, row_b: ArmBest | None, a: str, b: str, settings: Settings) -> Comparison:
    some = row_a or row_b
    assert some is not None  # a T is listed because one of the two has an arm there
    paired = None
    if row_a is not None and row_b is not None:
        paired = paired_difference(_by_seed(row_a), _by_seed(row_b), resamples=settings.resamples,
                                   level=settings.level, seed=settings.seed)
    same = row_a is not None and row_b is not None and row_a.protocol == row_b.protocol
    return Comparison(task=some.task, seq_len=some.seq_len, metric_name=some.metric_name,
                      higher_is_better=some.higher_is_better, a=_side(row_a, a, settings), b=_side(row_b, b, settings),
                      paired=paired, same_protocol=same)


def _by_seed(row: ArmBest) -> dict[int, float]:
    chosen: dict[int, float] = {}
    for run in sorted(row.runs, key=lambda run: run.trial_id):
        chosen.setdefault(run.seed, run.metric)
    return chosen


def _side(row: ArmBest | None, model: str, settings: Settings) -> Side:
    if row is None:
        return Side(model=model, search_id=None, protocol=None, interval=None)
    interval = bootstrap_mean([run.metric for run in row.runs], resamples=settings.resamples, level=settings.level,
                              seed=settings.seed) if row.runs else None
    return Side(model=model, search_id=row.search_id, protocol=row.protocol, interval=interval)


def better(comparison: Comparison) -> str | None:
    """The model whose mean is better by the task's direction when the difference is significant at the
    interval's level (p < 1 − level, and the interval excludes 0); else None. With n shared seeds the exact
    p is at least 2 / 2^n, so at 95 % this takes 6 seeds or more."""
    paired = comparison.paired
    if paired is None or paired.p_value >= 1 - paired.difference.level:
        return None
    if paired.difference.low <= 0 <= paired.difference.high:
        return None
    a_higher = paired.difference.low > 0
    return comparison.a.model if a_higher == comparison.higher_is_better else comparison.b.model


def note(comparison: Comparison) -> str:
    """Why a T has no paired result, or that the two arms followed different data protocols; "" otherwise."""
    for side in (comparison.a, comparison.b):
        if side.interval is None:
            return f"no ranked run of {side.model}"
    if comparison.paired is None:
        return "no shared seed"
    return "" if comparison.same_protocol else "different data protocols: same seeds, not the same data"


def summary_frame(comparisons: Sequence[Comparison]) -> pd.DataFrame:
    """One row of text per T, as the CLI and the dashboard print it: T, each model's `mean [low, high] n = k`,
    the paired difference the same way, p (marked "sampled" beyond the exact limit), the better model, the note."""
    if not comparisons:
        return pd.DataFrame(columns=["T", "a", "b", "a − b (paired)", "p", "better", "note"])
    a, b = comparisons[0].a.model, comparisons[0].b.model
    return pd.DataFrame([{
        "T": each.seq_len, a: interval_text(each.a.interval, compact=True),
        b: interval_text(each.b.interval, compact=True),
        f"{a} − {b} (paired)": interval_text(None if each.paired is None else each.paired.difference, compact=True),
        "p": _p_text(each.paired), "better": better(each) or "—", "note": note(each)} for each in comparisons])


def _p_text(paired: Paired | None) -> str:
    if paired is None:
        return "—"
    return f"{paired.p_value:.3g}" + ("" if paired.exact else " (sampled)")


def title(comparisons: Sequence[Comparison], settings: Settings) -> str:
    """What the numbers of `summary_frame` are (metric, direction, level, resamples, test)."""
    first = comparisons[0]
    direction = "higher is better" if first.higher_is_better else "lower is better"
    return (f"{first.task}: test {first.metric_name} ({direction}), mean [{level_text(settings.level)} percentile "
            f"bootstrap interval, {settings.resamples} resamples] over n seeds; p: paired sign-flip test over the "
            f"seeds both ran")


def to_json(comparisons: Sequence[Comparison]) -> list[dict[str, Any]]:
    """The comparisons as JSON-ready dicts (field names as in `Comparison`), with `better`."""
    return [{**asdict(each), "better": better(each)} for each in comparisons]
