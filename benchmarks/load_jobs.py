"""Many small jobs through several `seqarena worker` processes on PostgreSQL: every job exactly once,
jobs per minute and claim latency (issue 18, "Load").

What this script does:

1. Creates a fresh PostgreSQL database on `--admin-url`'s server (dropped at the end) and a temporary
   `SEQARENA_HOME` (the shared home of the workers: Tune's experiment folders and the embedded SQLite
   MLflow store, as in `tests/integration/test_workers.py`; the Optuna studies live in the database).
2. Starts one Ray head on this machine (`ray start --head --num-cpus --ray-cpus`, token auth, with
   `search_throughput.ray_cluster`), which every worker joins through `RAY_ADDRESS`: one Ray for all
   workers, as in the compose setup, instead of a local Ray started inside each worker.
3. Queues `--jobs` jobs at once (`jobs.submit`, priorities 0..2), each a real but tiny search: the
   adding problem at T = `--seq-len`, one Elman RNN of hidden size 4, `--samples` random-search trials
   of `--steps` training steps, no scheduler, one CPU per trial.
4. Starts `--workers` `seqarena -v worker --once --poll 0.5` processes and waits for them to drain
   the queue and exit (`--timeout`).
5. Checks every job ran exactly once, from the records themselves: the job `succeeded` with
   `attempts == 1` (never claimed twice), one search per job and no search shared, `samples` trial
   rows per search with unique trial ids, one MLflow parent run per job with `samples` FINISHED child
   runs, and `samples` COMPLETE Optuna trials in the search's study.
6. Reports, from the database's own timestamps (`jobs.created_at`, `started_at`, `finished_at`, the
   PostgreSQL server's clock): jobs per minute (succeeded jobs over the span from the first claim to
   the last finish, and over the whole run from the submission), queue wait = claim latency (queued ->
   claimed; with every job queued at once this is mostly waiting for a free worker), time per job
   (claimed -> finished), and the hand-off gap: from a worker's job finishing to the same worker
   claiming its next one (the order of a worker's jobs from its log line "worker W took job J").

Writes `benchmarks/results/load_jobs.json` and the section "## Load: jobs through workers (issue 18)"
of `benchmarks/RESULTS.md`, and prints the Markdown. Every process it starts is stopped by pid.

    .venv/bin/python benchmarks/load_jobs.py [--jobs 200] [--workers 4] [--samples 1] [--steps 2]
        [--ray-cpus 4] [--admin-url postgresql+psycopg://postgres@127.0.0.1:5432/test] [--timeout 3600]

A check that everything works: `--jobs 8 --workers 2` (about 3 minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dashboard_pages import fresh_database  # a sibling script: the fresh database
from search_throughput import BIN, ROOT, clean_env, machine, ray_cluster, stop_tree

HEADING = "## Load: jobs through workers (issue 18)"
DEFAULT_OUT = ROOT / "benchmarks" / "RESULTS.md"
SPEC = """\
name: load-{number}
task: adding
task_options: {{n_val: 16, n_test: 16}}
seq_lens: [{seq_len}]
models: [rnn]
budget: {{max_steps: {steps}, eval_every: {steps}}}
search: {{algorithm: random, num_samples: {samples}, scheduler: none, seed: {number}}}
fixed: {{all: {{hidden_size: 4, batch_size: 8}}}}
resources: {{cpus_per_trial: 1, gpus_per_trial: 0}}
"""
LOAD: list[float] = []
"""The 1-minute load average, sampled every 30 s while the workers run."""
TOOK = re.compile(r"worker (\S+) took job ([0-9a-f]+) \(attempt (\d+)\)")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200, help="jobs queued (default 200)")
    parser.add_argument("--workers", type=int, default=4, help="`seqarena worker` processes (default 4)")
    parser.add_argument("--samples", type=int, default=1, help="trials of each job's search (default 1)")
    parser.add_argument("--steps", type=int, default=2, help="training steps of each trial (default 2)")
    parser.add_argument("--seq-len", type=int, default=10, help="adding problem length T (default 10)")
    parser.add_argument("--ray-cpus", type=int, default=4, help="CPUs the Ray head offers (default 4)")
    parser.add_argument("--admin-url", default=os.environ.get("SEQARENA_TEST_PG_URL",
                                                              "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
                        help="a PostgreSQL server to create the fresh database on")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed for the queue to drain")
    parser.add_argument("--object-store-mb", type=int, default=100, help="the Ray head's object store")
    parser.add_argument("--node-timeout", type=float, default=180, help="seconds allowed for Ray to start")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="the Markdown file the section goes to")
    parser.add_argument("--json", type=Path, default=ROOT / "benchmarks" / "results" / "load_jobs.json")
    args = parser.parse_args(argv)
    if min(args.jobs, args.workers, args.samples, args.steps, args.ray_cpus) < 1:
        parser.error("--jobs, --workers, --samples, --steps and --ray-cpus take positive numbers")
    return args


# --- the run ------------------------------------------------------------------------------------


@dataclass
class Drained:
    """What the workers did: their exit codes, the wall clock, and each worker's jobs in order."""

    codes: list[int | None]
    submit_s: float
    drain_s: float
    timed_out: bool
    taken: dict[str, list[str]] = field(default_factory=dict)
    log_tails: list[str] = field(default_factory=list)


