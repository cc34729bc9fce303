"""Case reads answered from a rendered copy while the case has not changed.

A read costs one query (:class:`store.case_views.CaseReads`: the token's user and their language, the case's owner
and its view version, and the case's answer: its body kept rendered in the database (``store.case_bodies``) when
there is one of the case's current version in the language asked, else the case itself, its row, timeline,
handling, ownership requirement and refund in the same snapshot, to render now). Nothing is read but the access
when this process keeps a copy of the version it finds. The case's JSON and ETag are rendered once per view
version and language (its texts, such as ``next_action``, are in the reader's): by the API's refresher when the
case changes, in its owner's language (``api.case_bodies``), else on the read, and kept in a bounded, per-process
cache. The version is moved by database triggers in the transaction of every change a read shows, so a copy is
never served after its case changed, whichever process wrote the change. A second query reads the case only for
a language not kept at its current version.

The queries run on the driver's own connections, not through SQLAlchemy's engine, whose work per execution and
per transaction costs several times what the database takes to answer:

- SQLite: on one connection of the engine's pool kept for the reads, in autocommit (each statement its own
  snapshot), on the event loop itself: the local file answers in tens of microseconds, less than handing the work
  to a thread and back costs under load.
- PostgreSQL: on a few asyncpg connections of their own (autocommit, prepared statements), awaited on the event
  loop: no thread hop, and the loop serves other requests meanwhile.
- An in-memory SQLite database (one connection shared by everything, in tests) reads through the engine.

:class:`CaseReadLane` answers the plain reads (``GET /v1/cases/{case_id}`` with a bearer token and nothing else
to check) in front of the middleware stack, routing and dependency solving, which cost more than the rest of a
read from a kept copy: the same read, the same rate limit and the same answer (:func:`case_answer`) as the route
(``api.routes.cases.read_case``), which answers everything else (a missing or dead token, another user's case, a
spent budget, a query string, a header or case id over its limit) and documents the operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import OrderedDict
from typing import Any, NamedTuple

from fastapi import HTTPException, Request, Response, status
from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from api.case_bodies import Rendered, rendered_of, renderer_id
from api.deps import bearer_token
from api.languages import negotiated, with_language
from api.rate_limits import Budget, limiter_of_app
from api.security import with_security_headers
from recovery.i18n import supported
from recovery.locales import match_locale
from store.case_views import CaseAccess, CaseReads, CaseView, KeptBody, case_access, case_view

log = logging.getLogger(__name__)

POSTGRES_CONNECTIONS = 8
"""Connections of a process's PostgreSQL reads: a read holds one for about a round trip (a tenth of a
millisecond), so a few serve many concurrent requests."""
READ_SLOT_WAIT_S = 5.0
"""How long a read waits for one of those connections before it is refused (:class:`ReadsBusy`): when the
database stops answering, reads queue no longer than this instead of holding their clients without end."""


class ReadsBusy(Exception):
    """No connection for a case read came free within :data:`READ_SLOT_WAIT_S` (the database is slow or stuck)."""


SQLITE_READ_MMAP_BYTES = 1 << 30
"""The reads' connection maps up to this much of the database file into memory (address space, not memory: the
pages are the operating system's page cache): a read's dozen or so page visits then copy nothing and make no
system call, about a fifth of the statement's time on a 100,000-case database (measured on its own)."""


class _Copies(NamedTuple):
    """A case's rendered copies of one view version, by language (a new version replaces them all)."""

    version: int
    by_locale: dict[str, Rendered]


