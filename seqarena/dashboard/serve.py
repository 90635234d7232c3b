"""`seqarena dashboard`: serve `app.py` with Streamlit, bound to 127.0.0.1 unless told otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from seqarena.dashboard.data import MLFLOW_UI_ENV
from seqarena.errors import BadInput
from seqarena.platform import database

APP = Path(__file__).resolve().with_name("app.py")


def streamlit_command(host: str, port: int) -> list[str]:
    """The `streamlit run` command line: headless, no usage statistics, errors shown by type only."""
    return [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host, "--server.port", str(port),
            "--server.headless", "true", "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
            "--client.showErrorDetails", "type", "--client.toolbarMode", "minimal"]


def serve(host: str, port: int, mlflow_ui: str | None = None) -> None:
    """Check the database can be opened (a clear error, exit 2, if not), then become the Streamlit server."""
    if not 1 <= port <= 65535:
        raise BadInput("port", port, "an integer from 1 to 65535")
    database.get_engine()  # migrates the schema once, and fails here rather than inside the app
    if mlflow_ui:
        os.environ[MLFLOW_UI_ENV] = mlflow_ui
    command = streamlit_command(host, port)
    where = database.safe_url(database.database_url())
    print(f"seqarena dashboard on http://{host}:{port} (database {where})", flush=True)
    os.execv(command[0], command)
