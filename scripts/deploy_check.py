"""The compose stack of infra/compose/compose.hostnet.yaml, started and exercised end to end.

Run by scripts/deploy_check.sh (which starts dockerd and builds the images first), with the host's
seqarena environment: the checks talk to the stack from this machine's CLI and libraries, the way a
user on the Docker host does. Every service listens on 127.0.0.1. One line per check (PASS/FAIL),
a total, exit 1 if any failed. The stack is torn down at the end (containers, network, volumes)
unless --keep.

Checks: the stack comes up healthy (and the one-shot step has created the S3 bucket); a small spec
submitted from the host succeeds with its trials on both Ray worker containers (the Ray node id each
trial recorded in MLflow), every trial one MLflow child run and one database row; its Tune experiment
and checkpoints are objects in the stack's S3 bucket (SEQARENA_STORAGE=s3://...) and nothing of them is
on the shared volume; the dashboard answers on 127.0.0.1 and shows the job (headless
Chromium). Faults: a Ray worker container killed mid-job (the job succeeds, no trial recorded twice);
`down` and `up` on the same volumes (jobs, runs, artifacts and the leaderboard unchanged); the
seqarena worker container killed mid-job and a new one started (the job is taken over after its
lease and succeeds).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "infra" / "compose" / "compose.hostnet.yaml"
PROJECT = "seqarena-check"
RAY_WORKERS = ("ray-worker", "ray-worker-2")
#: The bucket and prefix of the stack's SEQARENA_STORAGE (compose.hostnet.yaml's defaults).
BUCKET = os.environ.get("SEQARENA_S3_BUCKET", "seqarena")
PREFIX = "experiments"
REGION = "us-east-1"
CHROMIUM = "/usr/bin/chromium"
SPEC = """
name: {name}
task: adding
task_options: {{n_val: 32, n_test: 32}}
seq_lens: [20]
models: [gru]
budget: {{max_steps: {steps}, eval_every: 10}}
search: {{algorithm: random, num_samples: {samples}, scheduler: none, seed: 0}}
fixed: {{all: {{hidden_size: 8, batch_size: 16}}}}
resources: {{cpus_per_trial: 1, gpus_per_trial: 0}}
"""


@dataclass(frozen=True)
class Ports:
    """Where the stack listens on 127.0.0.1 (compose.hostnet.yaml's variables)."""

    postgres: int = int(os.environ.get("SEQARENA_PG_PORT", "25432"))
    mlflow: int = int(os.environ.get("SEQARENA_MLFLOW_PORT", "25000"))
    ray: int = int(os.environ.get("SEQARENA_RAY_PORT", "26379"))
    dashboard: int = int(os.environ.get("SEQARENA_DASHBOARD_PORT", "28501"))
    s3: int = int(os.environ.get("SEQARENA_S3_PORT", "29000"))


@dataclass
class Stack:
    """One compose project on host networking, its secrets in a private file."""

    workdir: Path
    ports: Ports = field(default_factory=Ports)
    password: str = field(default_factory=lambda: secrets.token_hex(16))
    #: S3 credentials made for this run (moto accepts any): they reach the containers through the
    #: secrets file only, as a real store's would.
    s3_key_id: str = field(default_factory=lambda: f"AKIA{secrets.token_hex(8).upper()}")
    s3_secret: str = field(default_factory=lambda: secrets.token_hex(20))

    def __post_init__(self) -> None:
        self.secrets_file = self.workdir / "secrets.env"
        self.secrets_file.write_text("\n".join([
            f"POSTGRES_PASSWORD={self.password}",
            f"SEQARENA_DB_URL={self.db_url}",
            f"MLFLOW_BACKEND_STORE_URI=postgresql+psycopg://seqarena:{self.password}@127.0.0.1:{self.ports.postgres}/mlflow",
            f"RAY_AUTH_TOKEN={secrets.token_hex(32)}",
            f"SEQARENA_DASHBOARD_TOKEN={secrets.token_hex(16)}",
            f"AWS_ACCESS_KEY_ID={self.s3_key_id}",
            f"AWS_SECRET_ACCESS_KEY={self.s3_secret}",
        ]) + "\n")
        self.secrets_file.chmod(0o600)

    @property
    def db_url(self) -> str:
        return f"postgresql+psycopg://seqarena:{self.password}@127.0.0.1:{self.ports.postgres}/seqarena"

    @property
    def mlflow_uri(self) -> str:
        return f"http://127.0.0.1:{self.ports.mlflow}"

    def s3_keys(self, prefix: str) -> list[str]:
        """Every object key under `prefix` in the stack's bucket (boto3, as any S3 client would)."""
        import boto3

        client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{self.ports.s3}", region_name=REGION,
                              aws_access_key_id=self.s3_key_id, aws_secret_access_key=self.s3_secret)
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
        return [item["Key"] for page in pages for item in page.get("Contents", [])]

    def compose_env(self) -> dict[str, str]:
        return {**os.environ, "SEQARENA_SECRETS_FILE": str(self.secrets_file),
                "POSTGRES_IMAGE": os.environ.get("POSTGRES_IMAGE", "seqarena-postgres:15"),
                "SEQARENA_PG_PORT": str(self.ports.postgres), "SEQARENA_MLFLOW_PORT": str(self.ports.mlflow),
                "SEQARENA_RAY_PORT": str(self.ports.ray), "SEQARENA_DASHBOARD_PORT": str(self.ports.dashboard),
                "SEQARENA_S3_PORT": str(self.ports.s3), "SEQARENA_S3_BUCKET": BUCKET}

    def compose(self, *args: str, check: bool = True, timeout: float = 900) -> str:
        command = [*compose_command(), "-p", PROJECT, "-f", str(COMPOSE_FILE), *args]
        done = subprocess.run(command, env=self.compose_env(), capture_output=True, text=True, timeout=timeout,
                              check=False)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout

    def container(self, service: str, stopped: bool = False) -> str:
        ids = self.compose("ps", *(["-a"] if stopped else []), "-q", service).split()
        if not ids:
            raise RuntimeError(f"no container for {service}")
        return ids[0]

    def cli_env(self) -> dict[str, str]:
        """The host CLI's environment: the stack's database and MLflow, its own SEQARENA_HOME."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("RAY_", "SEQARENA_"))}
        return {**env, "SEQARENA_DB_URL": self.db_url, "MLFLOW_TRACKING_URI": self.mlflow_uri,
                "SEQARENA_HOME": str(self.workdir / "home")}

    def cli(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run([sys.executable, "-m", "seqarena.cli", *args], env=self.cli_env(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"seqarena {' '.join(args)}: {done.stderr[-2000:]}")
        return done.stdout


def compose_command() -> list[str]:
    """`docker compose` (the v2 plugin) where it exists, else Debian's `docker-compose`."""
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True, check=False)
    return ["docker", "compose"] if probe.returncode == 0 else ["docker-compose"]