class CaseViews:
    def __init__(self, engine: Engine, *, max_cases: int = 20_000) -> None:
        self._engine = engine
        self._max = max_cases
        """At most this many rendered bodies are kept (a case read in several languages keeps one per language)."""
        self._copies: OrderedDict[str, _Copies] = OrderedDict()
        """By case id, least recently read first."""
        self._bodies = 0
        self._lock = threading.Lock()
        self._reads = CaseReads(engine.dialect)
        self.renderer = renderer_id()
        self._sqlite: _SqliteReads | None = None
        self._postgres: _PostgresReads | None = None
        dialect = engine.dialect.name
        if dialect == "sqlite" and not isinstance(engine.pool, StaticPool):
            self._sqlite = _SqliteReads(engine, self._reads)
        elif dialect == "postgresql":
            self._postgres = _PostgresReads(engine)

    async def read(
        self, *, token: str, case_id: str, locale: str | None = None
    ) -> tuple[CaseAccess | None, Rendered | None]:
        """Who asks, and the case's rendered answer if the case is theirs and the token live (rendered now
        unless a copy of its current version in that language is kept): one query, which also reads the case
        when the kept copies are not of its current version. The answer's language is ``locale`` (the one
        ``Accept-Language`` asked for), else the user's."""
        if "\x00" in case_id:  # no case id holds one (and PostgreSQL text cannot): the read shows no case
            return None, None
        if self._postgres is not None:
            return await self._postgres.read(self, token=token, case_id=case_id, locale=locale)
        if self._sqlite is not None:
            return self._sqlite.read(self, token=token, case_id=case_id, locale=locale)
        return self._read_by_engine(token=token, case_id=case_id, locale=locale)

    async def close(self) -> None:
        """Close the connections of the reads (at the app's shutdown)."""
        if self._sqlite is not None:
            self._sqlite.close()
        if self._postgres is not None:
            await self._postgres.close()

    def key_to_render(self, found: CaseAccess | None, case_id: str, locale: str | None) -> tuple[str, str] | None:
        """The copy a read answers with, by case id and language; None when the read shows no case (no such user,
        a dead token, another user's case or none)."""
        if found is None or not found.live or found.case_owner != found.user_id or found.view_version is None:
            return None
        return case_id, supported(locale or found.locale)

    def kept_version(self, case_id: str) -> int:
        """The view version of the case's kept copies; -1: none kept."""
        with self._lock:
            copies = self._copies.get(case_id)
            return -1 if copies is None else copies.version

    def kept(self, key: tuple[str, str], version: int) -> Rendered | None:
        case_id, locale = key
        with self._lock:
            copies = self._copies.get(case_id)
            if copies is None or copies.version != version:
                return None
            self._copies.move_to_end(case_id)
            return copies.by_locale.get(locale)

    def read_params(self, reads: CaseReads, *, token: str, case_id: str, locale: str | None) -> Any:
        """The parameters of a read's one query (``reads.read``, compiled for the driver that runs it)."""
        return reads.read_params(
            token=token,
            case_id=case_id,
            kept_version=self.kept_version(case_id),
            locale=locale,
            renderer=self.renderer,
        )

    def answer(
        self, found: CaseAccess | None, view: CaseView | None, body: KeptBody | None, case_id: str, locale: str | None
    ) -> tuple[tuple[str, str] | None, Rendered | None]:
        """What a read's one query gives: the copy to answer with (its key, and the copy when it is kept, here
        or in the database, or ``view`` was read with the query); (key, None) when the case must be read for the
        key's language."""
        key = self.key_to_render(found, case_id, locale)
        if key is None:
            return None, None
        assert found is not None and found.view_version is not None
        if body is not None:
            return key, self.keep(key, Rendered(found.view_version, body.body, body.etag))
        if view is not None:
            return key, self.render(view, key)
        return key, self.kept(key, found.view_version)

    def render(self, view: CaseView, key: tuple[str, str]) -> Rendered:
        """Render the case in the key's language and keep it under the version read with it (in the same
        snapshot): a change committed since moves the version, so the next read renders again."""
        return self.keep(key, rendered_of(view, key[1]))

    def keep(self, key: tuple[str, str], rendered: Rendered) -> Rendered:
        case_id, locale = key
        version = rendered.version
        with self._lock:
            copies = self._copies.get(case_id)
            if copies is None or copies.version < version:
                self._bodies += 1 - (0 if copies is None else len(copies.by_locale))
                self._copies[case_id] = _Copies(version, {locale: rendered})
            elif copies.version == version:
                self._bodies += locale not in copies.by_locale
                copies.by_locale[locale] = rendered
            # else: a concurrent read kept a newer version; this one still answers its own read
            self._copies.move_to_end(case_id)
            while self._bodies > self._max and self._copies:
                _, dropped = self._copies.popitem(last=False)
                self._bodies -= len(dropped.by_locale)
        return rendered

    def _read_by_engine(
        self, *, token: str, case_id: str, locale: str | None
    ) -> tuple[CaseAccess | None, Rendered | None]:
        with self._engine.begin() as connection:
            found = case_access(connection, token=token, case_id=case_id)
            key = self.key_to_render(found, case_id, locale)
            if found is None or key is None:
                return found, None
            assert found.view_version is not None
            kept = self.kept(key, found.view_version)
            if kept is not None:
                return found, kept
            view = case_view(connection, case_id=case_id)
            return found, None if view is None else self.render(view, key)


