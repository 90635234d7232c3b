"""Leaderboards: the best trial per arm, computed by the database (one row per arm reaches Python).

Rules, per arm (one (task, seq_len, model) of one search):
- Ranked trials are role `search`, status `completed` or `stopped`, with a metric. The search's best is
  the one with the lowest validation metric (`best_val_metric`; or highest, when the arm's
  `higher_is_better`), the test metric standing in for rows recorded without one; ties go to the
  earlier recorded trial. Validation, not test, as the search's own choice of the configurations it
  repeats (`platform/arms.py`, the trial's objective): picking by test would choose on the test set.
  A configuration's place is the place of its best search trial.
- The runs of a configuration are its ranked trials of role `search` and `repeat` (same `config_key`:
  same hyperparameters, another seed). The search re-runs its top configurations on fresh seeds
  (`repeats`, `repeat_top_k` of the spec); the winner is the re-run configuration with the best mean
  validation metric over its runs (the same stand-in; equal means: the better place), or, when no
  configuration was re-run, the search's best. `search_place` is the winner's place in the search
  (1: the search's best also won the re-run), `rerun_configs` how many configurations were re-run.
  The columns of the best trial (`metric`, `trial_id`, `hparams`, ...) are those of the winner's best
  search trial.
- `mean` and `std` (sample standard deviation, ddof=1) are over the winner's `n` runs; `std` is None
  when n < 2, and with no repeats n == 1 and mean == metric.
- `solve`: solved k of n seeds and the steps to solve of the winner's runs, every status counted
  (`seqarena.platform.solving`; what solves the task is the task's `solved_when`); None for a task
  that is not registered or an arm without a ranked trial.
- `beats_baseline`: the mean beats the trivial baseline by more than 10 % of it in the arm's direction:
  `mean < baseline - 0.1 * |baseline|` (lower is better) or `mean > baseline + 0.1 * |baseline|`
  (higher is better); e.g. adding (MSE, baseline 0.167): below 0.1503. It is not "solved".
- `runs` are the winner's n runs (trial id, seed, metric; by seed) and `interval` their mean with its
  percentile bootstrap interval (`seqarena.platform.statistics.bootstrap_mean`: 95 %, 10 000 resamples,
  seed 0; None for an arm without a ranked trial).
- `failure`: for an arm without a ranked trial, how most of its trials ended (`oom`, `diverged`,
  `failed`, `stopped`); None otherwise. Such arms stay on the board, marked.
- `trials` counts every recorded trial of the arm, whatever its role or status.
- With `search_id` the rows are that search's arms. Without it, each arm key (e.g.
  "adding/T=100/lstm") shows the latest search that has a ranked trial for it, else the latest
  search that has the arm (its row then has metric None); `search_ids` limits the searches
  considered, `models` the models shown.
- `protocol` is the task's data protocol the arm's trials followed (`seqarena.tasks.protocols`): one for
  every arm of a comparison, each model its own paper's in a reproduction (`protocol: authors`); None
  for arms recorded before protocols existed.
Rows come sorted by task, seq_len, then best mean first.

Ranking the arms of one (task, seq_len) ("best at T"), one rule for the CLI and the dashboard
(`rank_key`, `places`, `best_at`): best mean first, arms without a ranked trial last; equal means
are placed by model name, then search id. Every place is held by one arm, so each (task, seq_len)
has exactly one best arm, the first row the CLI prints for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Engine, Select, and_, case, func, literal, select, tuple_
from sqlalchemy.sql.expression import ColumnElement

from seqarena import tasks
from seqarena.errors import BadInput, one_of
from seqarena.platform.schema import RANKED_STATUSES, ArmRow, Search, Trial
from seqarena.platform.solving import Reach, SeedRun, SolveStats, reach, solve_stats
from seqarena.platform.statistics import Interval, bootstrap_means

BEATS_MARGIN = 0.1
"""`beats_baseline`: the mean is better than the baseline by more than this fraction of it."""
FAILURES = ("oom", "diverged", "failed", "stopped")
"""How an arm's trials may end without a ranked result (`ArmBest.failure`)."""