def wait_for(condition: Callable[[], Any], timeout: float, what: str, every: float = 3.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except Exception:  # a service still starting answers with errors
            value = None
        if value:
            return value
        time.sleep(every)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> bool:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.status == 200


# -------------------------------------------------------------------------------------------- records

def job_state(stack: Stack, job_id: str) -> dict[str, Any]:
    rows = json.loads(stack.cli("jobs", "--json"))
    return next(row for row in rows if row["id"] == job_id)


def wait_job(stack: Stack, job_id: str, timeout: float = 1200) -> str:
    state = wait_for(lambda: job_state(stack, job_id)["state"] in ("succeeded", "failed", "cancelled", "interrupted")
                     and job_state(stack, job_id)["state"], timeout, f"job {job_id} to finish", every=5)
    return str(state)


def submit(stack: Stack, name: str, steps: int, samples: int) -> str:
    spec = stack.workdir / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, steps=steps, samples=samples))
    return stack.cli("submit", str(spec)).strip().splitlines()[-1]


@dataclass(frozen=True)
class Records:
    """What the database and MLflow hold of one job's search."""

    trial_ids: list[str]
    run_trial_ids: list[str]
    node_ids: set[str]
    run_ids: list[str]


def records(stack: Stack, job_id: str) -> Records:
    os.environ.update({"SEQARENA_DB_URL": stack.db_url, "MLFLOW_TRACKING_URI": stack.mlflow_uri})
    from mlflow.tracking import MlflowClient

    from seqarena.platform import database, jobs, searches
    from seqarena.platform.leaderboard import trials_frame
    from seqarena.platform.tracking import PARENT_TAG, TRIAL_TAG

    engine = database.get_engine(stack.db_url)
    job = jobs.get_job(engine, job_id)
    search = searches.get_search(engine, job.search_id)
    frame = trials_frame(engine, job.search_id)
    client = MlflowClient(stack.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, filter_string=f"tags.`{PARENT_TAG}` = '{search.mlflow_parent_run_id}'",
                              max_results=1000)
    return Records(trial_ids=sorted(frame["trial_id"]),
                   run_trial_ids=sorted(r.data.tags.get(TRIAL_TAG, "") for r in runs),
                   node_ids={r.data.tags.get("node_id", "") for r in runs}, run_ids=sorted(r.info.run_id for r in runs))


