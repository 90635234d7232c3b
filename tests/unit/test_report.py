"""`seqarena report` (issue 17 §5): the published leaderboard holds the numbers worked out by hand from trials
written to a real SQLite database (k/n, steps to solve, mean, max T solved), the bootstrap interval of the
statistics module on the same seeds, the spec hash, the versions and device each run recorded; bad input is
one line, exit 2, nothing written; no secret of the environment reaches a written file."""

from __future__ import annotations

import json
import re
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import torch
from sqlalchemy import Engine

import seqarena
from seqarena.platform import searches
from seqarena.platform.statistics import bootstrap_mean, interval_text
from seqarena.report import write_report

ADD = 1.0 / 6.0  # adding's trivial MSE; solved below 1/60 = 0.016667
TOKEN = "tok-8f3a9c<&>secret"  # HTML would escape it: redacted before escaping
SPEC = f"name: published\ntask: adding\nseq_lens: [100, 1000]\nmodels: [gru, lstm]\n# {TOKEN} postgresql://bob:hunter22@db/x\n"
FACTS = {"device": "cuda", "gpu_name": "NVIDIA H200", "implementation": "fused-cuda", "git_commit": "c0ffee1",
         "seqarena_version": "0.1.0", "torch_version": "2.5.1", "cuda_version": "12.4", "ray_version": "2.60.0",
         "optuna_version": "5.1.0", "mlflow_version": "3.17.2"}


def _arm(t: int, model: str) -> dict[str, Any]:
    return {"task": "adding", "seq_len": t, "model": model, "key": f"adding/T={t}/{model}", "metric_name": "mse",
            "higher_is_better": False, "baseline": ADD, "protocol": "lem"}


