"""FastAPI dependencies: database session, settings, the caller, Temporal, chain tracing, case start.

Everything the routes reach outside the process comes through a dependency here, so tests can swap it
with ``app.dependency_overrides`` (``get_tracer``, ``get_case_starter``) or ``create_app(temporal_client=...)``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from datetime import timedelta
from typing import Annotated, Protocol

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowHandle

from api.languages import use_user_locale
from api.rate_limits import Budget, client_address, limiter_of, user_budget
from api.staff_actions import attester_for
from recovery.i18n import Message
from recovery.models import TraceResult
from recovery.settings import ChainConfig, Settings
from services.attesting import Attester
from store.api_tokens import TokenExpired
from store.staff import authenticate_staff
from store.users import User, authenticate
from workflows.case_messages import CaseInput

TemporalConnector = Callable[[], Awaitable[Client]]
"""Returns a connected Temporal client (connecting on first use)."""

TOKEN_HELP = Message(
    "send your API token as 'Authorization: Bearer <token>'; "
    "an operator issues one with `recovery users create --user-id <your id>`"
)
TOKEN_RENEWAL = Message("ask for a new one (an operator runs `recovery users token rotate <your id>`)")


def token_expired(exc: TokenExpired, what_to_do: Message) -> Message:
    """A token whose time is over: when it expired (for the reader's locale) and what to do."""
    return Message(
        "the API token expired at {expired_at}: {what_to_do}", expired_at=exc.expired_at, what_to_do=what_to_do
    )


# --- database and settings ------------------------------------------------------------------------


def get_db(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_db)]


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


EngineDep = Annotated[Engine, Depends(get_engine)]


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


# --- the caller -----------------------------------------------------------------------------------

_bearer = HTTPBearer(auto_error=False, description="API token from `recovery users create`")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
"""The bearer token as sent, unchecked (for routes that check it themselves, in one query with their own)."""


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization`` header as :data:`BearerDep` takes it (FastAPI's ``HTTPBearer``), or None."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        return None
    return credentials


def get_current_user(request: Request, session: SessionDep, credentials: BearerDep) -> User:
    """The caller, by their API token; each request spends the caller's rate-limit budget (a request
    without a valid token spends its client address's)."""
    limiter = limiter_of(request)
    if credentials is None or not credentials.credentials:
        limiter.spend(Budget.ANONYMOUS, client_address(request))
        raise unauthorized(Message("missing API token: {help}", help=TOKEN_HELP))
    try:
        user = authenticate(session, token=credentials.credentials)
    except TokenExpired as exc:
        session.commit()
        limiter.spend(Budget.ANONYMOUS, client_address(request))
        raise unauthorized(token_expired(exc, TOKEN_RENEWAL)) from None
    session.commit()  # hand the connection back to the pool before the handler awaits chains or Temporal
    if user is None:
        limiter.spend(Budget.ANONYMOUS, client_address(request))
        if _is_staff_token(session, credentials.credentials):
            raise HTTPException(
                status_code=status.HTTP_403_FORBIDDEN,
                detail=Message(
                    "this is a staff API token: these routes are a user's own and take that user's token; "
                    "staff read cases at /v1/staff/cases"
                ),
            )
        raise unauthorized(Message("invalid API token: {help}", help=TOKEN_HELP))
    use_user_locale(request, user.locale)  # the user's language, unless Accept-Language names one
    limiter.spend(user_budget(request), f"user:{user.user_id}")
    return user


def _is_staff_token(session: Session, token: str) -> bool:
    try:
        found = authenticate_staff(session, token=token) is not None
    except TokenExpired:
        found = True
    session.commit()
    return found


def unauthorized(detail: Message) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


CurrentUser = Annotated[User, Depends(get_current_user)]


# --- Temporal -------------------------------------------------------------------------------------


def temporal_connector(settings: Settings, *, timeout: timedelta = timedelta(seconds=10)) -> TemporalConnector:
    """A connector that connects once, on first use (never at import or app creation)."""
    client: Client | None = None
    lock: asyncio.Lock | None = None

    async def connect() -> Client:
        nonlocal client, lock
        if client is not None:
            return client
        lock = lock or asyncio.Lock()
        async with lock:
            if client is None:
                from workflows.client import connect

                client = await connect(settings, timeout=timeout)
        return client

    return connect


def get_temporal(request: Request) -> TemporalConnector:
    connector: TemporalConnector = request.app.state.temporal_client
    return connector


TemporalDep = Annotated[TemporalConnector, Depends(get_temporal)]


class CaseStarter(Protocol):
    async def __call__(self, client: Client, *, task_queue: str, case: CaseInput) -> WorkflowHandle: ...


async def _start_case(client: Client, *, task_queue: str, case: CaseInput) -> WorkflowHandle:
    from workflows.starter import start_case

    return await start_case(client, task_queue=task_queue, case=case)


def get_case_starter() -> CaseStarter:
    return _start_case


StarterDep = Annotated[CaseStarter, Depends(get_case_starter)]


# --- chains ---------------------------------------------------------------------------------------


class ChainUnreachable(Exception):
    """No node of the chain(s) answered. ``chains`` are configured names, safe to show to users."""

    def __init__(self, chains: list[str]) -> None:
        super().__init__(", ".join(chains))
        self.chains = chains


class Tracer(Protocol):
    async def trace(self, chain: ChainConfig, tx_hash: str, *, block_time: bool = False) -> TraceResult: ...

    async def locate(self, chains: list[ChainConfig], tx_hash: str) -> TraceResult: ...


class TxHashFormatError(ValueError):
    """The hash cannot be a transaction id on the chain(s) asked."""


class ChainTracer:
    """Looks transactions up with each chain family's adapter; raises :class:`ChainUnreachable` (never
    RPC URLs) or :class:`TxHashFormatError`."""

    def __init__(self, timeout: timedelta = timedelta(seconds=30)) -> None:
        self.timeout = timeout

    async def trace(self, chain: ChainConfig, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        from chains.registry import accepted_formats, adapter_for

        adapter = adapter_for(chain)
        if not adapter.accepts(tx_hash):
            raise TxHashFormatError(
                Message(
                    "{tx_hash} is not a transaction id on {chain}: expected {formats}",
                    tx_hash=repr(tx_hash),
                    chain=chain.name,
                    formats=accepted_formats([chain]),
                )
            )
        return await self._guard([chain.name], adapter.trace(tx_hash, block_time=block_time))

    async def locate(self, chains: list[ChainConfig], tx_hash: str) -> TraceResult:
        from chains.registry import locate

        try:
            return await self._guard([c.name for c in chains], locate(chains, tx_hash))
        except ValueError as exc:
            raise TxHashFormatError(str(exc)) from None

    async def _guard(self, names: list[str], call: Awaitable[TraceResult]) -> TraceResult:
        from chains.endpoints import RpcError, RpcUnavailable

        try:
            return await asyncio.wait_for(call, self.timeout.total_seconds())
        except (RpcUnavailable, RpcError, TimeoutError) as exc:
            raise ChainUnreachable(names) from exc


def get_tracer() -> Tracer:
    return ChainTracer()


TracerDep = Annotated[Tracer, Depends(get_tracer)]


def get_attester(request: Request) -> Attester:
    """The API's attester (decisions of staff, proofs and answers of users it checked), loaded once per app."""
    attester: Attester | None = getattr(request.app.state, "staff_attester", None)
    if attester is None:
        attester = attester_for(request.app.state.settings)
        request.app.state.staff_attester = attester
    return attester


AttesterDep = Annotated[Attester, Depends(get_attester)]