class _SqliteReads:
    """The reads on one connection of the engine's pool, kept checked out for them (autocommit: the engine's
    connections run no transaction of their own)."""

    def __init__(self, engine: Engine, reads: CaseReads) -> None:
        self._engine = engine
        self._reads = reads
        self._pooled: Any = None
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        if self._pooled is None:
            self._pooled = self._engine.raw_connection()
            self._pooled.driver_connection.execute(f"PRAGMA mmap_size={SQLITE_READ_MMAP_BYTES}")
        return self._pooled.driver_connection

    def read(
        self, views: CaseViews, *, token: str, case_id: str, locale: str | None
    ) -> tuple[CaseAccess | None, Rendered | None]:
        reads = self._reads
        params = views.read_params(reads, token=token, case_id=case_id, locale=locale)
        with self._lock:
            connection = self._connection()
            cursor = connection.execute(reads.read.sql, params)
            found, view, body = reads.read_of(cursor, cursor.fetchall())
            key, rendered = views.answer(found, view, body, case_id, locale)
            if key is None or rendered is not None:
                return found, rendered
            # the kept version, not kept in this language
            cursor = connection.execute(reads.view.sql, reads.view.params(case_id=case_id))
            view = reads.view_of(cursor, cursor.fetchall())
        if view is None:  # deleted since the first statement (a claim whose workflow could not start)
            return found, None
        return found, views.render(view, key)

    def close(self) -> None:
        with self._lock:
            if self._pooled is not None:
                self._pooled.close()  # back to the engine's pool
                self._pooled = None


