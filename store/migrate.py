"""Schema migrations: Alembic, driven from code. ``store.schema.init_db`` calls :func:`upgrade_to_head`.

The migration scripts live in ``store/migrations`` (shipped with the package); ``alembic.ini`` at the
repository root points the ``alembic`` command at the same directory for developers. Both paths run
``store/migrations/env.py``, which calls :func:`run_migrations` here, so the options (metadata, type
rendering, batch mode on SQLite, recognising a database made by ``create_all``) are in one place.

One process at a time: the upgrade runs on one connection holding a lock for its whole duration
(:func:`migration_connection`), so an API and a worker starting together do not both create the tables.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from alembic.operations.ops import MigrationScript
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext, RevisionStep
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, inspect, text
from sqlmodel import SQLModel

from store.db import IMMEDIATE_OPTION, Amount, StrEnumType, UTCDateTime

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FILE_TEMPLATE = "%(rev)s_%(slug)s"
VERSION_TABLE = "alembic_version"

BASELINE_REVISION = "0001"
"""The revision whose schema ``SQLModel.metadata.create_all`` made before migrations (commit a157342)."""

BASELINE_TABLES: Mapping[str, frozenset[str]] = {
    "audit_entries": frozenset(
        {"id", "case_id", "key", "engineer", "action", "attested", "input_json", "before_json", "after_json", "at"}
    ),
    "case_events": frozenset({"id", "case_id", "key", "status", "message", "at"}),
    "case_feedback": frozenset({"id", "case_id", "user_id", "rating", "comment", "created_at"}),
    "case_handling": frozenset(
        {
            "case_id",
            "tier",
            "assigned_to",
            "approvals_needed",
            "sla_started_at",
            "sla_target_at",
            "sla_deadline_at",
            "sla_state",
            "paused",
            "updated_at",
        }
    ),
    "cases": frozenset(
        {
            "chain",
            "tx_hash",
            "log_index",
            "case_id",
            "user_id",
            "status",
            "pattern",
            "reason",
            "asset",
            "token_address",
            "decimals",
            "amount",
            "fee",
            "gas",
            "credited",
            "fee_usd",
            "quote_json",
            "topup_tx_hash",
            "sweep_tx_hash",
            "created_at",
            "updated_at",
        }
    ),
    "deposit_addresses": frozenset(
        {"id", "user_id", "family", "address", "memo", "deposit_index", "deprecated", "created_at"}
    ),
    "fee_entries": frozenset(
        {"idempotency_key", "case_id", "user_id", "chain", "asset", "fee", "gas", "fee_usd", "created_at"}
    ),
    "ledger_credits": frozenset({"idempotency_key", "case_id", "user_id", "asset", "amount", "created_at"}),
    "ledger_refunds": frozenset(
        {"idempotency_key", "case_id", "user_id", "chain", "asset", "amount", "to_address", "tx_hash", "created_at"}
    ),
    "manual_executions": frozenset({"case_id", "chain", "tx_hash", "log_index", "amount", "engineer", "recorded_at"}),
    "ownership_challenges": frozenset({"nonce", "case_id", "address", "message", "issued_at", "expires_at", "used_at"}),
    "ownership_requirements": frozenset(
        {"case_id", "chain", "address", "recipient", "required_at", "proven_at", "method", "reference"}
    ),
    "ownership_verification_deposits": frozenset(
        {"id", "chain", "tx_hash", "case_id", "block_timestamp", "linked_at", "proven_at"}
    ),
    "scan_cursors": frozenset({"chain", "next_block", "blocks_scanned", "updated_at"}),
    "signed_transactions": frozenset(
        {
            "idempotency_key",
            "case_id",
            "chain",
            "purpose",
            "from_address",
            "nonce",
            "tx_hash",
            "raw_tx",
            "gas_limit",
            "max_fee_per_gas",
            "value",
            "created_at",
        }
    ),
    "staff_members": frozenset({"id", "name", "role", "token_hash", "created_at"}),
    "users": frozenset({"user_id", "deposit_index", "deposit_address", "token_hash", "created_at"}),
    "vip_users": frozenset({"user_id", "since"}),
}
"""Tables and columns of the baseline, frozen (the models move on; this does not): a database without a
version table is taken to be at the baseline only when it has exactly these."""

POSTGRES_LOCK_KEY = 7883959497724555123
"""``pg_advisory_lock`` key of the migration lock (b"misdepos" as a big-endian int64); database-wide."""

SQLITE_LOCK_WAIT_MS = 600_000
"""How long init_db waits on SQLite for another process's migration (or any write) to finish."""
_SQLITE_BUSY_TIMEOUT_MS = 30_000  # make_engine's default, restored afterwards