def once_each(found: Records, expected: int) -> str:
    """'' when every trial is one DB row and one MLflow child run; else what differs."""
    if len(found.trial_ids) != expected:
        return f"{len(found.trial_ids)} trial rows, expected {expected}"
    if len(set(found.trial_ids)) != len(found.trial_ids):
        return "a trial recorded twice in the database"
    if found.run_trial_ids != found.trial_ids:
        return f"MLflow child runs {found.run_trial_ids} != database rows {found.trial_ids}"
    return ""


def ray_node_id(stack: Stack, service: str) -> str:
    """The Ray node id of a Ray worker container (a driver attached to its own raylet)."""
    code = "import ray; ray.init(address='auto', logging_level='ERROR'); print(ray.get_runtime_context().get_node_id())"
    done = subprocess.run(["docker", "exec", stack.container(service), "python", "-c", code],
                          capture_output=True, text=True, timeout=180, check=True)
    return done.stdout.strip().splitlines()[-1]


def trials_started(stack: Stack, job_id: str) -> int:
    """Trials with a result row or a child run so far (0 before the search exists)."""
    try:
        found = records(stack, job_id)
    except Exception:  # no search yet
        return 0
    return max(len(found.trial_ids), len(found.run_ids))


def snapshot(stack: Stack) -> dict[str, Any]:
    """Jobs, MLflow runs with their metrics, artifact listings and the leaderboard, as plain data."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(stack.mlflow_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    runs = client.search_runs(experiments, max_results=5000)
    artifacts = {}
    for run in runs:
        artifacts[run.info.run_id] = sorted((f.path, f.file_size) for f in client.list_artifacts(run.info.run_id))
    jobs = [{k: row[k] for k in ("id", "state", "attempts")} for row in json.loads(stack.cli("jobs", "--json"))]
    return {"jobs": jobs,
            "runs": sorted((r.info.run_id, r.info.status, sorted(r.data.metrics.items())) for r in runs),
            "artifacts": artifacts,
            "leaderboard": json.loads(stack.cli("leaderboard", "--json"))}


def dashboard_shows(stack: Stack, job_name: str) -> str:
    """'' when the dashboard's leaderboard shows the job's model and its Jobs page the finished job."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{stack.ports.dashboard}")
            board = page.locator("table.seqarena-board")
            expect(board).to_contain_text("gru", timeout=90_000)
            page.get_by_role("link", name="Jobs").click()
            expect(page.get_by_text("succeeded: ")).to_be_visible(timeout=90_000)
            page.screenshot(path=str(stack.workdir / "dashboard-jobs.png"), full_page=True)
        finally:
            browser.close()
    return ""


