"""benchmarks/gpu_concurrency.py: a CPU smoke run of the measurement, and its RESULTS.md section."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_concurrency.py"


def _run(*args: str) -> str:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.slow
def test_a_cpu_smoke_run_measures_every_level_and_reports_it(tmp_path: Path) -> None:
    out = tmp_path / "conc.json"
    _run("measure", "--device", "cpu", "--steps", "2", "--seq-len", "20", "--hidden", "8", "--batch", "4",
         "--procs", "1", "2", "--models", "lstm", "--json", str(out))
    result = json.loads(out.read_text())
    levels = result["models"]["lstm"]
    assert set(levels) == {"1", "2"} and result["device"]["device"] == "cpu"
    for procs, level in levels.items():
        assert len(level["per_process_steps_per_s"]) == int(procs)
        assert level["aggregate_steps_per_s"] == pytest.approx(int(procs) * 2 / level["window_s"])
    assert levels["2"]["speedup"] == pytest.approx(levels["2"]["aggregate_steps_per_s"]
                                                   / levels["1"]["aggregate_steps_per_s"])
    results_md = tmp_path / "RESULTS.md"
    results_md.write_text("# Benchmarks\n\n## Other\n\nkept\n")
    _run("report", str(out), "--results", str(tmp_path / "results"), "--results-md", str(results_md))
    text = results_md.read_text()
    assert "## Other\n\nkept" in text and "## Trials sharing one GPU" in text
    assert f"| lstm (aten) | {levels['1']['aggregate_steps_per_s']:.1f} |" in text
    assert json.loads((tmp_path / "results" / "gpu_concurrency.json").read_text())["models"] == result["models"]


def test_the_section_judges_eight_processes_against_one_on_a_gpu() -> None:
    sys.path.insert(0, str(SCRIPT.parent))
    from gpu_concurrency import markdown

    def level(procs: int, rate: float) -> dict:
        return {"procs": procs, "aggregate_steps_per_s": rate, "speedup": rate / 10.0, "implementation": ["x"]}

    result = {"when": "now", "argv": ["measure"], "seconds": 1.0,
              "device": {"gpu": "H200", "multiprocessors": 132, "memory_gib": 139.0, "torch": "2", "cuda": "13",
                         "python": "3.12"},
              "args": {"procs": [1, 8], "seq_len": 1000, "batch": 64, "hidden": 128, "warmup": 3, "steps": 100},
              "models": {"cornn": {"1": level(1, 10.0), "8": level(8, 45.0)},
                         "lstm": {"1": level(1, 10.0), "8": level(8, 30.0)}}}
    text = markdown(result)
    assert "| cornn | 4.50 | >= 4 | met |" in text
    assert "| lstm | 3.00 | >= 4 | not met |" in text