def submit_all(url: str, args: argparse.Namespace) -> tuple[list[str], float]:
    from seqarena.platform import database, jobs

    engine = database.get_engine(url)
    started = time.perf_counter()
    ids = [jobs.submit(engine, SPEC.format(number=number, seq_len=args.seq_len, steps=args.steps,
                                           samples=args.samples), priority=number % 3, submitted_by="load")
           for number in range(args.jobs)]
    return ids, time.perf_counter() - started


def run_workers(env: dict[str, str], args: argparse.Namespace, logs: Path) -> tuple[list[int | None], float, bool]:
    command = [str(BIN / "seqarena"), "-v", "worker", "--once", "--poll", "0.5"]
    files = [(logs / f"worker-{number}.log").open("w") for number in range(args.workers)]
    started = time.perf_counter()
    processes = [subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
                 for out in files]
    deadline, timed_out, sampled = time.monotonic() + args.timeout, False, 0.0
    try:
        while any(p.poll() is None for p in processes):
            if time.monotonic() > deadline:
                timed_out = True
                break
            if time.monotonic() - sampled >= 30:
                sampled = time.monotonic()
                LOAD.append(os.getloadavg()[0])
            time.sleep(2)
    finally:
        for process in processes:
            stop_tree(process)
        for out in files:
            out.close()
    return [p.returncode for p in processes], time.perf_counter() - started, timed_out


def taken_by_worker(logs: Path) -> dict[str, list[str]]:
    """Each worker's job ids in the order it took them (its log lines "worker W took job J")."""
    taken: dict[str, list[str]] = {}
    for log in sorted(logs.glob("worker-*.log")):
        text = re.sub(r"\s*\n\s*", " ", log.read_text(errors="replace"))  # a wrapped log line, joined
        for worker, job, _ in TOOK.findall(text):
            taken.setdefault(worker, []).append(job)
    return taken


def tail(path: Path, lines: int = 15) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# --- the checks and the figures -------------------------------------------------------------------


def records(url: str, home: Path, ids: list[str]) -> list[dict[str, Any]]:
    """One dict per job: its row's times and state, and what its search recorded (rows, runs, trials)."""
    from mlflow.tracking import MlflowClient
    from sqlalchemy import func, select

    from seqarena.platform import database, jobs
    from seqarena.platform.schema import Search, Trial
    from seqarena.platform.tracking import PARENT_TAG

    engine = database.get_engine(url)
    with engine.connect() as conn:
        rows = dict(conn.execute(select(Trial.search_id, func.count()).group_by(Trial.search_id)).all())
        unique = dict(conn.execute(select(Trial.search_id, func.count(func.distinct(Trial.trial_id)))
                                   .group_by(Trial.search_id)).all())
        registered = dict(conn.execute(select(Search.id, Search.created_at)).all())
        recorded = {sid: (last, wall) for sid, last, wall in conn.execute(
            select(Trial.search_id, func.max(Trial.created_at), func.sum(Trial.wall_s)).group_by(Trial.search_id))}
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=50_000)
    children = Counter(run.data.tags.get(PARENT_TAG) for run in runs if run.info.status == "FINISHED")
    parents = Counter(run.info.run_id for run in runs if PARENT_TAG not in run.data.tags)
    complete, found = optuna_complete(url), []
    for job_id in ids:
        job = jobs.get_job(engine, job_id)
        sid = job.search_id
        found.append({"id": job.id, "state": job.state, "attempts": job.attempts, "search_id": sid,
                      "created_at": job.created_at, "started_at": job.started_at, "finished_at": job.finished_at,
                      "rows": rows.get(sid, 0), "unique_rows": unique.get(sid, 0),
                      "parent_runs": parents.get(job.mlflow_parent_run_id, 0),
                      "child_runs": children.get(job.mlflow_parent_run_id, 0),
                      "optuna_complete": complete.get(sid, 0) if sid else 0, "error": job.error,
                      "search_at": registered.get(sid), "last_trial_at": recorded.get(sid, (None, None))[0],
                      "trials_wall_s": recorded.get(sid, (None, None))[1]})
    return found


