"""Database fixtures: ``from tests.db_fixtures import *`` in conftest.py.

``db_engine`` is parametrized over SQLite (a fresh file per test) and, when ``TEST_POSTGRES_URL`` is set,
PostgreSQL (a schema created for the test session, emptied before each test). With the variable set the
PostgreSQL parameter always runs: an unreachable server is a failure, not a skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import Engine, text
from sqlmodel import Session, SQLModel

from store.db import make_engine, private_schema
from store.schema import init_db

__all__ = [
    "DB_BACKENDS",
    "TEST_MNEMONIC",
    "MnemonicSigner",
    "db_engine",
    "db_session",
    "postgres_engine",
    "deposit_path_for_tests",
    "fake_signer",
]

POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL") or None
DB_BACKENDS = ["sqlite", "postgresql"] if POSTGRES_URL else ["sqlite"]

TEST_MNEMONIC = "test test test test test test test test test test test junk"
"""Anvil's public development mnemonic: never holds real funds."""

Account.enable_unaudited_hdwallet_features()


def deposit_path_for_tests(index: int) -> str:
    return f"m/44'/60'/0'/0/{index}"


class MnemonicSigner:
    """Deterministic addresses from the public test mnemonic (a stand-in for ``chains.signer.HDSigner``)."""

    def __init__(self, mnemonic: str = TEST_MNEMONIC) -> None:
        self._mnemonic = mnemonic

    def address(self, path: str) -> str:
        return _derive(self._mnemonic, path)


@lru_cache(maxsize=256)
def _derive(mnemonic: str, path: str) -> str:
    return str(Account.from_mnemonic(mnemonic, account_path=path).address)


@pytest.fixture(scope="session")
def fake_signer() -> MnemonicSigner:
    return MnemonicSigner()


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """An engine on a schema private to this test session; the schema is dropped at the end."""
    if POSTGRES_URL is None:
        raise RuntimeError("TEST_POSTGRES_URL is not set")
    with private_schema(POSTGRES_URL, prefix="test") as engine:
        init_db(engine)
        yield engine


def _empty_postgres(engine: Engine) -> None:
    """TRUNCATE every table, the append-only ones too: their triggers refuse it, so this session runs in the
    replica role, which fires no user trigger (superuser only: the test database's postgres role; the
    engine's own role in production is not one)."""
    names = ", ".join(f'"{t.name}"' for t in SQLModel.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=DB_BACKENDS)
def db_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'test.db'}")
        init_db(engine)
        try:
            yield engine
        finally:
            engine.dispose()
    else:
        engine = request.getfixturevalue("postgres_engine")
        _empty_postgres(engine)
        yield engine


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    with Session(db_engine, expire_on_commit=False) as session:
        yield session
