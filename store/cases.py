"""Cases and their timelines: one case per deposit, its status and amounts, and the events that explain
each change (one event per key, so writing is idempotent)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import Index, Text, UniqueConstraint, and_, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.i18n import N_, Message, Stored, message_json, render_ref
from recovery.locales import DEFAULT_LOCALE
from recovery.models import CaseHandling, CaseStatus, CaseUpdate, MessageRef, Pattern, Settlement, Transfer
from recovery.names import STATUS_NAMES
from recovery.notifications import RERUN_TYPE, CaseOut, EventOut
from store import notifications
from store.db import Amount, StrEnumType, UTCDateTime, begin_write, begin_write_unless_exists, utcnow

CLAIM_RECEIVED = N_("Claim received")


class CaseBase(SQLModel):
    chain: str | None = Field(default=None, max_length=64)
    tx_hash: str = Field(index=True, max_length=130)
    log_index: int | None = None


class Case(CaseBase, table=True):
    __tablename__ = "cases"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    user_id: str = Field(index=True, max_length=128)
    status: CaseStatus = Field(default=CaseStatus.RECEIVED, sa_type=StrEnumType(CaseStatus))
    pattern: Pattern | None = Field(default=None, sa_type=StrEnumType(Pattern))
    reason: str = Field(default="", sa_type=Text)
    reason_id: str | None = Field(default=None, sa_type=Text)
    """The reason's message id (docs/i18n.md), rendered in the reader's language; None: ``reason`` is English only."""
    reason_params: str | None = Field(default=None, sa_type=Text)
    """The reason's values as JSON (``recovery.models.MessageRef.params``)."""
    asset: str | None = Field(default=None, max_length=64)
    token_address: str | None = Field(default=None, max_length=128)
    decimals: int | None = None
    amount: int | None = Field(default=None, sa_type=Amount)
    fee: int | None = Field(default=None, sa_type=Amount)
    gas: int | None = Field(default=None, sa_type=Amount)
    credited: int | None = Field(default=None, sa_type=Amount)
    fee_usd: str | None = Field(default=None, max_length=64)
    quote_json: str | None = Field(default=None, sa_type=Text)
    topup_tx_hash: str | None = Field(default=None, max_length=130)
    sweep_tx_hash: str | None = Field(default=None, max_length=130)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    view_version: int = Field(default=0)
    """Moves (by database triggers, migration 0005) whenever anything a case read shows changes."""


Index("ix_cases_user_created", Case.__table__.c.user_id, Case.__table__.c.created_at)  # type: ignore[attr-defined]


class CaseEvent(SQLModel, table=True):
    """One line of a case's timeline; ``(case_id, key)`` is unique so appending is idempotent."""

    __tablename__ = "case_events"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("case_id", "key", name="uq_case_events_case_key"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=255)
    key: str = Field(max_length=255)
    status: CaseStatus = Field(sa_type=StrEnumType(CaseStatus))
    message: str = Field(default="", sa_type=Text)
    """The English text (what the staff CLI, old readers and events written before message ids read)."""
    message_id: str | None = Field(default=None, sa_type=Text)
    """The message id, rendered in the reader's language with ``message_params``; None: ``message`` only."""
    message_params: str | None = Field(default=None, sa_type=Text)
    """The message's values as JSON (``recovery.models.MessageRef.params``)."""
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """Until when the case waits for what this event asks of the user, if it asks anything."""


class CaseHandlingRow(SQLModel, table=True):
    """Who handles a manual case and by when (one row per case, written with the update that changes it)."""

    __tablename__ = "case_handling"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    tier: str = Field(max_length=32)
    assigned_to: str | None = Field(default=None, max_length=128)
    approvals_needed: int = 1
    sla_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_target_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_deadline_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    sla_state: str = Field(default="on_track", max_length=32)
    paused: bool = False
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class CaseExists(Exception):
    def __init__(self, existing: Case) -> None:
        super().__init__(f"case {existing.case_id!r} already exists")
        self.existing = existing


