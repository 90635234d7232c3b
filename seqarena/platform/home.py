"""Where the embedded defaults live: `SEQARENA_HOME`."""

from __future__ import annotations

import os
from pathlib import Path


def seqarena_home() -> Path:
    """`$SEQARENA_HOME` (default `~/.seqarena`), created if missing."""
    home = Path(os.environ.get("SEQARENA_HOME") or Path.home() / ".seqarena").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
