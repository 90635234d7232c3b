"""The cost of the orchestration itself: Ray Tune + MLflow overhead per trial, one Ray node and two (issue 8).

Many short, equal trials (`--trials`, default 64: GRU on the adding problem, T = 50, hidden 32,
batch 32, `--steps` training steps with a validation evaluation, checkpoint and Tune report every
`--eval-every` steps) are run three ways, each with a fresh temporary SEQARENA_HOME (embedded
SQLite results database, local MLflow store):

1. bare: the trainable's own work in this process, without Ray or MLflow (`prepare`, `Trainer.run`
   with its local checkpoints, `release_memory`), one torch thread; median of `--bare-runs` after a
   warm-up, measured before and after the searches (the machine is shared).
2. one node: `seqarena run --json SPEC` against a Ray head started here with `ray start --head
   --num-cpus 1` (token authentication, its own temp dir and ports), so trials run one after another.
3. two nodes: the same search against a head and a second node of 1 CPU each on this machine.

The spec searches `lr` in [1e-3, 2e-3] with the random sampler (so Optuna and its SQLite storage run
as in a real search, at no cost difference between trials), no scheduler, `cpus_per_trial: 1`,
`repeats: 1`. The search's wall clock is the `seqarena run` process, from its start to its exit
(the Ray nodes are up before; their start-up is reported apart). The MLflow child runs give the
trials phase (first trial started -> last trial recorded); the rest is the driver's start-up and
teardown. Overhead per trial = nodes x trials phase / trials - bare trial (start-up excluded) and
nodes x wall / trials - bare (everything included). Targets: overhead < 1 s per trial; two nodes
finish the search >= 1.7x faster than one.

Recording's share: unless `--plain`, the driver is `seqarena.cli.main` (what the `seqarena` console
script runs) in a process of this script that first wraps timers around the search recorder's Tune
hooks, the MLflow `Tracker`, the database writes, the progress table, the searcher (Optuna) and
Tune's experiment snapshots. With `--plain` the console script itself runs and the share is not measured.

Writes `benchmarks/results/search_throughput.json` and `benchmarks/results/search_throughput.md`
(machine, load average before/after, git sha, command) and prints the Markdown. Ray processes are
started with `ray start --block` in their own sessions and stopped by pid (never `ray stop`).

    .venv/bin/python benchmarks/search_throughput.py [--trials 64] [--steps 200] [--eval-every 50]
        [--bare-runs 5] [--timeout 1800] [--plain] [--keep]

Time: a bare trial at the defaults takes about 1.8 s on a 2-core Xeon, so the default run takes about
6-8 minutes (2 x 12 bare trials, 64 trials on one node, 64 on two, about a minute of start-ups).
A check that everything works: `--trials 4 --steps 20 --eval-every 10 --bare-runs 2 --out-dir /tmp/x`
(about 75 s).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import secrets
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
HEADING = "## Search throughput: orchestration overhead per trial, one Ray node and two (issue 8)"
OVERHEAD_TARGET_S, SPEEDUP_TARGET = 1.0, 1.7
SPEC = """\
name: search-throughput
task: adding
task_options: {{n_val: {n_eval}, n_test: {n_eval}}}
seq_lens: [{seq_len}]
models: [{model}]
budget: {{max_steps: {steps}, eval_every: {eval_every}}}
search: {{algorithm: random, num_samples: {trials}, scheduler: none, seed: 0}}
space: {{all: {{lr: [0.001, 0.002, log]}}}}
fixed: {{all: {{hidden_size: {hidden}, num_layers: 1, batch_size: {batch_size}}}}}
repeats: 1
resources: {{cpus_per_trial: 1}}
"""


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=64, help="trials of each search")
    parser.add_argument("--model", default="gru", help="the one model (arm) searched")
    parser.add_argument("--seq-len", type=int, default=50, help="adding problem length T")
    parser.add_argument("--hidden", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--steps", type=int, default=200, help="training steps of every trial")
    parser.add_argument("--eval-every", type=int, default=50, help="steps between evaluations (and reports)")
    parser.add_argument("--n-eval", type=int, default=256, help="validation and test samples")
    parser.add_argument("--bare-runs", type=int, default=5, help="timed bare trials, before and after the searches")
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2], help="Ray node counts measured")
    parser.add_argument("--object-store-mb", type=int, default=100, help="object store of each Ray node")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds allowed for each search")
    parser.add_argument("--node-timeout", type=float, default=180, help="seconds allowed for the Ray nodes to start")
    parser.add_argument("--plain", action="store_true", help="run the `seqarena` console script (no timers)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders (logs, stores)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument("--as-driver", nargs=2, metavar=("TIMINGS", "SPEC"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.eval_every > args.steps:
        parser.error(f"--eval-every {args.eval_every} exceeds --steps {args.steps}; use 1..{args.steps}")
    if args.trials < 1 or args.bare_runs < 1 or min(args.nodes) < 1:
        parser.error("--trials, --bare-runs and --nodes take positive numbers")
    return args


def spec_text(args: argparse.Namespace) -> str:
    return SPEC.format(n_eval=args.n_eval, seq_len=args.seq_len, model=args.model, steps=args.steps,
                       eval_every=args.eval_every, trials=args.trials, hidden=args.hidden,
                       batch_size=args.batch_size)


# --- bare trials -------------------------------------------------------------------------------


def bare_trials(spec_path: Path, runs: int) -> dict[str, Any]:
    """Seconds of the trainable's work without Ray or MLflow, with and without its local checkpoints."""
    import torch

    from seqarena.platform.search import arm_plans
    from seqarena.platform.spec import load_spec
    from seqarena.workers.config import prepare
    from seqarena.workers.memory import release_memory
    from seqarena.workers.trial import Observer, Trainer

    torch.set_num_threads(1)  # Ray gives a 1-CPU trial OMP_NUM_THREADS=1
    plan = arm_plans(load_spec(spec_path))[0]
    trial = plan.trial({"lr": 1e-3}, "search", plan.seed).trial

    def once(checkpoints: bool) -> tuple[float, float]:
        start = time.perf_counter()
        workdir = Path(tempfile.mkdtemp(prefix="seqarena-trial-"))
        try:
            setup = prepare(trial.model_copy(update={"checkpoint_dir": workdir if checkpoints else None}))
            result = Trainer(setup, Observer()).run()
        finally:
            release_memory()
            shutil.rmtree(workdir, ignore_errors=True)
        return time.perf_counter() - start, result.wall_s

    rounds = [(once(True), once(False)) for _ in range(runs + 1)]  # the first round is the warm-up
    timed = rounds[1:]
    return {"seconds": [with_ckpt[0] for with_ckpt, _ in timed],
            "seconds_no_checkpoints": [plain[0] for _, plain in timed],
            "trainer_wall_s": [with_ckpt[1] for with_ckpt, _ in timed], "warmup_s": rounds[0][0][0]}


