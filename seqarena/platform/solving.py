"""How often a model solves a task, how soon, and how far in T it reaches (issue 17 §1 and §3).

What solves a task is said once, by the task (`Task.solved_when`, `seqarena/tasks/base.py`; the choice
per task and why: docs/reference/tasks.md §13). From it, per arm, over the runs of
the arm's winning configuration (its search trial and its repeats, each another seed; every run counts,
a diverged or out-of-memory seed as not solved):

- `solved` of `seeds` (k of n): the runs whose test metric (at their best validation step) solves the task;
- steps to solve: per solved seed, the first evaluation at which its *validation* metric solved the task
  (read from the curve the trial recorded, `Trial.curve`); their median and range. A solved seed
  recorded before curves were kept has no step and is left out of the median (`steps` holds fewer
  values than `solved`);
- `budget`: the most steps any of the runs trained, so that an arm no seed solved reads
  "0 / n within N steps", never a bare number that looks like a result.

Per (task, model) across T (`reach`): the longest T at which it solved at least one seed (or the share
`fraction` of its seeds), and the area under its metric-vs-T curve, taken over log10 T and divided by
the span of log10 T (the curve's mean height: one T gives its metric). A T whose arm has no result (every
trial out of memory, diverged or failed) counts in the area at the trivial baseline, the metric of a
model that learnt nothing, and is listed as a marked entry ("oom at T = 5000"), never dropped.
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from seqarena import tasks
from seqarena.errors import BadInput
from seqarena.tasks.base import SolvedWhen

if TYPE_CHECKING:
    from seqarena.platform.leaderboard import ArmBest


@dataclass(frozen=True)
class SeedRun:
    """One run of an arm's winning configuration, as the database keeps it."""

    seed: int
    status: str
    metric: float | None
    steps: int
    curve: Sequence[Mapping[str, Any]] | None


@dataclass(frozen=True)
class SolveStats:
    """Solved k of n seeds and the steps the solved ones took (see the module docstring)."""

    solved: int
    seeds: int
    budget: int
    """the most steps any run of the configuration trained"""
    threshold: float
    rule: str
    """the threshold as text, e.g. "mse < 0.01667" """
    steps: tuple[int, ...]
    """per solved seed with a recorded curve: the first evaluation step its validation metric solved, sorted"""

    @property
    def steps_median(self) -> float | None:
        return statistics.median(self.steps) if self.steps else None

    @property
    def steps_range(self) -> tuple[int, int] | None:
        return (self.steps[0], self.steps[-1]) if self.steps else None

    def cell(self) -> str:
        """E.g. "3 / 4 in 1900 (1800–2400) steps", "1 / 3 in 700 steps", "0 / 3 within 3000 steps"."""
        if self.solved == 0:
            return f"0 / {self.seeds} within {self.budget} steps"
        head = f"{self.solved} / {self.seeds}"
        if not self.steps:
            return head
        low, high = self.steps_range or (0, 0)
        spread = "" if low == high else f" ({low}–{high})"
        return f"{head} in {self.steps_median:g}{spread} steps"


def solves(task: str, metrics: Sequence[float | None], baseline: float, higher_is_better: bool) -> list[bool]:
    """Whether each test metric solves `task` (its `solved_when`; every one True for a task that is not registered
    and so declares no rule): the rule `solve_stats` counts seeds by, applied to single trials (the Pareto page)."""
    if task not in tasks.names():
        return [True] * len(metrics)
    criterion = tasks.task_class(task).solved_when
    return [criterion.met(metric, baseline, higher_is_better) for metric in metrics]


def steps_to_solve(curve: Sequence[Mapping[str, Any]] | None, metric_name: str, criterion: SolvedWhen,
                   baseline: float, higher_is_better: bool) -> int | None:
    """The first evaluation step at which `val_<metric_name>` of `curve` solved the task; None if none did."""
    for point in curve or ():
        if criterion.met(point.get(f"val_{metric_name}"), baseline, higher_is_better):
            return int(point["step"])
    return None