@dataclass(frozen=True)
class Run:
    """One run of an arm's best configuration: the best search trial or one of its repeats."""

    trial_id: str
    seed: int
    metric: float


@dataclass(frozen=True)
class ArmBest:
    """The leaderboard row of one arm: its best trial and the runs of that trial's configuration."""

    search_id: str
    key: str
    task: str
    seq_len: int
    model: str
    metric_name: str
    higher_is_better: bool
    baseline: float
    metric: float | None
    """test metric of the best search trial (at its best validation step); None: no ranked trial"""
    mean: float | None
    std: float | None
    n: int
    """runs of the best configuration: the best trial plus its repeats"""
    trial_id: str | None
    hparams: dict[str, Any] | None
    mlflow_run_id: str | None
    params: int | None
    train_seq_per_s: float | None
    infer_seq_per_s: float | None
    peak_mem_mb: float | None
    trials: int
    beats_baseline: bool
    """the mean beats the trivial baseline by more than BEATS_MARGIN of it (not "solved": see `solve`)"""
    protocol: str | None = None
    """the task's data protocol the arm's trials followed; None: recorded before protocols existed"""
    runs: tuple[Run, ...] = ()
    """the n runs of the best configuration, by seed"""
    interval: Interval | None = None
    """their mean with its bootstrap interval (`seqarena.platform.statistics.bootstrap_mean`)"""
    solve: SolveStats | None = None
    """solved k of n seeds and steps to solve of the winner's runs; None: no ranked trial or unknown task"""
    search_place: int | None = None
    """the winner's place in the search (1: the search's best won the re-run of the top configurations)"""
    rerun_configs: int = 0
    """configurations of the arm re-run on fresh seeds (repeats)"""
    failure: str | None = None
    """without a ranked trial: how most of the arm's trials ended (FAILURES); None otherwise"""
    config_key: str | None = None
    """the winner's configuration (`searches.config_key`)"""
    stopped: int = 0
    """of `trials`, those the scheduler (ASHA) stopped early: ranked, with the metric of the step they stopped at"""


def beats_baseline(mean: float | None, baseline: float, higher_is_better: bool) -> bool:
    """Whether `mean` beats `baseline` by more than BEATS_MARGIN of it in the right direction."""
    if mean is None:
        return False
    margin = BEATS_MARGIN * abs(baseline)
    return mean > baseline + margin if higher_is_better else mean < baseline - margin


@dataclass(frozen=True)
class BoardFilter:
    """Which arms a leaderboard reports (None: no restriction)."""

    task: str | None = None
    seq_len: int | None = None
    search_id: str | None = None
    search_ids: tuple[str, ...] | None = None
    models: tuple[str, ...] | None = None


def leaderboard(engine: Engine, *, task: str | None = None, seq_len: int | None = None,
                search_id: str | None = None, search_ids: Sequence[str] | None = None,
                models: Sequence[str] | None = None) -> list[ArmBest]:
    """The best trial per arm (see the module docstring for the rules), filtered by task, seq_len,
    searches and models."""
    if search_id is not None:
        with engine.connect() as conn:
            if conn.scalar(select(Search.id).where(Search.id == search_id)) is None:
                raise BadInput("search", search_id, "an existing search id")
    where = BoardFilter(task, seq_len, search_id, None if search_ids is None else tuple(search_ids),
                        None if models is None else tuple(models))
    with engine.connect() as conn:
        rows = conn.execute(_board_query(where)).mappings().all()
        seeds = _winner_runs(conn, rows)
        runs = _runs_by_arm(conn.execute(_runs_query(where)).all())
    board = _with_runs([_arm_best(row, seeds.get(row["id"], [])) for row in rows], runs)
    return sorted(board, key=rank_key)


