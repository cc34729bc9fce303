"""The status API: users file claims for mis-sent deposits and follow them.

Run with ``uvicorn api.main:app``. Creating the app opens no connection: the database is reached on the
first request and Temporal on the first claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from sqlalchemy import Engine, text
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.types import Message as ASGIMessage

from api.case_bodies import start_case_body_refresher
from api.case_views import CaseViews, install_case_read_lane
from api.deps import TemporalConnector, temporal_connector
from api.docs import add_offline_docs
from api.errors import document_errors, error_response, http_error, unexpected_error, validation_error
from api.languages import (
    LocaleMiddleware,
    document_accept_language,
    document_content_language,
    request_locale,
)
from api.query import known_query_parameters
from api.routes import cases, feedback, finance, ownership, quotes, staff
from api.schemas import ErrorOut
from api.security import SecurityHeadersMiddleware
from chains.endpoints import EndpointHealth
from recovery.i18n import Message
from recovery.locales import SUPPORTED
from recovery.redaction import Redactor, install_log_redaction
from recovery.settings import Settings, get_settings
from store.db import make_engine
from store.schema import init_db

log = logging.getLogger(__name__)

DESCRIPTION = """
Recover funds sent to your deposit address on the wrong network.

1. Get an API token from an operator (`recovery users create --user-id <id>`).
2. `POST /v1/cases` with the transaction hash (and the chain, if you know it).
3. Follow the case at `GET /v1/cases/{case_id}`: status, fee and a timeline of what happened.

Amounts are strings of integers in the asset's smallest unit (`base_units`) with a `decimal` rendering.

The API's own texts (errors' `detail`, `next_action`) are in the language of `Accept-Language` when it names one
of LANGUAGES; otherwise in the user's stored language (`recovery users set-locale`), else English. Every answer
says which in `Content-Language`.
""".replace("LANGUAGES", ", ".join(SUPPORTED))

try:
    __version__ = version("misdeposit-recovery")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"


# --- request body limits --------------------------------------------------------------------------


class BodySizeLimitMiddleware:
    """Refuses bodies over ``max_body_bytes`` with 413, by Content-Length and by the bytes actually
    received (chunked uploads have no Content-Length). Bodies are small, so the accepted body is
    buffered and replayed to the app."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await _error(scope, receive, send, 400, Message("invalid Content-Length header"))
                return
            if int(declared) > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return

        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break

        body = b"".join(chunks)
        replayed = False

        async def replay() -> ASGIMessage:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _error(
            scope,
            receive,
            send,
            status.HTTP_413_CONTENT_TOO_LARGE,
            Message(
                "request body too large: the limit is {limit} bytes; send only the fields the operation documents "
                "(see /docs)",
                limit=self.max_body_bytes,
            ),
        )


async def _error(scope: Scope, receive: Receive, send: Send, code: int, detail: Message) -> None:
    await error_response(code, detail, locale=request_locale(Request(scope)).tag)(scope, receive, send)


# --- the app --------------------------------------------------------------------------------------


class ChainHealth(BaseModel):
    name: str
    family: str
    endpoints: list[EndpointHealth]


def _health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", responses={503: {"model": ErrorOut, "description": "The database is unreachable"}})
    def healthz(request: Request) -> dict[str, str]:
        """Liveness and database reachability."""
        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            log.error("health check: database unreachable: %r", exc)
            raise HTTPException(status_code=503, detail=Message("database unreachable")) from None
        return {"status": "ok"}

    @router.get("/healthz/chains", response_model=list[ChainHealth])
    def chains_health(request: Request) -> Any:
        """Each configured chain's endpoints as this API process has seen them while tracing claims:
        successes, failures, the last error and whether the endpoint is cooling down after failures
        (URLs are reduced to scheme, host and port: endpoint URLs often carry API keys)."""
        from chains.endpoints import EndpointPool

        settings: Settings = request.app.state.settings
        redactor: Redactor = request.app.state.redactor
        return [
            ChainHealth(
                name=c.name,
                family=c.family,
                endpoints=[
                    e.model_copy(update={"last_error": redactor.redact(e.last_error or "") or None})
                    for e in EndpointPool.from_config(c).health()
                ],
            )
            for c in settings.chains
        ]

    return router


def create_app(
    settings: Settings | None = None,
    *,
    temporal_client: TemporalConnector | None = None,
    engine: Engine | None = None,
) -> FastAPI:
    """Build the API. ``temporal_client`` returns a connected client (default: connect to
    ``settings.temporal_address`` on the first claim); ``engine`` defaults to ``settings.database_url``."""
    settings = settings or get_settings()
    owns_engine = engine is None
    engine = engine or make_engine(settings.database_url or "")
    redactor = Redactor.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Under uvicorn, logging is configured before the app starts: the configured secrets (RPC keys,
        # passwords, the seed) are redacted from every handler from here on (api.log in the dev stack).
        install_log_redaction(redactor)
        await run_in_threadpool(init_db, engine)
        # What start-up made (modules, the app, its routes and models: some 200,000 objects) lives as long as the
        # process. Frozen, the garbage collector's full passes skip it; otherwise each pass walks it all, about
        # 0.1 s on this machine during which no request is answered (a read's p99 was several of them). Unfrozen
        # at shutdown: nothing made before stays uncollectable after.
        gc.collect()
        gc.freeze()
        refresher = start_case_body_refresher(engine)
        try:
            yield
        finally:
            gc.unfreeze()
            if refresher is not None:
                refresher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await refresher
        views: CaseViews | None = getattr(app.state, "case_views", None)
        if views is not None:
            await views.close()
        if owns_engine:
            engine.dispose()

    app = FastAPI(
        title="Mis-deposit recovery API",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served offline by api.docs
        redoc_url=None,
        openapi_url="/openapi.json",
        redirect_slashes=False,  # a redirect would copy the Host header into Location; api.errors says what to fix
        dependencies=[Depends(known_query_parameters)],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.redactor = redactor
    app.state.temporal_client = temporal_client or temporal_connector(settings)

    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(SecurityHeadersMiddleware)  # its headers are on every answer
    app.add_middleware(LocaleMiddleware)  # outermost of ours: every answer, the body limit's too, knows its language
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
    add_offline_docs(app)
    install_case_read_lane(app)  # plain case reads, answered in front of everything (api.case_views)

    for router in (cases.router, staff.router, finance.router, feedback.router, ownership.router, quotes.router):
        app.include_router(router, prefix="/v1")  # one level of routers to match a request through, not two
    app.include_router(_health_router())
    _document_errors_in_openapi(app, settings)
    return app


def _document_errors_in_openapi(app: FastAPI, settings: Settings) -> None:
    """The spec FastAPI generates, with every operation's 4xx documented as ``ErrorOut`` (api.errors), its
    ``Accept-Language`` and ``Content-Language`` (api.languages) and a claim's fields as this deployment accepts
    them."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = document_content_language(document_errors(document_accept_language(FastAPI.openapi(app))))
            app.openapi_schema = _claims_as_configured(spec, settings)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _claims_as_configured(spec: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """A claim's ``tx_hash`` in the formats of the configured chain families, its ``chain`` one of their names."""
    from chains.registry import tx_hash_pattern

    claim = spec.get("components", {}).get("schemas", {}).get("CaseCreate")
    if claim is None:
        return spec
    claim["properties"]["tx_hash"]["pattern"] = tx_hash_pattern(settings.chains)
    claim["properties"]["chain"]["anyOf"] = [
        {"type": "string", "enum": [c.name for c in settings.chains]},
        {"type": "null"},
    ]
    return spec


app = create_app()
