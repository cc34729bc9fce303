"""What a user's case read reads, in Core queries (a read is the API's hottest path; the ORM's per-object work
costs several times the queries here).

:func:`case_access` is the one query a read needs before it can answer from a rendered copy: whose token this
is, whose case that is, and the case's view version (``cases.view_version``, moved by triggers whenever
anything the read shows changes; migration 0005). :func:`case_view` reads what the answer shows."""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from enum import Enum
from typing import Any, NamedTuple, Protocol, cast

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Connection,
    Row,
    and_,
    bindparam,
    func,
    select,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import Integer, String, TypeDecorator, TypeEngine

from recovery.locales import DEFAULT_LOCALE
from recovery.models import CaseHandling
from store.api_tokens import hash_token
from store.case_bodies import CaseBody
from store.cases import Case, CaseEvent, CaseHandlingRow
from store.db import StrEnumType, UTCDateTime, utcnow
from store.ledger import RefundEntry
from store.ownership import OwnershipRequirement
from store.users import User


class CaseAccess(NamedTuple):
    user_id: str
    token_expires_at: datetime | None
    token_revoked: bool
    case_owner: str | None
    """None: no such case."""
    view_version: int | None
    locale: str = DEFAULT_LOCALE
    """The user's stored language."""

    @property
    def live(self) -> bool:
        """The token is neither revoked nor expired."""
        return not self.token_revoked and (self.token_expires_at is None or self.token_expires_at > utcnow())


_ACCESS = text(
    "SELECT u.user_id, u.token_expires_at, u.token_revoked_at IS NOT NULL, c.user_id, c.view_version, u.locale "
    "FROM users u LEFT JOIN cases c ON c.case_id = :case_id WHERE u.token_hash = :token_hash"
).columns(token_expires_at=UTCDateTime())


def case_access(connection: Connection, *, token: str, case_id: str) -> CaseAccess | None:
    """The token's user (and their language) and the case's owner and view version; None when no user has this
    token."""
    row = connection.execute(_ACCESS, {"case_id": case_id, "token_hash": hash_token(token)}).first()
    if row is None:
        return None
    return CaseAccess(row[0], row[1], bool(row[2]), row[3], row[4], row[5] or DEFAULT_LOCALE)


class CaseView(NamedTuple):
    """A case and what its read shows, as records with the columns as attributes (like the ORM's objects)."""

    case: Record
    events: Sequence[Row[Any] | Record]
    handling: CaseHandling | None
    ownership: Record | None
    refund: Record | None


class Record(Protocol):
    """One table's columns of a joined row, as attributes: a named tuple of the table's :data:`_RECORDS` class."""

    def __getattr__(self, name: str) -> Any: ...


_CASES = Case.__table__  # type: ignore[attr-defined]
_HANDLINGS = CaseHandlingRow.__table__  # type: ignore[attr-defined]
_OWNERSHIPS = OwnershipRequirement.__table__  # type: ignore[attr-defined]
_REFUNDS = RefundEntry.__table__  # type: ignore[attr-defined]
_EVENT_ROWS = CaseEvent.__table__  # type: ignore[attr-defined]
_PARTS = (_CASES, _HANDLINGS, _OWNERSHIPS, _REFUNDS)
_RECORDS: dict[str, Any] = {
    table.name: namedtuple(f"{table.name}_record", [c.name for c in table.columns])  # type: ignore[misc]
    for table in (*_PARTS, _EVENT_ROWS)
}
"""A named tuple class per table a view reads (a tuple is made in a fifth of the time of a namespace, and the
reads make a dozen per case)."""
_ONE_ROW = (
    select(*_PARTS)
    .select_from(
        _CASES.outerjoin(_HANDLINGS, _HANDLINGS.c.case_id == _CASES.c.case_id)
        .outerjoin(_OWNERSHIPS, _OWNERSHIPS.c.case_id == _CASES.c.case_id)
        .outerjoin(_REFUNDS, _REFUNDS.c.case_id == _CASES.c.case_id)
    )
    .where(_CASES.c.case_id == bindparam("case_id"))
    .set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL)
    .limit(1)
)
_EVENTS = select(_EVENT_ROWS).where(_EVENT_ROWS.c.case_id == bindparam("case_id")).order_by(_EVENT_ROWS.c.id)


