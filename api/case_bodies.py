"""Rendering a user's case read, and keeping it rendered in the database (``store.case_bodies``) as cases change.

:func:`rendered_of` is the one renderer of a case's answer (its JSON and ETag in a language); reads use it for a
case whose body is not kept, and :class:`CaseBodyRefresher` for the queued cases. The refresher runs in the API
process (started by its lifespan, ``api.main``) as a loop: it renders the cases the triggers queued, in their
owners' languages, a batch at a time (its reads on the driver's own connection, its writes in one write
transaction per batch), and when nothing is queued re-renders bodies of an earlier renderer (a deploy since).
Several API processes may each run one: saving a body is an upsert that never replaces a newer version, and
taking a case off the queue only matches the version rendered.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from pathlib import Path
from typing import Any, NamedTuple

from pydantic_core import to_json
from sqlalchemy import Engine
from sqlalchemy.pool import StaticPool

from api.schemas import CaseDetail
from recovery.i18n import CATALOG_DIR, supported
from recovery.locales import DEFAULT_LOCALE
from store import case_bodies
from store.case_bodies import Queued, StoredBody
from store.case_views import CaseReads, CaseView
from store.db import IMMEDIATE_OPTION

log = logging.getLogger(__name__)

RENDER_FORMAT = 1
"""Part of :func:`renderer_id`; moved by hand only if rendering changes in a way no source or catalog shows."""
RENDERER_SOURCES = ("api", "recovery")
"""Packages whose code can change a rendered body (the schemas, the texts, names and number formats)."""
BATCH = 200
IDLE_S = 0.5
"""How long the refresher waits when nothing is queued: a body is at most about this late after a change (reads
render meanwhile)."""
ERROR_WAIT_S = 5.0


class Rendered(NamedTuple):
    version: int
    body: bytes
    etag: str


def rendered_of(view: CaseView, locale: str) -> Rendered:
    """The case's answer in ``locale`` (a supported tag), of the view version it was read at."""
    body = to_json(
        CaseDetail.fields_of(view.case, view.events, view.handling, view.ownership, view.refund, locale=locale)
    )
    return Rendered(view.case.view_version, body, etag_of(body))


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@functools.cache
def renderer_id() -> str:
    """What renders bodies in this process: a digest of the renderer's code (:data:`RENDERER_SOURCES`) and the
    compiled catalogs. Processes of one deploy agree on it; a deploy that changes either serves no body rendered
    before it."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(f"format {RENDER_FORMAT}".encode())
    files = [f for package in RENDERER_SOURCES for f in sorted((root / package).rglob("*.py"))]
    files += sorted(CATALOG_DIR.rglob("*.mo"))
    for file in files:
        digest.update(str(file.relative_to(root)).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()[: case_bodies.RENDERER_LENGTH]


class CaseBodyRefresher:
    def __init__(self, engine: Engine, *, batch: int = BATCH, renderer: str | None = None) -> None:
        self._engine = engine
        self._batch = batch
        self._renderer = renderer or renderer_id()
        self._reads = CaseReads(engine.dialect)

    def refresh_once(self) -> int:
        """Render up to a batch of queued cases (none queued: of cases whose bodies an earlier renderer made) and
        save their bodies; how many cases were taken (0: nothing to do)."""
        with self._engine.connect() as connection:
            todo = case_bodies.queued(connection, limit=self._batch)
            case_ids = [item.case_id for item in todo] or case_bodies.stale(
                connection, renderer=self._renderer, limit=self._batch
            )
            if not case_ids:
                return 0
            locales = case_bodies.owners_locales(connection, case_ids)
        views = self._views(case_ids)
        bodies: list[StoredBody] = []
        done: list[Queued] = []
        for case_id in case_ids:
            view = views.get(case_id)
            if view is None:  # deleted since (its queue row went with it)
                continue
            locale = supported(locales.get(case_id, DEFAULT_LOCALE))
            try:
                rendered = rendered_of(view, locale)
            except Exception:  # reads render it themselves (and answer its error): the rest of the batch goes on
                log.exception("case body: rendering case %s failed; its reads render it", case_id)
            else:
                bodies.append(StoredBody(case_id, locale, rendered.version, self._renderer, *rendered[1:]))
            done.append(Queued(case_id, view.case.view_version))
        with (
            self._engine.connect().execution_options(**{IMMEDIATE_OPTION: True}) as connection,
            connection.begin(),
        ):
            case_bodies.save(connection, bodies, done=done if todo else [])
        return len(case_ids)

    def _views(self, case_ids: list[str]) -> dict[str, CaseView]:
        """Each case's view (one statement each, on the driver's own connection: one snapshot per case)."""
        reads = self._reads
        found: dict[str, CaseView] = {}
        raw: Any = self._engine.raw_connection()
        try:
            cursor = raw.driver_connection.cursor()
            for case_id in case_ids:
                cursor.execute(reads.view.sql, reads.view.params(case_id=case_id))
                view = reads.view_of(cursor, cursor.fetchall())
                if view is not None:
                    found[case_id] = view
            cursor.close()
            raw.commit()
        finally:
            raw.close()
        return found

    async def run(self, *, idle_s: float = IDLE_S) -> None:
        """Refresh for ever (until cancelled): at once while there is work, every ``idle_s`` when there is none."""
        while True:
            try:
                taken = await asyncio.to_thread(self.refresh_once)
            except Exception:
                log.warning("case bodies: a refresh failed; trying again in %s s", ERROR_WAIT_S, exc_info=True)
                await asyncio.sleep(ERROR_WAIT_S)
                continue
            if not taken:
                await asyncio.sleep(idle_s)


def start_case_body_refresher(engine: Engine) -> asyncio.Task[None] | None:
    """The refresher's loop as a task of the running event loop; None for an in-memory SQLite database (one
    connection shared by everything, in tests: reads render every case)."""
    if engine.dialect.name == "sqlite" and isinstance(engine.pool, StaticPool):
        return None
    return asyncio.get_running_loop().create_task(CaseBodyRefresher(engine).run(), name="case-body-refresher")
