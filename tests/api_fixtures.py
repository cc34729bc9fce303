"""The status API with fakes for everything outside the process: ``from tests.api_fixtures import *`` in
conftest.py gives the ``api`` fixture (users alice and bob with tokens, a recording tracer, Temporal
connector and case starter)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlmodel import Session, select

from api.deps import get_case_starter, get_tracer
from api.main import create_app
from recovery.models import TraceResult
from recovery.settings import ChainConfig, Settings, dev_chains
from store import cases, db, schema, users
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from workflows.case_messages import CaseInput

__all__ = ["MAX_BODY", "TX", "Api", "Fakes", "api", "sqlite_engine"]

TX = "0x" + "ab" * 32
MAX_BODY = 2048


@dataclass
class Fakes:
    """Records every outside call; by default each one fails the test's expectations by being recorded."""

    traces: list[tuple[str | None, str]] = field(default_factory=list)
    connects: int = 0
    starts: list[CaseInput] = field(default_factory=list)
    trace_result: TraceResult | None = None
    trace_error: Exception | None = None
    connect_error: Exception | None = None
    start_error: Exception | None = None

    async def trace(self, chain: ChainConfig, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        return self._trace(chain.name, tx_hash)

    async def locate(self, chains: list[ChainConfig], tx_hash: str) -> TraceResult:
        return self._trace(None, tx_hash)

    def _trace(self, chain: str | None, tx_hash: str) -> TraceResult:
        self.traces.append((chain, tx_hash))
        if self.trace_error is not None:
            raise self.trace_error
        return self.trace_result or TraceResult(chain=None, tx_hash=tx_hash, found=False)

    async def connect(self) -> Any:
        self.connects += 1
        if self.connect_error is not None:
            raise self.connect_error
        return object()

    async def start(self, client: Any, *, task_queue: str, case: CaseInput) -> Any:
        self.starts.append(case)
        if self.start_error is not None:
            raise self.start_error
        return None

    @property
    def untouched(self) -> bool:
        return not self.traces and self.connects == 0 and not self.starts


@dataclass
class Api:
    http: httpx.AsyncClient
    engine: Engine
    fakes: Fakes
    app: FastAPI
    tokens: dict[str, str]
    addresses: dict[str, str]

    def auth(self, user: str = "alice") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def case_rows(self) -> list[cases.Case]:
        with Session(self.engine) as session:
            return list(session.exec(select(cases.Case)).all())

    def event_rows(self) -> list[cases.CaseEvent]:
        with Session(self.engine) as session:
            return list(session.exec(select(cases.CaseEvent)).all())


@pytest.fixture
def sqlite_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'api.db'}")
    schema.init_db(engine)
    yield engine
    engine.dispose()


@pytest.fixture
async def api(sqlite_engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'api.db'}",
        chains=dev_chains(),
        max_body_bytes=MAX_BODY,
    )
    fakes = Fakes()
    app = create_app(settings, temporal_client=fakes.connect, engine=sqlite_engine)
    app.dependency_overrides[get_tracer] = lambda: fakes
    app.dependency_overrides[get_case_starter] = lambda: fakes.start
    tokens: dict[str, str] = {}
    addresses: dict[str, str] = {}
    signer = MnemonicSigner()
    with Session(sqlite_engine) as session:
        for name in ("alice", "bob"):
            user, token = users.create_user(session, user_id=name, signer=signer, path_for=deposit_path_for_tests)
            tokens[name], addresses[name] = token, user.deposit_address
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Api(http=http, engine=sqlite_engine, fakes=fakes, app=app, tokens=tokens, addresses=addresses)