def bare_summary(before: dict[str, Any], after: dict[str, Any]) -> dict[str, float]:
    """Medians over both rounds (and of each round, to show drift)."""
    def both(key: str) -> float:
        return statistics.median(before[key] + after[key])

    return {"trial_s": both("seconds"), "trial_no_checkpoints_s": both("seconds_no_checkpoints"),
            "trainer_wall_s": both("trainer_wall_s"), "before_s": statistics.median(before["seconds"]),
            "after_s": statistics.median(after["seconds"]), "warmup_s": before["warmup_s"]}


# --- processes ---------------------------------------------------------------------------------


def _stat(pid: int | str) -> tuple[int, int, int] | None:
    """(parent pid, session id, start time) of a process, None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[1]), int(fields[3]), int(fields[19])


def process_tree(leader: int) -> dict[int, int]:
    """pid -> start time of `leader`'s descendants and of every process in its session."""
    table = {int(entry.name): stat for entry in Path("/proc").iterdir()
             if entry.name.isdigit() and (stat := _stat(entry.name)) is not None}
    found = {pid: stat[2] for pid, stat in table.items() if stat[1] == leader and pid != leader}
    frontier = [leader]
    while frontier:
        parent = frontier.pop()
        for pid, stat in table.items():
            if stat[0] == parent and pid not in found:
                found[pid] = stat[2]
                frontier.append(pid)
    return found


