"""Real services started for a test or for `scripts/fault_check.py`, each on 127.0.0.1 and under a folder
of its caller: a private PostgreSQL cluster that can be stopped and started, the `mlflow server` command
and the `ray start` commands of a two-node cluster on this machine.

Plain functions without pytest, so that the integration tests and the fault script start their services
the same way.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """Whether `url` answers HTTP 200 within 2 s."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _as_postgres(*args: str) -> list[str]:
    """Run a PostgreSQL binary as the `postgres` user when we are root (initdb refuses root)."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else list(args)


@dataclass
class PrivatePostgres:
    """A private PostgreSQL cluster on its own port and socket folder (never the shared server on 5432,
    which other tests use), trust authentication, listening on 127.0.0.1 only."""

    bin: Path
    data: Path
    port: int

    @classmethod
    def create(cls, data: Path) -> PrivatePostgres:
        """initdb a new cluster in the empty folder `data` and start it."""
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin (initdb, pg_ctl)")
        data.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(data, "postgres", "postgres")
        subprocess.run(_as_postgres(str(found[-1]), "-D", str(data), "-A", "trust", "-U", "postgres"), check=True,
                       capture_output=True, timeout=120)
        cluster = cls(found[-1].parent, data, free_port())
        cluster.start()
        return cluster

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        subprocess.run(_as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                                    str(self.data / "server.log"), "-o",
                                    f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1", "start"),
                       check=True, capture_output=True, timeout=60)

    def stop(self) -> None:
        subprocess.run(_as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast", "stop"),
                       check=True, capture_output=True, timeout=60)

    def destroy(self) -> None:
        """Stop the cluster at once, whatever its state, and remove its folder."""
        subprocess.run(_as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"),
                       capture_output=True, timeout=60, check=False)
        shutil.rmtree(self.data, ignore_errors=True)


def mlflow_server_command(port: int, backend_uri: str, artifacts: Path) -> list[str]:
    """`mlflow server` on 127.0.0.1:`port`, one worker, proxied artifacts; run it with `mlflow_server_env`."""
    return [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts),
            "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]


def mlflow_server_env(base: dict[str, str]) -> dict[str, str]:
    """`base` with MLflow's job execution off (it would start its own Huey workers)."""
    return {**base, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}


RAY_NODE_OPTIONS = ("--num-cpus", "1", "--object-store-memory", str(100 * 1024 * 1024), "--block")


def ray_head_command(port: int, temp_dir: Path) -> list[str]:
    """`ray start --head` on `port` with one CPU, no dashboard, blocking (its pid ends the node)."""
    return [str(BIN / "ray"), "start", "--head", "--port", str(port), "--include-dashboard", "false",
            "--temp-dir", str(temp_dir), *RAY_NODE_OPTIONS]


def ray_worker_node_command(port: int) -> list[str]:
    """`ray start --address` joining the head on 127.0.0.1:`port` as a second node with one CPU, blocking."""
    return [str(BIN / "ray"), "start", "--address", f"127.0.0.1:{port}", *RAY_NODE_OPTIONS]


def ray_active_nodes(port: int, env: dict[str, str]) -> int:
    """How many nodes `ray status` lists as active on the cluster at 127.0.0.1:`port`."""
    done = subprocess.run([str(BIN / "ray"), "status", "--address", f"127.0.0.1:{port}"], env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    return done.stdout.split("Pending:")[0].count(" node_")
