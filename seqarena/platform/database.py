"""The platform database's engine: where it lives, its connections, sessions and schema upgrades.

Where it lives: `SEQARENA_DB_URL` (any SQLAlchemy URL, PostgreSQL in
a cluster) or `sqlite:///$SEQARENA_HOME/seqarena.db`. `get_engine` brings the schema
(`seqarena.platform.schema`) to the newest Alembic revision (`seqarena/platform/migrations/`) before
handing the engine out, so every process sees the same tables; concurrent upgrades are serialised by
the database itself (`BEGIN IMMEDIATE` on SQLite, an advisory lock on PostgreSQL).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, exc, make_url, text
from sqlalchemy.engine import URL, Connection
from sqlalchemy.orm import Session

from seqarena.errors import BadInput
from seqarena.platform.home import seqarena_home

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_MIGRATION_LOCK = 0x5E9A_2E4A  # pg_advisory_xact_lock key held while the schema is upgraded

class DatabaseUnavailable(BadInput):
    """The configured platform database cannot be reached or opened (the CLI exits with 2: the
    URL in `SEQARENA_DB_URL` or `SEQARENA_HOME` is the user's to fix)."""

    def __init__(self, url_text: str, reason: str) -> None:
        super().__init__("SEQARENA_DB_URL", url_text, f"a database that can be reached and opened ({reason})")



_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def database_url() -> str:
    """`$SEQARENA_DB_URL` if set, else the embedded SQLite file `$SEQARENA_HOME/seqarena.db`."""
    return os.environ.get("SEQARENA_DB_URL") or f"sqlite:///{seqarena_home() / 'seqarena.db'}"


def safe_url(url: str | URL) -> str:
    """The URL as text with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<not a database URL>"


def get_engine(url: str | None = None) -> Engine:
    """The engine for `url` (default `database_url()`), its schema upgraded to the newest revision.

    Cached per URL, so callers may ask for it per use. SQLite connections run in WAL mode with a
    30 s busy timeout and enforce foreign keys; a SQLite file is checked for damage once, when its
    engine is made (`check_intact`).
    """
    raw = url or database_url()
    with _engines_lock:
        if raw not in _engines:
            engine = _create_engine(raw)
            try:
                check_intact(engine)
                _upgrade(engine)
            except exc.DBAPIError as error:
                engine.dispose()
                raise DatabaseUnavailable(safe_url(engine.url), _unavailable(engine.url, error)) from None
            _engines[raw] = engine
        return _engines[raw]


def check_intact(engine: Engine) -> None:
    """Refuse a damaged SQLite file (`DatabaseUnavailable`) before anything reads or writes it.

    SQLite reads only the pages a statement touches, so a file with a bad page in a table the
    statement never reads took a write and said nothing (`submit` exited 0 into it; issue 18 §7),
    and one in the table it wrote raised a DatabaseError with the whole statement. `PRAGMA
    quick_check` reads every page once (linear in the file's size; a PostgreSQL server checks its
    own pages, so nothing is done there).
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as conn:
        problems = [str(row[0]) for row in conn.exec_driver_sql("PRAGMA quick_check")]
    if problems != ["ok"]:
        raise DatabaseUnavailable(safe_url(engine.url), f"the SQLite file is damaged (quick_check: {problems[0]}; "
                                                        f"{len(problems)} problem(s)); restore it from a backup")


def _unavailable(url: URL, error: exc.DBAPIError) -> str:
    reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else type(error).__name__
    if url.password:
        reason = reason.replace(str(url.password), "***")
    return reason


def _create_engine(raw: str) -> Engine:
    try:
        url = make_url(raw)
    except exc.ArgumentError:
        raise BadInput("SEQARENA_DB_URL", safe_url(raw),
                       "a SQLAlchemy URL such as postgresql+psycopg://user@host/db or sqlite:///path") from None
    if url.get_backend_name() != "sqlite":
        try:
            return create_engine(url, pool_pre_ping=True)
        except (ImportError, exc.NoSuchModuleError) as error:  # a driver that is not installed, or none known
            raise DatabaseUnavailable(safe_url(url), f"its driver is not installed: {error}") from None
    if url.database and url.database != ":memory:" and not url.database.startswith("file:"):
        try:
            Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DatabaseUnavailable(safe_url(url), f"cannot create its folder: {error}") from None
    engine = create_engine(url, connect_args={"check_same_thread": False})
    event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
    _set_wal(cursor)
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _set_wal(cursor: Any) -> None:
    """`PRAGMA journal_mode = WAL`, retried with backoff for up to the busy timeout: while another
    connection converts a fresh file to WAL, SQLite answers "database is locked" at once, without
    calling its busy handler (seen with four processes opening one new file together)."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(2 * delay, 0.2)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config for the packaged migrations (pass `connection` to migrate through it).

    New revisions: `command.revision(alembic_config(), "message")`, then edit the file by hand.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def schema_revision(engine: Engine) -> str | None:
    """The Alembic revision the database is at (None before the first migration)."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    """The newest Alembic revision shipped with this package."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _upgrade(engine: Engine) -> None:
    """Upgrade the schema to head, one process at a time (the others wait, then find it done)."""
    if schema_revision(engine) == head_revision():
        return
    log.info("upgrading the schema of %s to %s", safe_url(engine.url), head_revision())
    with _migration_connection(engine) as conn:
        command.upgrade(alembic_config(conn), "head")


@contextmanager
def _migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that holds the database's migration lock until commit."""
    with engine.connect() as conn:
        sqlite_db = engine.dialect.name == "sqlite"
        if sqlite_db:
            # a batch migration recreates tables: with foreign keys on, dropping one would cascade
            conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
            conn.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, waited for up to busy_timeout
        elif engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        try:
            yield conn
            conn.commit()
        finally:
            if sqlite_db:
                conn.rollback()
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session that commits when the block succeeds and rolls back when it raises."""
    session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


T = TypeVar("T")
#: Backoff between attempts while the database is unreachable: first and longest wait, in seconds.
RETRY_FIRST_S, RETRY_MOST_S = 0.5, 5.0


def unreachable(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached now (a connection refused, dropped or reset; an
    engine that could not be opened), as opposed to a statement the database refused."""
    if isinstance(error, DatabaseUnavailable):
        return True
    if isinstance(error, exc.OperationalError | exc.InterfaceError):
        return True
    if isinstance(error, exc.DBAPIError):
        return bool(error.connection_invalidated)
    # a library's own error around the driver's (Optuna's StorageInternalError raised from it)
    return error.__cause__ is not None and unreachable(error.__cause__)


def retry(call: Callable[[], T], what: str, give_up: Callable[[], bool] = lambda: False) -> T:
    """`call()`, called again with backoff (0.5 s doubling to 5 s) while the database is unreachable; one
    log line when it becomes unreachable, one when it is back. Raises the error when it is not an
    outage (`unreachable`), or once `give_up()` says to stop trying."""
    delay, failing = RETRY_FIRST_S, False
    while True:
        try:
            result = call()
        except Exception as error:
            if not unreachable(error) or give_up():
                raise
            if not failing:
                log.warning("%s: the database is unreachable (%s); retrying", what, _first_line(error))
                failing = True
            time.sleep(delay)
            delay = min(2 * delay, RETRY_MOST_S)
            continue
        if failing:
            log.warning("%s: the database is reachable again", what)
        return result


def _first_line(error: BaseException) -> str:
    orig = getattr(error, "orig", None) or error
    lines = str(orig).strip().splitlines()
    return f"{type(orig).__name__}: {lines[0][:200] if lines else ''}"