class SchemaMismatch(RuntimeError):
    """The database has some of the engine's tables but no version table, and they are not the baseline's."""


# --- configuration --------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic configuration built in code: the package's migrations directory, and ``connection`` for
    env.py to run on (``config.attributes["connection"]``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("file_template", FILE_TEMPLATE.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@lru_cache(maxsize=1)
def script_directory() -> ScriptDirectory:
    """The migration scripts, read once per process (init_db runs for every fresh test database)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revision() -> str:
    head = script_directory().get_current_head()
    if head is None:
        raise RuntimeError(f"no migration in {MIGRATIONS_DIR / 'versions'}")
    return head


def target_metadata() -> MetaData:
    """Every table of the engine: importing the table modules registers them on ``SQLModel.metadata``."""
    from store import tables  # noqa: F401  (imports the table modules)

    return SQLModel.metadata


# --- autogenerate: how types and new revisions are written -----------------------------------------


def render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | Literal[False]:
    """Write the project's column types so that the migration keeps their per-dialect DDL: ``Amount`` is
    TEXT on SQLite and NUMERIC(78,0) on PostgreSQL, which no plain SQLAlchemy type says."""
    if type_ != "type":
        return False
    if isinstance(obj, Amount | UTCDateTime):
        autogen_context.imports.add("import store.db")
        return f"store.db.{type(obj).__name__}()"
    if isinstance(obj, StrEnumType):
        # Plain VARCHAR in the database (no ENUM type); a migration must not import an application enum.
        return f"sa.String(length={getattr(obj.impl_instance, 'length', 40)})"
    return False


def _next_revision_id(script: ScriptDirectory) -> str:
    numbers = [int(rev.revision) for rev in script.walk_revisions() if re.fullmatch(r"\d{4}", rev.revision)]
    return f"{max(numbers, default=0) + 1:04d}"


def process_revision_directives(context: MigrationContext, revision: Any, directives: list[MigrationScript]) -> None:
    """``alembic revision``: number revisions 0002, 0003, ... (unless ``--rev-id`` is given), and write
    nothing when ``--autogenerate`` finds no change."""
    if not directives:
        return
    script = directives[0]
    config = context.config
    cmd_opts = getattr(config, "cmd_opts", None) if config is not None else None
    if getattr(cmd_opts, "autogenerate", False) and all(ops.is_empty() for ops in script.upgrade_ops_list):
        log.warning("no schema change found: no revision written")
        directives[:] = []
        return
    if getattr(cmd_opts, "rev_id", None) is None:
        script.rev_id = _next_revision_id(script_directory())


def configure_options(connection: Connection) -> dict[str, Any]:
    """The options of ``EnvironmentContext.configure`` for this project (also used by the tests' compare)."""
    return {
        "connection": connection,
        "target_metadata": target_metadata(),
        "version_table": VERSION_TABLE,
        "render_as_batch": connection.dialect.name == "sqlite",
        "compare_type": True,
        "render_item": render_item,
        "process_revision_directives": process_revision_directives,
    }


# --- recognising a database made by create_all ---------------------------------------------------


def stamp_if_created_by_create_all(connection: Connection) -> bool:
    """A database whose tables ``create_all`` made before migrations (no version table) is at the baseline:
    stamp it so, and return True. An empty database (none of the tables) is left alone; anything in between
    raises :class:`SchemaMismatch`, since upgrading it would fail half-way or lose the difference."""
    inspector = inspect(connection)
    tables = set(inspector.get_table_names())
    if VERSION_TABLE in tables:
        return False
    present = tables & BASELINE_TABLES.keys()
    if not present:
        return False
    problems = [f"table {name} is missing" for name in sorted(BASELINE_TABLES.keys() - present)]
    for name in sorted(present):
        columns = {column["name"] for column in inspector.get_columns(name)}
        if missing := sorted(BASELINE_TABLES[name] - columns):
            problems.append(f"{name} lacks {', '.join(missing)}")
        if extra := sorted(columns - BASELINE_TABLES[name]):
            problems.append(f"{name} has unknown {', '.join(extra)}")
    if problems:
        raise SchemaMismatch(
            f"the database has the engine's tables but no {VERSION_TABLE} table, and they do not match the "
            f"schema migrations start from (revision {BASELINE_REVISION}, the create_all schema of commit "
            f"a157342): {'; '.join(problems)}. Bring those tables to that schema by hand (see "
            f"store/migrations/versions/), then run `alembic stamp {BASELINE_REVISION}` and start again; or "
            "point DATABASE_URL at an empty database."
        )
    MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).stamp(
        script_directory(), BASELINE_REVISION
    )
    log.warning("database created before migrations: stamped at revision %s", BASELINE_REVISION)
    return True


def run_migrations(context: EnvironmentContext, connection: Connection) -> None:
    """env.py's body for a live connection: recognise a create_all database, then run the command."""
    stamp_if_created_by_create_all(connection)
    context.configure(**configure_options(connection))
    with context.begin_transaction():
        context.run_migrations()


# --- the lock -------------------------------------------------------------------------------------


@contextmanager
def migration_connection(engine: Engine) -> Iterator[Connection]:
    """A connection inside a transaction, holding the migration lock until the transaction has committed.

    PostgreSQL: the session-level ``pg_advisory_lock(POSTGRES_LOCK_KEY)`` on this connection, taken before
    the transaction and released after it (so it would also cover a migration that commits part-way, e.g.
    ``CREATE INDEX CONCURRENTLY`` in an autocommit block). The migration itself is one transaction (DDL is
    transactional there): a failed upgrade leaves the database as it was.

    SQLite: the transaction is ``BEGIN IMMEDIATE``: SQLite's own write lock on the database file, held from
    the first statement to the commit, so a second process waits (up to ``SQLITE_LOCK_WAIT_MS``) and then
    finds the work done. No lock file beside the database is needed, and SQLite runs DDL in transactions
    too. Foreign keys are off for the duration and checked before the commit, as SQLite's documentation asks
    for table rebuilds (batch migrations recreate tables; the pragma is a no-op inside a transaction).
    """
    with engine.connect() as connection:
        dialect = connection.dialect.name
        if dialect == "postgresql":
            yield from _postgres_locked(connection)
        elif dialect == "sqlite":
            yield from _sqlite_locked(connection)
        else:
            with connection.begin():
                yield connection


def _postgres_locked(connection: Connection) -> Iterator[Connection]:
    got = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": POSTGRES_LOCK_KEY}).scalar()
    if not got:
        log.info("another process is migrating the database: waiting for it")
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": POSTGRES_LOCK_KEY})
    connection.commit()
    try:
        with connection.begin():
            yield connection
    finally:
        if not connection.invalidated:
            connection.rollback()
            connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": POSTGRES_LOCK_KEY})
            connection.commit()


def _sqlite_locked(connection: Connection) -> Iterator[Connection]:
    raw: Any = connection.connection.driver_connection  # no transaction yet: pragmas take effect
    raw.execute("PRAGMA foreign_keys=OFF")
    raw.execute(f"PRAGMA busy_timeout={SQLITE_LOCK_WAIT_MS}")
    try:
        connection.execution_options(**{IMMEDIATE_OPTION: True})
        with connection.begin():
            yield connection
            violations = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise RuntimeError(f"the migration broke foreign keys: {violations[:10]}")
    finally:
        if not connection.invalidated:
            raw.execute(f"PRAGMA busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}")
            raw.execute("PRAGMA foreign_keys=ON")


# --- the entry point ------------------------------------------------------------------------------


def current_heads(connection: Connection) -> tuple[str, ...]:
    return MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE}).get_current_heads()


def upgrade_to_head(engine: Engine) -> None:
    """Bring the database to the newest revision, under the migration lock: from nothing (an empty
    database), from the baseline (a database ``create_all`` made, stamped first), or from any revision.
    A database already at head costs one query."""
    script = script_directory()
    head = head_revision()
    with migration_connection(engine) as connection:
        if current_heads(connection) == (head,):
            return

        def upgrade(rev: Any, context: MigrationContext) -> list[RevisionStep]:
            return script._upgrade_revs("head", rev)  # what `alembic upgrade head` runs

        with EnvironmentContext(alembic_config(connection), script, fn=upgrade, destination_rev="head"):
            script.run_env()
