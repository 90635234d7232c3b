"""Secrets out of every output: the one `redact` that the CLI, the logs, `status --json` and the
dashboard pass their text through.

Secrets come from the environment (the guide's rule): the password inside `SEQARENA_DB_URL` or
`MLFLOW_TRACKING_URI` (`scheme://user:password@host`), `SEQARENA_DASHBOARD_TOKEN`, Ray's and
MLflow's tokens and passwords. `redact` masks every password inside any URL it finds and every
secret value of the environment; `RedactingFilter` does the same to every log record a handler emits.
"""

from __future__ import annotations

import logging
import os
import re
from urllib.parse import unquote, urlsplit

TOKEN_ENV = "SEQARENA_DASHBOARD_TOKEN"
#: Environment variables whose whole value is a secret.
SECRET_ENVS = (TOKEN_ENV, "RAY_AUTH_TOKEN", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN",
               "PGPASSWORD", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
#: Environment variables holding a URL whose password (`scheme://user:password@host`) is a secret.
URL_ENVS = ("SEQARENA_DB_URL", "MLFLOW_TRACKING_URI")
#: Shorter values are not masked (they would mask ordinary words).
MIN_SECRET = 4
MASK = "***"
_USERINFO = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]+):(?P<password>[^@/\s]+)@", re.I)


def url_password(url: str) -> str | None:
    """The password inside `url` (`scheme://user:password@host...`), or None."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def secrets() -> list[str]:
    """The secret values present in this process's environment (4 characters or longer), both as
    written and percent-decoded (a URL's password may be either in a message)."""
    found = [os.environ.get(name, "") for name in SECRET_ENVS]
    for name in URL_ENVS:
        raw = os.environ.get(name, "")
        match = _USERINFO.search(raw)
        if match:
            found.append(match["password"])
        found.append(url_password(raw) or "")
    return sorted({value for value in found if len(value) >= MIN_SECRET}, key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with every secret value and every password inside a URL replaced by `***`."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    for value in secrets():
        text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """A log filter that redacts each record's message (arguments merged in) and its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg, record.args = redact(message), ()
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def redact_logs(logger: logging.Logger | None = None) -> None:
    """Redact every record the handlers of `logger` (default: the root logger) emit."""
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(existing, RedactingFilter) for existing in handler.filters):
            handler.addFilter(RedactingFilter())
