"""Injected faults against a whole seqarena platform on this machine (`scripts/fault_check.sh`; docs/RELIABILITY.md).

Sets up, on 127.0.0.1 and under one temp folder: a private PostgreSQL cluster (the platform database), an
MLflow tracking server, a Ray cluster of two nodes (a head and a worker node, token authentication), three
`seqarena worker` processes and a small tmpfs as `SEQARENA_HOME`. Then, one scenario at a time, it submits a
small real job (a few trials of few steps on the adding task at T = 20), injects one fault while the job
runs, waits for the job to end and audits it (`seqarena.platform.fault_audit`): the job ended `succeeded`,
or `failed` with one line and resumable; no trial recorded twice; no MLflow run left RUNNING or orphaned
KILLED; the database and MLflow agree trial for trial; no process of the stack left orphaned; the workers
that were not killed are alive. Prints one table row per scenario and exits 1 when any check failed.

Needs root (it mounts the tmpfs and runs PostgreSQL as `postgres`). Slow by nature: minutes per scenario.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from seqarena.platform import database, jobs
from seqarena.platform.fault_audit import Check, audit_job, check_ended
from seqarena.platform.leaderboard import trials_frame
from seqarena.workers.checkpoint import FILE_NAME
from tests.services import (
    PrivatePostgres,
    answers,
    free_port,
    mlflow_server_command,
    mlflow_server_env,
    ray_active_nodes,
    ray_head_command,
    ray_worker_node_command,
)

SPEC = """
name: fault-{name}
task: adding
task_options: {{n_val: 32, n_test: 32}}
seq_lens: [20]
models: [gru]
budget: {{max_steps: {steps}, eval_every: {eval_every}}}
search: {{algorithm: random, num_samples: {samples}, scheduler: none, seed: 0}}
fixed: {{all: {{hidden_size: 8, batch_size: 16}}}}
"""
LEASE_S = 15
"""The workers' lease: a 5 s outage is ridden out, a 40 s one outlasts it (the search stops and runs again)."""
JOB_TIMEOUT_S = 900
FULL_FOR_S = 45
"""How long the home's filesystem stays full."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def wait_for(condition: Callable[[], bool], timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


# ---------------------------------------------------------------- processes (/proc, no psutil)

def _proc_table() -> dict[int, tuple[int, str, str]]:
    """pid -> (parent pid, state, command line) of every process now."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        table[int(entry.name)] = (int(ppid), state, cmdline)
    return table


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def descendants(pid: int, table: dict[int, tuple[int, str, str]] | None = None) -> set[int]:
    """`pid` and every live process below it."""
    table = table or _proc_table()
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, (ppid, state, _) in table.items() if ppid == parent and state != "Z"]
        frontier += [child for child in children if child not in found]
        found |= set(children)
    return {p for p in found if p in table and table[p][1] != "Z"}


def kill_tree(pid: int) -> set[int]:
    """SIGKILL `pid` and every process below it (listed first, so none escapes by re-parenting); return them."""
    tree = descendants(pid)
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)
    return tree


# ---------------------------------------------------------------- the stack

