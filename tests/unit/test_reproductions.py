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