# --------------------------------------------------------------------------------------------- checks

class Checks:
    """Runs named checks, prints one verdict line each, keeps the tally."""

    def __init__(self) -> None:
        self.results: list[tuple[str, bool, float]] = []

    def run(self, name: str, check: Callable[[], str]) -> bool:
        start = time.monotonic()
        try:
            problem = check()
        except Exception as error:  # reported; the next check runs
            problem = f"{type(error).__name__}: {str(error).strip()[-600:]}"
        seconds = time.monotonic() - start
        self.results.append((name, not problem, seconds))
        print(f"[{'FAIL' if problem else 'PASS'}] {name} ({seconds:.0f} s){': ' + problem if problem else ''}",
              flush=True)
        return not problem


def up(stack: Stack, *services: str) -> None:
    """`up -d`, again while a dependency was not yet healthy (Compose v1 gives up at the first look)."""
    for attempt in range(5):
        try:
            stack.compose("up", "-d", *services)
            return
        except RuntimeError:
            if attempt == 4:
                raise
            time.sleep(20)


def check_up(stack: Stack) -> str:
    up(stack)
    wait_for(lambda: http_ok(f"{stack.mlflow_uri}/health"), 300, "MLflow")
    wait_for(lambda: http_ok(f"http://127.0.0.1:{stack.ports.dashboard}/_stcore/health"), 300, "the dashboard")
    services = ("postgres", "s3", "mlflow", "ray-head", *RAY_WORKERS, "seqarena-worker", "dashboard")
    ids = {s: stack.container(s) for s in services}
    running = {s: inspect(i, "{{.State.Running}}") for s, i in ids.items()}
    down = [s for s, state in running.items() if state != "true"]
    bucket = inspect(stack.container("s3-bucket", stopped=True), "{{.State.Running}} {{.State.ExitCode}}")
    if bucket != "false 0":
        down.append(f"s3-bucket (running, exit code: {bucket})")
    return f"not running: {down}" if down else ""


def inspect(container: str, template: str) -> str:
    return subprocess.run(["docker", "inspect", "-f", template, container], capture_output=True, text=True,
                          check=True).stdout.strip()


def check_job(stack: Stack, state: dict[str, Any]) -> str:
    job_id = submit(stack, "deploy-first", steps=60, samples=4)
    state["first"] = job_id
    final = wait_job(stack, job_id)
    if final != "succeeded":
        return f"job {job_id} {final}: {job_state(stack, job_id).get('error')}"
    return once_each(records(stack, job_id), 4)


def check_both_nodes(stack: Stack, state: dict[str, Any]) -> str:
    workers = {ray_node_id(stack, service) for service in RAY_WORKERS}
    used = records(stack, state["first"]).node_ids
    return "" if workers <= used else f"trials ran on {sorted(used)}, Ray workers are {sorted(workers)}"


#: Files of a Tune experiment or checkpoint, looked for on the shared volume (none may be there).
FIND_TUNE_FILES = ("find /var/lib/seqarena \\( -name tuner.pkl -o -name 'experiment_state*' -o -name checkpoint.pt"
                   " -o -name 'checkpoint_0*' -o -name ray_results \\) -print")


