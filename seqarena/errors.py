"""Errors that seqarena raises for bad user input.

Every error names the field, the value received and what is allowed, so that the CLI can print it
as one line and exit with status 2.
"""

from __future__ import annotations

from collections.abc import Iterable


class BadInput(ValueError):
    """A user-supplied value is not acceptable.

    Attributes:
        field: the name of the offending field (`model`, `seq_len`, `hp.dt`, ...).
        value: the value that was received.
        allowed: a human-readable description of what is allowed.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field}: got {value!r}; allowed: {allowed}")


def one_of(names: Iterable[str]) -> str:
    """Format a set of allowed names as `one of a, b, c`."""
    return "one of " + ", ".join(sorted(names))


class DataError(BadInput):
    """A data file is missing, unreadable or fails its checksum."""