def _run(trial_id: str, metric: float | None, *, seed: int, role: str = "search", lr: float = 0.01,
         status: str = "completed", solved_at: int | None = None,
         facts: dict[str, str] | None = FACTS, lengths: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
    curve = [{"step": 100.0, "train_loss": 0.17, "val_mse": 0.17}]
    if solved_at is not None:
        curve.append({"step": float(solved_at), "train_loss": 0.01, "val_mse": 0.01})
    return {"trial_id": trial_id, "seed": seed, "role": role, "hparams": {"lr": lr}, "status": status,
            "metric": metric, "best_val_metric": metric, "steps": 3000, "curve": curve, "params": 12_345,
            "train_seq_per_s": 800.0, "infer_seq_per_s": 2400.0, "peak_mem_mb": 42.0, "facts": facts,
            "lengths": list(lengths)}


def _at(seq_len: int, metric: float | None) -> dict[str, Any]:
    """A test at another length T′: completed with `metric`, or out of memory without one."""
    if metric is None:
        return {"seq_len": seq_len, "status": "oom", "metric": None, "note": "CUDA out of memory"}
    return {"seq_len": seq_len, "status": "completed", "metric": metric, "note": None}


def recorded(engine: Engine) -> str:
    """gru T=100: one configuration on seeds 1, 2, 3 (0.010 solved at step 200, 0.012 solved at 300, 0.2 not
    solved; the last recorded before facts were kept) and a worse one; lstm T=100: 0.05 on one seed; gru
    T=1000: out of memory; lstm T=1000: 0.1. gru T=100's seeds tested at T′ = 200: 0.02, 0.04, out of memory."""
    search_id = searches.create_search(engine, name="published", spec_yaml=SPEC, spec_hash="9f86d081884c7d65",
                                       mlflow_experiment_id="1",
                                       arms=[_arm(t, model) for t in (100, 1000) for model in ("gru", "lstm")])
    trials = {"adding/T=100/gru": [_run("g1", 0.010, seed=1, solved_at=200, lengths=(_at(200, 0.02),)),
                                   _run("g0", 0.3, seed=9, lr=0.1),
                                   _run("g2", 0.012, seed=2, role="repeat", solved_at=300, lengths=(_at(200, 0.04),)),
                                   _run("g3", 0.2, seed=3, role="repeat", facts=None, lengths=(_at(200, None),))],
              "adding/T=100/lstm": [_run("l1", 0.05, seed=1)],
              "adding/T=1000/gru": [_run("o1", None, seed=1, status="oom")],
              "adding/T=1000/lstm": [_run("l2", 0.1, seed=1)]}
    for key, rows in trials.items():
        for row in rows:
            assert searches.record_trial(engine, search_id, key, row)
    return search_id


def test_the_report_holds_the_hand_computed_numbers_in_markdown_and_json(engine: Engine, tmp_path: Path) -> None:
    search_id = recorded(engine)
    written = write_report(engine, "adding", search_id, tmp_path / "out")
    data = json.loads(written.json.read_text())
    gru = next(arm for arm in data["leaderboard"] if arm["model"] == "gru" and arm["seq_len"] == 100)
    assert gru["n"] == 3 and gru["mean"] == pytest.approx((0.010 + 0.012 + 0.2) / 3)  # 0.074
    expected = bootstrap_mean([0.010, 0.012, 0.2])  # the seeds in order 1, 2, 3
    assert gru["interval"]["low"] == pytest.approx(expected.low)
    assert gru["interval"]["high"] == pytest.approx(expected.high)
    assert expected.low < 0.074 < expected.high
    assert (gru["solve"]["solved"], gru["solve"]["seeds"]) == (2, 3)  # 0.2 is above 1/60
    assert gru["solve"]["steps_median"] == 250 and gru["solve"]["steps_range"] == [200, 300]
    assert gru["place"] == 2  # lstm's 0.05 beats gru's mean 0.074 at T = 100
    assert gru["provenance"]["runs"] == 3 and gru["provenance"]["recorded"] == 2  # g3 has no facts
    assert gru["provenance"]["device"] == ["cuda"] and gru["provenance"]["git_commit"] == ["c0ffee1"]
    oom = next(arm for arm in data["leaderboard"] if arm["model"] == "gru" and arm["seq_len"] == 1000)
    assert oom["failure"] == "oom" and oom["mean"] is None
    reach = {line["model"]: line for line in data["reach"]}
    assert reach["gru"]["max_t_solved"] == 100 and reach["gru"]["marked"] == ["oom at T = 1000"]
    assert reach["lstm"]["max_t_solved"] is None  # 0.05 and 0.1 are above 1/60
    assert data["searches"][0]["spec_hash"] == "9f86d081884c7d65" and data["search_id"] == search_id
    assert data["generated"]["versions"] == {"seqarena": seqarena.__version__, "torch": torch.__version__,
                                             "ray": metadata.version("ray"), "optuna": metadata.version("optuna"),
                                             "mlflow": metadata.version("mlflow")}
    assert data["protocols"][0]["name"] == "lem" and data["solved_when"]["rule"] == "mse < 0.01667"

    text = written.markdown.read_text()
    assert f"| 100 | 2 | gru | {interval_text(expected, compact=True)} | 3 | 2 / 3 | 250 (200–300) | 3000 |" in text
    assert "| 100 | 1 | lstm | 0.05 [0.05, 0.05] n = 1 | 1 | 0 / 1 | — | 3000 |" in text
    assert "| 1000 | — | gru | oom | 0 |" in text
    assert "| gru | 100, 1000 | 100 |" in text and "oom at T = 1000" in text
    assert "| 100 | gru | 2 / 3 | cuda | NVIDIA H200 | fused-cuda | c0ffee1 | 0.1.0 | 2.5.1 | 12.4 | 2.60.0 |" in text
    assert "| 100 | gru | 12345 | 42 | 800 | 2400 | cuda | NVIDIA H200 | fused-cuda |" in text  # the cost table
    assert "9f86d081884c7d65" in text and f"torch {torch.__version__}" in text
    assert f"mlflow {metadata.version('mlflow')}" in text


def test_the_report_holds_the_other_lengths_each_arm_was_tested_at(engine: Engine, tmp_path: Path) -> None:
    """gru trained at T = 100, tested at T′ = 200 on its three seeds: mean (0.02 + 0.04) / 2 = 0.03 over n = 2,
    the third seed's out-of-memory marked, the trained T the leaderboard's mean; in Markdown, JSON and HTML."""
    write_report(engine, "adding", recorded(engine), tmp_path)
    points = {(p["model"], p["seq_len"]): p for p in json.loads((tmp_path / "report.json").read_text())["lengths"]}
    assert set(points) == {("gru", 100), ("gru", 200)}  # lstm was never tested at another length
    assert points["gru", 200]["mean"] == pytest.approx(0.03) and points["gru", 200]["n"] == 2
    assert points["gru", 200]["runs"] == 3 and points["gru", 200]["failures"] == {"oom": 1}
    assert points["gru", 100]["trained"] and points["gru", 100]["mean"] == pytest.approx((0.010 + 0.012 + 0.2) / 3)
    markdown = (tmp_path / "report.md").read_text()
    assert "## At other lengths T′ (length generalisation)" in markdown
    assert "| gru | 100 | 0.074 (n=3) * | 0.03 (n=2); oom at T′ = 200 (CUDA out of memory), 1 of 3 runs |" in markdown
    html_page = (tmp_path / "report.html").read_text()
    assert 'class="seqarena-report-lengths"' in html_page and "0.03 (n=2); oom at T′ = 200" in html_page


def test_the_html_page_embeds_plotly_and_the_tables_offline(engine: Engine, tmp_path: Path) -> None:
    write_report(engine, "adding", recorded(engine), tmp_path)
    page = (tmp_path / "report.html").read_text()
    assert page.count('class="plotly-graph-div"') == 4  # metric, memory, throughput against T; at other T′
    assert not re.search(r"<script[^>]*\ssrc=", page) and len(page) > 1_000_000  # plotly.js inline, no CDN
    assert '<table class="seqarena-report-leaderboard">' in page and "250 (200–300)" in page


def test_no_secret_reaches_a_written_file(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DASHBOARD_TOKEN", TOKEN)
    write_report(engine, "adding", recorded(engine), tmp_path)
    for name in ("report.html", "report.md", "report.json"):
        text = (tmp_path / name).read_text()
        assert "8f3a9c" not in text and "hunter22" not in text, name
        assert "postgresql://bob:***@db/x" in text, name


def test_bad_input_is_one_line_exit_2_and_nothing_written(run_cli, engine: Engine, url: str, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEQARENA_DB_URL", url)
    recorded(engine)
    out = tmp_path / "out"
    a_file = tmp_path / "a-file"
    a_file.write_text("keep")
    for args, field in ((["--task", "copy", "--out", str(out)], "task"),
                        (["--task", "adding", "--search", "nope", "--out", str(out)], "search"),
                        (["--task", "adding", "--out", str(a_file)], "out")):
        code, stdout, err = run_cli(["report", *args])
        assert code == 2 and stdout == "" and len(err.strip().splitlines()) == 1, (args, err)
        assert err.startswith(f"error: {field}"), err
    assert not out.exists() and a_file.read_text() == "keep"
    code, _, err = run_cli(["report", "--task", "adding", "--out", str(out)])
    assert code == 0 and sorted(path.name for path in out.iterdir()) == ["report.html", "report.json", "report.md"]