def stop_tree(process: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM a process this script started, then SIGKILL whatever of its tree is left."""
    tree = process_tree(process.pid)
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    tree.update(process_tree(process.pid))
    for pid, started in tree.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == started:  # still the same process, not a reused pid
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 25) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without an outside cluster, tracking server or database, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI", "SEQARENA_DB_URL")}
    return {**env, "RAY_USAGE_STATS_ENABLED": "0", **extra}


# --- a Ray cluster on this machine --------------------------------------------------------------


def _wait_nodes(address: str, count: int, env: dict[str, str], nodes: list[subprocess.Popen],
                timeout: float, logs: Path) -> None:
    command = [str(BIN / "ray"), "status", "--address", address]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(node.poll() is not None for node in nodes):
            raise RuntimeError(f"a `ray start` exited early; its log:\n{tail(logs / f'node-{len(nodes) - 1}.log')}")
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)
        if done.stdout.count(" node_") >= count:
            return
        time.sleep(2)
    raise RuntimeError(f"{count} Ray node(s) not up after {timeout:.0f} s (--node-timeout); logs in {logs}")


@contextmanager
def ray_cluster(count: int, args: argparse.Namespace, logs: Path,
                cpus: int = 1) -> Iterator[tuple[dict[str, str], float]]:
    """`count` Ray nodes of `cpus` CPUs each on this machine, token auth on; yields the driver's env and the
    start-up s. `args`: `object_store_mb` and `node_timeout` (also used by `benchmarks/load_jobs.py`)."""
    temp = Path(tempfile.mkdtemp(prefix="sa-bt-", dir="/tmp"))  # socket paths must stay short
    env = clean_env(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    address = f"127.0.0.1:{free_port()}"
    common = ["--num-cpus", str(cpus), "--object-store-memory", str(args.object_store_mb * 1024 * 1024),
              "--disable-usage-stats", "--block"]
    head = ["--head", "--port", address.split(":")[1], "--include-dashboard", "false", "--temp-dir", str(temp)]
    nodes: list[subprocess.Popen] = []
    started = time.perf_counter()
    try:
        for index in range(count):
            where = head if index == 0 else ["--address", address]
            with open(logs / f"node-{index}.log", "w") as log:
                nodes.append(subprocess.Popen(
                    [str(BIN / "ray"), "start", *where, "--dashboard-agent-listen-port", str(free_port()), *common],
                    env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
            _wait_nodes(address, index + 1, env, nodes, args.node_timeout, logs)
        yield {**env, "RAY_ADDRESS": address}, time.perf_counter() - started
    finally:
        for node in reversed(nodes):
            stop_tree(node)
        shutil.rmtree(temp, ignore_errors=True)


# --- one search --------------------------------------------------------------------------------


def run_driver(spec_path: Path, env: dict[str, str], args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Run `seqarena run --json SPEC` to its end; its wall clock, exit stamps and (unless --plain) timers."""
    timings = work / "driver_timings.json"
    command = ([str(BIN / "seqarena"), "run", "--json", str(spec_path)] if args.plain else
               [sys.executable, str(Path(__file__).resolve()), "--as-driver", str(timings), str(spec_path)])
    out, err = work / "driver.out", work / "driver.err"
    with open(out, "w") as stdout, open(err, "w") as stderr:
        began, start = time.time(), time.perf_counter()
        driver = subprocess.Popen(command, env=env, stdout=stdout, stderr=stderr, start_new_session=True)
        try:
            code = driver.wait(timeout=args.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the search ran past --timeout {args.timeout:.0f} s; its log:\n{tail(err)}") from None
        finally:
            stop_tree(driver)
        wall, ended = time.perf_counter() - start, time.time()
    if code != 0:
        raise RuntimeError(f"`seqarena run` exited with {code}; its stderr ends:\n{tail(err)}")
    search_id = json.loads(out.read_text().strip().splitlines()[-1])["search_id"]
    found = json.loads(timings.read_text()) if timings.exists() else None
    return {"wall_s": wall, "started_at": began, "ended_at": ended, "search_id": search_id, "timers": found}


def search_records(home: Path, run: dict[str, Any]) -> dict[str, Any]:
    """What MLflow and the results database recorded: the trials phase, times per trial, nodes used."""
    from mlflow.tracking import MlflowClient

    from seqarena.platform import database, searches
    from seqarena.platform.leaderboard import trials_frame
    from seqarena.platform.tracking import PARENT_TAG

    engine = database.get_engine(f"sqlite:///{home / 'seqarena.db'}")
    search = searches.get_search(engine, run["search_id"])
    frame = trials_frame(engine, run["search_id"])
    engine.dispose()
    runs = MlflowClient(f"sqlite:///{home / 'mlflow.db'}").search_runs(
        [search.mlflow_experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{search.mlflow_parent_run_id}'",
        max_results=50_000)
    spans = sorted((r.info.start_time / 1000, r.info.end_time / 1000) for r in runs if r.info.end_time)
    first, last = spans[0][0], max(end for _, end in spans)
    return {"trials": len(frame), "statuses": dict(Counter(frame["status"])), "first_start": first, "last_end": last,
            "nodes": sorted(Counter(r.data.tags.get("node_id", "?")[:8] for r in runs).values(), reverse=True),
            "startup_s": first - run["started_at"], "trials_phase_s": last - first,
            "teardown_s": run["ended_at"] - last,
            "recorded_trial_s": statistics.mean(end - start for start, end in spans),
            "trainer_wall_s": float(frame["wall_s"].mean()), "search_status": search.status}


def measure_search(nodes: int, args: argparse.Namespace, spec_path: Path, work: Path) -> dict[str, Any]:
    """One search on `nodes` fresh Ray nodes with a fresh SEQARENA_HOME."""
    folder = work / f"{nodes}-node"
    home = folder / "home"
    home.mkdir(parents=True)
    load_before = os.getloadavg()
    with ray_cluster(nodes, args, folder) as (env, cluster_s):
        print(f"{nodes} Ray node(s) up in {cluster_s:.1f} s; running {args.trials} trials", flush=True)
        run = run_driver(spec_path, {**env, "SEQARENA_HOME": str(home)}, args, folder)
    run.update(nodes=nodes, cluster_start_s=cluster_s, load_before=load_before, load_after=os.getloadavg(),
               records=search_records(home, run))
    print(f"{nodes} node(s): {run['wall_s']:.1f} s", flush=True)
    return run


# --- the driver, with timers (run by this script as a subprocess) ---------------------------------


class Timers:
    """Seconds and calls per wrapped function; MLflow, database and progress time inside recorder hooks apart."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}  # name -> [calls, seconds, seconds inside recorder hooks]
        self.spans: dict[str, list[float]] = {}  # name -> [first call's start, last call's end] (epoch s)
        self.in_hook = False
        self.stamps: dict[str, float] = {"driver_start": time.time()}

    def wrap(self, owner: Any, attribute: str, name: str, hook: bool = False) -> None:
        original = getattr(owner, attribute)

        @functools.wraps(original)
        def timed(*a: Any, **k: Any) -> Any:
            outer, start, began = self.in_hook, time.perf_counter(), time.time()
            self.in_hook = outer or hook
            try:
                return original(*a, **k)
            finally:
                self.in_hook = outer
                seconds = time.perf_counter() - start
                self.spans.setdefault(name, [began, 0.0])[1] = time.time()
                total = self.totals.setdefault(name, [0, 0.0, 0.0])
                total[0] += 1
                total[1] += seconds
                total[2] += seconds if outer else 0.0

        setattr(owner, attribute, timed)


def install_timers(timers: Timers) -> None:
    from ray import tune
    from ray.tune.execution.tune_controller import TuneController

    from seqarena.platform import arms, database, progress, recorder, search, searches, tracking

    for hook in ("setup", "on_trial_start", "on_trial_result", "on_trial_complete", "on_trial_error",
                 "on_experiment_end"):
        timers.wrap(recorder.SearchRecorder, hook, f"hook:{hook}", hook=True)
    for method in ("__init__", "experiment_id", "start_parent", "child_runs", "start_child", "log_missing_params",
                   "log_metrics", "last_step", "set_tags", "log_artifacts", "finish", "close_running"):
        timers.wrap(tracking.Tracker, method, f"mlflow:{method}")
    timers.wrap(database, "get_engine", "db:get_engine")
    for function in ("create_search", "set_search_status", "record_trial", "recorded_trial_ids"):
        timers.wrap(searches, function, f"db:{function}")
    timers.wrap(search, "leaderboard", "db:leaderboard")
    for method in ("start", "stop", "_refresh"):
        timers.wrap(progress.SearchProgress, method, f"progress:{method}")
    for function in ("register_search", "ensure_ray", "_log_best_checkpoints"):
        timers.wrap(search, function, f"driver:{function}")
    for method in ("suggest", "on_trial_result", "on_trial_complete"):
        timers.wrap(arms.ArmSearcher, method, f"searcher:{method}")
    timers.wrap(TuneController, "checkpoint", "tune:experiment snapshot")
    timers.wrap(tune.Tuner, "fit", "tune:fit")


def driver_main(timings: Path, spec: str) -> None:
    """`seqarena run --json SPEC` in this process, with `Timers` around the recording code."""
    timers = Timers()
    from seqarena import cli

    install_timers(timers)
    timers.stamps["imported"] = time.time()
    sys.argv = ["seqarena", "run", "--json", spec]
    try:
        cli.main()
    finally:
        timers.stamps["driver_end"] = time.time()
        timings.write_text(json.dumps({"totals": timers.totals, "spans": timers.spans, "stamps": timers.stamps},
                                      indent=1))


# --- figures, verdicts, report -----------------------------------------------------------------


def recording_share(timers: dict[str, Any] | None) -> dict[str, float] | None:
    """Seconds of the driver's recording work (from `Timers`), whole run and per trial."""
    if timers is None:
        return None
    totals = timers["totals"]

    def group(prefix: str, column: int) -> float:
        return sum(value[column] for name, value in totals.items() if name.startswith(prefix))

    share = {"recorder hooks (all)": group("hook:", 1), "  of which MLflow": group("mlflow:", 2),
             "  of which database": group("db:", 2), "  of which progress table": group("progress:", 2),
             "MLflow outside hooks (parent run, closing, artifacts)": group("mlflow:", 1) - group("mlflow:", 2),
             "database outside hooks (search row, leaderboard)": group("db:", 1) - group("db:", 2),
             "searcher (`ArmSearcher`: Optuna on SQLite)": group("searcher:", 1),
             "Tune experiment snapshots (`TuneController.checkpoint`)": group("tune:experiment", 1),
             "Tuner.fit (the whole Tune run)": group("tune:fit", 1)}
    return share


def driver_phases(run: dict[str, Any]) -> dict[str, float] | None:
    """The driver's start-up (to the first trial) and teardown (from the last), split by the timers' stamps."""
    timers, rec = run["timers"], run["records"]
    if timers is None:
        return None
    stamps, spans = timers["stamps"], timers["spans"]
    connect, fit = spans["driver:ensure_ray"], spans["tune:fit"]
    return {"start-up: interpreter + imports": stamps["imported"] - run["started_at"],
            "start-up: spec, MLflow store, search records": connect[0] - stamps["imported"],
            "start-up: connect to Ray": connect[1] - connect[0],
            "start-up: Tune set-up to the first trial": rec["first_start"] - connect[1],
            "teardown: Tune wind-down after the last trial": fit[1] - rec["last_end"],
            "teardown: leaderboard, best checkpoints, closing runs": stamps["driver_end"] - fit[1],
            "teardown: process exit (Ray disconnect, interpreter)": run["ended_at"] - stamps["driver_end"]}


def figures(run: dict[str, Any], bare: float, trials: int) -> dict[str, float]:
    """Overhead per trial (node-seconds: nodes x time / trials - bare), start-up excluded and included."""
    nodes, rec = run["nodes"], run["records"]
    return {"wall_s": run["wall_s"], "wall_per_trial_s": run["wall_s"] / trials,
            "overhead_excl_startup_s": nodes * rec["trials_phase_s"] / trials - bare,
            "overhead_all_s": nodes * run["wall_s"] / trials - bare,
            "fixed_s": rec["startup_s"] + rec["teardown_s"]}


def verdicts(runs: dict[int, dict[str, Any]], bare: float, trials: int) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    if 1 in runs:
        one = figures(runs[1], bare, trials)
        found["overhead per trial, start-up excluded (s)"] = {
            "value": one["overhead_excl_startup_s"], "target": f"< {OVERHEAD_TARGET_S}",
            "met": one["overhead_excl_startup_s"] < OVERHEAD_TARGET_S}
        found["overhead per trial, all included: wall / trials - bare (s)"] = {
            "value": one["overhead_all_s"], "target": f"< {OVERHEAD_TARGET_S}",
            "met": one["overhead_all_s"] < OVERHEAD_TARGET_S}
    if 1 in runs and 2 in runs:
        speedup = runs[1]["wall_s"] / runs[2]["wall_s"]
        phases = runs[1]["records"]["trials_phase_s"] / runs[2]["records"]["trials_phase_s"]
        found["speed-up, two nodes over one (wall)"] = {"value": speedup, "target": f">= {SPEEDUP_TARGET}",
                                                        "met": speedup >= SPEEDUP_TARGET}
        found["speed-up of the trials phase alone (for information)"] = {"value": phases, "target": "-",
                                                                         "met": None}
    return found


def machine() -> dict[str, Any]:
    import mlflow
    import ray
    import torch

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True, check=False).stdout.strip()

    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__,
            "ray": ray.__version__, "mlflow": mlflow.__version__, "device": "cpu",
            "git_sha": (git("rev-parse", "--short", "HEAD") or "unknown")
            + (" + uncommitted changes" if git("status", "--porcelain") else "")}


def _load(values: list[float]) -> str:
    return ", ".join(f"{v:.1f}" for v in values)


def run_table(result: dict[str, Any]) -> list[str]:
    runs, trials, bare = result["runs"], result["args"]["trials"], result["bare"]["trial_s"]
    counts = sorted(runs, key=int)
    rows: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        ("Ray nodes up in (s, not counted)", lambda r: f"{r['cluster_start_s']:.1f}"),
        ("trials recorded (statuses)", lambda r: f"{r['records']['trials']} {r['records']['statuses']}"),
        ("trials per node", lambda r: " + ".join(str(n) for n in r["records"]["nodes"])),
        ("wall of `seqarena run` (s)", lambda r: f"{r['wall_s']:.1f}"),
        ("  start-up: process start -> first trial started (s)", lambda r: f"{r['records']['startup_s']:.1f}"),
        ("  trials phase: first trial started -> last recorded (s)",
         lambda r: f"{r['records']['trials_phase_s']:.1f}"),
        ("  teardown: last trial recorded -> process exit (s)", lambda r: f"{r['records']['teardown_s']:.1f}"),
        ("mean trial as recorded (MLflow run start -> end, s)", lambda r: f"{r['records']['recorded_trial_s']:.2f}"),
        ("mean `Trainer.run` clock inside Tune (s)", lambda r: f"{r['records']['trainer_wall_s']:.2f}"),
        ("wall / trials (s)", lambda r: f"{r['wall_s'] / trials:.2f}"),
        ("overhead per trial, start-up excluded (s)",
         lambda r: f"{figures(r, bare, trials)['overhead_excl_startup_s']:.2f}"),
        ("overhead per trial, all included (s)", lambda r: f"{figures(r, bare, trials)['overhead_all_s']:.2f}"),
        ("load average before -> after", lambda r: f"{_load(r['load_before'])} -> {_load(r['load_after'])}"),
    ]
    lines = ["| | " + " | ".join(f"{n} node{'s' if int(n) > 1 else ''}" for n in counts) + " |",
             "|---|" + "---:|" * len(counts)]
    lines += [f"| {label} | " + " | ".join(cell(runs[n]) for n in counts) + " |" for label, cell in rows]
    return lines


