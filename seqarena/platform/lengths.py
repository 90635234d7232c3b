"""How far from its training length a model reaches (length generalisation, issue 17 §3).

A spec's `length_generalisation` has every completed trial test its trained model (the best weights) at
other lengths T′ at the end of the trial (`seqarena.workers.trial.Trainer.test_at`); the database keeps one
row per (trial, T′) (`trial_lengths`). This module reads them for the runs the leaderboard reports: each
arm's best configuration over its seeds (`ArmBest.runs`, the leaderboard's one ranking rule), one point per
(model, trained T, T′) with the mean over the seeds tested there, its n, and the points that could not be
measured marked (`oom at T′ = 5000`, a model that failed at T′, a receptive field shorter than the input),
never dropped. The arm's own T is a point too (`trained`), from the leaderboard's mean.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Engine, select, tuple_

from seqarena.platform.leaderboard import ArmBest, leaderboard
from seqarena.platform.schema import Trial, TrialLength


@dataclass(frozen=True)
class LengthPoint:
    """One model trained at T (`trained_seq_len`) and tested at T′ (`seq_len`).

    `mean` is over the `n` runs of the arm's best configuration that have a metric at T′ (`runs` were
    tested); `failures` counts the others by status (`oom`, `failed`, `diverged`); `note` is the first note
    of its runs (an error, a receptive field). `trained`: T′ is the arm's own T (the leaderboard's numbers).
    """

    task: str
    model: str
    trained_seq_len: int
    seq_len: int
    metric_name: str
    mean: float | None
    n: int
    runs: int
    failures: tuple[tuple[str, int], ...] = ()
    note: str | None = None
    trained: bool = False

    @property
    def mark(self) -> str | None:
        """What marks the point on a plot and in a table (`oom at T′ = 5000`, the note), else None."""
        if self.failures:
            worst = max(self.failures, key=lambda item: item[1])[0]
            text = f"{worst} at T′ = {self.seq_len}" + (f" ({self.note})" if self.note else "")
            return text if self.mean is None else f"{text}, {sum(c for _, c in self.failures)} of {self.runs} runs"
        return self.note

    def to_json(self) -> dict[str, Any]:
        """The point as plain JSON (`seqarena lengths --json`)."""
        return {"task": self.task, "model": self.model, "trained_seq_len": self.trained_seq_len,
                "seq_len": self.seq_len, "metric_name": self.metric_name, "mean": self.mean, "n": self.n,
                "runs": self.runs, "failures": dict(self.failures), "note": self.note, "trained": self.trained,
                "mark": self.mark}


def length_points(engine: Engine, task: str, *, search_id: str | None = None,
                  search_ids: Sequence[str] | None = None, models: Sequence[str] | None = None) -> list[LengthPoint]:
    """Every (model, trained T, T′) point of `task` (leaderboard arms with tests at other lengths, filtered as
    `leaderboard` filters), ordered by model, trained T, then T′; the arm's own T is one of its points."""
    board = leaderboard(engine, task=task, search_id=search_id, search_ids=search_ids, models=models)
    arms = [arm for arm in board if arm.runs]
    keys = [(arm.search_id, run.trial_id) for arm in arms for run in arm.runs]
    tested = _tests(engine, keys)
    points = []
    for arm in arms:
        rows = [row for run in arm.runs for row in tested.get((arm.search_id, run.trial_id), [])]
        if rows:
            points.append(_trained_point(arm))
            points.extend(_point(arm, seq_len, [row for row in rows if row.seq_len == seq_len])
                          for seq_len in sorted({row.seq_len for row in rows}))
    return sorted(points, key=lambda p: (p.model, p.trained_seq_len, p.seq_len))


def _tests(engine: Engine, keys: list[tuple[str, str]]) -> dict[tuple[str, str], list[Any]]:
    """(search id, trial id) -> its `trial_lengths` rows."""
    found: dict[tuple[str, str], list[Any]] = {}
    if not keys:
        return found
    query = (select(Trial.search_id, Trial.trial_id, TrialLength.seq_len, TrialLength.status, TrialLength.metric,
                    TrialLength.note)
             .join(Trial, Trial.id == TrialLength.trial_row_id)
             .where(tuple_(Trial.search_id, Trial.trial_id).in_(keys)).order_by(Trial.id, TrialLength.seq_len))
    with engine.connect() as conn:
        for row in conn.execute(query):
            found.setdefault((row.search_id, row.trial_id), []).append(row)
    return found


def _trained_point(arm: ArmBest) -> LengthPoint:
    return LengthPoint(task=arm.task, model=arm.model, trained_seq_len=arm.seq_len, seq_len=arm.seq_len,
                       metric_name=arm.metric_name, mean=arm.mean, n=arm.n, runs=len(arm.runs), trained=True)


def _point(arm: ArmBest, seq_len: int, rows: list[Any]) -> LengthPoint:
    values = [row.metric for row in rows if row.metric is not None]
    failed: dict[str, int] = {}
    for row in rows:
        if row.status != "completed":
            failed[row.status] = failed.get(row.status, 0) + 1
    notes = [row.note for row in rows if row.note]
    return LengthPoint(task=arm.task, model=arm.model, trained_seq_len=arm.seq_len, seq_len=seq_len,
                       metric_name=arm.metric_name, mean=statistics.fmean(values) if values else None,
                       n=len(values), runs=len(rows), failures=tuple(sorted(failed.items())),
                       note=notes[0] if notes else None)


def cell(point: LengthPoint) -> str:
    """A point as a table cell: `mean (n)`, `*` at the trained T, the mark of what failed (`oom at T′ = 48`)."""
    text = "—" if point.mean is None else f"{point.mean:.4g} (n={point.n})"
    if point.trained:
        return f"{text} *"
    if point.mark:
        return point.mark if point.mean is None else f"{text}; {point.mark}"
    return text


def points_frame(points: Sequence[LengthPoint]) -> pd.DataFrame:
    """The points as a frame (the columns of `LengthPoint.to_json`; failures as text), for plots and CSV."""
    columns = ["task", "model", "trained_seq_len", "seq_len", "metric_name", "mean", "n", "runs", "failures",
               "note", "trained", "mark"]
    rows = [{**point.to_json(), "failures": ", ".join(f"{k} × {v}" for k, v in point.failures)} for point in points]
    return pd.DataFrame(rows, columns=columns)


def lengths_frame(points: Sequence[LengthPoint]) -> pd.DataFrame:
    """One row per (model, trained T), one column per T′ tested (ascending), cells of `cell`; empty cells ""."""
    if not points:
        return pd.DataFrame()
    frame = pd.DataFrame([{"model": p.model, "trained T": p.trained_seq_len, "T′": p.seq_len, "cell": cell(p)}
                          for p in points])
    table = frame.pivot(index=["model", "trained T"], columns="T′", values="cell").fillna("")
    return table.reindex(sorted(table.columns), axis=1).reset_index()
