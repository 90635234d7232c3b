"""Profile every model of the zoo against the sequence length (issue 8) and write the results.

Runs `seqarena.workers.profile` (the code behind `seqarena profile`; its docstring says what a
training and an inference step are and how time and memory are measured) for the given models and
lengths, writes `profile.json` and `profile.csv` (plus the git sha, the command and the machine's
load) into `--results-dir`, then reads the JSON back and replaces the section
"## Model profiles (issue 8)" of `benchmarks/RESULTS.md` with the command, the machine and the table.

Usage: .venv/bin/python benchmarks/profile_models.py [--models all] [--seq-lens 100,1000,10000]
       [--batch-size 64] [--hidden 128] [--device cpu] [--repeats 5] [--warmup 2] [--max-mem-gb 8]
       [--note TEXT]

Time budget: on a 2-core CPU a training step of every model at T = 1000, batch 64, hidden 128
takes about 75 s in all (TCN and the Transformer dominate), so T = 10000 (10x the recurrent
cost, 100x the attention memory) is for a GPU; `--max-mem-gb` skips the lengths whose
extrapolated memory would not fit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from seqarena.workers import profile as profiling

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Model profiles (issue 8)"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="all", help="comma-separated model names, or all")
    parser.add_argument("--seq-lens", default="100,1000,10000", help="comma-separated sequence lengths")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--max-mem-gb", type=float, default=8.0)
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results" / "profile_models")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--note", default="", help="a sentence added to the section (e.g. why a run is small)")
    return parser.parse_args(argv)


def git_sha() -> str:
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()
        except OSError:  # no git on the machine (a GPU machine gets a copy of the tree)
            return ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    return sha + (" + uncommitted changes" if git("status", "--porcelain") else "")


def run(args: argparse.Namespace) -> Path:
    """Profile, write the files, return the JSON's path."""
    plan = profiling.plan_profile(profiling.parse_models(args.models), profiling.parse_seq_lens(args.seq_lens),
                                  batch_size=args.batch_size, hidden=args.hidden, device=args.device,
                                  repeats=args.repeats, warmup=args.warmup, max_mem_gb=args.max_mem_gb)
    started = time.perf_counter()

    def report(model: str, seq_len: int, row: profiling.ProfileRow | None) -> None:
        if row is not None:
            print(f"{model:12s} T={seq_len:<6d} {row.status:8s} {time.perf_counter() - started:7.1f} s", flush=True)

    rows = profiling.run_plan(plan, report)
    json_path, _ = profiling.write_files(plan, rows, args.results_dir)
    found = json.loads(json_path.read_text())
    found.update(git_sha=git_sha(), wall_s=time.perf_counter() - started, loadavg=list(os.getloadavg()),
                 cpu_count=os.cpu_count(), measured_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                 command=".venv/bin/python benchmarks/profile_models.py " + shlex.join(sys.argv[1:]))
    json_path.write_text(json.dumps(found, indent=1))
    return json_path


def section(found: dict[str, Any], note: str) -> str:
    """The Markdown section, from the JSON file's contents."""
    rows = [profiling.ProfileRow(**row) for row in found["rows"]]
    header = "| " + " | ".join(profiling.TABLE_COLUMNS) + " |\n|" + "---|" * len(profiling.TABLE_COLUMNS) + "\n"
    table = "".join("| " + " | ".join(cells) + " |\n" for cells in profiling.table_rows(rows))
    load = ", ".join(f"{x:.1f}" for x in found["loadavg"])
    return (
        f"{SECTION}\n\nMeasured {found['measured_at']} (git {found['git_sha']}) with\n\n    {found['command']}\n\n"
        f"- Machine: {found['machine']}, {found['cpu_count']} CPU cores, device {found['device']} "
        f"({found['device_name']}), torch {found['torch_version']} on {found['threads']} threads; load average "
        f"{load} at the end (1, 5, 15 min; other work shares the cores, so times are noisy).\n"
        f"- Each (model, T): batch {found['batch_size']}, hidden {found['hidden']}, input size "
        f"{found['input_size']}, each model at its declared depth and defaults; a training step is forward + "
        "last-step linear readout + MSE + backward + the model's optimiser step (Adam); times are the median of "
        f"{found['repeats']} timed runs after {found['warmup']} warm-up run(s); peak memory of a training step "
        f"by `seqarena.workers.measure` ({rows[0].peak_mem_method if rows else ''}). Memory guard: "
        f"{found['max_mem_gb']} GiB. Whole run: {found['wall_s']:.0f} s.\n"
        f"- Files: `{found['files']}` (profile.json, profile.csv).\n"
        + (f"- Note: {note}\n" if note else "") + "\n" + header + table + "\n")


def write_section(path: Path, body: str) -> None:
    """Replace SECTION in `path` (append it when missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    found = re.search(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    text = text[:found.start()] + body + text[found.end():] if found else text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    json_path = run(args)
    found = json.loads(json_path.read_text())
    found["files"] = str(json_path.parent.relative_to(ROOT) if json_path.is_relative_to(ROOT) else json_path.parent)
    body = section(found, args.note)
    write_section(args.out, body)
    print(body)


if __name__ == "__main__":
    main()