def recording_table(result: dict[str, Any]) -> list[str]:
    runs, trials = result["runs"], result["args"]["trials"]
    counts = sorted(runs, key=int)
    shares = {n: recording_share(runs[n]["timers"]) for n in counts}
    if any(share is None for share in shares.values()):
        return ["Recording's share: not measured (`--plain` runs the console script without timers)."]
    lines = ["Driver time by part (timers in the driver process; s for the whole search, s per trial):", "",
             "| part | " + " | ".join(f"{n} node(s)" for n in counts) + " |", "|---|" + "---:|" * len(counts)]
    for part in next(iter(shares.values())):
        lines.append(f"| {part} | " + " | ".join(
            f"{shares[n][part]:.2f} ({shares[n][part] / trials:.3f})" for n in counts) + " |")
    phases = {n: driver_phases(runs[n]) for n in counts}
    lines += ["", "The driver's fixed cost (s):", "", "| phase | " + " | ".join(f"{n} node(s)" for n in counts)
              + " |", "|---|" + "---:|" * len(counts)]
    for part in next(iter(phases.values())):
        lines.append(f"| {part} | " + " | ".join(f"{phases[n][part]:.2f}" for n in counts) + " |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    a, m, b = result["args"], result["machine"], result["bare"]
    lines = [HEADING, "", f"Measured {result['when']} (git {m['git_sha']}) with", "", "    " + result["command"], "",
             f"- Machine: {m['cpu']}, {m['cores']} cores, Python {m['python']}, torch {m['torch']}, Ray {m['ray']}, "
             f"MLflow {m['mlflow']}; load average {_load(result['load_before'])} before and "
             f"{_load(result['load_after'])} after (1, 5, 15 min; other work shares the cores). The driver, the "
             "Ray nodes' own processes and the trials all run on these cores.",
             f"- Trial: {a['model']} on adding T = {a['seq_len']}, hidden {a['hidden']}, batch {a['batch_size']}, "
             f"{a['steps']} steps, an evaluation on {a['n_eval']} samples + checkpoint + Tune report every "
             f"{a['eval_every']} steps; `lr` searched in [1e-3, 2e-3] (random sampler), no scheduler, "
             f"1 CPU per trial; {a['trials']} trials per search, one fresh SEQARENA_HOME (SQLite database, "
             "local MLflow store) each.",
             f"- Bare trial (the trainable's work without Ray or MLflow, 1 thread, median of "
             f"{2 * a['bare_runs']} after a warm-up of {b['warmup_s']:.2f} s): **{b['trial_s']:.2f} s** "
             f"(before the searches {b['before_s']:.2f} s, after {b['after_s']:.2f} s; without the local "
             f"checkpoints {b['trial_no_checkpoints_s']:.2f} s; `Trainer.run`'s own clock "
             f"{b['trainer_wall_s']:.2f} s).",
             "- Nodes: `ray start` with `--num-cpus 1` each, token authentication, own temp dir and ports; the "
             "driver is `seqarena run` with `RAY_ADDRESS`" + (" (the console script)." if a["plain"] else
             " (`seqarena.cli.main` in a process that wraps timers around the recording code first)."),
             "- Overhead per trial = nodes x time / trials - bare trial (node-seconds per trial): start-up "
             "excluded uses the trials phase, all included the whole wall clock."]
    busy = [n for n, run in result["runs"].items() if run["load_before"][0] + int(n) > m["cores"]]
    if busy:
        lines.append(f"- Warning: with {', '.join(busy)} node(s) the 1-min load before the search plus one core per "
                     f"node exceeded the {m['cores']} cores: trials likely competed with other work.")
    lines.append("")
    lines += [*run_table(result), "", *recording_table(result), ""]
    lines += ["| target | value | required | met |", "|---|---:|---:|:---:|"]
    for name, v in result["targets"].items():
        met = "-" if v["met"] is None else ("met" if v["met"] else "not met")
        lines.append(f"| {name} | {v['value']:.2f} | {v['target']} | {met} |")
    return "\n".join(lines) + "\n"


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="search-throughput-"))
    try:
        spec_path = work / "spec.yaml"
        spec_path.write_text(spec_text(args))
        print(f"bare trials ({args.bare_runs} + warm-up) ...", flush=True)
        before = bare_trials(spec_path, args.bare_runs)
        runs = {nodes: measure_search(nodes, args, spec_path, work) for nodes in args.nodes}
        print(f"bare trials again ({args.bare_runs} + warm-up) ...", flush=True)
        bare = bare_summary(before, bare_trials(spec_path, args.bare_runs))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return {"when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": argv,
            "command": ".venv/bin/python benchmarks/search_throughput.py " + shlex.join(argv),
            "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "as_driver"},
            "machine": machine(), "load_before": list(load_before), "load_after": list(os.getloadavg()),
            "spec": spec_text(args), "bare": bare, "runs": {str(n): run for n, run in runs.items()},
            "targets": verdicts(runs, bare["trial_s"], args.trials)}


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.as_driver:
        driver_main(Path(args.as_driver[0]), args.as_driver[1])
        return
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` blocks: stop the Ray nodes
    result = measure(args, argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "search_throughput.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    (args.out_dir / "search_throughput.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
