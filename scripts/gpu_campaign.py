"""The published comparisons at the budgets one GPU lease allows (issue 22), through the platform itself.

    python3 scripts/gpu_campaign.py OUT_DIR [--dry-run] [--resume] [--box-s 540] [--plan]

Runs, in priority order, each part as one `seqarena run SPEC --json` on a local Ray that holds the GPU
(MLflow store and results database under OUT_DIR/home; fractional `gpus_per_trial`, so that many trials
share the GPU), every model at its authors' settings (the per-task defaults `seqarena models` lists, written
into the spec as `fixed` values, so nothing is searched) and the task's `authors` protocol, with `REPEATS`
seeds per arm:

1. `gpu-adding`: the adding problem at T = 500, 2000, 5000 for lstm, gru, janet, cornn, unicornn, lem, tcn;
2. `gpu-adding-transformer`: the same for the Transformer, fewer at once (its attention at T = 5000 holds
   tens of GiB: `benchmarks/RESULTS.md`, "Model profiles on a GPU");
3. `gpu-smnist`, 4. `gpu-psmnist`: lstm, janet, cornn, unicornn, lem, tcn on the full MNIST
   (`$SEQARENA_DATA/mnist`: the campaign carries a copy, see scripts/gpu_campaign.sh);
5. `gpu-copy`: the copy task at T = 1000 (lstm, gru, janet, tcn: the TCN paper's comparison).

Before them, `benchmarks/profile_models.py` profiles every model at T = 1000, 2000, 5000 on the device
(OUT_DIR/profile/); after them, OUT_DIR/leaderboard.json is `seqarena leaderboard --json` (solve statistics
included) and OUT_DIR/campaign.tar.gz holds OUT_DIR/home (both databases, MLflow artifacts) and
OUT_DIR/campaign.json (the plan, each part's command, wall time and exit status, the device), which
`scripts/import_campaign.py` turns into the GPU rows of docs/REPRODUCTIONS.md.

Wall-time box. The whole command ends within `--box-s` seconds (default 540: one 9-minute device command).
Each part's step budget is chosen from the GPU profile figures of benchmarks/RESULTS.md (`STEP_MS`: ms per
training step at T = 1000 on an H200, scaled linearly in T, the Transformer quadratically above T = 1000)
so that the parts fit their share of the box (`SHARES`); `--plan` prints the budgets and estimates without
running anything. Each part also runs under `timeout` with what is left of the box (less the reserve the
leaderboard and the tarball need); a part cut by the box is recorded as `killed` and the later parts are
skipped. `--resume` continues a killed campaign with the plan it started with: finished parts are kept,
a killed part is continued by `seqarena run --resume` (finished trials are not rerun, running ones go on
from their last checkpoint), parts never started run.

`--dry-run` takes the very same path on the CPU within a few minutes: `seqarena validate` of every GPU
spec (the exact files the GPU run will use), then each part with tiny lengths, budgets, batches and two
seeds, no GPU (`gpus_per_trial` 0), the profile at T = 8, 16, 32, the leaderboard and the tarball.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from seqarena import cells

ROOT = Path(__file__).resolve().parents[1]
#: ms per training step at T = 1000, batch 64, hidden 128, one NVIDIA H200, each model alone on the GPU
#: (benchmarks/RESULTS.md, "Model profiles on a GPU (issue 8)", measured 2026-11-26).
STEP_MS = {"lstm": 5.73, "gru": 5.10, "janet": 15.29, "cornn": 13.25, "unicornn": 4.09, "lem": 30.73,
           "tcn": 13.91, "transformer": 19.13}
#: How much faster trials sharing the GPU run than the same trials one after another: an assumption, not a
#: measurement (benchmarks/gpu_concurrency.py has not run on a GPU yet). Without MPS, kernels of different
#: processes take turns on the GPU, so only the host-side gaps of a step (launches, Python) overlap; the fused
#: coRNN/LEM/JANET steps are one persistent kernel each and gain little.
SHARING_GAIN = 1.3
#: Evaluation (validation every eval_every steps, the test set once) on top of training.
EVAL_OVERHEAD = 1.15
#: Seconds of the box that are not training: Ray's start per part, the profile, leaderboard and tarball.
FIXED_S = {"ray_start_per_part": 15.0, "profile": 45.0, "finish": 25.0}
#: Share of the training time each part gets (priority order).
SHARES = {"gpu-adding": 0.42, "gpu-adding-transformer": 0.10, "gpu-smnist": 0.18, "gpu-psmnist": 0.18,
          "gpu-copy": 0.12}
#: Seeds of every arm (the search trial and REPEATS - 1 re-runs of its configuration).
REPEATS = 3
#: The published budgets the chosen ones compare with (docs/reference/results.md, protocols.md).
PAPER_STEPS = {"adding": 30_000, "smnist": 53_400, "psmnist": 53_400, "copy": 15_650}
PROFILE_LENGTHS = (1000, 2000, 5000)
#: The wall-time box of one command: a device command may run 10 minutes; the box leaves 90 s for the wrapper's
#: start (unpacking .gpusite, importing torch), a part's 15 s to stop, the leaderboard and the tarball.
BOX_S = 510.0
#: The dry run's box: the same parts on a shared 2-core CPU (about 9 minutes at a load of 30).
DRY_BOX_S = 1200.0
#: Seconds kept back from the parts for the leaderboard and the tarball.
RESERVE_S = 25.0
ADDING_MODELS = ("lstm", "gru", "janet", "cornn", "unicornn", "lem", "tcn")
MNIST_MODELS = ("lstm", "janet", "cornn", "unicornn", "lem", "tcn")
COPY_MODELS = ("lstm", "gru", "janet", "tcn")


@dataclass(frozen=True)
class Part:
    """One search of the campaign: its spec's fields, and the estimate that sized its budget."""

    name: str
    task: str
    seq_lens: tuple[int, ...]
    models: tuple[str, ...]
    steps: int
    eval_every: int
    gpus_per_trial: float
    cpus_per_trial: float = 1.0
    repeats: int = REPEATS
    task_options: dict[str, Any] = field(default_factory=dict)
    extra_fixed: dict[str, Any] = field(default_factory=dict)
    """dry run only: values over the authors' ones for every model (tiny batches and widths)"""
    estimate_s: float = 0.0

    @property
    def paper_steps(self) -> int:
        return PAPER_STEPS[self.task]