def solve_stats(runs: Sequence[SeedRun], criterion: SolvedWhen, metric_name: str, baseline: float,
                higher_is_better: bool) -> SolveStats:
    """k of n, the budget and the steps to solve of one arm's winning configuration."""
    solved = [run for run in runs if criterion.met(run.metric, baseline, higher_is_better)]
    steps = (steps_to_solve(run.curve, metric_name, criterion, baseline, higher_is_better) for run in solved)
    return SolveStats(
        solved=len(solved), seeds=len(runs), budget=max((run.steps for run in runs), default=0),
        threshold=criterion.threshold(baseline),
        rule=f"{metric_name} {criterion.describe(baseline, higher_is_better)}",
        steps=tuple(sorted(step for step in steps if step is not None)))


# ------------------------------------------------------------------------------------------ across T

@dataclass(frozen=True)
class Reach:
    """How far in T one model reaches on one task (see the module docstring)."""

    task: str
    model: str
    seq_lens: tuple[int, ...]
    """every T of the model's arms on the board"""
    max_t_solved: int | None
    """the longest T at which it solved enough seeds; None: at none"""
    auc: float | None
    """area under metric vs log10 T over the span of log10 T; None: no T with a result"""
    marked: tuple[str, ...]
    """the arms without a result and why, e.g. "oom at T = 5000" """


def enough(stats: SolveStats | None, fraction: float) -> bool:
    """Whether an arm solved at least one seed and at least `fraction` of its seeds."""
    if stats is None or stats.solved == 0:
        return False
    return stats.solved >= fraction * stats.seeds


def spec_fraction(spec_yaml: str | None) -> float:
    """The `solved_fraction` a search's stored spec sets (0 for specs that predate it, or none)."""
    data = yaml.safe_load(spec_yaml) if spec_yaml else None
    value = data.get("solved_fraction", 0.0) if isinstance(data, dict) else 0.0
    return float(value or 0.0)


def reach(rows: Sequence[ArmBest], fraction: float = 0.0) -> list[Reach]:
    """Per (task, model) of a leaderboard (one row per T, as `leaderboard` gives): max T solved
    (`enough` with `fraction`), the area under its metric-vs-T curve and its marked arms."""
    if not 0.0 <= fraction <= 1.0:
        raise BadInput("solved_fraction", fraction, "a number from 0 to 1")
    groups: dict[tuple[str, str], list[ArmBest]] = {}
    for row in rows:
        groups.setdefault((row.task, row.model), []).append(row)
    return [_reach(task, model, sorted(arms, key=lambda arm: arm.seq_len), fraction)
            for (task, model), arms in sorted(groups.items())]


def _reach(task: str, model: str, arms: list[ArmBest], fraction: float) -> Reach:
    solved = [arm.seq_len for arm in arms if enough(arm.solve, fraction)]
    marked = tuple(f"{arm.failure} at T = {arm.seq_len}" for arm in arms if arm.mean is None and arm.failure)
    return Reach(task=task, model=model, seq_lens=tuple(arm.seq_len for arm in arms),
                 max_t_solved=max(solved, default=None), auc=area_over_log_t(arms), marked=marked)


def area_over_log_t(arms: Sequence[ArmBest]) -> float | None:
    """The trapezoid area of the mean metric against log10 T, divided by the span of log10 T.

    An arm without a mean counts at its trivial baseline when it ran and failed (`failure` set) and
    is left out when it never ran; None when no arm has a mean.
    """
    points = [(math.log10(arm.seq_len), arm.mean if arm.mean is not None else arm.baseline)
              for arm in sorted(arms, key=lambda arm: arm.seq_len) if arm.mean is not None or arm.failure]
    if not any(arm.mean is not None for arm in arms):
        return None
    if len(points) == 1:
        return points[0][1]
    area = sum((x1 - x0) * (y0 + y1) / 2 for (x0, y0), (x1, y1) in itertools.pairwise(points))
    return area / (points[-1][0] - points[0][0])