def _part(mapping: Any, table: Any) -> Record | None:
    values = {c.name: mapping[f"{table.name}_{c.name}"] for c in table.columns}
    return None if values["case_id"] is None else _RECORDS[table.name](**values)


def case_view(connection: Connection, *, case_id: str) -> CaseView | None:
    """The case's row, timeline, handling, ownership requirement and refund (two queries); None when there is no
    such case. Run it in one transaction for one consistent view."""
    params = {"case_id": case_id}
    row = connection.execute(_ONE_ROW, params).first()
    if row is None:
        return None
    case, handling, owned, refund = [_part(row._mapping, table) for table in _PARTS]
    assert case is not None
    return CaseView(
        case=case,
        events=list(connection.execute(_EVENTS, params)),
        handling=_handling(handling),
        ownership=owned,
        refund=refund,
    )


def _handling(row: Record | None) -> CaseHandling | None:
    """The case's handling from its ``case_handling`` row's columns (the row has more than the model)."""
    if row is None:
        return None
    fields = CaseHandling.model_fields
    return CaseHandling.model_validate({k: v for k, v in row._asdict().items() if k in fields})


# --- the same reads on the driver's own connection ------------------------------------------------


class Statement:
    """A statement compiled once for one database and run on the driver's own cursor (DB-API), each result column
    converted by its SQLAlchemy type as a Core execution converts it: the read path's queries without SQLAlchemy's
    per-execution work (about a tenth of a millisecond each, more than SQLite takes to answer them)."""

    def __init__(self, statement: ClauseElement, dialect: Dialect, types: Sequence[TypeEngine[Any] | None]) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = str(compiled)
        self._defaults = {name: bind.value for name, bind in compiled.binds.items()}
        self._names = compiled.positiontup
        self._dialect = dialect
        self._types = [None if t is None else t.dialect_impl(dialect) for t in types]
        self._processors: list[Callable[[Any], Any] | None] | None = None
        self._spans: dict[tuple[int, int], Conversions] = {}

    def params(self, **values: Any) -> Sequence[Any] | dict[str, Any]:
        """The driver's parameters: positional (SQLite's ``?``) or by name (psycopg's ``%(name)s``)."""
        merged = {**self._defaults, **values}
        return merged if self._names is None else tuple(merged[name] for name in self._names)

    def processors(self, cursor: Any) -> list[Callable[[Any], Any] | None]:
        """Each result column's conversion (None: none), by the cursor's ``description`` of the statement, read
        once (psycopg makes its ``description`` anew at each reading, at a cost of microseconds per column)."""
        processors = self._processors
        if processors is None:  # the drivers' type codes of a statement's columns do not change
            processors = self._processors = [
                _processor(t, self._dialect, column[1])
                for t, column in zip(self._types, cursor.description, strict=True)
            ]
        return processors

    def conversions(self, cursor: Any, start: int, end: int) -> Conversions:
        """The conversions of the result columns ``start`` to ``end`` (:func:`_converted`), worked out once."""
        key = (start, end)
        found = self._spans.get(key)
        if found is None:
            found = self._spans[key] = _conversions(self.processors(cursor), start, end)
        return found


def _processor(type_: TypeEngine[Any] | None, dialect: Dialect, coltype: Any) -> Callable[[Any], Any] | None:
    """A result column's conversion: its type's own, but for the two the reads convert most, made cheaper with
    the same results (an enum by a lookup; SQLite's naive UTC text parsed as UTC at once, where the type parses it,
    then gives it its zone)."""
    if type_ is None:
        return None
    if isinstance(type_, StrEnumType):
        return _enum_of(type_.enum_cls)
    if isinstance(type_, UTCDateTime) and dialect.name == "sqlite":
        return _utc
    return type_.result_processor(dialect, coltype)


Conversions = tuple[tuple[int, Callable[[Any], Any]], ...]
"""The columns of a span of a row that have a conversion: (offset in the span, conversion)."""


def _conversions(processors: Sequence[Callable[[Any], Any] | None], start: int, end: int) -> Conversions:
    return tuple((i, fn) for i, fn in enumerate(processors[start:end]) if fn is not None)


def _converted(row: Sequence[Any], conversions: Conversions, start: int, end: int) -> list[Any]:
    """``row[start:end]`` with each column converted by its type (most columns have no conversion: only those
    that have one are visited)."""
    values = list(row[start:end])
    for i, fn in conversions:
        value = values[i]
        if value is not None:
            values[i] = fn(value)
    return values