def authors_fixed(model: str, task: str) -> dict[str, Any]:
    """Every hyperparameter `model` would search, fixed at its authors' value for `task` (the per-task default
    of `seqarena.cells.space`), so that the spec runs the authors' settings and searches nothing."""
    return {hp.name: hp.default_for(task) for hp in cells.space(model) if hp.searched}


def step_ms(model: str, seq_len: int) -> float:
    """Estimated ms of one training step at `seq_len` on the H200 (STEP_MS scaled: linear in T; the
    Transformer's attention quadratic above T = 1000)."""
    scale = seq_len / 1000
    if model == "transformer" and scale > 1:
        return STEP_MS[model] * scale * scale
    return STEP_MS[model] * max(scale, 0.1)


def seconds_per_step(task: str, seq_lens: tuple[int, ...], models: tuple[str, ...], repeats: int) -> float:
    """Estimated wall seconds one step of every trial of a part takes with the trials sharing the GPU."""
    if task in ("smnist", "psmnist"):
        seq_lens = (784,)
    elif task == "copy":
        seq_lens = tuple(seq_len + 20 for seq_len in seq_lens)
    total_ms = sum(step_ms(model, seq_len) for model in models for seq_len in seq_lens) * repeats
    return total_ms / 1000 / SHARING_GAIN * EVAL_OVERHEAD


