"""What a user's case read reads, in Core queries (a read is the API's hottest path; the ORM's per-object work
costs several times the queries here).

:func:`case_access` is the one query a read needs before it can answer from a rendered copy: whose token this
is, whose case that is, and the case's view version (``cases.view_version``, moved by triggers whenever
anything the read shows changes; migration 0005). :func:`case_view` reads what the answer shows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple, cast

from sqlalchemy import (
    LABEL_STYLE_TABLENAME_PLUS_COL,
    Connection,
    Row,
    and_,
    bindparam,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.types import TypeEngine

from recovery.locales import DEFAULT_LOCALE
from recovery.models import CaseHandling
from store.api_tokens import hash_token
from store.cases import Case, CaseEvent, CaseHandlingRow
from store.db import UTCDateTime, utcnow
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


Record = SimpleNamespace
"""One table's columns of a joined row."""

_CASES = Case.__table__  # type: ignore[attr-defined]
_HANDLINGS = CaseHandlingRow.__table__  # type: ignore[attr-defined]
_OWNERSHIPS = OwnershipRequirement.__table__  # type: ignore[attr-defined]
_REFUNDS = RefundEntry.__table__  # type: ignore[attr-defined]
_EVENT_ROWS = CaseEvent.__table__  # type: ignore[attr-defined]
_PARTS = (_CASES, _HANDLINGS, _OWNERSHIPS, _REFUNDS)
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
    return None if values["case_id"] is None else Record(**values)


def case_view(connection: Connection, *, case_id: str) -> CaseView | None:
    """The case's row, timeline, handling, ownership requirement and refund (two queries); None when there is no
    such case. Run it in one transaction for one consistent view."""
    params = {"case_id": case_id}
    row = connection.execute(_ONE_ROW, params).first()
    if row is None:
        return None
    case, handling, owned, refund = (_part(row._mapping, table) for table in _PARTS)
    assert case is not None
    fields = CaseHandling.model_fields
    return CaseView(
        case=case,
        events=list(connection.execute(_EVENTS, params)),
        handling=None
        if handling is None
        else CaseHandling.model_validate({k: v for k, v in vars(handling).items() if k in fields}),
        ownership=owned,
        refund=refund,
    )


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
                None if t is None else t.result_processor(self._dialect, column[1])
                for t, column in zip(self._types, cursor.description, strict=True)
            ]
        return processors


def _converted(
    row: Sequence[Any], processors: Sequence[Callable[[Any], Any] | None], start: int, end: int
) -> list[Any]:
    return [
        value if fn is None or value is None else fn(value)
        for value, fn in zip(row[start:end], processors[start:end], strict=True)
    ]


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
_CASE_PART = (
    select(*_ACCESS_COLUMNS, *_SHOWN_PARTS, *(null() for _ in _EVENT_ROWS.columns))
    .select_from(
        _USERS.outerjoin(_ASKED, _ASKED.c.case_id == bindparam("case_id"))
        .outerjoin(
            _SHOWN,
            and_(
                _SHOWN.c.case_id == _ASKED.c.case_id,
                _ASKED.c.user_id == _USERS.c.user_id,
                _ASKED.c.view_version != bindparam("kept_version"),
            ),
        )
        .outerjoin(_HANDLINGS, _HANDLINGS.c.case_id == _SHOWN.c.case_id)
        .outerjoin(_OWNERSHIPS, _OWNERSHIPS.c.case_id == _SHOWN.c.case_id)
        .outerjoin(_REFUNDS, _REFUNDS.c.case_id == _SHOWN.c.case_id)
    )
    .where(_USERS.c.token_hash == bindparam("token_hash"))
)
_TIMELINE_PART = (
    select(
        *(null() for _ in _ACCESS_COLUMNS),
        *(null() for part in _SHOWN_PARTS for _ in part.columns),
        _EVENT_ROWS,
    )
    .select_from(
        _USERS.join(
            _ASKED,
            and_(
                _ASKED.c.case_id == bindparam("case_id"),
                _ASKED.c.user_id == _USERS.c.user_id,
                _ASKED.c.view_version != bindparam("kept_version"),
            ),
        ).join(_EVENT_ROWS, _EVENT_ROWS.c.case_id == _ASKED.c.case_id)
    )
    .where(_USERS.c.token_hash == bindparam("token_hash"))
)
_READ = union_all(_CASE_PART, _TIMELINE_PART)
""":data:`_ACCESS` and, when the case is the caller's and its view version is not ``kept_version`` (the one of
the copy the reader keeps; -1: none), :data:`_VIEW`, in one statement (one snapshot): a read that renders anew
costs one round trip, not two. The caller's row (with the case's, its handling, ownership requirement and refund)
and each timeline entry's row come apart, the rest of each row null: the case's columns are not repeated on
every entry's row."""
_ACCESS_TYPES: tuple[TypeEngine[Any] | None, ...] = (None, UTCDateTime(), None, None, None, None)