def _with_runs(board: list[ArmBest], runs: dict[tuple[str, str], tuple[Run, ...]]) -> list[ArmBest]:
    """The rows with their runs and, for those that have runs, their bootstrap intervals (computed together)."""
    own = [runs.get((row.search_id, row.key), ()) for row in board]
    intervals = iter(bootstrap_means([[run.metric for run in arm] for arm in own if arm]))
    return [replace(row, runs=arm, interval=next(intervals) if arm else None)
            for row, arm in zip(board, own, strict=True)]


def _runs_by_arm(rows: Sequence[Any]) -> dict[tuple[str, str], tuple[Run, ...]]:
    """(search id, arm key) -> its runs, from `_runs_query`'s rows (ordered by arm, then seed)."""
    by_arm: dict[tuple[str, str], list[Run]] = {}
    for search_id, key, trial_id, seed, metric in rows:
        by_arm.setdefault((search_id, key), []).append(Run(trial_id, int(seed), float(metric)))
    return {arm: tuple(runs) for arm, runs in by_arm.items()}


def _chosen_by(trial: Any) -> ColumnElement[float]:
    """What configurations are chosen by: the validation metric, the test metric for rows without one."""
    return func.coalesce(trial.best_val_metric, trial.metric)


def _signed(higher_is_better: Any, value: Any) -> ColumnElement[float]:
    """`value` oriented so that smaller is better: negated where the arm's metric is higher-is-better."""
    return case((higher_is_better, -value), else_=value)


def _ranked(trial: Any) -> ColumnElement[bool]:
    return and_(trial.status.in_(RANKED_STATUSES), trial.metric.is_not(None))


def _arms_query(where: BoardFilter) -> Select:
    """The arms to report, with their trial counts: a search's, or the latest search per arm key.

    The per-arm counts join the arms and take the same filters, so their cost follows the arms
    asked for, not the whole trials table.
    """
    search_id = where.search_id
    ends = [func.sum(case((Trial.status == status, 1), else_=0)).label(f"n_{status}") for status in FAILURES]
    per_arm = _filtered(select(Trial.arm_id, func.count().label("trials"),
                               func.sum(case((and_(Trial.role == "search", _ranked(Trial)), 1), else_=0))
                               .label("ranked"), *ends).join(ArmRow, ArmRow.id == Trial.arm_id), where)
    counts = per_arm.group_by(Trial.arm_id).subquery("counts")
    ranked = func.coalesce(counts.c.ranked, 0)
    latest = func.row_number().over(
        partition_by=ArmRow.key,
        order_by=(case((ranked > 0, 0), else_=1), Search.created_at.desc(), Search.id.desc()))
    query = (select(ArmRow.id, ArmRow.search_id, ArmRow.key, ArmRow.task, ArmRow.seq_len, ArmRow.model,
                    ArmRow.metric_name, ArmRow.higher_is_better, ArmRow.baseline, ArmRow.protocol,
                    func.coalesce(counts.c.trials, 0).label("trials"),
                    *(func.coalesce(counts.c[f"n_{status}"], 0).label(f"n_{status}") for status in FAILURES),
                    (latest if search_id is None else literal(1)).label("latest"))
             .join(Search, Search.id == ArmRow.search_id).outerjoin(counts, counts.c.arm_id == ArmRow.id))
    return _filtered(query, where)


def _filtered(query: Select, where: BoardFilter) -> Select:
    """`query` (which selects from `arms`) restricted to the arms `where` asks for."""
    for column, value in ((ArmRow.task, where.task), (ArmRow.seq_len, where.seq_len),
                          (ArmRow.search_id, where.search_id)):
        if value is not None:
            query = query.where(column == value)
    for column, values in ((ArmRow.search_id, where.search_ids), (ArmRow.model, where.models)):
        if values is not None:
            query = query.where(column.in_(values))
    return query


_BEST_COLUMNS = (Trial.id, Trial.arm_id, Trial.trial_id, Trial.config_key, Trial.metric, Trial.hparams,
                 Trial.mlflow_run_id, Trial.params, Trial.train_seq_per_s, Trial.infer_seq_per_s, Trial.peak_mem_mb)
_RUN_ROLES = ("search", "repeat")


