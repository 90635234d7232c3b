"""`seqarena dashboard`: serve `app.py` with Streamlit, bound to 127.0.0.1 unless told otherwise.

Bound beyond the loopback interface (`--host 0.0.0.0`, as the shipped compose and Kubernetes files
do), it refuses to start without a dashboard token (`SEQARENA_DASHBOARD_TOKEN`, 16 characters or
more, not the example's placeholder): the token guards submit, cancel and the trace page.
"""

from __future__ import annotations

import os
import sys
import urllib.request
from pathlib import Path

from seqarena.dashboard.safety import TOKEN_ENV
from seqarena.errors import BadInput
from seqarena.platform import database

MLFLOW_UI_ENV = "SEQARENA_MLFLOW_UI"
"""The MLflow UI address the served app's run links open (`--mlflow-ui`; `data.mlflow_ui`). Defined here, not in
`data`, so that serving imports no page module: their `st.cache_data` outside a running app printed a warning
each (eleven lines at every `seqarena dashboard` start)."""

APP = Path(__file__).resolve().with_name("app.py")
#: Addresses that reach only this machine: a dashboard bound to one of them may run without a token.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
#: The shortest dashboard token accepted when the dashboard listens beyond the loopback interface.
MIN_TOKEN = 16


def healthy(url: str) -> bool:
    """Whether the Streamlit server at `url` answers its health check (`/_stcore/health`) within 2 s."""
    try:
        with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def check_token(host: str) -> None:
    """Refuse (`BadInput`) to serve on a non-loopback `host` without a real `SEQARENA_DASHBOARD_TOKEN`."""
    if host in LOOPBACK:
        return
    token = os.environ.get(TOKEN_ENV, "")
    if len(token) < MIN_TOKEN or "change-me" in token:
        shown = "unset" if not token else "the placeholder change-me" if "change-me" in token else "too short"
        raise BadInput(TOKEN_ENV, shown, f"a random value of {MIN_TOKEN} characters or more when the dashboard "
                       f"listens on {host} (beyond 127.0.0.1): it guards submit, cancel and the trace page; make "
                       "one with python3 -c 'import secrets; print(secrets.token_hex(32))'")


def streamlit_command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, errors shown by type only, no file
    watcher, and no full garbage collection after every page run (`runner.postScriptGC`: with torch, MLflow
    and pandas loaded, `gc.collect(2)` held the GIL for 16 % of the server's samples while 10 sessions
    browsed, blocking every other session; benchmarks/dashboard_load.py)."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.showErrorDetails", "type", "--client.toolbarMode", "minimal",
            "--runner.postScriptGC", "false"]


def serve(host: str, port: int, mlflow_ui: str | None = None) -> None:
    """Check the database can be opened (a clear error, exit 2, if not), then become the Streamlit server."""
    if not 1 <= port <= 65535:
        raise BadInput("port", port, "an integer from 1 to 65535")
    check_token(host)
    database.get_engine()  # migrates the schema once, and fails here rather than inside the app
    if mlflow_ui:
        os.environ[MLFLOW_UI_ENV] = mlflow_ui
    command = streamlit_command(host, port)
    where = database.safe_url(database.database_url())
    print(f"seqarena dashboard on http://{host}:{port} (database {where})", flush=True)
    os.execv(command[0], command)