def gpu_plan(box_s: float) -> list[Part]:
    """The GPU parts, each step budget sized to its share of the training time within `box_s`."""
    layout = [("gpu-adding", "adding", (500, 2000, 5000), ADDING_MODELS, 1 / 14, {}),
              ("gpu-adding-transformer", "adding", (500, 2000, 5000), ("transformer",), 1 / 3, {}),
              ("gpu-smnist", "smnist", (784,), MNIST_MODELS, 1 / 14, {"n_val": 3000, "split_seed": 0}),
              ("gpu-psmnist", "psmnist", (784,), MNIST_MODELS, 1 / 14, {"n_val": 3000}),
              ("gpu-copy", "copy", (1000,), COPY_MODELS, 1 / 14, {})]
    training_s = box_s - FIXED_S["profile"] - FIXED_S["finish"] - FIXED_S["ray_start_per_part"] * len(layout)
    parts = []
    for name, task, seq_lens, models, gpus, options in layout:
        per_step = seconds_per_step(task, seq_lens, models, REPEATS)
        eval_every = 50
        steps = max(eval_every, int(SHARES[name] * training_s / per_step) // eval_every * eval_every)
        parts.append(Part(name, task, seq_lens, models, steps, eval_every, round(gpus, 4), task_options=options,
                          estimate_s=round(steps * per_step + FIXED_S["ray_start_per_part"], 1)))
    return parts


def dry_plan() -> list[Part]:
    """The same five parts on the CPU: tiny lengths, budgets and batches, fewer models, two seeds, no GPU
    (the GPU specs themselves are checked by `validate`)."""
    tiny, options = {"batch_size": 8}, {"n_val": 16, "n_test": 16}
    return [Part("gpu-adding", "adding", (8, 16), ("lstm", "lem"), 4, 2, 0.0, repeats=2, task_options=options,
                 extra_fixed=tiny),
            Part("gpu-adding-transformer", "adding", (8,), ("transformer",), 4, 2, 0.0, repeats=2,
                 task_options=options, extra_fixed=tiny),
            Part("gpu-smnist", "smnist", (784,), ("lstm",), 2, 2, 0.0, repeats=2,
                 task_options={**options, "split_seed": 0}, extra_fixed=tiny),
            Part("gpu-psmnist", "psmnist", (784,), ("lstm",), 2, 2, 0.0, repeats=2, task_options=options,
                 extra_fixed=tiny),
            Part("gpu-copy", "copy", (8,), ("lstm",), 4, 2, 0.0, repeats=2, task_options=options, extra_fixed=tiny)]


def spec_of(part: Part) -> dict[str, Any]:
    """The spec of one part: every model at its authors' settings, nothing searched, `repeats` seeds."""
    fixed = {model: {**authors_fixed(model, part.task), **part.extra_fixed} for model in part.models}
    return {"name": part.name, "task": part.task, "protocol": "authors", "task_options": dict(part.task_options),
            "seq_lens": list(part.seq_lens), "models": list(part.models),
            "budget": {"max_steps": part.steps, "eval_every": part.eval_every},
            "search": {"algorithm": "random", "num_samples": 1, "scheduler": "none", "seed": 0},
            "fixed": fixed, "repeats": part.repeats,
            "resources": {"cpus_per_trial": part.cpus_per_trial, "gpus_per_trial": part.gpus_per_trial}}


def write_spec(path: Path, part: Part, header: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(header + yaml.safe_dump(spec_of(part), sort_keys=False, default_flow_style=None))
    return path


def seqarena(*args: str) -> list[str]:
    """The command line of `seqarena ARGS` with this Python (the device machine has no installed entry point)."""
    return [sys.executable, "-m", "seqarena.cli", *args]


def environment(out: Path, data: Path | None) -> dict[str, str]:
    """The platform's environment: MLflow and the results database under OUT_DIR/home, a local Ray."""
    home = (out / "home").resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "SEQARENA_HOME": str(home), "MLFLOW_TRACKING_URI": f"sqlite:///{home}/mlflow.db",
           "SEQARENA_DB_URL": f"sqlite:///{home}/seqarena.db", "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.pop("RAY_ADDRESS", None)
    if data is not None:
        env["SEQARENA_DATA"] = str(data.resolve())
    return env


class Campaign:
    """The campaign's state in OUT_DIR/campaign.json: the plan and what each part did."""

    def __init__(self, out: Path, dry_run: bool, plan_s: float, resume: bool) -> None:
        self.out, self.path = out, out / "campaign.json"
        if resume and self.path.exists():
            self.state = json.loads(self.path.read_text())
            self.parts = [Part(**{**p, "seq_lens": tuple(p["seq_lens"]), "models": tuple(p["models"])})
                          for p in self.state["plan"]]
        else:
            self.parts = dry_plan() if dry_run else gpu_plan(plan_s)
            self.state = {"dry_run": dry_run, "plan_s": plan_s, "started": now(), "device": device_name(),
                          "git": git_sha(), "plan": [asdict(p) for p in self.parts], "parts": {}, "runs": []}
        self.state["runs"].append({"started": now(), "resume": resume, "argv": sys.argv[1:]})
        self.save()

    def save(self) -> None:
        self.path.write_text(json.dumps(self.state, indent=1, default=str))

    def record(self, name: str, **values: Any) -> None:
        self.state["parts"].setdefault(name, {}).update(values)
        self.save()


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} (torch {torch.__version__}, CUDA {torch.version.cuda})"
    return f"cpu ({os.cpu_count()} cores, torch {torch.__version__})"


def git_sha() -> str:
    try:
        found = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return found.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def timed(command: list[str], env: dict[str, str], limit_s: float, log: Path, stdout: Path | None = None) -> int:
    """Run `command` under `limit_s` (SIGTERM, then SIGKILL 15 s later, the whole process group), its stderr
    (and stdout, unless `stdout` is given) appended to `log`; its exit status (124: cut by the limit)."""
    with open(log, "a") as err, open(stdout, "w") if stdout else open(log, "a") as out:
        err.write(f"$ {shlex.join(command)}\n")
        err.flush()
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=out, stderr=err, start_new_session=True)
        try:
            return process.wait(timeout=max(limit_s, 1))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 15)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, 9)
                process.wait()
            return 124


