"""Alembic environment of the platform database (`seqarena.platform.database`).

`seqarena.platform.database.get_engine` runs the upgrade programmatically, passing its own connection
(already holding the migration lock) in `config.attributes["connection"]`. Run by hand, it uses
`sqlalchemy.url` from the config, else `seqarena.platform.database.database_url()`.
SQLite gets `render_as_batch=True`: its ALTER TABLE is limited, so changes recreate the table.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from seqarena.platform.database import database_url
from seqarena.platform.schema import Base

target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, compare_type=True,
                      render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL as text (`alembic upgrade --sql`)."""
    url = context.config.get_main_option("sqlalchemy.url") or database_url()
    context.configure(url=url, target_metadata=target_metadata, literal_binds=True,
                      render_as_batch=url.startswith("sqlite"))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url") or database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as conn:
        _configure(conn)
        conn.commit()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