@dataclass
class Stack:
    """Every service of the platform under `root`, and the environment of its clients."""

    root: Path
    home: Path
    pg: PrivatePostgres
    env: dict[str, str]
    mlflow_port: int
    ray_port: int
    mlflow: subprocess.Popen | None = None
    head: subprocess.Popen | None = None
    node: subprocess.Popen | None = None
    workers: list[subprocess.Popen] = field(default_factory=list)

    def start_mlflow(self) -> None:
        backend = f"sqlite:///{self.root / 'mlflow' / 'mlflow.db'}"
        command = mlflow_server_command(self.mlflow_port, backend, self.root / "mlflow" / "artifacts")
        self.mlflow = self._spawn(command, mlflow_server_env(self.env), "mlflow")
        url = f"http://127.0.0.1:{self.mlflow_port}"
        wait_for(lambda: answers(f"{url}/health") or self.mlflow.poll() is not None, 180, "the MLflow server")
        if self.mlflow.poll() is not None:
            raise RuntimeError(f"mlflow server exited; see {self.root / 'logs' / 'mlflow.log'}")

    def start_ray(self) -> None:
        self.head = self._spawn(ray_head_command(self.ray_port, self.root / "ray"), self.env, "ray-head")
        wait_for(lambda: ray_active_nodes(self.ray_port, self.env) >= 1, 180, "the Ray head", interval=2)
        self.start_node()

    def start_node(self) -> None:
        self.node = self._spawn(ray_worker_node_command(self.ray_port), self.env, "ray-node")
        wait_for(lambda: ray_active_nodes(self.ray_port, self.env) >= 2, 180, "the second Ray node", interval=2)

    def start_worker(self) -> subprocess.Popen:
        command = [sys.executable, "-m", "seqarena.cli", "worker", "--lease", str(LEASE_S), "--poll", "1"]
        worker = self._spawn(command, self.env, f"worker{len(self.workers)}")
        self.workers.append(worker)
        return worker

    def managed(self) -> list[int]:
        """The pids whose process trees are the stack's own (orphans are the stack's processes outside them)."""
        pids = [p.pid for p in [self.mlflow, self.head, self.node, *self.workers] if p and p.poll() is None]
        postmaster = self.pg.data / "postmaster.pid"
        if postmaster.exists():
            pids.append(int(postmaster.read_text().split()[0]))
        return pids

    def orphans(self) -> list[str]:
        """Processes of this stack that no live service holds: those whose command line or environment names
        the stack's folder (Ray's workers rename their command line to `ray::...`; they inherit the
        environment of the node that started them)."""
        table = _proc_table()
        held: set[int] = {os.getpid()}
        for pid in self.managed():
            held |= descendants(pid, table)
        mark = str(self.root).encode()
        return [f"{pid} {cmd[:80]}" for pid, (_, state, cmd) in table.items()
                if state != "Z" and pid not in held and (mark in cmd.encode() or mark in _environ(pid))]

    def _spawn(self, command: list[str], env: dict[str, str], name: str) -> subprocess.Popen:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        out = (logs / f"{name}.log").open("a")
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self) -> None:
        for process in [*self.workers, self.node, self.head, self.mlflow]:
            if process is not None and process.poll() is None:
                kill_tree(process.pid)
                process.wait(timeout=30)
        self.pg.destroy()


def build_stack(root: Path, home_mb: int) -> Stack:
    home = root / "home"
    home.mkdir()
    (root / "mlflow").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={home_mb}m", "tmpfs", str(home)], check=True)
    log(f"home: tmpfs of {home_mb} MB at {home}")
    pg = PrivatePostgres.create(root / "pg")
    log(f"PostgreSQL on 127.0.0.1:{pg.port}")
    mlflow_port, ray_port = free_port(), free_port()
    env = {key: value for key, value in os.environ.items() if key not in ("RAY_ADDRESS", "MLFLOW_TRACKING_URI")}
    env.update(SEQARENA_HOME=str(home), SEQARENA_DB_URL=pg.url, MLFLOW_TRACKING_URI=f"http://127.0.0.1:{mlflow_port}",
               RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16), RAY_TMPDIR=str(root / "ray"),
               PYTHONPATH=str(Path.cwd()))
    stack = Stack(root, home, pg, env, mlflow_port, ray_port)
    stack.start_mlflow()
    log(f"MLflow server on 127.0.0.1:{mlflow_port}")
    stack.start_ray()
    log(f"Ray: two nodes, head on 127.0.0.1:{ray_port}")
    stack.env["RAY_ADDRESS"] = f"127.0.0.1:{ray_port}"
    for _ in range(3):
        stack.start_worker()
    log("three seqarena workers started")
    return stack


# ---------------------------------------------------------------- jobs

def engine(stack: Stack):
    return database.get_engine(stack.pg.url)


