"""The engine's schema: importing the table modules registers every table on ``SQLModel.metadata``;
``init_db`` brings a database to it through the migrations in ``store/migrations`` (Alembic)."""

from __future__ import annotations

from sqlalchemy import Engine

from store.migrate import upgrade_to_head
from store.tables import TABLE_MODULES

__all__ = ["TABLE_MODULES", "init_db"]


def init_db(engine: Engine) -> None:
    """Upgrade the database to the newest migration (``alembic upgrade head``), under a lock so that
    processes starting together do not race; idempotent and cheap when already there.

    An empty database is built from the first revision; one that ``create_all`` made before migrations (its
    tables, no ``alembic_version``) is stamped at the baseline first, and one that matches neither raises
    :class:`store.migrate.SchemaMismatch` saying what to do. See :func:`store.migrate.upgrade_to_head`.
    """
    upgrade_to_head(engine)
