"""Stored `seqarena profile` runs: one run with its settings, one row per (model, seq_len).

The CLI records a profile that `seqarena.workers.profile` measured; the dashboard's profile page
reads it back. `seqarena demo` records a small one of its models after its search (`profile_demo`), so the
Memory & throughput page shows steady-state figures at several T from the start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch
from sqlalchemy import Engine, select

from seqarena.errors import BadInput, one_of
from seqarena.platform.database import session_scope
from seqarena.platform.schema import PROFILE_STATUSES, ProfileResult, ProfileRun, utcnow
from seqarena.workers import profile as profiling
from seqarena.workers.results import finite, plain

_PROFILE_NUMBERS = ("train_step_s", "infer_step_s", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb")


def record_profile(engine: Engine, name: str, settings: Mapping[str, Any], rows: list[Mapping[str, Any]],
                   out_dir: str | None = None) -> str:
    """Store a profile run and its rows in one transaction; return the run's id.

    `settings` holds `device`, `torch_version`, `batch_size` and `hidden` (anything else is kept in
    the JSON column `settings`); each row holds `model`, `seq_len`, `status` and optionally the
    numbers of `ProfileResult` (other keys are ignored; NaN and infinities are stored as NULL).
    """
    missing = [key for key in ("device", "torch_version", "batch_size", "hidden") if settings.get(key) is None]
    if missing:
        raise BadInput("settings", missing, "values for device, torch_version, batch_size, hidden")
    run = ProfileRun(name=name, device=str(settings["device"]), torch_version=str(settings["torch_version"]),
                     batch_size=int(settings["batch_size"]), hidden=int(settings["hidden"]),
                     settings=plain(dict(settings)), out_dir=out_dir, created_at=utcnow())
    results = [ProfileResult(**_profile_values(i, row)) for i, row in enumerate(rows)]
    with session_scope(engine) as session:
        session.add(run)
        session.flush()
        for result in results:
            result.run_id = run.id
        session.add_all(results)
    return run.id


def _profile_values(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    if row.get("status") not in PROFILE_STATUSES:
        raise BadInput(f"rows[{index}].status", row.get("status"), one_of(PROFILE_STATUSES))
    optional_int = {key: None if row.get(key) is None else int(row[key]) for key in ("num_layers", "params")}
    return {"model": str(row["model"]), "seq_len": int(row["seq_len"]), "status": row["status"], **optional_int,
            "path": row.get("path"), "peak_mem_method": row.get("peak_mem_method"), "note": row.get("note") or None,
            **{key: finite(row.get(key)) for key in _PROFILE_NUMBERS},
            **{key: plain(list(row.get(key) or [])) for key in ("train_step_s_all", "infer_step_s_all")}}


def profile_runs_frame(engine: Engine) -> pd.DataFrame:
    """Every profile run, newest first: id, name, created_at, device, torch_version, batch_size, hidden."""
    columns = (ProfileRun.id, ProfileRun.name, ProfileRun.created_at, ProfileRun.device, ProfileRun.torch_version,
               ProfileRun.batch_size, ProfileRun.hidden)
    stmt = select(*columns).order_by(ProfileRun.created_at.desc(), ProfileRun.id.desc())
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


def profile_rows_frame(engine: Engine, run_id: str) -> pd.DataFrame:
    """The rows of one profile run, by model then T."""
    names = ("model", "seq_len", "status", "num_layers", "params", "path", *_PROFILE_NUMBERS, "peak_mem_method",
             "note")
    stmt = (select(*(getattr(ProfileResult, name) for name in names)).where(ProfileResult.run_id == run_id)
            .order_by(ProfileResult.model, ProfileResult.seq_len))
    with engine.connect() as conn:
        result = conn.execute(stmt)
        return pd.DataFrame.from_records(list(result), columns=list(result.keys()))


@dataclass(frozen=True)
class DemoProfile:
    """The sizes of the profile `seqarena demo` records: a few seconds per model on 2 CPU cores, at the demo's
    batch and hidden size, one thread (as each of the search's trials had: `cpus_per_trial: 1`)."""

    seq_lens: tuple[int, ...] = (25, 50, 100, 200, 400)
    batch_size: int = 50
    hidden: int = 32
    repeats: int = 3
    warmup: int = 2
    threads: int = 1


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` for the block (on a shared machine more threads than cores
    make every step wait on the others: 1.1 s per step instead of 16 ms)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def profile_demo(engine: Engine, models: Sequence[str], sizes: DemoProfile = DemoProfile(),
                 on_case: Callable[[str, int, Any], None] | None = None) -> str:
    """Profile `models` at `sizes` on the CPU and record the run as "demo profile"; return its id."""
    plan = profiling.plan_profile(list(models), list(sizes.seq_lens), batch_size=sizes.batch_size,
                                  hidden=sizes.hidden, device="cpu", repeats=sizes.repeats, warmup=sizes.warmup)
    with torch_threads(sizes.threads):
        rows = profiling.run_plan(plan, on_case)
    settings = {**profiling.environment(plan), "threads": sizes.threads}
    return record_profile(engine, "demo profile", settings, [row.to_json() for row in rows])