def submit(stack: Stack, name: str, samples: int, steps: int) -> str:
    spec = stack.root / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, steps=steps, eval_every=max(steps // 10, 1), samples=samples))
    done = subprocess.run([sys.executable, "-m", "seqarena.cli", "submit", str(spec)], env=stack.env,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"submit failed: {done.stderr.strip()[-500:]}")
    return done.stdout.strip().splitlines()[-1]


def job_now(stack: Stack, job_id: str) -> jobs.Job | None:
    """The job's row, or None while the database does not answer."""
    try:
        return jobs.get_job(engine(stack), job_id)
    except Exception as error:
        if database.unreachable(error):
            return None
        raise


def recorded(stack: Stack, job_id: str) -> int:
    job = job_now(stack, job_id)
    if job is None or job.search_id is None:
        return 0
    try:
        return len(trials_frame(engine(stack), job.search_id))
    except Exception as error:
        if database.unreachable(error):
            return 0
        raise


def wait_end(stack: Stack, job_id: str, timeout: float = JOB_TIMEOUT_S) -> jobs.Job:
    wait_for(lambda: (job := job_now(stack, job_id)) is not None and job.state not in ("queued", "running"),
             timeout, f"job {job_id} to end", interval=2)
    return jobs.get_job(engine(stack), job_id)


def holder_pid(job: jobs.Job) -> int:
    """The pid of the worker holding `job` (its id is `host-pid-suffix`)."""
    return int((job.worker_id or "").rsplit("-", 2)[1])


def first_trial(stack: Stack, job_id: str) -> jobs.Job:
    """Wait until the job runs and recorded its first trial (mid-job); return its row."""
    wait_for(lambda: recorded(stack, job_id) >= 1, JOB_TIMEOUT_S, f"job {job_id}'s first recorded trial", interval=2)
    return jobs.get_job(engine(stack), job_id)


# ---------------------------------------------------------------- scenarios

@dataclass
class Injected:
    """What a scenario did, for the checks after the job ended."""

    killed_workers: list[int] = field(default_factory=list)
    repair: Callable[[], None] | None = None
    notes: list[str] = field(default_factory=list)


def kill_worker(stack: Stack, job_id: str) -> Injected:
    """SIGKILL the seqarena worker running the job (mid-job), start a replacement."""
    pid = holder_pid(first_trial(stack, job_id))
    os.kill(pid, signal.SIGKILL)
    log(f"SIGKILLed worker pid {pid}")
    stack.start_worker()
    return Injected(killed_workers=[pid])


def kill_ray_node(stack: Stack, job_id: str) -> Injected:
    """SIGKILL the Ray worker node's processes by pid (raylet, agents, its workers), mid-job; start a new node
    once the job ended."""
    first_trial(stack, job_id)
    tree = kill_tree(stack.node.pid)
    stack.node.wait(timeout=30)
    log(f"SIGKILLed the Ray worker node: {len(tree)} processes")
    return Injected(repair=stack.start_node, notes=[f"{len(tree)} node processes killed"])


def restart_mlflow(stack: Stack, job_id: str) -> Injected:
    """SIGKILL the MLflow server mid-job, start it again on the same port and store 20 s later."""
    first_trial(stack, job_id)
    kill_tree(stack.mlflow.pid)
    stack.mlflow.wait(timeout=30)
    log("SIGKILLed the MLflow server")
    time.sleep(20)
    stack.start_mlflow()
    log("MLflow server started again")
    return Injected()


def stop_postgres(seconds: float) -> Callable[[Stack, str], Injected]:
    def inject(stack: Stack, job_id: str) -> Injected:
        first_trial(stack, job_id)
        stack.pg.stop()
        log(f"PostgreSQL stopped for {seconds:.0f} s")
        time.sleep(seconds)
        stack.pg.start()
        log("PostgreSQL started again")
        return Injected()
    return inject


def fill_home(stack: Stack, job_id: str) -> Injected:
    """Fill SEQARENA_HOME's filesystem mid-job for FULL_FOR_S, then free it (the repair: resume if it failed)."""
    first_trial(stack, job_id)
    filler = stack.home / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * (1 << 20))
                out.flush()
        except OSError as error:
            if error.errno != errno.ENOSPC:
                raise
    log(f"home full ({shutil.disk_usage(stack.home).free} bytes free) for {FULL_FOR_S} s")
    time.sleep(FULL_FOR_S)
    filler.unlink()
    log("home freed")
    return Injected()


def corrupt_checkpoint(stack: Stack, job_id: str) -> Injected:
    """Overwrite the job's trial checkpoints with garbage mid-job, then SIGKILL its worker: the worker that takes
    the job over restores its unfinished trials from them."""
    job = first_trial(stack, job_id)
    results = stack.home / "ray_results" / job.search_id
    wait_for(lambda: any(results.rglob(FILE_NAME)), 300, "a trial checkpoint", interval=1)
    found = list(results.rglob(FILE_NAME))
    for path in found:
        path.write_bytes(b"not a checkpoint " * 16)
    pid = holder_pid(jobs.get_job(engine(stack), job_id))
    os.kill(pid, signal.SIGKILL)
    log(f"corrupted {len(found)} checkpoint(s), SIGKILLed worker pid {pid}")
    stack.start_worker()
    return Injected(killed_workers=[pid], notes=[f"{len(found)} checkpoints corrupted"])


SCENARIOS: dict[str, Callable[[Stack, str], Injected]] = {
    "worker SIGKILL": kill_worker,
    "Ray node SIGKILL": kill_ray_node,
    "MLflow restart": restart_mlflow,
    "PostgreSQL 5 s": stop_postgres(5),
    "PostgreSQL 40 s": stop_postgres(40),
    "home full": fill_home,
    "checkpoint corrupt": corrupt_checkpoint,
}


