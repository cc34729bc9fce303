"""Alembic's environment for the engine's database (run by Alembic, not imported).

From code (``store.schema.init_db`` → ``store.migrate.upgrade_to_head``) the connection comes in
``config.attributes["connection"]``, already inside a transaction holding the migration lock. From the
``alembic`` command (alembic.ini at the repository root) the database is ``DATABASE_URL`` (or
``RECOVERY_DATABASE_URL``), by default the dev SQLite file of ``recovery.settings``, and the same lock is
taken here. ``alembic upgrade head --sql`` writes the SQL for that database's dialect without connecting.
"""

from __future__ import annotations

from logging.config import fileConfig

from alembic import context
from sqlalchemy import Connection

from store import migrate
from store.db import make_engine


def database_url() -> str:
    from recovery.settings import Settings

    url = Settings().database_url
    assert url is not None  # the settings default it to <data_dir>/recovery.db
    return url


def run_offline() -> None:
    context.configure(
        url=make_engine(database_url()).url,
        target_metadata=migrate.target_metadata(),
        version_table=migrate.VERSION_TABLE,
        literal_binds=True,
        render_item=migrate.render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection: Connection | None = context.config.attributes.get("connection")
    if connection is not None:
        migrate.run_migrations(context, connection)
        return
    engine = make_engine(database_url())
    try:
        with migrate.migration_connection(engine) as locked:
            migrate.run_migrations(context, locked)
    finally:
        engine.dispose()


if context.config.config_file_name is not None and "connection" not in context.config.attributes:
    fileConfig(context.config.config_file_name, disable_existing_loggers=False)

if context.is_offline_mode():
    run_offline()
else:
    run_online()
