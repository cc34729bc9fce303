"""Case reads answered from a rendered copy while the case has not changed.

A read costs one query (:func:`store.case_views.case_access`: the token's user and their language, the case's
owner and its view version) on one connection; the case's JSON and ETag are rendered once per view version and
language (its texts, such as ``next_action``, are in the reader's) and kept in a bounded, per-process cache. The
version is moved by database triggers in the transaction of every change a read shows, so a copy is never served
after its case changed, whichever process wrote the change.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import NamedTuple

from fastapi import Request
from sqlalchemy import Connection, Engine

from api.schemas import CaseDetail
from recovery.i18n import supported
from store.case_views import CaseAccess, case_access, case_view


class Rendered(NamedTuple):
    version: int
    body: bytes
    etag: str


class CaseViews:
    def __init__(self, engine: Engine, *, max_cases: int = 20_000) -> None:
        self._engine = engine
        self._max = max_cases
        self._rendered: OrderedDict[tuple[str, str], Rendered] = OrderedDict()
        """By case id and language."""
        self._lock = threading.Lock()
        self.inline = engine.dialect.name == "sqlite"
        """Read on the event loop itself: SQLite answers from the local file in a fraction of a millisecond,
        less than handing the work to a thread and back costs under load. PostgreSQL reads go to a thread."""

    def read(self, *, token: str, case_id: str, locale: str | None = None) -> tuple[CaseAccess | None, Rendered | None]:
        """Who asks, and the case's rendered answer if the case is theirs and the token live (rendered now
        unless a copy of its current version in that language is kept): one transaction, one query when the copy
        is kept. The answer's language is ``locale`` (the one ``Accept-Language`` asked for), else the user's."""
        with self._engine.begin() as connection:
            found = case_access(connection, token=token, case_id=case_id)
            if found is None or not found.live or found.case_owner != found.user_id or found.view_version is None:
                return found, None
            key = (case_id, supported(locale or found.locale))
            kept = self._kept(key, found.view_version)
            return found, kept if kept is not None else self._render(connection, key)

    def _kept(self, key: tuple[str, str], version: int) -> Rendered | None:
        with self._lock:
            found = self._rendered.get(key)
            if found is None or found.version != version:
                return None
            self._rendered.move_to_end(key)
            return found

    def _render(self, connection: Connection, key: tuple[str, str]) -> Rendered:
        """Read and render the case in the key's language, kept under the version read with it: a change committed
        meanwhile moves the version (and what was read is never older than the version), so the next read renders
        again."""
        case_id, locale = key
        view = case_view(connection, case_id=case_id)
        assert view is not None
        detail = CaseDetail.build(view.case, view.events, view.handling, view.ownership, view.refund, locale=locale)
        body = detail.model_dump_json().encode()
        rendered = Rendered(view.case.view_version, body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"')
        with self._lock:
            self._rendered[key] = rendered
            self._rendered.move_to_end(key)
            while len(self._rendered) > self._max:
                self._rendered.popitem(last=False)
        return rendered


def case_views_of(request: Request) -> CaseViews:
    """The app's cache of rendered case reads, made on first use."""
    views: CaseViews | None = getattr(request.app.state, "case_views", None)
    if views is None:
        views = CaseViews(request.app.state.engine)
        request.app.state.case_views = views
    return views