# ---------------------------------------------------------------- one scenario, end to end

@dataclass
class Row:
    scenario: str
    outcome: str
    trials: str
    checks: list[Check]
    seconds: float

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)


def run_scenario(stack: Stack, name: str, samples: int, steps: int) -> Row:
    started = time.monotonic()
    log(f"--- {name}")
    job_id = submit(stack, name.lower().replace(" ", "-"), samples, steps)
    alive_before = [w for w in stack.workers if w.poll() is None]
    try:
        injected = SCENARIOS[name](stack, job_id)
        job = wait_end(stack, job_id)
    except TimeoutError as error:
        return Row(name, "timed out", "-", [Check("ended", False, str(error))], time.monotonic() - started)
    outcome, first_end = job.state, check_ended(job.state, job.error)
    if job.state != "succeeded" and "queued" in jobs.TRANSITIONS[job.state]:
        log(f"job {job.state}: {job.error}; resuming it")
        subprocess.run([sys.executable, "-m", "seqarena.cli", "resume", job_id], env=stack.env, check=True,
                       capture_output=True, timeout=300)
        job = wait_end(stack, job_id)
        outcome = f"{outcome} -> resumed -> {job.state}"
    if injected.repair is not None:
        injected.repair()
    outcome += f" ({job.attempts} claim{'s' if job.attempts != 1 else ''})"
    audit = audit_job(engine(stack), stack.env["MLFLOW_TRACKING_URI"], job_id)
    checks = [first_end if not first_end.ok else check for check in audit.checks if check.name == "ended"]
    checks += [check for check in audit.checks if check.name != "ended"]
    checks += [_no_orphans(stack), _workers_alive(alive_before, injected)]
    trials = f"{audit.db_trials}/{audit.mlflow_trials} of {audit.expected_trials}"
    return Row(name, outcome, trials, checks, time.monotonic() - started)


def _no_orphans(stack: Stack) -> Check:
    """No process of the stack outside a live service, after up to 60 s for Ray to reap what it owns."""
    deadline = time.monotonic() + 60
    while (left := stack.orphans()) and time.monotonic() < deadline:
        time.sleep(2)
    for line in left:
        log(f"orphan: {line}")
    return Check("no orphans", not left, f"{len(left)} left: {'; '.join(left)[:200]}" if left else "")


def _workers_alive(before: list[subprocess.Popen], injected: Injected) -> Check:
    dead = [w.pid for w in before if w.pid not in injected.killed_workers and w.poll() is not None]
    return Check("workers alive", not dead, f"exited: {dead}" if dead else "")


def print_table(rows: list[Row], wall_s: float) -> None:
    print("| scenario | outcome | trials DB/MLflow | checks | seconds |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        failed = [f"{c.name}: {c.detail}" for c in row.checks if not c.ok]
        checks = f"{len(row.checks)}/{len(row.checks)} pass" if row.ok else "FAIL " + "; ".join(failed)
        print(f"| {row.scenario} | {row.outcome} | {row.trials} | {checks} | {row.seconds:.0f} |")
    print(f"\n{sum(r.ok for r in rows)}/{len(rows)} scenarios pass; wall time {wall_s:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), help="run only this scenario (repeatable)")
    parser.add_argument("--samples", type=int, default=4, help="trials per job")
    parser.add_argument("--steps", type=int, default=300, help="training steps per trial")
    parser.add_argument("--home-mb", type=int, default=256, help="size of the tmpfs SEQARENA_HOME")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs) afterwards")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("fault_check needs root (it mounts a tmpfs as SEQARENA_HOME)", file=sys.stderr)
        return 2
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="sa-fault-", dir="/tmp"))
    root.chmod(0o755)  # PostgreSQL runs as its own user, under it
    log(f"everything under {root}")
    stack = None
    rows: list[Row] = []
    try:
        stack = build_stack(root, args.home_mb)
        for name in args.only or list(SCENARIOS):
            rows.append(run_scenario(stack, name, args.samples, args.steps))
            print_table(rows[-1:], time.monotonic() - started)
    finally:
        if stack is not None:
            stack.stop()
        subprocess.run(["umount", "-l", str(root / "home")], check=False, capture_output=True)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print()
    print_table(rows, time.monotonic() - started)
    return 0 if rows and all(row.ok for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