def check_storage(stack: Stack, state: dict[str, Any]) -> str:
    """The first job's Tune experiment and its trials' checkpoints are objects in the bucket, and none of
    it is on the shared volume (SEQARENA_HOME) that the Ray nodes, the worker and the dashboard mount."""
    from seqarena.platform import database, jobs, searches

    engine = database.get_engine(stack.db_url)
    search = searches.get_search(engine, jobs.get_job(engine, state["first"]).search_id)
    expected = f"s3://{BUCKET}/{PREFIX}/{search.id}"
    if search.storage_path != expected:
        return f"the search records its experiment at {search.storage_path!r}, not {expected!r}"
    keys = stack.s3_keys(f"{PREFIX}/{search.id}/")
    checkpoints = [key for key in keys if key.endswith("/checkpoint.pt")]
    trials = {key.split("/")[2] for key in checkpoints}
    states = [key for key in keys if key.rsplit("/", 1)[-1].startswith("experiment_state")]
    tuner = f"{PREFIX}/{search.id}/tuner.pkl" in keys
    print(f"  {expected}/: {len(keys)} objects: tuner.pkl {'yes' if tuner else 'NO'}, {len(states)} experiment "
          f"state file(s), {len(checkpoints)} checkpoint.pt in {len(trials)} trial folders", flush=True)
    problems = []
    if not tuner or not states:
        problems.append("no tuner.pkl or experiment state in the bucket")
    if len(trials) != 4:
        problems.append(f"checkpoints of {len(trials)} trials in the bucket, expected 4")
    for service in ("seqarena-worker", *RAY_WORKERS):
        found = subprocess.run(["docker", "exec", stack.container(service), "sh", "-c", FIND_TUNE_FILES],
                               capture_output=True, text=True, timeout=120, check=False).stdout.split()
        if found:  # (find's exit status also counts unreadable folders: only what it printed matters)
            problems.append(f"Tune files on the shared volume ({service}): {found[:5]}")
    return "; ".join(problems)


def check_dashboard(stack: Stack) -> str:
    if not http_ok(f"http://127.0.0.1:{stack.ports.dashboard}/_stcore/health"):
        return "no answer"
    return dashboard_shows(stack, "deploy-first")


def check_ray_worker_killed(stack: Stack) -> str:
    job_id = submit(stack, "deploy-ray-kill", steps=1500, samples=4)
    wait_for(lambda: job_state(stack, job_id)["state"] == "running", 300, "the job to start")
    wait_for(lambda: running_trials(stack, 2) or job_state(stack, job_id)["state"] != "running", 300,
             "trials on both Ray workers", every=2)
    if job_state(stack, job_id)["state"] != "running":
        return f"the job was {job_state(stack, job_id)['state']} before a Ray worker was killed: make it longer"
    subprocess.run(["docker", "kill", stack.container("ray-worker-2")], capture_output=True, check=True)
    final = wait_job(stack, job_id)
    if final != "succeeded":
        return f"job {job_id} {final}: {job_state(stack, job_id).get('error')}"
    return once_each(records(stack, job_id), 4)


#: A shell line that counts a container's busy Ray worker processes (a trial's actor, `ray::ImplicitFunc`
#: for Tune's function trainables, and its tasks), leaving out idle workers and the node's agents. Read
#: from /proc, since the minimal base image has no `ps`.
COUNT_TRIALS = ("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < \"$f\" 2>/dev/null; echo; done"
                " | grep '^ray::' | grep -c -v -E '^ray::(IDLE|DashboardAgent|RuntimeEnvAgent)' || true")


def running_trials(stack: Stack, at_least: int) -> bool:
    """True once trials are training in `at_least` of the Ray worker containers."""
    busy = 0
    for service in RAY_WORKERS:
        done = subprocess.run(["docker", "exec", stack.container(service), "sh", "-c", COUNT_TRIALS],
                              capture_output=True, text=True, check=False)
        busy += int((done.stdout.strip() or "0").splitlines()[-1]) > 0
    return busy >= at_least


def check_down_up(stack: Stack) -> str:
    before = snapshot(stack)
    stack.compose("down")
    up(stack)
    wait_for(lambda: http_ok(f"{stack.mlflow_uri}/health"), 300, "MLflow after up")
    after = snapshot(stack)
    changed = [key for key in before if before[key] != after[key]]
    if not before["artifacts"] or not any(before["artifacts"].values()):
        return "no artifacts to compare"
    return f"changed: {changed}" if changed else ""