def optuna_complete(url: str) -> Counter[str]:
    """Complete Optuna trials per search id, from the platform database's own Optuna storage (its
    schema `optuna` on PostgreSQL, `seqarena.platform.arm_study.platform_storage`), where each arm's study is
    named `<search id>/<arm key>`."""
    import optuna
    from optuna.trial import TrialState

    from seqarena.platform.arm_study import platform_storage

    storage, complete = platform_storage(url), Counter()
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        study = optuna.load_study(study_name=summary.study_name, storage=storage)
        complete[summary.study_name.split("/", 1)[0]] += len(study.get_trials(deepcopy=False,
                                                                           states=(TrialState.COMPLETE,)))
    return complete


def not_reached(found: list[dict[str, Any]]) -> dict[str, int]:
    """Jobs the run did not carry to an end: never claimed, or interrupted when `--timeout` stopped the workers
    (SIGTERM: the worker stops the search resumably and the job ends `interrupted`)."""
    return {"never claimed (still queued when --timeout stopped the workers)":
            sum(job["state"] == "queued" for job in found),
            "interrupted by the stop at --timeout (resumable)": sum(job["state"] == "interrupted" for job in found)}


def exactly_once(found: list[dict[str, Any]], samples: int) -> dict[str, int]:
    """How many of the jobs that ran to an end break each part of "exactly once" (all zero when it held)."""
    searches = Counter(job["search_id"] for job in found if job["search_id"])
    found = [job for job in found if job["state"] not in ("queued", "interrupted")]
    return {
        "ran to an end but not succeeded": sum(job["state"] != "succeeded" for job in found),
        "claimed more than once (attempts != 1)": sum(job["attempts"] != 1 for job in found),
        "without a search, or sharing one": sum(not job["search_id"] or searches[job["search_id"]] > 1
                                                for job in found),
        f"trial rows != {samples} (or a trial id twice)": sum(job["rows"] != samples or job["unique_rows"] != samples
                                                              for job in found),
        "MLflow parent runs != 1": sum(job["parent_runs"] != 1 for job in found),
        f"finished MLflow child runs != {samples}": sum(job["child_runs"] != samples for job in found),
        f"complete Optuna trials != {samples}": sum(job["optuna_complete"] != samples for job in found),
    }


def spread(values: list[float]) -> dict[str, float]:
    """median, p95 (nearest rank) and max of `values` (seconds)."""
    ordered = sorted(values)
    if not ordered:
        return {"n": 0}
    p95 = ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered)) - 1))]
    return {"n": len(ordered), "median": statistics.median(ordered), "p95": p95, "max": ordered[-1]}


def handoffs(found: list[dict[str, Any]], taken: dict[str, list[str]]) -> list[float]:
    """Seconds from each worker's job finishing to the same worker claiming its next job."""
    by_id = {job["id"]: job for job in found}
    gaps = []
    for order in taken.values():
        for before, after in itertools.pairwise(order):
            one, two = by_id.get(before), by_id.get(after)
            if one and two and one["finished_at"] and two["started_at"]:
                gaps.append((two["started_at"] - one["finished_at"]).total_seconds())
    return gaps


