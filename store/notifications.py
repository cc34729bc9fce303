"""The notification outbox: one row per timeline event of a case, added by ``store.cases`` in the transaction
that records the event, delivered in order per case by ``services.notifications``.

A row's state, from its columns:

- **due** (the head of its case): not delivered, not dead, ``next_attempt_at`` set; sent once that time is past;
- **waiting**: not delivered, not dead, ``next_attempt_at`` NULL: an earlier notification of its case is not
  delivered yet. Delivering that one makes this one due (in the same transaction);
- **delivered**: ``delivered_at`` set, after a 2xx answer and only then;
- **dead**: ``dead_at`` set: it failed until its retry window closed (or an earlier one of its case is dead, so it
  may not be sent). ``redeliver`` makes it due again.

``seq`` numbers a case's notifications 1, 2, 3... in the order of their events; on PostgreSQL the case's row is
locked (``FOR UPDATE``) before the next number is taken, so concurrent writers of one case take turns, and a
number is committed in the order it was taken. ``webhook_id`` is drawn once: every attempt sends the same one.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, Text, UniqueConstraint, and_, exists, func, text, update
from sqlalchemy.orm import aliased
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.i18n import render_ref
from recovery.locales import DEFAULT_LOCALE
from recovery.models import MessageRef
from recovery.notifications import CaseOut, EventOut, NotificationBody, NotificationData, event_type
from store.db import UTCDateTime, begin_write, utcnow
from store.users import User

ERROR_CHARS = 300
BURIED_ERROR = "not sent: an earlier notification of this case is dead (redeliver it first)"


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"  # type: ignore[assignment]
    __table_args__ = (
        UniqueConstraint("webhook_id", name="uq_notifications_webhook_id"),
        UniqueConstraint("case_id", "seq", name="uq_notifications_case_seq"),
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            sqlite_where=text("delivered_at IS NULL AND dead_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL AND dead_at IS NULL"),
        ),
        Index(
            "ix_notifications_undelivered",
            "case_id",
            "seq",
            sqlite_where=text("delivered_at IS NULL"),
            postgresql_where=text("delivered_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: str = Field(max_length=64)
    """The ``webhook-id`` header, the same on every attempt (receivers drop duplicates by it)."""
    case_id: str = Field(max_length=255)
    seq: int
    user_id: str = Field(max_length=128)
    event_key: str = Field(max_length=255)
    event_type: str = Field(max_length=128)
    locale: str = Field(max_length=16)
    text: str = Field(sa_type=Text)
    """The event's message in ``locale`` (rendered from its message id; English for an event without one)."""
    payload: str = Field(sa_type=Text)
    """The exact JSON body sent and signed on every attempt."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    retry_since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    """Start of the retry window: the creation, or the last ``redeliver``."""
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    """Attempts since ``retry_since`` (the backoff grows with them; a redelivery starts again from 0)."""
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, max_length=ERROR_CHARS)
    """Why the last attempt failed, short (a status code or an error's type): never a secret or a body."""
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dead_at: datetime | None = Field(default=None, sa_type=UTCDateTime)

    @property
    def state(self) -> str:
        if self.delivered_at is not None:
            return "delivered"
        if self.dead_at is not None:
            return "dead"
        return "due" if self.next_attempt_at is not None else "waiting"


class State(StrEnum):
    PENDING = "pending"
    """Due or waiting: not delivered yet and not given up."""
    DEAD = "dead"
    DELIVERED = "delivered"


# --- writing (by store.cases, in the event's transaction) ------------------------------------------


def enqueue(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    event: EventOut,
    message: str,
    case: CaseOut,
    kind: str | None = None,
    text: MessageRef | None = None,
) -> Notification:
    """Add the notification of ``event`` to the session (not committed: the caller's transaction records the
    event itself). Nothing is flushed here, so the caller decides when its rows reach the database.

    ``message`` is the event's English text; with ``text`` (its message id and values) the notification carries
    it rendered in the user's locale instead."""
    with session.no_autoflush:
        _lock_case(session, case_id)
        last = session.exec(
            select(Notification.seq, Notification.delivered_at)
            .where(Notification.case_id == case_id)
            .order_by(col(Notification.seq).desc())
            .limit(1)
        ).first()
        user = session.get(User, user_id)
    added = [n for n in session.new if isinstance(n, Notification) and n.case_id == case_id]
    if added:  # an earlier event of this transaction (a case opened with a note)
        seq, waiting = max(n.seq for n in added) + 1, True
    elif last is not None:
        seq, waiting = last[0] + 1, last[1] is None
    else:
        seq, waiting = 1, False
    locale = user.locale if user is not None else DEFAULT_LOCALE
    if text is not None:
        message = render_ref(locale, text.msgid, text.params)
    body = NotificationBody(
        type=kind or event_type(event.key),
        timestamp=event.at,
        data=NotificationData(
            case_id=case_id,
            user_id=user_id,
            seq=seq,
            locale=locale,
            message=message,
            text=text,
            event=event,
            case=case,
        ),
    )
    row = Notification(
        webhook_id=f"msg_{uuid.uuid4().hex}",
        case_id=case_id,
        seq=seq,
        user_id=user_id,
        event_key=event.key,
        event_type=body.type,
        locale=locale,
        text=message,
        payload=body.to_json(),
        created_at=event.at,
        retry_since=event.at,
        next_attempt_at=None if waiting else event.at,
    )
    session.add(row)
    return row


def _lock_case(session: Session, case_id: str) -> None:
    """PostgreSQL: hold the case's row until commit, so that one case's writers (and the dispatcher's
    bookkeeping) take turns. SQLite writers are serialized by ``BEGIN IMMEDIATE`` already."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT 1 FROM cases WHERE case_id = :case_id FOR UPDATE"), {"case_id": case_id})


def discard_undelivered(session: Session, *, case_id: str) -> None:
    """Drop the case's notifications not delivered yet (a case undone before its workflow started); added to
    the session's transaction. Delivered ones stay: the receiver has them."""
    session.execute(
        Notification.__table__.delete().where(  # type: ignore[attr-defined]
            Notification.__table__.c.case_id == case_id,  # type: ignore[attr-defined]
            Notification.__table__.c.delivered_at.is_(None),  # type: ignore[attr-defined]
        )
    )


# --- the dispatcher's reads and bookkeeping (each its own transaction) ------------------------------


def due(session: Session, *, now: datetime, limit: int) -> list[Notification]:
    """Up to ``limit`` due notifications (one per case at most: only a case's first undelivered one is ever
    due), the longest waiting first."""
    statement = (
        select(Notification)
        .where(
            col(Notification.delivered_at).is_(None),
            col(Notification.dead_at).is_(None),
            col(Notification.next_attempt_at) <= now,
        )
        .order_by(col(Notification.next_attempt_at), col(Notification.id))
        .limit(limit)
    )
    return list(session.exec(statement.execution_options(populate_existing=True)).all())


def queued_after(session: Session, *, heads: Sequence[Notification], per_case: int) -> dict[str, list[Notification]]:
    """For each head, the undelivered notifications of its case after it, in order (at most ``per_case``)."""
    if not heads:
        return {}
    after = {h.case_id: h.seq for h in heads}
    statement = (
        select(Notification)
        .where(
            col(Notification.case_id).in_(list(after)),
            col(Notification.delivered_at).is_(None),
            col(Notification.dead_at).is_(None),
        )
        .order_by(col(Notification.case_id), col(Notification.seq))
    )
    found: dict[str, list[Notification]] = {case_id: [] for case_id in after}
    for row in session.exec(statement.execution_options(populate_existing=True)).all():
        queue = found[row.case_id]
        if row.seq > after[row.case_id] and len(queue) < per_case:
            queue.append(row)
    return found


def mark_delivered(session: Session, *, notification_id: int, case_id: str, at: datetime) -> bool:
    """Record a 2xx answer and make the case's next notification due. False when it was already delivered
    (a second dispatcher, or a redelivery racing this one)."""
    begin_write(session)
    _lock_case(session, case_id)
    table = Notification.__table__  # type: ignore[attr-defined]
    done = session.execute(
        update(table)
        .where(table.c.id == notification_id, table.c.delivered_at.is_(None))
        .values(
            delivered_at=at,
            dead_at=None,
            next_attempt_at=None,
            last_attempt_at=at,
            last_error=None,
            attempts=table.c.attempts + 1,
        )
    )
    delivered = bool(done.rowcount)  # type: ignore[attr-defined]
    if delivered:
        _make_head_due(session, case_id=case_id, at=at)
    session.commit()
    return delivered


def mark_failed(
    session: Session, *, notification_id: int, case_id: str, at: datetime, error: str, retry_at: datetime | None
) -> int | None:
    """Record a failed attempt: due again at ``retry_at``, or dead when None, and then every notification of the
    case after it too (they may not overtake it). Returns how many died (0 when it will be retried), None when
    nothing was recorded (it was delivered meanwhile)."""
    begin_write(session)
    _lock_case(session, case_id)
    table = Notification.__table__  # type: ignore[attr-defined]
    error = error[:ERROR_CHARS]
    values: dict[str, object] = {
        "last_attempt_at": at,
        "last_error": error,
        "attempts": table.c.attempts + 1,
        "next_attempt_at": retry_at,
    }
    if retry_at is None:
        values["dead_at"] = at
    done = session.execute(
        update(table)
        .where(table.c.id == notification_id, table.c.delivered_at.is_(None), table.c.dead_at.is_(None))
        .values(**values)
    )
    if not done.rowcount:  # type: ignore[attr-defined]
        session.rollback()
        return None
    died = 0
    if retry_at is None:
        seq = session.exec(select(Notification.seq).where(Notification.id == notification_id)).one()
        buried = session.execute(
            update(table)
            .where(
                table.c.case_id == case_id,
                table.c.seq > seq,
                table.c.delivered_at.is_(None),
                table.c.dead_at.is_(None),
            )
            .values(dead_at=at, next_attempt_at=None, last_error=BURIED_ERROR)
        )
        died = 1 + int(buried.rowcount)  # type: ignore[attr-defined]
    session.commit()
    return died


def _make_head_due(session: Session, *, case_id: str, at: datetime) -> None:
    """The case's first undelivered notification, if waiting, becomes due at ``at``."""
    table = Notification.__table__  # type: ignore[attr-defined]
    first = session.exec(
        select(Notification.id, Notification.next_attempt_at, Notification.dead_at)
        .where(Notification.case_id == case_id, col(Notification.delivered_at).is_(None))
        .order_by(col(Notification.seq))
        .limit(1)
    ).first()
    if first is not None and first[1] is None and first[2] is None:
        session.execute(update(table).where(table.c.id == first[0]).values(next_attempt_at=at))


def tidy(session: Session, *, now: datetime) -> tuple[int, int]:
    """The dispatcher's periodic repair, in one transaction: a waiting notification behind a dead one is dead
    too; one waiting with nothing undelivered before it (its predecessor was discarded, say) is made due.
    Returns (buried, made due)."""
    begin_write(session)
    table = Notification.__table__  # type: ignore[attr-defined]
    earlier = aliased(Notification, name="earlier")
    waiting = and_(table.c.delivered_at.is_(None), table.c.dead_at.is_(None))
    dead_before = exists().where(
        col(earlier.case_id) == table.c.case_id,
        col(earlier.seq) < table.c.seq,
        col(earlier.delivered_at).is_(None),
        col(earlier.dead_at).is_not(None),
    )
    buried = session.execute(
        update(table).where(waiting, dead_before).values(dead_at=now, next_attempt_at=None, last_error=BURIED_ERROR)
    )
    undelivered_before = exists().where(
        col(earlier.case_id) == table.c.case_id,
        col(earlier.seq) < table.c.seq,
        col(earlier.delivered_at).is_(None),
    )
    promoted = session.execute(
        update(table).where(waiting, table.c.next_attempt_at.is_(None), ~undelivered_before).values(next_attempt_at=now)
    )
    session.commit()
    return int(buried.rowcount), int(promoted.rowcount)  # type: ignore[attr-defined]


# --- operators -------------------------------------------------------------------------------------


def get(session: Session, *, notification_id: int) -> Notification | None:
    return session.get(Notification, notification_id, populate_existing=True)


def listing(
    session: Session, *, case_id: str | None = None, state: State | None = None, limit: int = 100
) -> list[Notification]:
    """Notifications, of one case in order when ``case_id`` is given, else the newest first."""
    statement = select(Notification)
    if case_id is not None:
        statement = statement.where(Notification.case_id == case_id)
    if state is State.PENDING:
        statement = statement.where(col(Notification.delivered_at).is_(None), col(Notification.dead_at).is_(None))
    elif state is State.DEAD:
        statement = statement.where(col(Notification.delivered_at).is_(None), col(Notification.dead_at).is_not(None))
    elif state is State.DELIVERED:
        statement = statement.where(col(Notification.delivered_at).is_not(None))
    order = col(Notification.seq) if case_id is not None else col(Notification.id).desc()
    return list(session.exec(statement.order_by(order).limit(limit).execution_options(populate_existing=True)).all())


def counts(session: Session) -> dict[str, int]:
    """How many notifications are pending (due or waiting) and dead (read from the partial indexes)."""
    undelivered = col(Notification.delivered_at).is_(None)
    pending = session.exec(
        select(func.count()).select_from(Notification).where(undelivered, col(Notification.dead_at).is_(None))
    ).one()
    dead = session.exec(
        select(func.count()).select_from(Notification).where(undelivered, col(Notification.dead_at).is_not(None))
    ).one()
    return {"pending": int(pending), "dead": int(dead)}


def redeliver(
    session: Session,
    *,
    now: datetime,
    notification_id: int | None = None,
    case_id: str | None = None,
    dead: bool = False,
) -> list[Notification]:
    """Send again what was not delivered: one notification (and the undelivered ones of its case before it,
    which must go first), every undelivered one of a case, or every dead one (with the undelivered ones of
    their cases). Each gets a fresh retry window from ``now`` and keeps its ``webhook_id``; the first of each
    case is due at once (the backoff starts over). Returns the notifications revived, by case and order. Exactly
    one selector."""
    if sum((notification_id is not None, case_id is not None, dead)) != 1:
        raise ValueError("redeliver one notification, one case's, or the dead ones: exactly one of them")
    begin_write(session)
    table = Notification.__table__  # type: ignore[attr-defined]
    undelivered = col(Notification.delivered_at).is_(None)
    if notification_id is not None:
        target = session.get(Notification, notification_id)
        if target is None or target.delivered_at is not None:
            session.rollback()
            return []
        where = and_(undelivered, col(Notification.case_id) == target.case_id, col(Notification.seq) <= target.seq)
    elif case_id is not None:
        where = and_(undelivered, col(Notification.case_id) == case_id)
    else:
        dead_cases = select(Notification.case_id).where(undelivered, col(Notification.dead_at).is_not(None))
        where = and_(undelivered, col(Notification.case_id).in_(dead_cases.scalar_subquery()))
    rows = list(
        session.exec(select(Notification).where(where).order_by(col(Notification.case_id), col(Notification.seq)))
    )
    if not rows:
        session.rollback()
        return []
    cases = sorted({r.case_id for r in rows})
    for case_id_ in cases:  # the case rows first, in one order: as every other writer of a case's rows
        _lock_case(session, case_id_)
    session.execute(
        update(table)
        .where(table.c.id.in_([r.id for r in rows]), table.c.delivered_at.is_(None))
        .values(dead_at=None, next_attempt_at=None, retry_since=now, attempts=0, last_error=None)
        .execution_options(synchronize_session=False)
    )
    for case_id_ in cases:
        _make_head_due(session, case_id=case_id_, at=now)
    session.commit()
    for row in rows:
        session.refresh(row)
    return rows
