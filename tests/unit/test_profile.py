"""`seqarena profile`: rows per (model, T), files, database records, bad input, the dashboard.

Tiny sizes throughout (batch 4, hidden 8, T = 8 and 16, 2 timed runs after 1 warm-up); no timing
relation is asserted, only that times are positive and finite and that every copy of a number
(rows, JSON, CSV, database, dashboard) is the same number.
"""

from __future__ import annotations

import base64
import csv
import json
import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from alembic import command
from sqlalchemy import Engine, inspect
from streamlit.testing.v1 import AppTest

from seqarena import cells
from seqarena.cells.rnn import ElmanRNN
from seqarena.dashboard.serve import APP
from seqarena.errors import BadInput
from seqarena.platform import database, profiles
from seqarena.workers import profile as profiling
from seqarena.workers.profile import ProfileRow, estimated_peak_mb, profile, run_plan

pytestmark = pytest.mark.usefixtures("one_thread")

MODELS = ["rnn", "cornn", "tcn"]
LENGTHS = [8, 16]
TINY = dict(batch_size=4, hidden=8, repeats=2, warmup=1)
CLI_TINY = ["--batch-size", "4", "--hidden", "8", "--repeats", "2", "--warmup", "1"]


@pytest.fixture(scope="module")
def every_model_rows(one_thread: None) -> list[ProfileRow]:
    return profile(MODELS, LENGTHS, **TINY)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty SEQARENA_HOME (its database engine is closed afterwards)."""
    monkeypatch.setenv("SEQARENA_HOME", str(tmp_path / "home"))
    for name in ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI", "SEQARENA_DASHBOARD_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    before = set(database._engines)
    yield tmp_path / "home"
    for opened in set(database._engines) - before:
        database._engines.pop(opened).dispose()


def expected_params(name: str, seq_len: int, hidden: int = 8) -> int:
    """The backbone at its declared depth plus the readout Linear(hidden, 1), counted independently."""
    layers = next(hp.default for hp in cells.space(name) if hp.name == "num_layers")
    backbone = cells.build(name, 1, hidden, layers, seq_len=seq_len)
    return sum(p.numel() for p in backbone.parameters()) + hidden + 1


def positive_finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value > 0


# --------------------------------------------------------------------------------------------- the rows

def test_every_model_and_T_has_a_row_with_positive_finite_numbers(every_model_rows: list[ProfileRow]) -> None:
    assert [(row.model, row.seq_len) for row in every_model_rows] == [(m, t) for m in MODELS for t in LENGTHS]
    for row in every_model_rows:
        assert row.status == "ok" and row.note == ""
        path = "fused-cpu" if row.model == "cornn" else "eager"  # coRNN's compiled CPU kernel is its default
        assert (row.batch_size, row.hidden, row.device, row.path) == (4, 8, "cpu", path)
        assert len(row.train_step_s_all) == 2 and len(row.infer_step_s_all) == 2
        assert all(positive_finite(t) for t in [*row.train_step_s_all, *row.infer_step_s_all])
        assert row.train_step_s == statistics.median(row.train_step_s_all)
        assert row.infer_step_s == statistics.median(row.infer_step_s_all)
        assert row.train_seq_per_s == pytest.approx(4 / row.train_step_s)
        assert row.infer_seq_per_s == pytest.approx(4 / row.infer_step_s)
        assert positive_finite(row.peak_mem_mb) and row.peak_mem_method.startswith("cpu:")
        assert row.torch_version == torch.__version__ and row.threads == torch.get_num_threads()


def test_parameter_count_is_the_model_s_plus_the_readout(every_model_rows: list[ProfileRow]) -> None:
    for row in every_model_rows:
        assert row.params == expected_params(row.model, row.seq_len), row.model
    assert {row.model: row.num_layers for row in every_model_rows} == {"rnn": 1, "cornn": 1, "tcn": 8}


def test_a_recurrent_model_s_training_memory_grows_with_T(every_model_rows: list[ProfileRow]) -> None:
    rnn = {row.seq_len: row.peak_mem_mb for row in every_model_rows if row.model == "rnn"}
    assert rnn[16] > rnn[8]


def test_the_path_comes_from_the_model_when_it_says(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ElmanRNN, "implementation", "fused", raising=False)
    assert [row.path for row in profile(["rnn"], [8], **TINY)] == ["fused"]


# ---------------------------------------------------------------------------------- out of memory, guard

def test_out_of_memory_is_a_row_status_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    real = profiling.measure_case

    def measure(plan: Any, name: str, seq_len: int) -> ProfileRow:
        if name == "cornn" and seq_len == 16:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if name == "cornn":
            raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 1 GB")
        return real(plan, name, seq_len)

    monkeypatch.setattr(profiling, "measure_case", measure)
    found = profile(["rnn", "cornn"], LENGTHS, **TINY)
    assert [(row.model, row.seq_len, row.status) for row in found] == [
        ("rnn", 8, "ok"), ("rnn", 16, "ok"), ("cornn", 8, "oom"), ("cornn", 16, "oom")]
    assert "out of memory" in found[3].note and found[3].train_step_s is None and found[3].params is None


def test_other_errors_are_not_swallowed(monkeypatch: pytest.MonkeyPatch) -> None:
    def measure(plan: Any, name: str, seq_len: int) -> ProfileRow:
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(profiling, "measure_case", measure)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        profile(["rnn"], [8], **TINY)


def test_memory_estimate_by_hand() -> None:
    assert estimated_peak_mb([], 100) is None
    assert estimated_peak_mb([(10, 2.0)], 100) == pytest.approx(200.0)  # one point: quadratic
    assert estimated_peak_mb([(10, 2.0), (20, 4.0)], 80) == pytest.approx(16.0)  # fitted: linear
    assert estimated_peak_mb([(10, 2.0), (20, 2.0)], 40) == pytest.approx(4.0)  # clamped to >= 1


def test_the_memory_limit_skips_a_length_whose_estimate_exceeds_it() -> None:
    plan = profiling.plan_profile(["rnn"], [8, 4000], max_mem_gb=1e-4, **TINY)
    first, second = run_plan(plan)
    assert first.status == "ok" and second.status == "skipped" and "max_mem_gb" in second.note


# -------------------------------------------------------------------------------------------- the CLI

def test_cli_writes_json_csv_and_database_rows_with_the_same_numbers(run_cli, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(["profile", "--models", "rnn,tcn", "--seq-lens", "8,16", *CLI_TINY,
                                    "--out", str(out), "--name", "tiny", "--json"])
    assert code == 0, stderr
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert len(printed["rows"]) == 4
    written = json.loads((out / "profile.json").read_text())
    assert written["rows"] == printed["rows"]
    assert (written["batch_size"], written["hidden"], written["device"]) == (4, 8, "cpu")
    with (out / "profile.csv").open() as handle:
        table = list(csv.DictReader(handle))
    for line, row in zip(table, printed["rows"], strict=True):
        assert (line["model"], int(line["seq_len"]), int(line["params"])) == (row["model"], row["seq_len"],
                                                                             row["params"])
        for key in ("train_step_s", "infer_step_s", "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb"):
            assert float(line[key]) == row[key]
        assert json.loads(line["train_step_s_all"]) == row["train_step_s_all"]
    engine = database.get_engine()
    runs = profiles.profile_runs_frame(engine)
    assert list(runs["id"]) == [printed["run_id"]] and list(runs["name"]) == ["tiny"]
    assert runs["created_at"][0].tzinfo is not None
    stored = profiles.profile_rows_frame(engine, printed["run_id"]).to_dict("records")
    for record, row in zip(stored, sorted(printed["rows"], key=lambda r: (r["model"], r["seq_len"])), strict=True):
        assert {key: record[key] for key in ("model", "seq_len", "params", "train_step_s", "infer_step_s",
                                             "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb", "status")} == \
            {key: row[key] for key in ("model", "seq_len", "params", "train_step_s", "infer_step_s",
                                       "train_seq_per_s", "infer_seq_per_s", "peak_mem_mb", "status")}


def test_cli_prints_a_table_and_no_record_writes_no_database(run_cli, home: Path, tmp_path: Path) -> None:
    code, stdout, _ = run_cli(["profile", "--models", "rnn", "--seq-lens", "8", *CLI_TINY, "--out",
                               str(tmp_path / "out"), "--no-record"])
    assert code == 0
    assert "train seq/s" in stdout and "rnn" in stdout and "eager" in stdout
    assert (tmp_path / "out" / "profile.csv").is_file()
    assert not (home / "seqarena.db").exists()


@pytest.mark.parametrize(("args", "field"), [
    (["--models", "rnn,corn"], "model"),
    (["--models", ","], "models"),
    (["--seq-lens", "8,x"], "seq_lens"),
    (["--seq-lens", "0"], "seq_lens"),
    (["--batch-size", "0"], "batch_size"),
    (["--hidden", "-1"], "hidden"),
    (["--repeats", "0"], "repeats"),
    (["--warmup", "-1"], "warmup"),
    (["--max-mem-gb", "0"], "max_mem_gb"),
    (["--device", "tpu"], "device"),
])
def test_bad_input_exits_2_naming_the_field_and_writes_nothing(args: list[str], field: str, run_cli, home: Path,
                                                               tmp_path: Path) -> None:
    base = ["profile", "--models", "rnn", "--seq-lens", "8", *CLI_TINY, "--out", str(tmp_path / "out")]
    code, stdout, stderr = run_cli([*base, *args])
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {field}:"), stderr
    assert stdout == ""
    assert not (tmp_path / "out").exists() and not (home / "seqarena.db").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without a GPU")
def test_cuda_without_a_gpu_is_refused(run_cli, home: Path, tmp_path: Path) -> None:
    code, _, stderr = run_cli(["profile", "--models", "rnn", "--seq-lens", "8", "--device", "cuda",
                               "--out", str(tmp_path / "out")])
    assert code == 2 and "device" in stderr and "cpu" in stderr
    assert not (tmp_path / "out").exists() and not (home / "seqarena.db").exists()
    with pytest.raises(BadInput, match="device"):
        profile(["rnn"], [8], device="cuda")


# ------------------------------------------------------------------------------------------- database

def settings(**extra: Any) -> dict[str, Any]:
    return {"device": "cpu", "torch_version": torch.__version__, "batch_size": 4, "hidden": 8, **extra}


def test_record_profile_refuses_a_bad_status_and_writes_nothing(engine: Engine) -> None:
    with pytest.raises(BadInput, match="status"):
        profiles.record_profile(engine, "bad", settings(), [{"model": "rnn", "seq_len": 8, "status": "fine"}])
    assert profiles.profile_runs_frame(engine).empty


def test_profile_migration_downgrades_to_0002_and_upgrades_again(engine: Engine,
                                                                 every_model_rows: list[ProfileRow]) -> None:
    profiles.record_profile(engine, "kept?", settings(), [row.to_json() for row in every_model_rows])
    with engine.connect() as conn:
        command.downgrade(database.alembic_config(conn), "0002")
        conn.commit()
    assert database.schema_revision(engine) == "0002"
    tables = set(inspect(engine).get_table_names())
    assert {"profile_runs", "profile_rows"}.isdisjoint(tables) and {"jobs", "trials"} <= tables
    database._upgrade(engine)
    assert database.schema_revision(engine) == database.head_revision() == "0009"
    assert profiles.profile_runs_frame(engine).empty
    run_id = profiles.record_profile(engine, "again", settings(), [row.to_json() for row in every_model_rows])
    assert len(profiles.profile_rows_frame(engine, run_id)) == len(every_model_rows)


# ------------------------------------------------------------------------------------------ dashboard

def chart_traces(app: AppTest) -> list[dict[str, list[float]]]:
    """Per Plotly chart: trace name -> y values (Plotly 6+ sends arrays as base64 typed arrays); a dashed line
    (inference, where training is solid: one legend entry per model) as "name (dash)"."""
    def values(array: Any) -> list[float]:
        if isinstance(array, dict) and "bdata" in array:
            return np.frombuffer(base64.b64decode(array["bdata"]), dtype=np.dtype(array["dtype"])).tolist()
        return list(array)

    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    def key(trace: dict) -> str:
        dash = trace.get("line", {}).get("dash", "solid")
        return trace["name"] if dash == "solid" else f"{trace['name']} ({dash})"

    return [{key(trace): values(trace["y"]) for trace in spec["data"]} for spec in specs]


def test_the_cost_page_shows_a_chosen_profile_run_s_numbers(home: Path, every_model_rows: list[ProfileRow]) -> None:
    engine = database.get_engine()
    older = profiles.record_profile(engine, "older", settings(),
                                    [row.to_json() for row in every_model_rows if row.model == "rnn"])
    newest = profiles.record_profile(engine, "newest", settings(), [row.to_json() for row in every_model_rows])
    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    app.switch_page("cost.py").run()
    assert not app.exception and not app.error, [e.value for e in [*app.exception, *app.error]]
    box = app.selectbox(key="cost_profile_run")
    assert [option.split(" · ")[0] for option in box.options] == ["newest", "older"]
    assert newest[:8] in box.value
    memory, speed = chart_traces(app)
    by_case = {(row.model, row.seq_len): row for row in every_model_rows}
    for model in MODELS:
        assert memory[model] == pytest.approx([by_case[model, t].peak_mem_mb for t in LENGTHS])
        assert speed[model] == pytest.approx([by_case[model, t].train_seq_per_s for t in LENGTHS])
        assert speed[f"{model} (dash)"] == pytest.approx([by_case[model, t].infer_seq_per_s for t in LENGTHS])
    box.select(next(option for option in box.options if older[:8] in option)).run()
    memory, _ = chart_traces(app)
    assert set(memory) == {"rnn"}


def test_the_demo_records_a_profile_of_its_models_at_several_T_on_one_thread(engine: Engine) -> None:
    """Issue 19: `seqarena demo` records a profile run so that Memory & throughput shows steady-state figures
    at several T; it runs on one thread (as the search's trials did) and gives torch its threads back."""
    torch.set_num_threads(2)
    sizes = profiles.DemoProfile(seq_lens=(8, 16), batch_size=4, hidden=8, repeats=1, warmup=1)
    seen: list[tuple[str, int, bool]] = []
    run_id = profiles.profile_demo(engine, ["rnn", "lstm"], sizes,
                                   lambda model, seq_len, row: seen.append((model, seq_len, row is None)))
    assert torch.get_num_threads() == 2
    runs = profiles.profile_runs_frame(engine)
    assert list(runs["name"]) == ["demo profile"] and runs["id"].iloc[0] == run_id
    assert (int(runs["batch_size"].iloc[0]), int(runs["hidden"].iloc[0])) == (4, 8)
    rows = profiles.profile_rows_frame(engine, run_id)
    assert list(zip(rows["model"], rows["seq_len"], rows["status"], strict=True)) == [
        ("lstm", 8, "ok"), ("lstm", 16, "ok"), ("rnn", 8, "ok"), ("rnn", 16, "ok")]
    assert (rows["train_seq_per_s"] > 0).all() and (rows["peak_mem_mb"] > 0).all()
    assert [(model, t) for model, t, started in seen if not started] == [("rnn", 8), ("rnn", 16), ("lstm", 8),
                                                                         ("lstm", 16)]
