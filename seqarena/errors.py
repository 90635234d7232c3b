"""Errors that seqarena raises for bad user input.

Every error names the field, the value received and what is allowed, so that the CLI can print it
as one line and exit with status 2. The line quotes at most a short excerpt of what was received
(`EXCERPT_CHARS` of the value, `FIELD_CHARS` of the field name, `ALLOWED_CHARS` of the allowed
values), so a huge or hostile input never makes a huge message.
"""

from __future__ import annotations

import reprlib
from collections.abc import Iterable

#: Characters of a received value's repr quoted in a message; longer ones are cut with their length.
EXCERPT_CHARS = 100
#: Characters of a field name (a dotted path that may hold user-written keys) quoted in a message.
FIELD_CHARS = 120
#: Characters of the allowed values quoted in a message.
ALLOWED_CHARS = 600


_SHORT = reprlib.Repr()  # a nested value's repr: 3 levels, 6 items each, never the whole of it
_SHORT.maxlevel, _SHORT.maxdict, _SHORT.maxlist, _SHORT.maxtuple, _SHORT.maxset = 3, 6, 6, 6, 6
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong = EXCERPT_CHARS, EXCERPT_CHARS, 40


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
        super().__init__(f"{excerpt(field, FIELD_CHARS, quote=False)}: got {excerpt(value)}; "
                         f"allowed: {excerpt(allowed, ALLOWED_CHARS, quote=False)}")

    def __reduce__(self) -> tuple:
        """Copied and pickled as it is, not rebuilt through `__init__` from its message (the default, which
        fails for every signature but one message): Ray copies a trial's error and carries it between
        processes, and a refusal raised in a trial (a corrupt checkpoint) became
        `TypeError: __init__() missing 2 required positional arguments`."""
        return _rebuilt, (type(self), self.args, self.__dict__)


def _rebuilt(cls: type[BadInput], args: tuple, state: dict) -> BadInput:
    """A `BadInput` (or subclass) with the given message arguments and attributes, without `__init__`."""
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


def excerpt(value: object, limit: int = EXCERPT_CHARS, quote: bool = True) -> str:
    """`repr(value)` (or `str` without `quote`) on one line, cut to `limit` characters plus the full length."""
    try:
        text = (str(value) if not quote else repr(value) if isinstance(value, str | bytes | int | float)
                else _SHORT.repr(value))
    except Exception:  # a value whose repr fails: name its type
        text = f"<a {type(value).__name__}>"
    text = " ".join(text.splitlines()) if "\n" in text or "\r" in text else text
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text):,} characters)"


def one_of(names: Iterable[str]) -> str:
    """Format a set of allowed names as `one of a, b, c`."""
    return "one of " + ", ".join(sorted(names))


class DataError(BadInput):
    """A data file is missing, unreadable or fails its checksum."""