def _best_runs(where: BoardFilter) -> tuple[Any, Any, Any, Any]:
    """The CTEs of the reported arms, their winners, the winners' best search trials and their runs
    (the rules in the module docstring)."""
    every = _arms_query(where).subquery("every_arm")
    arms = select(every).where(every.c.latest == 1).cte("arm_sel")
    chosen_by = _chosen_by(Trial)
    signed = _signed(arms.c.higher_is_better, chosen_by)
    ranked = (select(*_BEST_COLUMNS, func.row_number().over(partition_by=Trial.arm_id, order_by=(signed, Trial.id))
                     .label("place"))
              .join(arms, arms.c.id == Trial.arm_id)
              .where(Trial.role == "search", _ranked(Trial)).cte("ranked"))
    winner = _winner(arms)
    best = (select(ranked).join(winner, and_(winner.c.arm_id == ranked.c.arm_id, winner.c.place == ranked.c.place))
            .cte("best"))
    run = Trial.__table__.alias("run")
    runs = (select(run.c.arm_id, run.c.metric, run.c.seed, run.c.trial_id)
            .join(best, and_(run.c.arm_id == best.c.arm_id, run.c.config_key == best.c.config_key))
            .where(run.c.role.in_(_RUN_ROLES), _ranked(run.c)).cte("runs"))
    return arms, winner, best, runs


def _runs_query(where: BoardFilter) -> Select:
    """One row per run of each reported arm's best configuration: (search id, arm key, trial id, seed, metric)."""
    arms, _, _, runs = _best_runs(where)
    return (select(arms.c.search_id, arms.c.key, runs.c.trial_id, runs.c.seed, runs.c.metric)
            .join(arms, arms.c.id == runs.c.arm_id)
            .order_by(arms.c.search_id, arms.c.key, runs.c.seed, runs.c.trial_id))


def _board_query(where: BoardFilter) -> Select:
    """One row per reported arm: the arm, its winning configuration (its best search trial) and the
    mean/spread of that configuration's runs."""
    arms, winner, best, runs = _best_runs(where)
    mean = (select(runs.c.arm_id, func.avg(runs.c.metric).label("mean"), func.count().label("n"))
            .group_by(runs.c.arm_id).cte("run_mean"))
    deviation = runs.c.metric - mean.c.mean
    spread = (select(runs.c.arm_id, func.sum(deviation * deviation).label("sq_dev"))
              .join(mean, mean.c.arm_id == runs.c.arm_id).group_by(runs.c.arm_id).cte("run_spread"))
    return (select(arms, best.c.metric, best.c.trial_id, best.c.config_key, best.c.hparams, best.c.mlflow_run_id,
                   best.c.params, best.c.train_seq_per_s, best.c.infer_seq_per_s, best.c.peak_mem_mb,
                   best.c.place.label("search_place"), winner.c.rerun_configs, mean.c.mean, mean.c.n, spread.c.sq_dev)
            .select_from(arms).outerjoin(best, best.c.arm_id == arms.c.id)
            .outerjoin(winner, winner.c.arm_id == arms.c.id)
            .outerjoin(mean, mean.c.arm_id == arms.c.id).outerjoin(spread, spread.c.arm_id == arms.c.id))