class _PostgresReads:
    """The reads on a few asyncpg connections of their own, made on first use on the running event loop (a
    connection belongs to the loop that made it), each with the reads' statements prepared on it.

    asyncpg, not psycopg (the engine's driver): its protocol is compiled, keeps each statement's description, and
    stays registered with the event loop between queries; a read costs about half the CPU it cost through
    psycopg's ``AsyncConnection`` (``bench api``). The statements are compiled for SQLAlchemy's asyncpg dialect
    and their columns converted by the same types."""

    def __init__(
        self,
        engine: Engine,
        *,
        size: int = POSTGRES_CONNECTIONS,
        slot_wait_s: float = READ_SLOT_WAIT_S,
    ) -> None:
        from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

        self._dsn = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        self._reads = CaseReads(asyncpg_dialect(), view_in_read=False)  # a kept body's read is the most common
        self._size = size
        self._slot_wait_s = slot_wait_s
        self._idle: list[_PreparedConnection] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._slots: asyncio.Semaphore | None = None

    async def read(
        self, views: CaseViews, *, token: str, case_id: str, locale: str | None
    ) -> tuple[CaseAccess | None, Rendered | None]:
        import asyncpg

        try:
            return await self._read(views, token=token, case_id=case_id, locale=locale)
        except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError) as exc:
            # the server closed a connection (a restart): the idle ones too
            log.warning("case read: a PostgreSQL connection failed (%r); reading again on a new one", exc)
            await self.close()
            return await self._read(views, token=token, case_id=case_id, locale=locale)

    async def _read(
        self, views: CaseViews, *, token: str, case_id: str, locale: str | None
    ) -> tuple[CaseAccess | None, Rendered | None]:
        import asyncpg

        reads = self._reads
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # first use, or another loop (tests): connections of this loop
            self._loop, self._idle, self._slots = loop, [], asyncio.Semaphore(self._size)
        assert self._slots is not None
        params = views.read_params(reads, token=token, case_id=case_id, locale=locale)
        if self._slots.locked():  # all connections busy: wait for one, a bounded time
            try:
                async with asyncio.timeout(self._slot_wait_s):  # a timer, not a task as ``wait_for`` makes
                    await self._slots.acquire()
            except TimeoutError:
                raise ReadsBusy(self._slot_wait_s) from None  # the seconds waited; the route words the refusal
        else:  # one is free: taken at once, with no timer
            await self._slots.acquire()
        try:
            prepared = self._idle.pop() if self._idle else await self._connect()
            try:
                rows = await prepared.read.fetch(*params)
                found, view, body = reads.read_of(prepared.read_columns, rows)
                key, rendered = views.answer(found, view, body, case_id, locale)
                if key is not None and rendered is None:  # the kept version, not kept in this language
                    rows = await prepared.view.fetch(*reads.view.params(case_id=case_id))
                    view = reads.view_of(prepared.view_columns, rows)
            except (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError):  # the connection is broken
                await _close_quietly(prepared.connection)
                raise
            except asyncpg.PostgresError:  # a statement's error leaves the connection as it was: kept
                self._idle.append(prepared)
                raise
            except BaseException:  # cancelled half-way: its state is unknown, so it is not used again
                await _close_quietly(prepared.connection)
                raise
            self._idle.append(prepared)
        finally:
            self._slots.release()
        if key is None or rendered is not None:
            return found, rendered
        if view is None:  # deleted since the first statement (a claim whose workflow could not start)
            return found, None
        return found, views.render(view, key)

    async def _connect(self) -> _PreparedConnection:
        import asyncpg

        connection = await asyncpg.connect(self._dsn)
        try:
            read = await connection.prepare(self._reads.read.sql)
            view = await connection.prepare(self._reads.view.sql)
        except BaseException:
            await _close_quietly(connection)
            raise
        return _PreparedConnection(connection, read, _Columns(read), view, _Columns(view))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        if self._loop is asyncio.get_running_loop():
            for prepared in idle:
                await _close_quietly(prepared.connection)


class _Columns:
    """A prepared statement's result columns as ``store.case_views.CaseReads`` reads them from a DB-API cursor:
    ``description``, each column's (name, type code)."""

    def __init__(self, prepared: Any) -> None:
        self.description = [(attribute.name, attribute.type.oid) for attribute in prepared.get_attributes()]


class _PreparedConnection(NamedTuple):
    connection: Any
    read: Any
    read_columns: _Columns
    view: Any
    view_columns: _Columns


async def _close_quietly(connection: Any) -> None:
    with contextlib.suppress(Exception):  # closing a broken connection: nothing to do
        await asyncio.shield(connection.close())


