"""What a user's case read reads, in Core queries (a read is the API's hottest path; the ORM's per-object work
costs several times the queries here).

:func:`case_access` is the one query a read needs before it can answer from a rendered copy: whose token this
is, whose case that is, and the case's view version (``cases.view_version``, moved by triggers whenever
anything the read shows changes; migration 0005). :func:`case_view` reads what the answer shows."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace
from typing import Any, NamedTuple

from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, Connection, Row, bindparam, select, text

from recovery.locales import DEFAULT_LOCALE
from recovery.models import CaseHandling
from store.api_tokens import hash_token
from store.cases import Case, CaseEvent, CaseHandlingRow
from store.db import UTCDateTime, utcnow
from store.ledger import RefundEntry
from store.ownership import OwnershipRequirement


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
    events: list[Row[Any]]
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