def validate(campaign: Campaign, plan_s: float) -> int:
    """Every GPU spec (the exact files a GPU run writes) parsed and checked as `seqarena run` does
    (`seqarena.platform.spec.load_spec`: models, hyperparameters, task options, data files); 0 when all pass."""
    from seqarena.errors import BadInput
    from seqarena.platform.spec import load_spec

    status = 0
    for part in gpu_plan(plan_s):
        path = write_spec(campaign.out / "specs" / "gpu" / f"{part.name}.yaml", part, "")
        try:
            spec = load_spec(path)
            print(f"validate {path.relative_to(campaign.out)}: {spec.trial_count()} trials", flush=True)
        except BadInput as error:
            print(f"validate {path.relative_to(campaign.out)}: {error}", flush=True)
            status = 1
    return status


def resumable(name: str) -> bool:
    """Whether a killed part can be continued: the database holds its search and Tune saved the search's
    experiment (a part cut while Ray was starting registered its search but has no experiment: it runs afresh,
    as a new search of the same name, which the leaderboard and the import read as the part's latest)."""
    from ray import tune

    from seqarena.errors import BadInput
    from seqarena.platform import database, searches
    from seqarena.platform.search import tune_storage

    try:
        found = searches.find_search(database.get_engine(), name)
    except BadInput:
        return False
    return tune.Tuner.can_restore(str(tune_storage() / found.id))


