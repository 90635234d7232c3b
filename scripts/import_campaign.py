"""Bring a GPU campaign's results home (issue 22): its rows into docs/REPRODUCTIONS.md, its profile into
benchmarks/RESULTS.md, and the dashboard screenshots made from its database.

    .venv/bin/python scripts/import_campaign.py OUT_DIR/campaign.tar.gz   # or OUT_DIR itself
        [--reproductions docs/REPRODUCTIONS.md] [--results benchmarks/RESULTS.md] [--images docs/images/gpu]
        [--no-screenshots]

The tarball (scripts/gpu_campaign.py) is unpacked into a temporary folder (`tarfile`'s "data" filter: no
links out, no devices); nothing in it is unpickled. The rows are read from its results database with the
leaderboard of each part's search (`seqarena.platform.leaderboard`: the seeds of each arm's configuration,
their mean and standard deviation, solved k of n and the steps to solve), with the published number beside
each (docs/reference/results.md) and the command that made it. The text between the markers
`<!-- gpu-campaign:start -->` and `<!-- gpu-campaign:end -->` of the reproductions page is replaced; the
section "## Model profiles on a GPU (issue 22)" of the results page is replaced (or appended). The
screenshots are `scripts/dashboard_screenshots.py` run on the unpacked database (SEQARENA_HOME).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
START, END = "<!-- gpu-campaign:start -->", "<!-- gpu-campaign:end -->"
PROFILE_SECTION = "## Model profiles on a GPU (issue 22)"
CAMPAIGN_COMMAND = "bash scripts/gpu_campaign.sh OUT_DIR"

#: (task, model) -> the published result (docs/reference/results.md; [log]: the authors' logs, [paper]: the paper).
PUBLISHED = {
    ("adding", "lem"): "solves T = 2000 and 5000: MSE < 0.01 at step ≈ 1 900–2 000 of 30 000 [log]",
    ("adding", "cornn"): "solves T = 500, 2000, 5000 (Fig. 1) [paper]",
    ("adding", "lstm"): "fails at T = 600: 0.164 (TCN paper, Table 1) [paper]",
    ("adding", "gru"): "T = 600: 5.3e-5 (TCN paper, Table 1) [paper]",
    ("adding", "tcn"): "T = 600: 5.8e-5 (TCN paper, Table 1) [paper]",
    ("adding", "unicornn"): "not reported for adding",
    ("adding", "janet"): "not reported for adding at these T",
    ("adding", "transformer"): "not reported for adding",
    ("smnist", "lstm"): "98.5 % (JANET paper, 2 × 128) [paper]",
    ("smnist", "janet"): "99.0 % (2 × 128) [paper]",
    ("smnist", "cornn"): "99.35 % (256 units, 120 epochs) [log]",
    ("smnist", "unicornn"): "not reported (psMNIST only)",
    ("smnist", "lem"): "99.45 % (128 units, 120 epochs) [log]",
    ("smnist", "tcn"): "99.0 % (TCN paper, Table 1) [paper]",
    ("psmnist", "lstm"): "91.0 % (JANET paper, 2 × 128) [paper]",
    ("psmnist", "janet"): "92.5 % (2 × 128) [paper]",
    ("psmnist", "cornn"): "97.34 % (256 units) [log]",
    ("psmnist", "unicornn"): "98.4 % (3 × 256) [log]",
    ("psmnist", "lem"): "96.62 % (128 units) [log]",
    ("psmnist", "tcn"): "97.2 % (TCN paper, Table 1) [paper]",
    ("copy", "tcn"): "T = 1000: 3.5e-5 (TCN paper, Table 1) [paper]",
    ("copy", "gru"): "T = 1000: 0.0197, the baseline: fails (TCN paper) [paper]",
    ("copy", "lstm"): "T = 1000: 0.0204, the baseline: fails (TCN paper) [paper]",
    ("copy", "janet"): "not reported for copy at T = 1000",
}
COLUMNS = ("task", "T", "model", "device", "budget", "seeds", "solved", "steps to solve", "test metric (mean ± std)",
           "published", "command")


@dataclass(frozen=True)
class GpuRow:
    """One arm of the campaign as the reproductions page shows it."""

    task: str
    seq_len: int
    model: str
    device: str
    budget: int
    seeds: int
    solved: str
    steps_to_solve: str
    metric: str
    published: str
    command: str
    metric_name: str = ""
    mean: float | None = None

    def markdown(self) -> str:
        cells = (self.task, str(self.seq_len), self.model, self.device, f"{self.budget:,} steps", str(self.seeds),
                 self.solved, self.steps_to_solve, self.metric, self.published, f"`{self.command}`")
        return "| " + " | ".join(cells) + " |"


def unpack(source: Path, into: Path) -> Path:
    """The campaign folder: `source` itself, or the tarball unpacked into `into` (no links or devices)."""
    if source.is_dir():
        return source
    with tarfile.open(source, "r:gz") as tar:
        tar.extractall(into, filter="data")
    return into


def use_home(folder: Path) -> None:
    """Point the platform (this process and the screenshot script) at the campaign's databases."""
    home = (folder / "home").resolve()
    os.environ.update(SEQARENA_HOME=str(home), SEQARENA_DB_URL=f"sqlite:///{home}/seqarena.db",
                      MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db")


def metric_text(row: Any) -> str:
    """Mean ± std over the seeds (accuracy in %), with the trivial baseline."""
    if row.mean is None:
        return f"no result ({row.failure or 'none ranked'})"
    scale, unit = (100, " %") if row.metric_name == "accuracy" else (1, "")
    std = f" ± {scale * row.std:.3g}" if row.std is not None and row.n > 1 else ""
    return f"{scale * row.mean:.4g}{std}{unit} {row.metric_name} (baseline {scale * row.baseline:.3g}{unit})"


def steps_text(solve: Any) -> str:
    if solve is None or not solve.steps:
        return "—"
    low, high = solve.steps_range
    return f"{solve.steps_median:g} (range {low}–{high})" if low != high else f"{solve.steps_median:g}"


def gpu_rows(campaign: dict[str, Any]) -> list[GpuRow]:
    """The rows of every part's search, in the campaign's order (arms by T, then model)."""
    from seqarena.errors import BadInput
    from seqarena.platform import database, searches
    from seqarena.platform.leaderboard import leaderboard

    engine = database.get_engine()
    rows = []
    for part in campaign["plan"]:
        record = campaign["parts"].get(part["name"], {})
        if record.get("status") in (None, "skipped"):
            continue
        try:
            found = searches.find_search(engine, part["name"])
        except BadInput:  # cut by the box before it registered its search
            continue
        board = sorted(leaderboard(engine, search_id=found.id),
                       key=lambda r: (r.seq_len, part["models"].index(r.model)))
        for arm in board:
            solve = arm.solve
            rows.append(GpuRow(
                task=arm.task, seq_len=arm.seq_len, model=arm.model, device=device_short(campaign["device"]),
                budget=solve.budget if solve else part["steps"], seeds=arm.n,
                solved=f"{solve.solved}/{solve.seeds}" if solve else "—", steps_to_solve=steps_text(solve),
                metric=metric_text(arm), published=PUBLISHED.get((arm.task, arm.model), ""),
                command=f"seqarena run {record.get('spec', 'specs/' + part['name'] + '.yaml')}",
                metric_name=arm.metric_name, mean=arm.mean))
    return rows


def device_short(device: str) -> str:
    return device.split(" (")[0]


def findings(rows: list[GpuRow]) -> list[str]:
    """Plain statements read off the rows: per task and T, who solved (k of n) and who did not; the ranking of
    the models on each classification task by mean test accuracy."""
    lines = []
    for task in dict.fromkeys(row.task for row in rows):
        mine = [row for row in rows if row.task == task]
        for seq_len in sorted({row.seq_len for row in mine}):
            at = [row for row in mine if row.seq_len == seq_len]
            unsolved = [row.model for row in at if row.solved == "—" or row.solved.startswith("0/")]
            solved = [f"{row.model} {row.solved}" for row in at if row.model not in unsolved]
            lines.append(f"- {task} T = {seq_len}: solved by {', '.join(solved) or 'no model'}"
                         f"{'; no seed solved: ' + ', '.join(unsolved) if unsolved else ''}.")
        ranked = sorted((row for row in mine if row.metric_name == "accuracy" and row.mean is not None),
                        key=lambda row: -(row.mean or 0.0))
        if ranked:
            lines.append(f"- {task} ranking by mean test accuracy: "
                         + ", ".join(f"{row.model} {100 * (row.mean or 0.0):.4g} %" for row in ranked) + ".")
    return lines


def reproductions_block(campaign: dict[str, Any], rows: list[GpuRow]) -> str:
    parts = [p for p in campaign["plan"] if campaign["parts"].get(p["name"], {}).get("status") not in (None, "skipped")]
    budgets = "; ".join(f"{p['name']} {p['steps']:,} steps ({campaign['parts'][p['name']].get('status')}, "
                        f"{campaign['parts'][p['name']].get('wall_s', 0):.0f} s)" for p in parts)
    header = "| " + " | ".join(COLUMNS) + " |\n|" + "---|" * len(COLUMNS)
    kind = "a dry run on the CPU (tiny budgets: not results)" if campaign.get("dry_run") else "the GPU campaign"
    return "\n".join([
        START,
        f"Imported from {kind}: device {campaign['device']}, git {campaign['git']}, started {campaign['started']}, "
        f"ended {campaign.get('ended', '?')}; `{CAMPAIGN_COMMAND}`, then "
        "`.venv/bin/python scripts/import_campaign.py OUT_DIR/campaign.tar.gz`. Parts: " + budgets + ".",
        "", header, *(row.markdown() for row in rows), "",
        "What the rows say (generated from the database; the reading is below):", "", *findings(rows), END])


def replace_between(text: str, block: str) -> str:
    """`text` with the part from START to END (markers included) replaced by `block`."""
    found = re.search(re.escape(START) + r".*?" + re.escape(END), text, re.S)
    if found is None:
        raise SystemExit(f"reproductions: no {START} ... {END} markers; allowed: a page holding both")
    return text[:found.start()] + block + text[found.end():]


def profile_body(folder: Path) -> str | None:
    """The campaign's profile as a RESULTS.md section (benchmarks/profile_models.py's own table)."""
    found_path = folder / "profile" / "profile.json"
    if not found_path.exists():
        return None
    loader = importlib.util.spec_from_file_location("profile_models", ROOT / "benchmarks" / "profile_models.py")
    module = importlib.util.module_from_spec(loader)  # type: ignore[arg-type]
    loader.loader.exec_module(module)  # type: ignore[union-attr]
    found = json.loads(found_path.read_text())
    found["files"] = "campaign.tar.gz: profile/ (profile.json, profile.csv)"
    body = module.section(found, "issue 22 GPU campaign (scripts/gpu_campaign.py), imported by "
                                 "scripts/import_campaign.py")
    return body.replace(module.SECTION, PROFILE_SECTION, 1)


def replace_section(path: Path, heading: str, body: str) -> None:
    """Replace the section `heading` of `path` (up to the next `## `) with `body`, or append it."""
    text = path.read_text()
    found = re.search(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    text = text[:found.start()] + body + text[found.end():] if found else text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def screenshots(images: Path) -> None:
    """The dashboard's leaderboard and metric vs T (and the adding report) of the campaign's database."""
    subprocess.run([sys.executable, str(ROOT / "scripts" / "dashboard_screenshots.py"), str(images), "adding"],
                   check=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="OUT_DIR/campaign.tar.gz, or OUT_DIR")
    parser.add_argument("--reproductions", type=Path, default=ROOT / "docs" / "REPRODUCTIONS.md")
    parser.add_argument("--results", type=Path, default=ROOT / "benchmarks" / "RESULTS.md")
    parser.add_argument("--images", type=Path, default=ROOT / "docs" / "images" / "gpu")
    parser.add_argument("--no-screenshots", action="store_true", help="leave the images as they are")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if not args.source.exists():
        print(f"source: {args.source} does not exist; allowed: OUT_DIR/campaign.tar.gz or OUT_DIR", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="campaign-") as temporary:
        folder = unpack(args.source, Path(temporary))
        campaign = json.loads((folder / "campaign.json").read_text())
        use_home(folder)
        rows = gpu_rows(campaign)
        page = replace_between(args.reproductions.read_text(), reproductions_block(campaign, rows))
        body = profile_body(folder)
        args.reproductions.write_text(page)
        if body is not None:
            replace_section(args.results, PROFILE_SECTION, body)
        if not args.no_screenshots:
            screenshots(args.images)
    print(f"{len(rows)} rows into {args.reproductions}; profile {'into ' + str(args.results) if body else 'missing'}"
          f"{'' if args.no_screenshots else '; screenshots in ' + str(args.images)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
