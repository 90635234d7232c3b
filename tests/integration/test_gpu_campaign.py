"""The issue 22 GPU campaign's dry run end to end (scripts/gpu_campaign.py --dry-run: real Ray, MLflow, the
results database, the full MNIST it carries) and the import of its tarball (scripts/import_campaign.py) into
copies of docs/REPRODUCTIONS.md and benchmarks/RESULTS.md: the rows carry the numbers of the database."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
#: The full MNIST (the campaign's sMNIST/psMNIST parts verify the official files' digests in their Ray workers,
#: so the 4 000-image subset of tests/data cannot stand in): $SEQARENA_FULL_DATA, else the development machine's.
FULL_DATA = next((Path(p) for p in (os.environ.get("SEQARENA_FULL_DATA"), "/work/shared/data")
                  if p and (Path(p) / "mnist" / "t10k-labels-idx1-ubyte.gz").exists()), None)


def campaign(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "scripts/gpu_campaign.py", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=1200)


def arm_metrics(db: Path, search: str) -> dict[tuple[int, str], list[float]]:
    """(T, model) -> the test metrics of the search's completed trials, read straight from the database."""
    with sqlite3.connect(db) as conn:
        found = conn.execute("SELECT arms.seq_len, arms.model, trials.metric FROM trials JOIN arms ON "
                             "trials.arm_id = arms.id JOIN searches ON trials.search_id = searches.id "
                             "WHERE searches.name = ? AND trials.status = 'completed'", (search,)).fetchall()
    arms: dict[tuple[int, str], list[float]] = {}
    for seq_len, model, metric in found:
        arms.setdefault((seq_len, model), []).append(metric)
    return arms


@pytest.mark.skipif(FULL_DATA is None, reason="needs the full MNIST (SEQARENA_FULL_DATA holding mnist/)")
@pytest.mark.timeout(1500)  # five searches on real Ray: 9-13 min measured on the shared 2-core machine (load 30-50)
def test_dry_run_and_import(tmp_path: Path) -> None:
    out = tmp_path / "campaign"
    done = campaign(str(out), "--dry-run", "--data", str(FULL_DATA), "--box-s", "1150")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    state = json.loads((out / "campaign.json").read_text())
    assert {name: part["status"] for name, part in state["parts"].items()} == dict.fromkeys(
        ["profile", "gpu-adding", "gpu-adding-transformer", "gpu-smnist", "gpu-psmnist", "gpu-copy", "leaderboard"],
        "done")
    for name in ("gpu-adding", "gpu-adding-transformer", "gpu-smnist", "gpu-psmnist", "gpu-copy"):
        assert (out / "specs" / "gpu" / f"{name}.yaml").exists()  # the GPU specs, validated before the run
    board = json.loads((out / "leaderboard.json").read_text())
    assert {(row["task"], row["seq_len"], row["model"]) for row in board} >= {
        ("adding", 8, "lstm"), ("adding", 16, "lem"), ("adding", 8, "transformer"), ("smnist", 784, "lstm"),
        ("psmnist", 784, "lstm"), ("copy", 8, "lstm")}
    assert all(row["solve"]["seeds"] == 2 for row in board)
    with tarfile.open(out / "campaign.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"campaign.json", "leaderboard.json", "home/seqarena.db", "home/mlflow.db", "profile/profile.json"} <= names
    assert not [name for name in names if name.endswith(".pt") or "ray_results" in name]  # 16 MiB a file back

    # a finished campaign resumed: nothing runs again
    again = campaign(str(out), "--dry-run", "--resume", "--data", str(FULL_DATA))
    assert again.returncode == 0, again.stderr[-2000:]
    assert "gpu-adding: done before, kept" in again.stdout

    docs = tmp_path / "docs"
    docs.mkdir()
    reproductions = shutil.copy(REPO / "docs" / "REPRODUCTIONS.md", docs / "REPRODUCTIONS.md")
    results = shutil.copy(REPO / "benchmarks" / "RESULTS.md", docs / "RESULTS.md")
    imported = subprocess.run([sys.executable, "scripts/import_campaign.py", str(out / "campaign.tar.gz"),
                               "--reproductions", str(reproductions), "--results", str(results), "--no-screenshots"],
                              cwd=REPO, capture_output=True, text=True, timeout=600)
    assert imported.returncode == 0, imported.stderr[-3000:]

    page = Path(reproductions).read_text()
    block = page[page.index("<!-- gpu-campaign:start -->"):page.index("<!-- gpu-campaign:end -->")]
    device = state["device"].split(" (")[0]
    for search, task in (("gpu-adding", "adding"), ("gpu-smnist", "smnist"), ("gpu-copy", "copy")):
        for (seq_len, model), metrics in arm_metrics(out / "home" / "seqarena.db", search).items():
            row = next(line for line in block.splitlines() if line.startswith(f"| {task} | {seq_len} | {model} |"))
            mean, std = statistics.mean(metrics), statistics.stdev(metrics)
            scale = 100 if task == "smnist" else 1
            assert f"{scale * mean:.4g} ± {scale * std:.3g}" in row, (row, metrics)
            assert f"| {device} |" in row and f"| {len(metrics)} |" in row
            assert f"`seqarena run specs/{search}.yaml`" in row
    assert "| adding | 16 | lem |" in block and "| smnist | 784 | lstm |" in block
    assert "98.5 % (JANET paper, 2 × 128) [paper]" in block  # sMNIST LSTM, docs/reference/results.md

    profile = json.loads((out / "profile" / "profile.json").read_text())
    text = Path(results).read_text()
    section = text[text.index("## Model profiles on a GPU (issue 22)"):]
    lstm = next(row for row in profile["rows"] if row["model"] == "lstm" and row["seq_len"] == 16)
    assert f"| lstm | 16 | ok | {lstm['params']:,} | {1e3 * lstm['train_step_s']:,.2f} |" in section
    assert text.count("## Model profiles on a GPU (issue 22)") == 1


def test_refuses_a_used_folder_without_resume(tmp_path: Path) -> None:
    (tmp_path / "old").write_text("x")
    done = campaign(str(tmp_path), "--dry-run")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"out: {tmp_path} is not empty; allowed: a new or empty folder, or --resume"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