def _winner(arms: Any) -> Any:
    """Per arm, the winning configuration's place in the search and how many configurations were re-run.

    Each configuration with a ranked search trial: its place (that of its best search trial, numbered as
    `_best_runs`'s `ranked` numbers them), the mean of its runs' validation metrics (`_chosen_by`) and
    whether it was re-run (has a ranked repeat). Re-run configurations come first, by signed mean; then by
    place, so that with no re-run the search's best wins.

    One pass over the arms' runs and one aggregate: the place is a window over the same rows (numbered
    within each role), not a join of two per-configuration aggregates, which PostgreSQL planned as a
    nested loop over a materialised CTE (66 s on 20,000 trials; benchmarks/dashboard_pages.py).
    """
    run = Trial.__table__.alias("cfg_run")
    chosen_by = _chosen_by(run.c)
    signed = _signed(arms.c.higher_is_better, chosen_by)
    place_in_role = func.row_number().over(partition_by=(run.c.arm_id, run.c.role), order_by=(signed, run.c.id))
    scored = (select(run.c.arm_id, run.c.config_key, run.c.role, chosen_by.label("chosen"),
                     arms.c.higher_is_better, place_in_role.label("place_in_role"))
              .join(arms, arms.c.id == run.c.arm_id)
              .where(run.c.role.in_(_RUN_ROLES), _ranked(run.c)).subquery("cfg_scored"))
    place = func.min(case((scored.c.role == "search", scored.c.place_in_role)))
    stats = (select(scored.c.arm_id, scored.c.higher_is_better, place.label("place"),
                    func.avg(scored.c.chosen).label("mean"),
                    func.sum(case((scored.c.role == "repeat", 1), else_=0)).label("repeats"))
             .group_by(scored.c.arm_id, scored.c.config_key, scored.c.higher_is_better)
             .having(place.is_not(None)).subquery("cfg_stats"))
    rerun = stats.c.repeats > 0
    signed_mean = _signed(stats.c.higher_is_better, stats.c.mean)
    order = func.row_number().over(partition_by=stats.c.arm_id, order_by=(
        case((rerun, 0), else_=1), case((rerun, signed_mean), else_=literal(0.0)), stats.c.place))
    reruns = func.sum(case((rerun, 1), else_=0)).over(partition_by=stats.c.arm_id)
    chosen = select(stats.c.arm_id, stats.c.place, order.label("order"), reruns.label("rerun_configs")).subquery(
        "cfg_order")
    return select(chosen.c.arm_id, chosen.c.place, chosen.c.rerun_configs).where(chosen.c.order == 1).cte("winner")


def _winner_runs(conn: Any, rows: Sequence[Any]) -> dict[int, list[SeedRun]]:
    """Every run (role search or repeat, any status) of each arm's winning configuration, by arm id."""
    pairs = [(row["id"], row["config_key"]) for row in rows if row["config_key"] is not None]
    runs: dict[int, list[SeedRun]] = {}
    for start in range(0, len(pairs), 200):  # a bounded IN list per query
        chunk = pairs[start:start + 200]
        stmt = (select(Trial.arm_id, Trial.seed, Trial.status, Trial.metric, Trial.steps, Trial.curve)
                .where(tuple_(Trial.arm_id, Trial.config_key).in_(chunk), Trial.role.in_(_RUN_ROLES))
                .order_by(Trial.id))
        for arm_id, seed, status, metric, steps, curve in conn.execute(stmt):
            runs.setdefault(arm_id, []).append(SeedRun(seed, status, metric, steps, curve))
    return runs


def _solve(row: Any, runs: list[SeedRun]) -> SolveStats | None:
    if not runs or row["task"] not in tasks.names():
        return None
    return solve_stats(runs, tasks.task_class(row["task"]).solved_when, row["metric_name"], row["baseline"],
                       bool(row["higher_is_better"]))


def _failure(row: Any) -> str | None:
    """How most trials of an arm without a ranked result ended (the first of FAILURES on a tie)."""
    if row["mean"] is not None:
        return None
    counts = [(int(row[f"n_{status}"] or 0), status) for status in FAILURES]
    most = max(counts, key=lambda item: item[0])
    return most[1] if most[0] > 0 else None


def _arm_best(row: Any, runs: list[SeedRun]) -> ArmBest:
    n = int(row["n"] or 0)
    mean = None if row["mean"] is None else float(row["mean"])
    std = math.sqrt(max(float(row["sq_dev"]), 0.0) / (n - 1)) if n >= 2 else None
    higher = bool(row["higher_is_better"])
    return ArmBest(
        search_id=row["search_id"], key=row["key"], task=row["task"], seq_len=row["seq_len"], model=row["model"],
        metric_name=row["metric_name"], higher_is_better=higher, baseline=row["baseline"], metric=row["metric"],
        mean=mean, std=std, n=n, trial_id=row["trial_id"], hparams=row["hparams"],
        mlflow_run_id=row["mlflow_run_id"], params=row["params"], train_seq_per_s=row["train_seq_per_s"],
        infer_seq_per_s=row["infer_seq_per_s"], peak_mem_mb=row["peak_mem_mb"], trials=int(row["trials"]),
        beats_baseline=beats_baseline(mean, row["baseline"], higher), protocol=row["protocol"],
        solve=_solve(row, runs), search_place=row["search_place"], rerun_configs=int(row["rerun_configs"] or 0),
        failure=_failure(row), config_key=row["config_key"], stopped=int(row["n_stopped"] or 0))