def case_answer(rendered: Rendered, if_none_match: str | None) -> Response:
    """A read's answer: the rendered case with its ETag, or ``304 Not Modified`` when ``If-None-Match`` names it."""
    if if_none_match is not None and _matches(if_none_match, rendered.etag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": rendered.etag})
    return Response(content=rendered.body, media_type="application/json", headers={"ETag": rendered.etag})


def _matches(if_none_match: str, etag: str) -> bool:
    """RFC 9110 weak comparison of ``If-None-Match`` with our (strong) ``etag``."""
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


CASE_PATH = "/v1/cases/"
MAX_CASE_ID = 255
"""``case_id``'s ``max_length`` in the route."""
MAX_IF_NONE_MATCH = 1024
"""``If-None-Match``'s ``max_length`` in the route."""
LANE_STATE = "case_read_lane"
"""``app.state.case_read_lane = False`` sends every read through the route (tests compare the two)."""


class CaseReadLane:
    """Answers ``GET /v1/cases/{case_id}`` in front of the whole app (:func:`install_case_read_lane`) when the route
    would answer it 200 or 304, with the route's answer: its status, body and headers, the security headers
    (:func:`api.security.with_security_headers`) and the language (:func:`api.languages.with_language`) included,
    which the middlewares it is in front of add to every other answer. Passes every other request on untouched
    (nothing read is kept but the rendered copy, nothing counted): a request with a query string, a root path, a
    case id the route's path would not take or over its length, no bearer token, more than one ``If-None-Match``
    or one over its length; a token that is not a live user's; a case that is not the caller's; a read over the
    budget (a refused read counts nothing: the route refuses it again). A read that fails here (the database
    down) is passed on too: the route reads again and answers as it answers every error."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and scope["path"].startswith(CASE_PATH):
            try:
                answer = await self._answer(scope)
            except Exception:
                log.warning("case read lane: the read failed; the route answers it", exc_info=True)
                answer = None
            if answer is not None:
                code, body, headers = answer
                await send({"type": "http.response.start", "status": code, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope) -> tuple[int, bytes, list[tuple[bytes, bytes]]] | None:
        path: str = scope["path"]
        case_id = path[len(CASE_PATH) :]
        app = scope["app"]
        if (
            not case_id
            or "/" in case_id
            or len(case_id) > MAX_CASE_ID
            or scope.get("query_string")
            or scope.get("root_path")
            or not getattr(app.state, LANE_STATE, True)
        ):
            return None
        headers = Headers(scope=scope)
        token = bearer_token(headers.get("authorization"))
        if token is None:
            return None
        if_none_match = headers.getlist("if-none-match")
        if len(if_none_match) > 1 or (if_none_match and len(if_none_match[0]) > MAX_IF_NONE_MATCH):
            return None
        language = negotiated(headers)
        found, rendered = await views_of(app).read(token=token, case_id=case_id, locale=language.header)
        if found is None or not found.live or rendered is None:
            return None
        language.user = match_locale(found.locale) if found.locale else None
        try:
            limiter_of_app(app).spend(Budget.READS, f"user:{found.user_id}")
        except HTTPException:
            return None
        if if_none_match:
            response = case_answer(rendered, if_none_match[0])
            return response.status_code, bytes(response.body), _answered(response.raw_headers, path, language.tag)
        return 200, rendered.body, _answered(_ok_headers(rendered), path, language.tag)


def _ok_headers(rendered: Rendered) -> list[tuple[bytes, bytes]]:
    """The raw headers of :func:`case_answer`'s ``200`` (in its order), without making the response."""
    return [
        (b"etag", rendered.etag.encode("latin-1")),
        (b"content-length", str(len(rendered.body)).encode("latin-1")),
        (b"content-type", b"application/json"),
    ]


def _answered(headers: list[tuple[bytes, bytes]], path: str, language: str) -> list[tuple[bytes, bytes]]:
    """An answer's headers with those the middlewares the lane is in front of add to every other answer."""
    return with_language(with_security_headers(headers, path), language)


def install_case_read_lane(app: Starlette) -> None:
    """Puts :class:`CaseReadLane` in front of the app's whole middleware stack (Starlette's error and exception
    layers, and ours): a plain read costs none of their work. ``scope["app"]`` is set before it runs."""
    build = app.build_middleware_stack

    def build_with_lane() -> ASGIApp:
        return CaseReadLane(build())

    app.build_middleware_stack = build_with_lane  # type: ignore[method-assign]


def case_views_of(request: Request) -> CaseViews:
    """The app's cache of rendered case reads, made on first use."""
    return views_of(request.app)


def views_of(app: Starlette) -> CaseViews:
    views: CaseViews | None = getattr(app.state, "case_views", None)
    if views is None:
        views = CaseViews(app.state.engine)
        app.state.case_views = views
    return views