class CaseNotFound(KeyError):
    def __init__(self, case_id: str) -> None:
        super().__init__(case_id)
        self.case_id = case_id

    def __str__(self) -> str:
        return f"case {self.case_id!r} not found"


def get_case(session: Session, *, case_id: str) -> Case | None:
    return session.get(Case, case_id)


def create_case(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    chain: str | None,
    tx_hash: str,
    log_index: int | None,
    deposit: Transfer | None = None,
    note_key: str | None = None,
    note: str = "",
) -> Case:
    """Insert a RECEIVED case and its "received" timeline event. Raises :class:`CaseExists`.

    ``deposit``, when the claim already resolved to a transfer, pre-fills asset and amount. ``note_key``
    adds a second RECEIVED event in the same transaction (who opened the case, and why).
    """
    existing_case = begin_write_unless_exists(session, Case, case_id)
    if existing_case is not None:
        raise CaseExists(existing_case)
    now = utcnow()
    case = Case(
        case_id=case_id,
        user_id=user_id,
        chain=chain,
        tx_hash=tx_hash,
        log_index=log_index,
        status=CaseStatus.RECEIVED,
        created_at=now,
        updated_at=now,
    )
    if deposit is not None:
        case.asset = deposit.asset
        case.token_address = deposit.token_address
        case.decimals = deposit.decimals
        case.amount = deposit.amount
    session.add(case)
    _add_event(
        session,
        case,
        key="received",
        status=CaseStatus.RECEIVED,
        message=CLAIM_RECEIVED,
        at=now,
        text=MessageRef(msgid=CLAIM_RECEIVED),
    )
    if note_key is not None:
        _add_event(session, case, key=note_key, status=CaseStatus.RECEIVED, message=note, at=now)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.get(Case, case_id)
        if existing is None:
            raise
        raise CaseExists(existing) from None
    session.refresh(case)
    return case


SelectT = TypeVar("SelectT", bound=Any)


class CaseFilter(NamedTuple):
    """Which of a user's cases a list shows: statuses (any, when empty) and a creation window [from, to)."""

    statuses: tuple[CaseStatus, ...] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None


ALL_CASES = CaseFilter()


def list_cases(
    session: Session,
    *,
    user_id: str,
    limit: int = 50,
    after: tuple[datetime, str] | None = None,
    where: CaseFilter = ALL_CASES,
) -> list[Case]:
    """The user's cases, newest first; ``after`` the (created_at, case_id) of the last one of the previous
    page (keyset paging: stable while cases are added, and as fast on the last page as on the first)."""
    statement = _filtered(select(Case), user_id, where)
    if after is not None:
        at, case_id = after
        statement = statement.where(
            or_(col(Case.created_at) < at, and_(col(Case.created_at) == at, col(Case.case_id) < case_id))
        )
    statement = statement.order_by(col(Case.created_at).desc(), col(Case.case_id).desc()).limit(limit)
    return list(session.exec(statement).all())


def count_cases(session: Session, *, user_id: str, where: CaseFilter = ALL_CASES) -> int:
    return session.exec(_filtered(select(func.count()).select_from(Case), user_id, where)).one()


def _filtered(statement: SelectT, user_id: str, where: CaseFilter) -> SelectT:
    statement = statement.where(Case.user_id == user_id)
    if where.statuses:
        statement = statement.where(col(Case.status).in_(where.statuses))
    if where.created_from is not None:
        statement = statement.where(col(Case.created_at) >= where.created_from)
    if where.created_to is not None:
        statement = statement.where(col(Case.created_at) < where.created_to)
    return statement


def delete_case(session: Session, *, case_id: str) -> bool:
    """Remove a case and its timeline. Only to undo a case whose workflow could not be started."""
    begin_write(session)
    case = session.get(Case, case_id)
    if case is None:
        session.rollback()
        return False
    for ev in session.exec(select(CaseEvent).where(CaseEvent.case_id == case_id)).all():
        session.delete(ev)
    notifications.discard_undelivered(session, case_id=case_id)
    session.delete(case)
    session.commit()
    return True


CREDITED_EVENT = "credited"