def rank_key(row: ArmBest) -> tuple[Any, ...]:
    """Leaderboard order: task, seq_len, best mean first (none last), then model name and search id."""
    score = math.inf if row.mean is None else (-row.mean if row.higher_is_better else row.mean)
    return (row.task, row.seq_len, score, row.model, row.search_id)


def places(rows: Sequence[ArmBest]) -> list[tuple[int, ArmBest]]:
    """The rows that have a mean, in `rank_key` order, each with its place (1 = best) at its
    (task, seq_len); equal means get consecutive places, never a shared one."""
    placed: list[tuple[int, ArmBest]] = []
    taken: dict[tuple[str, int], int] = {}
    for row in sorted(rows, key=rank_key):
        if row.mean is None:
            continue
        at = (row.task, row.seq_len)
        taken[at] = taken.get(at, 0) + 1
        placed.append((taken[at], row))
    return placed


def best_at(rows: Sequence[ArmBest]) -> dict[tuple[str, int], ArmBest]:
    """The best arm of each (task, seq_len) that has a ranked trial (place 1 of `places`)."""
    return {(row.task, row.seq_len): row for place, row in places(rows) if place == 1}


def model_ranks(rows: Sequence[ArmBest]) -> pd.DataFrame:
    """Per model: arms entered (with a mean), arms won (place 1 at their (task, seq_len)), arms
    solved and mean place; sorted by mean place, then model name."""
    frame = pd.DataFrame([{"model": row.model, "place": place, "solved": bool(row.solve and row.solve.solved)}
                          for place, row in places(rows)],
                         columns=["model", "place", "solved"])
    if frame.empty:
        return pd.DataFrame(columns=["model", "arms", "wins", "solved", "mean_rank"])
    summary = frame.groupby("model").agg(arms=("place", "size"), wins=("place", lambda p: int((p == 1).sum())),
                                         solved=("solved", "sum"), mean_rank=("place", "mean"))
    return summary.reset_index().sort_values(["mean_rank", "model"]).reset_index(drop=True)


def cell(row: ArmBest) -> str:
    """`mean ± std` over the runs of the best configuration, the metric alone for one run; without a
    ranked trial how the arm's trials ended (`oom`, ...), else `—`."""
    if row.mean is None:
        return row.failure or "—"
    if row.n < 2 or row.std is None:
        return f"{row.metric:.4g}"
    return f"{row.mean:.4g} ± {row.std:.2g}"


def table(rows: list[ArmBest], text: Callable[[ArmBest], str] = cell) -> pd.DataFrame:
    """Models (index) × sequence lengths (columns; (task, seq_len) when rows span tasks) of `text` (`cell`).

    Expects one row per (task, seq_len, model), as `leaderboard` gives; empty cells are "".
    """
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame([{"task": r.task, "seq_len": r.seq_len, "model": r.model, "cell": text(r)}
                          for r in rows])
    columns = ["seq_len"] if frame["task"].nunique() == 1 else ["task", "seq_len"]
    return frame.pivot(index="model", columns=columns, values="cell").fillna("")


def to_json(rows: list[ArmBest], solved_fraction: float = 0.0) -> list[dict[str, Any]]:
    """The rows as JSON-ready dicts (field names as in `ArmBest`; `solve` with its median, range and cell),
    each with `reach`: its model's max T solved (`solved_fraction` of the seeds), AUC and marked arms on
    its task (`seqarena.platform.solving.reach`)."""
    lines = {(line.task, line.model): line for line in reach(rows, solved_fraction)}
    return [{**asdict(row), "solve": _solve_json(row.solve), "reach": _reach_json(lines[row.task, row.model])}
            for row in rows]


