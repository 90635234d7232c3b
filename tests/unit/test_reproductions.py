"""docs/REPRODUCTIONS.md: its table is the one the stored results give, and each row's command is
the run that produced that row (model, task, length, steps and options agree with its result)."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
import re
import shlex
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "docs" / "reproductions"
DOC = REPO / "docs" / "REPRODUCTIONS.md"


def table_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("reproductions_table", REPO / "scripts" / "reproductions_table.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_document_holds_the_table_of_the_stored_results() -> None:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        table_script().main(RESULTS)
    rows = printed.getvalue().splitlines()
    assert len(rows) == 2 + len(list(RESULTS.glob("*.json")))
    assert printed.getvalue() in DOC.read_text()


@pytest.mark.parametrize("path", sorted(RESULTS.glob("*.json")), ids=lambda path: path.stem)
def test_each_row_names_the_command_that_produced_it(path: Path) -> None:
    result = json.loads(path.read_text())
    command = table_script().command_of(path.stem, (RESULTS / "runs.log").read_text())
    args = shlex.split(command)
    assert args[:2] == ["seqarena", "train"] and "--json" in args
    value = {flag: args[i + 1] for i, flag in enumerate(args) if flag.startswith("--") and i + 1 < len(args)}
    assert (value["--model"], value["--task"]) == (result["model"], result["task"])
    assert (int(value["--seq-len"]), int(value["--steps"])) == (result["seq_len"], result["steps"])
    for option in re.findall(r"--option (\w+)=(\S+)", command):
        assert str(result["task_options"][option[0]]) == option[1]
    assert f"`{command}`" in DOC.read_text()


def test_a_row_takes_the_command_of_its_last_start() -> None:
    """A row started twice (the first run stopped without a result) names the second run's command."""
    runs_log = (
        "2026-12-04T19:24:16Z start adding500_lru: seqarena train --model lru --steps 1500\n"
        "2026-12-04T19:56:13Z end adding500_lru rc=143\n"
        "2026-12-05T02:52:05Z start adding500_lru: seqarena train --model lru --steps 1500 --eval-every 100\n"
        "2026-12-05T02:53:05Z start adding500_lru_600: seqarena train --model lru --steps 600\n"
    )
    script = table_script()
    assert script.command_of("adding500_lru", runs_log) == (
        "seqarena train --model lru --steps 1500 --eval-every 100 --json"
    )
    assert script.command_of("adding500_lru_600", runs_log) == "seqarena train --model lru --steps 600 --json"
    assert script.command_of("adding500_s4d", runs_log) == "?"


def test_an_issue_21_row_with_lowered_steps_says_so_and_keeps_its_published_cell() -> None:
    script = table_script()
    assert script.budget_of({"model": "lru", "steps": 600}) == (
        "600 steps (lowered from 1500 to end before the session's deadline)"
    )
    assert script.budget_of({"model": "lru", "steps": 1500}) == "1500 steps"
    assert script.budget_of({"model": "lem", "steps": 4000}) == "4000 steps"
    assert script.budget_of({"model": "cornn", "steps": 600}) == "600 steps"
    assert script.published_of("adding500_lru_600") == script.PUBLISHED["adding500_lru"]
    assert script.published_of("adding500_lem_4000_p16") == script.PUBLISHED["adding500_lem_4000"]
    assert script.published_of("adding500_lstm_4000") == "fails at T = 600: 0.164 (TCN paper, Table 1) [paper]"
    for model in script.ISSUE_21_MODELS:
        assert script.published_of(f"adding500_{model}").startswith("not reported for adding")