_VIEW_TABLES = (*_PARTS, _EVENT_ROWS)
_VIEW_TYPES = [c.type for table in _VIEW_TABLES for c in table.columns]


def _view_joined(left: Any, case: Any) -> Any:
    """``left`` joined to what a case's view shows of ``case`` (the case's table or an alias)."""
    return (
        left.outerjoin(_HANDLINGS, _HANDLINGS.c.case_id == case.c.case_id)
        .outerjoin(_OWNERSHIPS, _OWNERSHIPS.c.case_id == case.c.case_id)
        .outerjoin(_REFUNDS, _REFUNDS.c.case_id == case.c.case_id)
        .outerjoin(_EVENT_ROWS, _EVENT_ROWS.c.case_id == case.c.case_id)
    )


_VIEW = (
    select(*_PARTS, _EVENT_ROWS)
    .select_from(_view_joined(_CASES, _CASES))
    .where(_CASES.c.case_id == bindparam("case_id"))
)
"""A case's row, handling, ownership requirement, refund and timeline in one statement (one snapshot, no
transaction to open): one row per timeline entry, the case's columns repeated (the entries are put in order here:
two to eight rows, cheaper than SQLite's temporary B-tree for an ORDER BY)."""

_USERS = User.__table__  # type: ignore[attr-defined]
_ASKED = _CASES.alias("asked")
_SHOWN = _CASES.alias("shown")
_ACCESS_COLUMNS = (
    _USERS.c.user_id,
    _USERS.c.token_expires_at,
    _USERS.c.token_revoked_at.is_not(None),
    _ASKED.c.user_id,
    _ASKED.c.view_version,
    _USERS.c.locale,
)
_SHOWN_PARTS = (_SHOWN, *_PARTS[1:])


class _JsonRows(FunctionElement[Any]):
    """The rows of its columns as one JSON array of arrays (NULL over no rows on PostgreSQL, ``[]`` on SQLite)."""

    name = "json_rows"
    inherit_cache = True


