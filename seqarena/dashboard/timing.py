"""Server-side time of every page run, for the load benchmark (`benchmarks/dashboard_load.py`).

A page's time in a browser is the server's script run plus the browser's own work (loading Streamlit's and
Plotly's bundles, drawing). With 20 browser contexts on the server's own two cores the two cannot be told
apart from the outside, so the server writes down each run itself when `SEQARENA_DASHBOARD_TIMINGS` names a
file: one JSON line per run with the page, a per-session number, when it started, its wall-clock seconds and
the CPU seconds of its script thread (`time.thread_time`: what it computed, not what it waited for the GIL or
a core). Unset (the default), nothing is measured or written.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import streamlit as st

TIMINGS_ENV = "SEQARENA_DASHBOARD_TIMINGS"
_SESSION_KEY = "_seqarena_timing_session"
_numbers = itertools.count(1)
_lock = threading.Lock()


@dataclass(frozen=True)
class PageRun:
    """One script run of one session, as the server saw it."""

    page: str
    session: int
    started: float
    wall_s: float
    cpu_s: float


def target() -> Path | None:
    """The file named by `SEQARENA_DASHBOARD_TIMINGS`, or None (timing off)."""
    configured = os.environ.get(TIMINGS_ENV)
    return Path(configured) if configured else None


def session_number() -> int:
    """A small number for this browser session, kept in its session state (no identifier of Streamlit's)."""
    if _SESSION_KEY not in st.session_state:
        st.session_state[_SESSION_KEY] = next(_numbers)
    return st.session_state[_SESSION_KEY]


@contextmanager
def timed(page: str) -> Iterator[None]:
    """Record the run of `page` (also when it ends in a rerun or a page switch, which Streamlit raises)."""
    path = target()
    if path is None:
        yield
        return
    session = session_number()
    started, wall, cpu = time.time(), time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        run = PageRun(page, session, started, time.perf_counter() - wall, time.thread_time() - cpu)
        with _lock, path.open("a") as out:
            out.write(json.dumps(asdict(run)) + "\n")


def read(path: Path) -> list[PageRun]:
    """The runs written to `path` (none if it does not exist)."""
    if not path.exists():
        return []
    return [PageRun(**json.loads(line)) for line in path.read_text().splitlines() if line.strip()]