def check_worker_killed(stack: Stack) -> str:
    job_id = submit(stack, "deploy-worker-kill", steps=1500, samples=4)
    wait_for(lambda: job_state(stack, job_id)["state"] == "running", 300, "the job to start")
    wait_for(lambda: running_trials(stack, 1), 300, "a trial to train", every=2)
    first_worker = job_state(stack, job_id)["worker"]
    subprocess.run(["docker", "rm", "-f", stack.container("seqarena-worker")], capture_output=True, check=True)
    if job_state(stack, job_id)["state"] != "running":
        return f"the job was {job_state(stack, job_id)['state']} before its worker was killed: make it longer"
    up(stack, "--no-deps", "seqarena-worker")
    final = wait_job(stack, job_id)
    row = job_state(stack, job_id)
    if final != "succeeded":
        return f"job {job_id} {final}: {row.get('error')}"
    if row["worker"] == first_worker or int(row["attempts"]) < 2:
        return f"not taken over: worker {row['worker']}, attempts {row['attempts']}"
    return once_each(records(stack, job_id), 4)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the stack and its volumes running")
    parser.add_argument("--only", choices=["worker-kill"], help="bring the stack up and run this check only")
    args = parser.parse_args()
    # SIGTERM, and SIGINT even where a shell started us in the background, end the run through the
    # teardown below.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    workdir = Path(tempfile.mkdtemp(prefix="seqarena-deploy-check."))
    stack, checks, state = Stack(workdir), Checks(), {}
    print(f"deploy_check: project {PROJECT}, work folder {workdir}", flush=True)
    try:
        up_ok = checks.run("stack up: postgres, S3 server + bucket, mlflow, ray head + 2 workers, seqarena worker, "
                           "dashboard",
                           lambda: check_up(stack))
        if up_ok and args.only == "worker-kill":
            checks.run("seqarena worker killed mid-job, a new one takes it over after the lease",
                       lambda: check_worker_killed(stack))
        elif up_ok:
            if checks.run("a spec submitted from the host succeeds, each trial one MLflow run and one DB row",
                          lambda: check_job(stack, state)):
                checks.run("trials ran on both Ray worker containers (node ids in MLflow)",
                           lambda: check_both_nodes(stack, state))
                checks.run("the job's Tune experiment and checkpoints are objects in the S3 bucket, none on the "
                           "shared volume", lambda: check_storage(stack, state))
                checks.run("the dashboard answers on 127.0.0.1 and shows the job", lambda: check_dashboard(stack))
            checks.run("Ray worker killed mid-job: the job succeeds, no trial twice",
                       lambda: check_ray_worker_killed(stack))
            checks.run("down and up on the same volumes: jobs, runs, artifacts, leaderboard identical",
                       lambda: check_down_up(stack))
            checks.run("seqarena worker killed mid-job, a new one takes it over after the lease",
                       lambda: check_worker_killed(stack))
    finally:
        if not args.keep:
            checks.run("teardown: no container, network or volume left", lambda: teardown(stack))
            shutil.rmtree(workdir, ignore_errors=True)
    passed = sum(ok for _, ok, _ in checks.results)
    print(f"deploy_check: {passed}/{len(checks.results)} checks passed "
          f"in {sum(s for _, _, s in checks.results):.0f} s", flush=True)
    return 0 if passed == len(checks.results) else 1


def stop(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def teardown(stack: Stack) -> str:
    stack.compose("down", "-v", "--remove-orphans")
    left = []
    for kind in ("container", "network", "volume"):
        flag = ["-a"] if kind == "container" else []
        label = f"label=com.docker.compose.project={PROJECT}"
        out = subprocess.run(["docker", kind, "ls", *flag, "-q", "--filter", label], capture_output=True,
                             text=True, check=True).stdout.split()
        left += [f"{kind} {name}" for name in out]
    return f"left: {left}" if left else ""


if __name__ == "__main__":
    sys.exit(main())