_PARTS_WIDTH = sum(len(table.columns) for table in _PARTS)


class CaseReads:
    """:func:`case_access` and :func:`case_view` as statements for one database's driver (:class:`Statement`):
    run :attr:`read` (or :attr:`access`, :attr:`view`) on its cursor, then make their answers with
    :meth:`read_of` (:meth:`access_of`, :meth:`view_of`)."""

    def __init__(self, dialect: Dialect) -> None:
        self.access = Statement(_ACCESS, dialect, _ACCESS_TYPES)
        self.view = Statement(_VIEW, dialect, _VIEW_TYPES)
        self.read = Statement(_READ, dialect, [*_ACCESS_TYPES, *_VIEW_TYPES])
        self._spans: list[tuple[list[str], int, int, int]] = []
        """Each table's column names, where its columns start and end among the case's and its parts' columns
        (the timeline's among its own), and where its key is."""
        at = 0
        for table in _VIEW_TABLES:
            names = [c.name for c in table.columns]
            key = names.index("id" if table is _EVENT_ROWS else "case_id")
            self._spans.append((names, at, at + len(names), at + key))
            at = 0 if table is _PARTS[-1] else at + len(names)

    def access_params(self, *, token: str, case_id: str) -> Sequence[Any] | dict[str, Any]:
        return self.access.params(case_id=case_id, token_hash=hash_token(token))

    def read_params(self, *, token: str, case_id: str, kept_version: int) -> Sequence[Any] | dict[str, Any]:
        return self.read.params(case_id=case_id, token_hash=hash_token(token), kept_version=kept_version)

    def access_of(self, cursor: Any, row: Sequence[Any] | None) -> CaseAccess | None:
        """The answer of :attr:`access` from its ``cursor`` and the row it fetched."""
        if row is None:
            return None
        return self._access(self.access.processors(cursor), row)

    def read_of(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> tuple[CaseAccess | None, CaseView | None]:
        """The answer of :attr:`read` from its ``cursor`` and the rows it fetched: who asks, and the case's view
        when the statement read it (the case is the caller's and its version not the kept one)."""
        head = next((row for row in rows if row[0] is not None), None)
        if head is None:
            return None, None
        processors = self.read.processors(cursor)
        at = len(_ACCESS_TYPES)
        return self._access(processors, head), self._view(processors, head, at, processors, rows, at + _PARTS_WIDTH)

    def view_of(self, cursor: Any, rows: Sequence[Sequence[Any]]) -> CaseView | None:
        """The view from the rows of :attr:`view` its ``cursor`` fetched (several refunds of one case repeat its
        timeline: each entry is taken once, with the first row's refund, as :func:`case_view` takes one)."""
        if not rows:
            return None
        processors = self.view.processors(cursor)
        return self._view(processors, rows[0], 0, processors, rows, _PARTS_WIDTH)

    @staticmethod
    def _access(processors: Sequence[Callable[[Any], Any] | None], row: Sequence[Any]) -> CaseAccess:
        values = _converted(row, processors, 0, len(_ACCESS_TYPES))
        return CaseAccess(values[0], values[1], bool(values[2]), values[3], values[4], values[5] or DEFAULT_LOCALE)

    def _view(
        self,
        processors: Sequence[Callable[[Any], Any] | None],
        first: Sequence[Any],
        at: int,
        event_processors: Sequence[Callable[[Any], Any] | None],
        rows: Sequence[Sequence[Any]],
        events_at: int,
    ) -> CaseView | None:
        """The view: the case's and its parts' columns in ``first`` from ``at`` on, the timeline's in ``rows`` from
        ``events_at`` on; None when the case's columns are null."""
        case, handling, owned, refund = (
            None
            if first[at + key] is None
            else Record(**dict(zip(names, _converted(first, processors, at + start, at + end), strict=True)))
            for names, start, end, key in self._spans[:4]
        )
        if case is None:
            return None
        names, start, end, key = self._spans[4]
        timeline: dict[Any, Sequence[Any]] = {}
        for row in rows:
            if row[events_at + key] is not None:
                timeline.setdefault(row[events_at + key], row)
        events = [
            Record(
                **dict(
                    zip(
                        names,
                        _converted(timeline[n], event_processors, events_at + start, events_at + end),
                        strict=True,
                    )
                )
            )
            for n in sorted(timeline)
        ]
        fields = CaseHandling.model_fields
        return CaseView(
            case=case,
            events=events,
            handling=None
            if handling is None
            else CaseHandling.model_validate({k: v for k, v in vars(handling).items() if k in fields}),
            ownership=owned,
            refund=refund,
        )