_PLAIN_UPDATE_FIELDS = (
    "pattern",
    "reason",
    "chain",
    "asset",
    "token_address",
    "decimals",
    "amount",
    "topup_tx_hash",
    "sweep_tx_hash",
)


def apply_case_update(
    session: Session, *, update: CaseUpdate, also: Callable[[Session, Case], None] | None = None
) -> bool:
    """Apply ``update`` and append its timeline event in one transaction, once per event key.

    Returns False (and changes nothing) when the event key was already recorded for the case.
    ``also(session, case)`` adds rows that belong to the same change (the fee ledger's entries), in the same
    transaction; it is not called when the case is closed or the key was recorded. Fields left ``None`` are
    kept. A case in a terminal status (COMPLETED, REJECTED) is final: an update
    after it changes nothing and is recorded on the timeline as a re-run's report. Raises
    :class:`CaseNotFound` for an unknown case. What was credited is not an update: only the settlement
    writes it (:func:`add_completion`).
    """
    begin_write(session)
    case = session.get(Case, update.case_id, with_for_update=True)  # PostgreSQL: one writer of a case at a time
    if case is None:
        session.rollback()
        raise CaseNotFound(update.case_id)
    seen = session.exec(
        select(CaseEvent.id).where(CaseEvent.case_id == update.case_id, CaseEvent.key == update.event.key)
    ).first()
    if seen is not None:
        session.rollback()
        return False

    now = utcnow()
    if case.status.terminal:
        # final: a re-run (a Reset in the Web UI, say) rewrites nothing; its step is on the timeline as such
        _add_event(
            session,
            case,
            key=update.event.key,
            status=case.status,
            message=_rerun(case, update),
            at=now,
            kind=RERUN_TYPE,
        )
    else:
        if also is not None:  # before anything is added: its reads must not flush this update early
            also(session, case)
        for name in _PLAIN_UPDATE_FIELDS:
            value = getattr(update, name)
            if value is not None:
                setattr(case, name, value)
        if update.reason is not None:  # a reason with a message id is stored as its English rendering and the id
            ref = update.reason_text
            case.reason_id = None if ref is None else ref.msgid
            case.reason_params = None if ref is None else json.dumps(ref.params, sort_keys=True)
            if ref is not None:
                case.reason = english(ref)
        if update.handling is not None:
            _write_handling(session, update.case_id, update.handling)
        if update.quote is not None:
            case.fee = update.quote.fee
            case.fee_usd = str(update.quote.fee_usd)
            case.quote_json = update.quote.model_dump_json()
        case.status = CaseStatus(update.event.status)
        case.updated_at = now
        session.add(case)
        _add_event(
            session,
            case,
            key=update.event.key,
            status=update.event.status,
            message=update.event.message,
            at=now,
            due_at=update.event.due_at,
            text=update.event.text,
        )
    try:
        session.commit()
    except IntegrityError:  # a concurrent writer recorded the same event key first
        session.rollback()
        return False
    return True


def _rerun(case: Case, update: CaseUpdate) -> str:
    """What the timeline of a closed case says of a step a re-run reported (its own text in the reader's
    language too)."""
    event = update.event
    reported = event.message if event.text is None else Stored(english(event.text), event.text.msgid, event.text.params)
    return Message(
        "After the case was closed as {closed}, a re-run reported ({reported}): {message}. The case is unchanged.",
        closed=Message(STATUS_NAMES[case.status]),
        reported=Message(STATUS_NAMES[event.status]),
        message=reported,
    )


def _write_handling(session: Session, case_id: str, handling: CaseHandling) -> None:
    row = session.get(CaseHandlingRow, case_id) or CaseHandlingRow(case_id=case_id, tier=handling.tier.value)
    for name, value in handling.model_dump().items():
        setattr(row, name, value.value if isinstance(value, Enum) else value)
    row.updated_at = utcnow()
    session.add(row)


def get_handling(session: Session, *, case_id: str) -> CaseHandling | None:
    row = session.get(CaseHandlingRow, case_id)
    if row is None:
        return None
    return CaseHandling.model_validate(row.model_dump(exclude={"case_id", "updated_at"}))


