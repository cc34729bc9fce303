"""The database: engine, exact column types and write transactions. Every table module builds on this.

Every amount is a Python ``int`` in base units stored exactly by :class:`Amount` (``NUMERIC(78,0)`` on
PostgreSQL, decimal text on SQLite). Service functions of the table modules are keyword-only and commit
their own transaction; call them on a session with no transaction open (a fresh session, or right after a
commit). Functions that only *add* to a session (no commit) say so: their caller composes the transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import DateTime, Engine, Numeric, String, Text, create_engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator, TypeEngine
from sqlmodel import Session, SQLModel

# --- column types ---------------------------------------------------------------------------------


class Amount(TypeDecorator[int]):
    """An exact integer of any size (token amounts exceed int64: 100 USDT at 18 decimals is 1e20).

    PostgreSQL: ``NUMERIC(78, 0)`` (fits 2**256 - 1). SQLite: ``TEXT`` holding the decimal digits, because
    SQLite's NUMERIC affinity turns integers beyond int64 into floats. Values come back as ``int``.
    Sorting and summing in SQL is therefore only numeric on PostgreSQL; sum in Python for portability.
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(Numeric(78, 0))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"amounts must be int base units, got {type(value).__name__}: {value!r}")
        if dialect.name == "postgresql":
            return Decimal(value)
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, Decimal):
            if value != value.to_integral_value():
                raise ValueError(f"non-integral amount in the database: {value}")
            return int(value)
        return int(value)

    @property
    def python_type(self) -> type:
        return int


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use datetime.now(UTC)")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class StrEnumType(TypeDecorator[Enum]):
    """A ``StrEnum`` stored as plain text (no PostgreSQL ENUM type to migrate)."""

    impl = String(40)
    cache_ok = True

    def __init__(self, enum_cls: type[Enum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        return None if value is None else self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> Enum | None:
        return None if value is None else self.enum_cls(value)


def utcnow() -> datetime:
    return datetime.now(UTC)


def norm_address(address: str) -> str:
    """EVM addresses are case-insensitive: store them lower-case. Others (base58) keep their case."""
    return address.lower() if address.startswith(("0x", "0X")) else address


# --- engine and transactions ----------------------------------------------------------------------

_IMMEDIATE = "recovery_sqlite_begin_immediate"
_Row = TypeVar("_Row", bound=SQLModel)
T = TypeVar("T")


def make_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine for ``sqlite:///path`` or ``postgresql://...`` (driven by psycopg 3). No I/O but mkdir."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url.removeprefix("postgres://")
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=40)
    if parsed.get_backend_name() != "sqlite":
        raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}")

    memory = parsed.database in (None, "", ":memory:")
    if memory:
        engine = create_engine(url, echo=echo, connect_args={"check_same_thread": False}, poolclass=StaticPool)
    else:
        assert parsed.database is not None
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=20,
            max_overflow=100,
        )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # SQLAlchemy emits BEGIN itself (below), so that writers can take the lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # BEGIN IMMEDIATE takes the write lock at once (waiting up to busy_timeout), so a write
        # transaction never fails half-way upgrading a read snapshot ("database is locked").
        conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get(_IMMEDIATE) else "BEGIN")

    return engine


def begin_write_unless_exists(session: Session, model: type[_Row], key: str) -> _Row | None:
    """Open a write transaction, unless a row with this primary key exists: then roll back and return
    that row, detached so that its loaded state stays readable."""
    begin_write(session)
    existing = session.get(model, key)
    if existing is not None:
        session.expunge(existing)
        session.rollback()
    return existing


def begin_write(session: Session) -> None:
    """Open the session's transaction as a write transaction (``BEGIN IMMEDIATE`` on SQLite).

    On SQLite an open transaction with nothing pending (reads only, e.g. the API's authentication) is
    committed first: upgrading a read snapshot to a write fails at once under contention instead of
    waiting for the lock. A transaction with pending changes is joined as is.
    """
    if session.in_transaction():
        if session.get_bind().dialect.name != "sqlite" or session.new or session.dirty or session.deleted:
            return
        session.commit()
    session.connection(execution_options={_IMMEDIATE: True})


async def run_in_session(engine: Engine, fn: Callable[..., T], /, **kwargs: Any) -> T:
    """``fn(session, **kwargs)`` on a fresh session in a worker thread, for async callers (the database
    driver blocks)."""

    def run() -> T:
        with Session(engine, expire_on_commit=False) as session:
            return fn(session, **kwargs)

    return await asyncio.to_thread(run)
