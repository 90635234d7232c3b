"""Where the embedded defaults live: `SEQARENA_HOME`."""

from __future__ import annotations

import os
from pathlib import Path

from seqarena.errors import BadInput


def seqarena_home() -> Path:
    """`$SEQARENA_HOME` (default `~/.seqarena`), created if missing; `BadInput` when it names a file or
    a place where no folder can be made."""
    home = Path(os.environ.get("SEQARENA_HOME") or Path.home() / ".seqarena").expanduser()
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise BadInput("SEQARENA_HOME", str(home),
                       f"a folder seqarena can create or write ({error.strerror})") from None
    return home