def has_event(session: Session, *, case_id: str, key: str) -> bool:
    statement = select(CaseEvent.id).where(CaseEvent.case_id == case_id, CaseEvent.key == key)
    return session.exec(statement).first() is not None


def add_note(session: Session, *, case_id: str, key: str, message: str) -> bool:
    """Append a timeline event that changes nothing else (the case keeps its status, closed or not), once per
    key; added to the session, not committed. False when the key is already on the timeline."""
    case = session.get(Case, case_id)
    if case is None:
        raise CaseNotFound(case_id)
    if has_event(session, case_id=case_id, key=key):
        return False
    _add_event(session, case, key=key, status=case.status, message=message, at=utcnow())
    return True


def cases_in_window(session: Session, *, chain: str, asset: str | None, since: datetime, until: datetime) -> list[Case]:
    """Cases on ``chain`` (of ``asset``, if given) opened in ``[since, until)``, oldest first."""
    statement = select(Case).where(Case.chain == chain, col(Case.created_at) >= since, col(Case.created_at) < until)
    if asset is not None:
        statement = statement.where(Case.asset == asset)
    return list(session.exec(statement.order_by(col(Case.created_at))).all())


def add_completion(session: Session, *, case: Case, settlement: Settlement, fee_usd: Decimal, message: str) -> None:
    """Mark ``case`` COMPLETED with what was credited, and add its "credited" event (once): added to the
    session, not committed. The caller's transaction also books the ledger entries (one writer of a
    completion: ``services.settlement``); call this before adding them, it queries the timeline."""
    noted = has_event(session, case_id=case.case_id, key=CREDITED_EVENT)
    now = utcnow()
    case.status = CaseStatus.COMPLETED
    case.credited = settlement.credited
    case.fee = settlement.fee
    case.gas = settlement.gas
    case.fee_usd = str(fee_usd)
    case.updated_at = now
    session.add(case)
    if not noted:
        _add_event(session, case, key=CREDITED_EVENT, status=CaseStatus.COMPLETED, message=message, at=now)


def _add_event(
    session: Session,
    case: Case,
    *,
    key: str,
    status: CaseStatus,
    message: str,
    at: datetime,
    kind: str | None = None,
    due_at: datetime | None = None,
    text: MessageRef | None = None,
) -> None:
    """Append a timeline event and its notification to the session: every event the user sees is one webhook,
    written in the event's transaction (``store.notifications``). The only writer of :class:`CaseEvent` rows.

    ``text``, the message as an id and values, is stored beside it and ``message`` becomes its English rendering
    (so both always say the same); a reader gets it in their language (docs/i18n.md). A ``message`` that is a
    :class:`~recovery.i18n.Message` gives its own ``text``."""
    if text is None:
        ref = message_json(message)
        text = None if ref is None else MessageRef.model_validate(ref)
    if text is not None:
        message = english(text)
    session.add(
        CaseEvent(
            case_id=case.case_id,
            key=key,
            status=status,
            message=message,
            message_id=None if text is None else text.msgid,
            message_params=None if text is None else json.dumps(text.params, sort_keys=True),
            at=at,
            due_at=due_at,
        )
    )
    notifications.enqueue(
        session,
        case_id=case.case_id,
        user_id=case.user_id,
        event=EventOut(key=key, status=status, at=at, due_at=due_at),
        message=message,
        text=text,
        case=CaseOut(
            status=case.status,
            pattern=None if case.pattern is None else str(case.pattern),
            chain=case.chain,
            tx_hash=case.tx_hash,
            log_index=case.log_index,
            asset=case.asset,
            token_address=case.token_address,
            decimals=case.decimals,
            amount=case.amount,
            fee=case.fee,
            gas=case.gas,
            credited=case.credited,
        ),
        kind=kind,
    )


def english(ref: MessageRef) -> str:
    """A message ref's English text: what ``case_events.message`` and ``cases.reason`` keep."""
    return render_ref(DEFAULT_LOCALE, ref.msgid, ref.params)


def timeline(session: Session, *, case_id: str) -> list[CaseEvent]:
    statement = select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(col(CaseEvent.id))
    return list(session.exec(statement).all())
