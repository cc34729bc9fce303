"""Users' case reads kept rendered in the database: the read model of ``GET /v1/cases/{id}``.

A case's answer (its JSON and ETag, in its owner's language) is rendered once per change of the case, not once
per read: a read whose case has a body of its current view version, in the asked language and by the running
renderer, answers with it in the same query that checks the token (``store.case_views``). Anything else is
rendered on the read, as before, so a body that is missing or behind never changes an answer, only its cost.

Who renders: triggers queue every case whose ``view_version`` moves, and every case of a user whose language
changes (migration 0007), in the transaction of the change, with the case's version; the API's refresher
(``api.case_bodies``) renders the queued cases and saves their bodies here, and takes a case off the queue only
when the version it rendered is still the queued one. Bodies cascade with their case, so a case id used again (a
claim whose workflow could not start, claimed again) never meets the body of the case deleted before it.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Column, ForeignKey, Index, LargeBinary, String, and_, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlmodel import Field, SQLModel

from store.cases import Case
from store.users import User

RENDERER_LENGTH = 32


class CaseBody(SQLModel, table=True):
    """A case's rendered read in one language, of one view version, by one renderer."""

    __tablename__ = "case_bodies"  # type: ignore[assignment]

    case_id: str = Field(
        sa_column=Column(
            String(255), ForeignKey("cases.case_id", ondelete="CASCADE", name="fk_case_bodies_case"), primary_key=True
        )
    )
    locale: str = Field(primary_key=True, max_length=16)
    view_version: int
    renderer: str = Field(max_length=RENDERER_LENGTH)
    """Which code and catalogs rendered it (``api.case_bodies.renderer_id``): a deploy that renders differently
    serves none of the bodies rendered before it."""
    body: bytes = Field(sa_type=LargeBinary)
    etag: str = Field(max_length=64)


Index(
    "ix_case_bodies_renderer",
    CaseBody.__table__.c.renderer,  # type: ignore[attr-defined]
    CaseBody.__table__.c.case_id,  # type: ignore[attr-defined]
)
"""Finds the bodies of other renderers by two ranges of it (before and after the running one's), which are empty
but after a deploy: a look at an index, not a scan of every body."""


class CaseBodyQueue(SQLModel, table=True):
    """Cases whose body is to be rendered, with the view version to render (filled by triggers)."""

    __tablename__ = "case_body_queue"  # type: ignore[assignment]

    case_id: str = Field(
        sa_column=Column(
            String(255),
            ForeignKey("cases.case_id", ondelete="CASCADE", name="fk_case_body_queue_case"),
            primary_key=True,
        )
    )
    view_version: int


_BODIES = CaseBody.__table__  # type: ignore[attr-defined]
_QUEUE = CaseBodyQueue.__table__  # type: ignore[attr-defined]


class Queued(NamedTuple):
    case_id: str
    view_version: int


class StoredBody(NamedTuple):
    case_id: str
    locale: str
    view_version: int
    renderer: str
    body: bytes
    etag: str


def queued(connection: Connection, *, limit: int) -> list[Queued]:
    """Up to ``limit`` queued cases."""
    rows = connection.execute(select(_QUEUE.c.case_id, _QUEUE.c.view_version).limit(limit))
    return [Queued(row[0], row[1]) for row in rows]


def stale(connection: Connection, *, renderer: str, limit: int) -> list[str]:
    """Up to ``limit`` cases with a body by another renderer than ``renderer`` (a deploy since)."""
    found: list[str] = []
    for other in (_BODIES.c.renderer < renderer, _BODIES.c.renderer > renderer):
        rows = connection.execute(select(_BODIES.c.case_id).where(other).limit(limit - len(found)))
        found += [row[0] for row in rows if row[0] not in found]
        if len(found) >= limit:
            break
    return found


def queue_length(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(_QUEUE)).scalar_one())


def save(connection: Connection, bodies: list[StoredBody], *, done: list[Queued]) -> None:
    """Save ``bodies`` (each replaces its case's bodies, in every language, unless one of a newer version is
    there) and take ``done`` off the queue, each only if its version is still the queued one (a change since
    queued the case again). Run it in a write transaction."""
    if bodies:
        insert = (sqlite.insert if connection.dialect.name == "sqlite" else postgresql.insert)(_BODIES)
        upsert = insert.on_conflict_do_update(
            index_elements=[_BODIES.c.case_id, _BODIES.c.locale],
            set_={name: insert.excluded[name] for name in ("view_version", "renderer", "body", "etag")},
            where=_BODIES.c.view_version <= insert.excluded.view_version,
        )
        connection.execute(upsert, [body._asdict() for body in bodies])
        for body in bodies:
            connection.execute(
                delete(_BODIES).where(
                    and_(
                        _BODIES.c.case_id == body.case_id,
                        _BODIES.c.locale != body.locale,
                        _BODIES.c.view_version <= body.view_version,
                    )
                )
            )
    for item in done:
        connection.execute(
            delete(_QUEUE).where(and_(_QUEUE.c.case_id == item.case_id, _QUEUE.c.view_version == item.view_version))
        )


def owners_locales(connection: Connection, case_ids: list[str]) -> dict[str, str]:
    """Each case's owner's stored language (a case whose owner is not a user has none here)."""
    cases, users = Case.__table__, User.__table__  # type: ignore[attr-defined]
    rows = connection.execute(
        select(cases.c.case_id, users.c.locale)
        .join(users, users.c.user_id == cases.c.user_id)
        .where(cases.c.case_id.in_(case_ids))
    )
    return {row[0]: row[1] for row in rows}