def _reach_json(line: Reach) -> dict[str, Any]:
    return {"max_t_solved": line.max_t_solved, "auc": line.auc, "marked": list(line.marked),
            "seq_lens": list(line.seq_lens)}


def _solve_json(stats: SolveStats | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    return {**asdict(stats), "steps": list(stats.steps), "steps_median": stats.steps_median,
            "steps_range": None if stats.steps_range is None else list(stats.steps_range), "cell": stats.cell()}


def board_frame(rows: Sequence[ArmBest]) -> pd.DataFrame:
    """Leaderboard rows as a frame (one row per arm), for plots and CSV downloads."""
    columns = ["task", "seq_len", "model", "protocol", "metric_name", "higher_is_better", "baseline", "metric", "mean",
               "std", "n", "ci_low", "ci_high", "beats_baseline", "trials", "params", "train_seq_per_s",
               "infer_seq_per_s", "peak_mem_mb", "search_id", "trial_id", "mlflow_run_id", "search_place",
               "rerun_configs", "failure"]
    frame = pd.DataFrame([{name: _frame_value(row, name) for name in columns} for row in rows], columns=columns)
    solve = pd.DataFrame([solve_columns(row.solve) for row in rows], columns=list(solve_columns(None)))
    return pd.concat([frame, solve], axis=1)


def _frame_value(row: ArmBest, name: str) -> Any:
    if name in ("ci_low", "ci_high"):
        return None if row.interval is None else getattr(row.interval, name[3:])
    return getattr(row, name)


def solve_columns(stats: SolveStats | None) -> dict[str, Any]:
    """The solve statistics of one arm as flat columns (None where the arm has none)."""
    if stats is None:
        return dict.fromkeys(("solved", "seeds", "solve", "steps_to_solve_median", "steps_to_solve_min",
                              "steps_to_solve_max", "budget_steps", "solved_when"))
    low, high = stats.steps_range or (None, None)
    return {"solved": stats.solved, "seeds": stats.seeds, "solve": stats.cell(),
            "steps_to_solve_median": stats.steps_median, "steps_to_solve_min": low, "steps_to_solve_max": high,
            "budget_steps": stats.budget, "solved_when": stats.rule}


# ----------------------------------------------------------------------- searches and trials (dashboard)

@dataclass(frozen=True)
class SearchInfo:
    """A search as the filters list it."""

    id: str
    name: str
    status: str
    created_at: datetime
    mlflow_experiment_id: str
    mlflow_parent_run_id: str | None

    @property
    def label(self) -> str:
        return f"{self.name} · {self.created_at:%Y-%m-%d %H:%M} · {self.id[:8]}"


@dataclass(frozen=True)
class Options:
    """What the filters can choose from: tasks, searches (newest first) and models, per task."""

    tasks: tuple[str, ...]
    searches: tuple[SearchInfo, ...]
    search_tasks: dict[str, tuple[str, ...]]
    models: dict[str, tuple[str, ...]]


def options(engine: Engine) -> Options:
    """The tasks, searches and models present in the database (three small DISTINCT queries)."""
    with engine.connect() as conn:
        search_rows = conn.execute(select(Search.id, Search.name, Search.status, Search.created_at,
                                          Search.mlflow_experiment_id, Search.mlflow_parent_run_id)
                                   .order_by(Search.created_at.desc(), Search.id.desc())).all()
        pairs = conn.execute(select(ArmRow.search_id, ArmRow.task).distinct()).all()
        models = conn.execute(select(ArmRow.task, ArmRow.model).distinct().order_by(ArmRow.task, ArmRow.model)).all()
    search_tasks: dict[str, list[str]] = {}
    for search_id, task in pairs:
        search_tasks.setdefault(search_id, []).append(task)
    by_task: dict[str, list[str]] = {}
    for task, model in models:
        by_task.setdefault(task, []).append(model)
    return Options(
        tasks=tuple(sorted(by_task)),
        searches=tuple(SearchInfo(*row) for row in search_rows),
        search_tasks={key: tuple(sorted(value)) for key, value in search_tasks.items()},
        models={key: tuple(value) for key, value in by_task.items()},
    )


def check_task_models(engine: Engine, task: str, models: Sequence[str], field: str = "models") -> None:
    """`BadInput` for a task with no recorded arm, or a model (named by `field`) with no arm at that task."""
    known = options(engine)
    if task not in known.tasks:
        raise BadInput("task", task, one_of(known.tasks) if known.tasks else "none: no search recorded yet")
    for model in models:
        if model not in known.models[task]:
            raise BadInput(field, model, one_of(known.models[task]))


TRIAL_COLUMNS = ("trial_id", "role", "seed", "status", "metric", "best_val_metric", "params", "train_seq_per_s",
                 "infer_seq_per_s", "peak_mem_mb", "wall_s", "steps", "mlflow_run_id", "hparams")


_FRAME_COLUMNS = (
    Trial.search_id, ArmRow.key.label("arm_key"), ArmRow.task, ArmRow.seq_len, ArmRow.model, ArmRow.protocol,
    ArmRow.metric_name,
    ArmRow.higher_is_better, ArmRow.baseline, Trial.trial_id, Trial.role, Trial.seed, Trial.status, Trial.metric,
    Trial.best_val_metric, Trial.params, Trial.train_seq_per_s, Trial.infer_seq_per_s, Trial.peak_mem_mb,
    Trial.wall_s, Trial.steps, Trial.mlflow_run_id, Trial.created_at, Trial.config_key, Trial.hparams,
    Trial.test_metrics,
)


def trials_frame(engine: Engine, search_id: str | None = None, *, arm_key: str | None = None,
                 task: str | None = None, seq_len: int | None = None, model: str | None = None,
                 role: str | None = None, status: str | None = None) -> pd.DataFrame:
    """Recorded trials with their arm's columns, one row each in recording order, filtered by any of
    the arguments (the per-trial read; leaderboards aggregate in SQL instead)."""
    stmt = select(*_FRAME_COLUMNS).join(ArmRow, ArmRow.id == Trial.arm_id).order_by(Trial.id)
    filters = {Trial.search_id: search_id, ArmRow.key: arm_key, ArmRow.task: task, ArmRow.seq_len: seq_len,
               ArmRow.model: model, Trial.role: role, Trial.status: status}
    for column, value in filters.items():
        if value is not None:
            stmt = stmt.where(column == value)
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


def arm_trials(engine: Engine, search_id: str, arm_key: str) -> pd.DataFrame:
    """Every recorded trial of one arm of one search, in recording order (`TRIAL_COLUMNS`)."""
    return trials_frame(engine, search_id, arm_key=arm_key)[list(TRIAL_COLUMNS)]


def ranked_trials(engine: Engine, task: str, seq_len: int, search_ids: Sequence[str],
                  models: Sequence[str] | None = None) -> pd.DataFrame:
    """The ranked search trials of one (task, seq_len) in the given searches: the Pareto view's points (`status`
    `stopped`: ASHA stopped the trial early; its metric is that of the step it stopped at)."""
    stmt = (select(ArmRow.model, ArmRow.search_id, ArmRow.higher_is_better, ArmRow.baseline, Trial.trial_id,
                   Trial.status, Trial.metric, Trial.params,
                   Trial.train_seq_per_s, Trial.infer_seq_per_s, Trial.peak_mem_mb, Trial.mlflow_run_id)
            .join(ArmRow, ArmRow.id == Trial.arm_id)
            .where(ArmRow.task == task, ArmRow.seq_len == seq_len, ArmRow.search_id.in_(tuple(search_ids)),
                   Trial.role == "search", Trial.status.in_(RANKED_STATUSES), Trial.metric.is_not(None)))
    if models is not None:
        stmt = stmt.where(ArmRow.model.in_(tuple(models)))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))
