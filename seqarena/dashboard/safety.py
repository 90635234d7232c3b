"""What the dashboard must never show (secrets) and what guards its writes (the token).

Every message the app shows about a failure passes through `redact` (`seqarena.platform.redaction`,
the one shared by the CLI and the logs).
"""

from __future__ import annotations

import hmac
import os

from seqarena.platform.redaction import TOKEN_ENV, redact, secrets


def token_required() -> bool:
    """Whether submitting and cancelling ask for `SEQARENA_DASHBOARD_TOKEN`."""
    return bool(os.environ.get(TOKEN_ENV))


def token_ok(given: str | None) -> bool:
    """Whether `given` is the dashboard token (always true when no token is set); constant-time."""
    expected = os.environ.get(TOKEN_ENV)
    if not expected:
        return True
    return hmac.compare_digest((given or "").encode(), expected.encode())


__all__ = ["TOKEN_ENV", "redact", "secrets", "token_ok", "token_required"]