def run_part(campaign: Campaign, part: Part, env: dict[str, str], deadline: float) -> None:
    """Run (or continue) one part within what is left of the box; record how it ended."""
    done = campaign.state["parts"].get(part.name, {})
    if done.get("status") == "done":
        print(f"{part.name}: done before, kept", flush=True)
        return
    left = deadline - time.monotonic() - RESERVE_S
    if left < 20:
        campaign.record(part.name, status="skipped", why=f"no time left in the box ({left:.0f} s)")
        print(f"{part.name}: skipped, {left:.0f} s left", flush=True)
        return
    spec = write_spec(campaign.out / "specs" / f"{part.name}.yaml", part,
                      f"# {part.name}: written by scripts/gpu_campaign.py (issue 22)\n")
    resume = bool(done) and resumable(part.name)  # started before and not finished: continue its search
    command = seqarena("run", str(spec), "--json", *(("--resume",) if resume else ()))
    print(f"{part.name}: {'resume' if resume else 'run'} {part.steps} steps x {len(part.models)} models x "
          f"{len(part.seq_lens)} T x {part.repeats} seeds (estimate {part.estimate_s:.0f} s, limit {left:.0f} s)",
          flush=True)
    campaign.record(part.name, status="started", command=shlex.join(["seqarena", *command[3:]]),
                    started=now(), spec=str(spec.relative_to(campaign.out)))
    started = time.monotonic()
    rc = timed(command, env, left, campaign.out / "logs" / f"{part.name}.log",
               stdout=campaign.out / "logs" / f"{part.name}.json")
    wall = time.monotonic() - started
    status = "done" if rc == 0 else "killed" if rc in (124, -15, -9) else "failed"
    campaign.record(part.name, status=status, exit=rc, wall_s=round(wall + done.get("wall_s", 0.0), 1))
    print(f"{part.name}: {status} (exit {rc}) after {wall:.0f} s", flush=True)


def profile(campaign: Campaign, env: dict[str, str], deadline: float) -> None:
    """Every model's training and inference step at PROFILE_LENGTHS (dry run: 8, 16, 32) on this device."""
    if campaign.state["parts"].get("profile", {}).get("status") == "done":
        return
    dry = campaign.state["dry_run"]
    lengths = "8,16,32" if dry else ",".join(map(str, PROFILE_LENGTHS))
    out = campaign.out / "profile"
    command = [sys.executable, "benchmarks/profile_models.py", "--models", "lstm,gru" if dry else "all",
               "--seq-lens", lengths,
               "--device", "cpu" if dry else "cuda", "--repeats", "1" if dry else "3", "--warmup", "1",
               "--max-mem-gb", "2" if dry else "40", "--results-dir", str(out), "--out", str(out / "section.md"),
               *(("--batch-size", "4", "--hidden", "8") if dry else ()),
               "--note", "issue 22 campaign (scripts/gpu_campaign.py)"]
    limit = min(FIXED_S["profile"] * 3, deadline - time.monotonic() - RESERVE_S)
    out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    rc = timed(command, env, limit, campaign.out / "logs" / "profile.log")
    campaign.record("profile", status="done" if rc == 0 else "failed", exit=rc,
                    wall_s=round(time.monotonic() - started, 1), command=shlex.join(command[1:]))
    print(f"profile: exit {rc} after {time.monotonic() - started:.0f} s", flush=True)


def finish(campaign: Campaign, env: dict[str, str]) -> None:
    """OUT_DIR/leaderboard.json (solve statistics included) and OUT_DIR/campaign.tar.gz."""
    rc = timed(seqarena("leaderboard", "--json"), env, 120, campaign.out / "logs" / "leaderboard.log",
               stdout=campaign.out / "leaderboard.json")
    campaign.state["ended"] = now()
    campaign.record("leaderboard", status="done" if rc == 0 else "failed", exit=rc)
    pack(campaign.out)
    print(f"leaderboard: exit {rc}; wrote {campaign.out / 'campaign.tar.gz'}", flush=True)


#: What the tarball holds, relative to OUT_DIR.
PACKED = ("campaign.json", "leaderboard.json", "home", "profile", "specs", "logs")
#: Left out of the tarball: Tune's folders (experiment state, trial checkpoints, Optuna's studies), the best
#: trials' weights (about 1-2 MB each, 40 arms: a file back from the device machine may hold 16 MiB) and
#: SQLite's side files (the databases are closed when the tarball is made).
UNPACKED = ("/ray_results", ".pt", "-journal", "-wal", "-shm", ".lock")