@compiles(_JsonRows, "sqlite")
def _json_rows_sqlite(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_group_array(json_array({compiler.process(element.clauses, **kw)}))"


@compiles(_JsonRows, "postgresql")
def _json_rows_postgresql(element: _JsonRows, compiler: SQLCompiler, **kw: Any) -> str:
    return f"json_agg(json_build_array({compiler.process(element.clauses, **kw)}))"


_TIMELINE = select(_JsonRows(*_EVENT_ROWS.columns)).where(_EVENT_ROWS.c.case_id == _SHOWN.c.case_id).scalar_subquery()
"""The case's timeline, one JSON array per entry (its columns in the table's order), in one value: the timeline in
the case's own row, not a row per entry as wide as the case's."""


def _json_array(value: Any) -> list[Any]:
    """A JSON array as the driver gives it: text (SQLite), parsed (psycopg), or NULL (an aggregate of no rows)."""
    if value is None:
        return []
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    assert isinstance(parsed, list)
    return parsed


def _utc(value: str) -> datetime:
    """A timestamp as JSON has it (SQLite's naive UTC text; PostgreSQL's ISO 8601 with its offset) as
    :class:`store.db.UTCDateTime` reads it: aware, in UTC. Naive text is parsed with a UTC offset added, not
    parsed and then given its zone: ``replace(tzinfo=...)`` costs several times the parsing."""
    if len(value) in (19, 26) and value[10] == " ":  # SQLite's naive UTC text, as the engine writes it
        return datetime.fromisoformat(value + "+00:00")
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _enum_of(enum_cls: type[Enum]) -> Callable[[Any], Any]:
    """An enum's member by its value: a dictionary lookup (calling the enum class costs twenty times more)."""
    return {member.value: member for member in enum_cls}.__getitem__


def _json_conversion(column: Any) -> Callable[[Any], Any] | None:
    """What makes a timeline column's value in :data:`_TIMELINE` (a JSON number or string) the value its type
    reads from the table: None when JSON already has it."""
    if isinstance(column.type, UTCDateTime):
        return _utc
    if isinstance(column.type, StrEnumType):
        return _enum_of(column.type.enum_cls)
    plain = column.type.impl_instance if isinstance(column.type, TypeDecorator) else column.type
    if isinstance(plain, Integer | String):  # Text is a String
        return None
    raise TypeError(f"{column}: no conversion from JSON for {column.type!r}; add one to _json_conversion")


_TIMELINE_CONVERSIONS: Conversions = tuple(
    (i, fn) for i, column in enumerate(_EVENT_ROWS.columns) if (fn := _json_conversion(column)) is not None
)

_BODIES = CaseBody.__table__  # type: ignore[attr-defined]
_CALLERS_OTHER_VERSION = and_(_ASKED.c.user_id == _USERS.c.user_id, _ASKED.c.view_version != bindparam("kept_version"))
"""The case is the caller's, and not of the version the reader keeps."""
_KEPT_BODY = and_(
    _BODIES.c.case_id == _ASKED.c.case_id,
    _CALLERS_OTHER_VERSION,
    _BODIES.c.locale == func.coalesce(bindparam("locale", type_=String()), _USERS.c.locale),
    _BODIES.c.view_version == _ASKED.c.view_version,
    _BODIES.c.renderer == bindparam("renderer", type_=String()),
)
_ACCESSED = _USERS.outerjoin(_ASKED, _ASKED.c.case_id == bindparam("case_id")).outerjoin(_BODIES, _KEPT_BODY)
_TO_RENDER = and_(_SHOWN.c.case_id == _ASKED.c.case_id, _CALLERS_OTHER_VERSION, _BODIES.c.case_id.is_(None))
"""The case is read to be rendered: the caller's, not kept by the reader, and no body of its version kept."""

_READ = (
    select(*_ACCESS_COLUMNS, _BODIES.c.body, _BODIES.c.etag, *_SHOWN_PARTS, _TIMELINE)
    .select_from(
        _ACCESSED.outerjoin(_SHOWN, _TO_RENDER)
        .outerjoin(_HANDLINGS, _HANDLINGS.c.case_id == _SHOWN.c.case_id)
        .outerjoin(_OWNERSHIPS, _OWNERSHIPS.c.case_id == _SHOWN.c.case_id)
        .outerjoin(_REFUNDS, _REFUNDS.c.case_id == _SHOWN.c.case_id)
    )
    .where(_USERS.c.token_hash == bindparam("token_hash"))
)
""":data:`_ACCESS` and, when the case is the caller's and its view version is not ``kept_version`` (the one of
the copy the reader keeps; -1: none), its body kept rendered (``store.case_bodies``) at that version, in the
language asked (``locale``; NULL: the user's) by ``renderer``, or else :data:`_VIEW`, in one statement (one
snapshot): a read costs one round trip. One row (one per refund of the case, each with the same timeline), the
timeline in its last column (:data:`_TIMELINE`)."""
_READ_ACCESS = (
    select(*_ACCESS_COLUMNS, _BODIES.c.body, _BODIES.c.etag)
    .select_from(_ACCESSED)
    .where(_USERS.c.token_hash == bindparam("token_hash"))
)
""":data:`_READ` without the case's view: for a database across the network (PostgreSQL), where a read whose body
is kept (most, once the refresher has caught up) then costs the backend about a third less, and one that must
render reads the view with a second statement (:data:`_VIEW`). (With the view in a lateral subquery of
:data:`_READ` behind a one-time filter, PostgreSQL did not read the view, but the wider statement still cost it
half as much again.)"""
_ACCESS_TYPES: tuple[TypeEngine[Any] | None, ...] = (None, UTCDateTime(), None, None, None, None)


class KeptBody(NamedTuple):
    """A case's body kept rendered (``store.case_bodies``), of the view version the read found."""

    body: bytes
    etag: str


class ReadResult(NamedTuple):
    access: CaseAccess | None
    """None: no user has the token."""
    view: CaseView | None
    """The case read to be rendered; None when it is not the caller's, or its copy is kept (here or by the
    reader)."""
    body: KeptBody | None


_PARTS_WIDTH = sum(len(table.columns) for table in _PARTS)
_PARTS_TYPES = _VIEW_TYPES[:_PARTS_WIDTH]


class CaseReads:
    """:func:`case_access` and :func:`case_view` as statements for one database's driver (:class:`Statement`):
    run :attr:`read` (or :attr:`view`) on its cursor, then make its answer with :meth:`read_of`
    (:meth:`view_of`)."""

    def __init__(self, dialect: Dialect, *, view_in_read: bool = True) -> None:
        self.view = Statement(_VIEW, dialect, _VIEW_TYPES)
        self.view_in_read = view_in_read
        """:attr:`read` reads the case's view too (:data:`_READ`), else only who asks and the kept body
        (:data:`_READ_ACCESS`)."""
        if view_in_read:
            self.read = Statement(_READ, dialect, [*_ACCESS_TYPES, None, None, *_PARTS_TYPES, None])
        else:
            self.read = Statement(_READ_ACCESS, dialect, [*_ACCESS_TYPES, None, None])
        self._spans: list[tuple[Any, int, int, int]] = []
        """Each table's record class (:data:`_RECORDS`), where its columns start and end among the case's and its
        parts' columns (the timeline's among its own), and where its key is."""
        at = 0
        for table in _VIEW_TABLES:
            names = [c.name for c in table.columns]
            key = names.index("id" if table is _EVENT_ROWS else "case_id")
            self._spans.append((_RECORDS[table.name], at, at + len(names), at + key))
            at = 0 if table is _PARTS[-1] else at + len(names)

    def read_params(
        self, *, token: str, case_id: str, kept_version: int, locale: str | None, renderer: str
    ) -> Sequence[Any] | dict[str, Any]:
        return self.read.params(
            case_id=case_id, token_hash=hash_token(token), kept_version=kept_version, locale=locale, renderer=renderer
        )

    def read_of(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> ReadResult:
        """The answer of :attr:`read` from its ``cursor`` and the rows it fetched: who asks, and the case's kept
        body or its view when the statement read one (the case is the caller's and its version not the kept
        one)."""
        if not rows:
            return ReadResult(None, None, None)
        head = rows[0]
        at = len(_ACCESS_TYPES)
        access = self._access(self.read, cursor, head)
        if head[at] is not None:
            return ReadResult(access, None, KeptBody(bytes(head[at]), head[at + 1]))
        if not self.view_in_read:
            return ReadResult(access, None, None)
        view = self._view(self.read, cursor, head, at + 2)
        if view is None:
            return ReadResult(access, None, None)
        record, start, end, key = self._spans[4]
        entries = sorted(_json_array(head[-1]), key=lambda entry: entry[key])  # by id: the order they were written
        events = [record._make(_converted(entry, _TIMELINE_CONVERSIONS, start, end)) for entry in entries]
        return ReadResult(access, view._replace(events=events), None)

    def view_of(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> CaseView | None:
        """The view from the rows of :attr:`view` its ``cursor`` fetched (several refunds of one case repeat its
        timeline: each entry is taken once, with the first row's refund, as :func:`case_view` takes one)."""
        if not rows:
            return None
        view = self._view(self.view, cursor, rows[0], 0)
        if view is None:
            return None
        record, start, end, key = self._spans[4]
        start, end, key = _PARTS_WIDTH + start, _PARTS_WIDTH + end, _PARTS_WIDTH + key
        timeline: dict[Any, Sequence[Any]] = {}
        for row in rows:
            if row[key] is not None:
                timeline.setdefault(row[key], row)
        conversions = self.view.conversions(cursor, start, end)
        events = [record._make(_converted(timeline[n], conversions, start, end)) for n in sorted(timeline)]
        return view._replace(events=events)

    @staticmethod
    def _access(statement: Statement, cursor: Any, row: Sequence[Any]) -> CaseAccess:
        width = len(_ACCESS_TYPES)
        values = _converted(row, statement.conversions(cursor, 0, width), 0, width)
        return CaseAccess(values[0], values[1], bool(values[2]), values[3], values[4], values[5] or DEFAULT_LOCALE)

    def _view(self, statement: Statement, cursor: Any, first: Sequence[Any], at: int) -> CaseView | None:
        """The view without its timeline: the case's and its parts' columns in ``first`` from ``at`` on; None when
        the case's columns are null."""
        parts: list[Record | None] = []
        for record, start, end, key in self._spans[:4]:
            if first[at + key] is None:
                parts.append(None)
                continue
            conversions = statement.conversions(cursor, at + start, at + end)
            parts.append(record._make(_converted(first, conversions, at + start, at + end)))
        case, handling, owned, refund = parts
        if case is None:
            return None
        return CaseView(case=case, events=[], handling=_handling(handling), ownership=owned, refund=refund)
