"""Addresses checked before they are used: an unreachable `RAY_ADDRESS` or `MLFLOW_TRACKING_URI` is a
one-line `BadInput` within seconds.

`ray.init` on an address where nothing listens retried forever (`run`, `worker`), and MLflow's client
retried an unreachable tracking server for about 250 s. Both first open a TCP connection to the
address; `check_*` opens one itself, with a timeout of `SEQARENA_CONNECT_TIMEOUT_S` seconds (default
5), and refuses the address when none opens. Only reachability is checked: a server that answers is
left to its client (whose retries ride out a short outage).
"""

from __future__ import annotations

import os
import socket
from urllib.parse import urlsplit

from seqarena.errors import BadInput

#: Seconds to wait for a TCP connection to an address before refusing it.
DEFAULT_TIMEOUT_S = 5.0
#: Ray's default ports: the GCS of `host:port`, and the client server of `ray://host:port`.
RAY_GCS_PORT, RAY_CLIENT_PORT = 6379, 10001


def timeout_s() -> float:
    """`$SEQARENA_CONNECT_TIMEOUT_S`, or 5 s."""
    try:
        return max(float(os.environ.get("SEQARENA_CONNECT_TIMEOUT_S", DEFAULT_TIMEOUT_S)), 0.1)
    except ValueError:
        return DEFAULT_TIMEOUT_S


def check_ray_address(address: str) -> None:
    """`BadInput` naming `RAY_ADDRESS` when nothing answers at `address` (`auto`/`local` are not checked)."""
    if address.strip().lower() in ("", "auto", "local"):
        return
    client = address.startswith("ray://")
    host, port = _host_port(address.removeprefix("ray://"), RAY_CLIENT_PORT if client else RAY_GCS_PORT)
    connect("RAY_ADDRESS", address, host, port, "the address of a running Ray cluster (host:port or ray://host:port)")


def check_tracking_uri(uri: str) -> None:
    """`BadInput` naming `MLFLOW_TRACKING_URI` when an http(s) server at `uri` cannot be reached (other
    stores, files or databases, are their own client's to open)."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise BadInput("MLFLOW_TRACKING_URI", f"{parts.scheme}://{parts.hostname}", "an http(s) URL with a valid "
                       "port") from None
    shown = f"{parts.scheme}://{parts.hostname}:{port}{parts.path}"  # no user or password
    connect("MLFLOW_TRACKING_URI", shown, parts.hostname or "", port, "the URL of a running MLflow server")


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, sep, port = text.rpartition(":") if text.count(":") == 1 or text.startswith("[") else ("", "", "")
    if not sep:
        return text.strip("[]/"), default_port
    try:
        return host.strip("[]"), int(port.rstrip("/"))
    except ValueError:
        return host.strip("[]"), -1


def connect(field: str, shown: str, host: str, port: int, allowed: str) -> None:
    """Open and close one TCP connection to (host, port), or raise the one-line `BadInput`."""
    if not host or not 0 < port < 65536:
        raise BadInput(field, shown, allowed)
    try:
        with socket.create_connection((host, port), timeout=timeout_s()):
            return
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise BadInput(field, shown, f"{allowed}; nothing answers at {host}:{port} ({reason})") from None


def check_environment() -> None:
    """Check `RAY_ADDRESS` and `MLFLOW_TRACKING_URI` when set (before a search or a worker starts)."""
    if address := os.environ.get("RAY_ADDRESS"):
        check_ray_address(address)
    if uri := os.environ.get("MLFLOW_TRACKING_URI"):
        check_tracking_uri(uri)