def pack(out: Path) -> Path:
    """OUT_DIR/campaign.tar.gz: the databases, MLflow's small artifacts, specs, logs and profile."""
    target = out / "campaign.tar.gz"
    partial = target.with_suffix(".tmp")
    with tarfile.open(partial, "w:gz") as tar:
        for name in PACKED:
            if (out / name).exists():
                tar.add(out / name, arcname=name,
                        filter=lambda info: None if any(part in info.name for part in UNPACKED) else info)
    partial.replace(target)
    return target


def print_plan(parts: list[Part]) -> None:
    for part in parts:
        print(f"{part.name:24s} {part.task:8s} T={','.join(map(str, part.seq_lens)):15s} "
              f"{len(part.models)} models x {part.repeats} seeds, {part.steps} steps "
              f"({100 * part.steps / part.paper_steps:.1f} % of the papers' {part.paper_steps}), "
              f"gpus_per_trial {part.gpus_per_trial}, estimate {part.estimate_s:.0f} s")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="OUT_DIR: everything the campaign writes")
    parser.add_argument("--dry-run", action="store_true", help="the same path on the CPU, tiny budgets")
    parser.add_argument("--resume", action="store_true", help="continue the campaign in OUT_DIR")
    parser.add_argument("--box-s", type=float, default=None,
                        help=f"wall-time box of the whole command (s); default {BOX_S:.0f}, "
                        f"{DRY_BOX_S:.0f} with --dry-run")
    parser.add_argument("--plan-s", type=float, default=None,
                        help="device seconds the step budgets are sized for (default --box-s); larger: a campaign "
                        "spread over several commands, each continuing the last with --resume")
    parser.add_argument("--data", type=Path, default=None,
                        help="folder holding mnist/ with the four official MNIST files (SEQARENA_DATA); default "
                        ".gpudata (scripts/gpu_campaign.sh copies them there, and the device run carries it)")
    parser.add_argument("--plan", action="store_true", help="print the parts and their budgets, run nothing")
    return parser.parse_args(argv)


def data_folder(args: argparse.Namespace) -> Path:
    """The folder holding mnist/ with the four files; refused (exit 2, one line) before anything runs."""
    folder = args.data or ROOT / ".gpudata"
    files = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    missing = [name for name in files if not any((folder / "mnist" / f"{name}{gz}").exists() for gz in ("", ".gz"))]
    if missing:
        print(f"data: {folder}/mnist lacks {missing[0]}(.gz); allowed: a folder holding mnist/ with the four MNIST "
              "files (bash scripts/gpu_campaign.sh --prepare copies them to .gpudata)", file=sys.stderr)
        raise SystemExit(2)
    return folder


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    args.box_s = args.box_s or (DRY_BOX_S if args.dry_run else BOX_S)
    if args.plan:
        print_plan(dry_plan() if args.dry_run else gpu_plan(args.plan_s or args.box_s))
        return 0
    if args.box_s < 60:
        print(f"box-s: {args.box_s}; allowed: at least 60 seconds", file=sys.stderr)
        return 2
    if args.out.exists() and any(args.out.iterdir()) and not args.resume:
        print(f"out: {args.out} is not empty; allowed: a new or empty folder, or --resume", file=sys.stderr)
        return 2
    deadline = time.monotonic() + args.box_s
    data = data_folder(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "logs").mkdir(exist_ok=True)
    env = environment(args.out, data)
    campaign = Campaign(args.out, args.dry_run, args.plan_s or args.box_s, args.resume)
    print_plan(campaign.parts)
    os.environ.update(env)  # the specs' data files are checked where the parts will read them
    if args.dry_run and validate(campaign, args.plan_s or args.box_s) != 0:
        print("the GPU specs do not validate: see validate.log", file=sys.stderr)
        return 1
    profile(campaign, env, deadline)
    for part in campaign.parts:
        run_part(campaign, part, env, deadline)
    finish(campaign, env)
    states = {name: part.get("status") for name, part in campaign.state["parts"].items()}
    print(f"campaign: {states}")
    return 0 if all(state in ("done", "skipped") for state in states.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