def phases(done: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Where a job's time goes, from the database's timestamps: claim -> its search registered (spec, MLflow
    parent run, arms), -> its last trial recorded (Tune experiment, trial actor, training, recording), of
    which the trials' own training (`trials.wall_s`), and -> the job's end (Tune's teardown, `finish`)."""
    def seconds(later: str, earlier: str) -> list[float]:
        return [(job[later] - job[earlier]).total_seconds() for job in done]

    return {"claimed -> search registered": spread(seconds("search_at", "started_at")),
            "search registered -> last trial recorded": spread(seconds("last_trial_at", "search_at")),
            "of which the trials' own training (trials.wall_s)": spread([job["trials_wall_s"] or 0.0 for job in done]),
            "last trial recorded -> job finished": spread(seconds("finished_at", "last_trial_at"))}


def figures(found: list[dict[str, Any]], taken: dict[str, list[str]]) -> dict[str, Any]:
    done = [job for job in found if job["finished_at"] and job["started_at"]]
    claimed = [job for job in found if job["started_at"]]
    first_claim = min(job["started_at"] for job in claimed) if claimed else None
    first_queued = min(job["created_at"] for job in found)
    last = max(job["finished_at"] for job in done) if done else None
    succeeded = sum(job["state"] == "succeeded" for job in found)
    busy_s = (last - first_claim).total_seconds() if done else 0.0
    whole_s = (last - first_queued).total_seconds() if done else 0.0
    return {
        "jobs": len(found), "succeeded": succeeded,
        "first_claim_after_submit_s": (first_claim - first_queued).total_seconds() if claimed else None,
        "span_first_claim_to_last_finish_s": busy_s, "span_first_queued_to_last_finish_s": whole_s,
        "jobs_per_minute": 60 * succeeded / busy_s if busy_s else 0.0,
        "jobs_per_minute_whole_run": 60 * succeeded / whole_s if whole_s else 0.0,
        "claim_latency_s": spread([(job["started_at"] - job["created_at"]).total_seconds() for job in claimed]),
        "job_run_s": spread([(job["finished_at"] - job["started_at"]).total_seconds() for job in done]),
        "handoff_s": spread(handoffs(found, taken)),
        "phases_s": phases([job for job in done if job["search_at"] and job["last_trial_at"]]),
        "jobs_per_worker": sorted((len(order) for order in taken.values()), reverse=True),
    }


# --- the report ----------------------------------------------------------------------------------


def _row(name: str, values: dict[str, float]) -> str:
    if not values.get("n"):
        return f"| {name} | 0 | — | — | — |"
    return f"| {name} | {values['n']} | {values['median']:.2f} | {values['p95']:.2f} | {values['max']:.2f} |"


def markdown(result: dict[str, Any]) -> str:
    args, fig, broken, m = result["args"], result["figures"], result["exactly_once"], result["machine"]
    held = all(value == 0 for value in broken.values())
    load = result["load_during"]
    lines = [
        HEADING, "",
        f"Measured {result['when']} with", "", f"    {result['command']}", "",
        f"- Machine: {m['cpu']}, {m['cores']} cores shared with other work (load average "
        f"{', '.join(f'{v:.1f}' for v in result['load_before'])} before, "
        f"{', '.join(f'{v:.1f}' for v in result['load_after'])} after); Python {m['python']}, torch {m['torch']}, "
        f"ray {m['ray']}, mlflow {m['mlflow']}; git {m['git_sha']}.",
        f"- {args['jobs']} jobs queued at once ({result['submit_s']:.1f} s to submit) into a fresh PostgreSQL "
        f"database, drained by {args['workers']} `seqarena worker --once` processes sharing one Ray head of "
        f"{args['ray_cpus']} CPUs (started before, in {result['ray_start_s']:.0f} s, not counted) and one "
        f"`SEQARENA_HOME` (embedded SQLite MLflow store). Each job: adding, T = {args['seq_len']}, `rnn` hidden "
        f"4, {args['samples']} trial(s) of {args['steps']} steps, random search, no scheduler, 1 CPU per trial.",
        f"- Workers {'ran past --timeout and were stopped' if result['timed_out'] else 'drained the queue'} in "
        f"{result['drain_s']:.0f} s; exit codes {result['codes']}; jobs per worker {fig['jobs_per_worker']}.",
        f"- The 1-minute load average while the workers ran (sampled every 30 s; the machine is shared): "
        f"median {statistics.median(load) if load else float('nan'):.1f}, max {max(load, default=float('nan')):.1f}.",
        "", "Exactly once, over the jobs that ran to an end (jobs breaking each check; all 0 means it held):", "",
        "| check | jobs |", "|---|---:|", *(f"| {name} | {count} |" for name, count in broken.items()),
        *(f"| not a violation: {name} | {count} |" for name, count in result["not_reached"].items()), "",
        f"**{'Every job that ran, ran exactly once' if held else 'Exactly once did NOT hold for every job'}**: "
        f"{fig['succeeded']} of {fig['jobs']} jobs succeeded.", "",
        f"Throughput: **{fig['jobs_per_minute']:.1f} jobs per minute** from the first claim to the last finish "
        f"({fig['span_first_claim_to_last_finish_s']:.0f} s); {fig['jobs_per_minute_whole_run']:.1f} per minute "
        f"from the first job queued (the workers' start-up included: first claim "
        f"{fig['first_claim_after_submit_s']:.0f} s after the first job was queued).", "",
        "Times from the database's own timestamps (PostgreSQL's clock), in seconds:", "",
        "| interval | n | median | p95 | max |", "|---|---:|---:|---:|---:|",
        _row("claim latency: queued -> claimed (every job queued at once, so mostly waiting for a free worker)",
             fig["claim_latency_s"]),
        _row("a job: claimed -> finished (Tune experiment, trial actor, MLflow, records)", fig["job_run_s"]),
        _row("hand-off: a worker's job finished -> the same worker's next claim", fig["handoff_s"]), "",
        "Where a job's time goes (claimed -> finished, in seconds):", "",
        "| phase | n | median | p95 | max |", "|---|---:|---:|---:|---:|",
        *(_row(name, values) for name, values in fig["phases_s"].items()), "",
    ]
    return "\n".join(lines)


def write_section(path: Path, heading: str, body: str) -> None:
    """Replace the section `heading` of `path` (appended when missing)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    found = re.search(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", text, re.M | re.S)
    body = body.rstrip("\n") + "\n\n"
    text = text[:found.start()] + body + text[found.end():] if found else text.rstrip("\n") + "\n\n" + body
    path.write_text(text.rstrip("\n") + "\n")


def measure(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="sa-load-", dir="/tmp"))
    home, logs = work / "home", work / "logs"
    home.mkdir()
    logs.mkdir()
    os.environ["SEQARENA_HOME"] = str(home)
    with fresh_database(SimpleNamespace(db_url=args.admin_url), home) as (_, url):
        with ray_cluster(1, args, logs, cpus=args.ray_cpus) as (ray_env, ray_start_s):
            env = {**clean_env(), **ray_env, "SEQARENA_HOME": str(home), "SEQARENA_DB_URL": url, "COLUMNS": "400"}
            ids, submit_s = submit_all(url, args)
            print(f"Ray up in {ray_start_s:.0f} s; {len(ids)} jobs queued in {submit_s:.1f} s; {args.workers} "
                  f"workers draining the queue ...", flush=True)
            codes, drain_s, timed_out = run_workers(env, args, logs)
        found = records(url, home, ids)
    taken = taken_by_worker(logs)
    from seqarena.platform.database import safe_url

    result = {
        "when": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "argv": argv,
        "command": ".venv/bin/python benchmarks/load_jobs.py " + shlex.join(argv),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "database": safe_url(url), "machine": machine(), "load_before": list(load_before),
        "load_after": list(os.getloadavg()), "submit_s": submit_s, "ray_start_s": ray_start_s, "drain_s": drain_s,
        "timed_out": timed_out, "codes": codes, "exactly_once": exactly_once(found, args.samples),
        "not_reached": not_reached(found), "load_during": LOAD, "jobs": found,
        "figures": figures(found, taken),
        "log_tails": [tail(log) for log in sorted(logs.glob("worker-*.log"))] if timed_out or any(codes) else [],
        "work": str(work),
    }
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the `finally` blocks: stop what we started
    result = measure(args, argv)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=1, default=str) + "\n")
    text = markdown(result)
    write_section(args.out, HEADING, text)
    print(text)
    for lines in result["log_tails"]:
        print(lines, file=sys.stderr)
    held = all(value == 0 for value in result["exactly_once"].values())
    return 0 if held and result["figures"]["succeeded"] == args.jobs else 1


if __name__ == "__main__":
    sys.exit(main())

