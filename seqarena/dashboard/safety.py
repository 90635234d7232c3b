"""What the dashboard must never show (secrets) and what guards its writes (the submit token).

Secrets come from the environment (the guide's rule): the database password inside
`SEQARENA_DB_URL`, `SEQARENA_DASHBOARD_TOKEN`, Ray's and MLflow's tokens and passwords. Every
message the app shows about a failure passes through `redact`.
"""

from __future__ import annotations

import hmac
import os
import re

from sqlalchemy import exc, make_url

TOKEN_ENV = "SEQARENA_DASHBOARD_TOKEN"
SECRET_ENVS = (TOKEN_ENV, "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "PGPASSWORD", "AWS_SECRET_ACCESS_KEY")
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@", re.I)


def secrets() -> list[str]:
    """The secret values present in this process's environment (4 characters or longer)."""
    found = [os.environ.get(name, "") for name in SECRET_ENVS]
    try:
        password = make_url(os.environ.get("SEQARENA_DB_URL", "")).password
    except exc.ArgumentError:
        password = None
    if password:
        found.append(str(password))
    return [value for value in found if len(value) >= 4]


def redact(text: str) -> str:
    """`text` with every secret value and every password inside a URL replaced by `***`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    for value in sorted(secrets(), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def token_required() -> bool:
    """Whether submitting and cancelling ask for `SEQARENA_DASHBOARD_TOKEN`."""
    return bool(os.environ.get(TOKEN_ENV))


def token_ok(given: str | None) -> bool:
    """Whether `given` is the dashboard token (always true when no token is set); constant-time."""
    expected = os.environ.get(TOKEN_ENV)
    if not expected:
        return True
    return hmac.compare_digest((given or "").encode(), expected.encode())
