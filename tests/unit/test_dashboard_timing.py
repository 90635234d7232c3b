"""The dashboard's own page-run timings (`seqarena.dashboard.timing`), read by benchmarks/dashboard_load.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from seqarena.dashboard import timing


def _page() -> None:
    import time

    import streamlit as st

    from seqarena.dashboard import timing

    with timing.timed("leaderboard"):
        busy = time.thread_time() + 0.05
        while time.thread_time() < busy:  # 50 ms of CPU in the run's own thread
            pass
        st.write("drawn")


def test_each_run_is_one_line_with_its_session_and_times(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.jsonl"
    monkeypatch.setenv(timing.TIMINGS_ENV, str(path))
    app = AppTest.from_function(_page)
    app.run()
    app.run()  # a rerun of the same session
    other = AppTest.from_function(_page)
    other.run()
    runs = timing.read(path)
    assert [run.page for run in runs] == ["leaderboard"] * 3
    assert runs[0].session == runs[1].session != runs[2].session
    for run in runs:
        assert run.cpu_s >= 0.05 and run.wall_s >= run.cpu_s * 0.9
        assert run.started > 1.7e9  # epoch seconds


def test_nothing_is_written_without_the_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(timing.TIMINGS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    app = AppTest.from_function(_page)
    app.run()
    assert app.markdown[0].value == "drawn"
    assert timing.target() is None and list(tmp_path.iterdir()) == []
