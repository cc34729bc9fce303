"""The audit trail: one row per engineer action on a case (who, what, when, the input, the state before and
after), append-only. The database itself refuses to update or delete a row (a trigger on SQLite and on
PostgreSQL, created by the migrations), so no code path, old or new, can rewrite what happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from store.db import UTCDateTime, begin_write, utcnow


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entries"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("case_id", "key", name="uq_audit_entries_case_key"),)

    id: int | None = Field(default=None, primary_key=True)
    case_id: str = Field(index=True, max_length=255)
    key: str = Field(max_length=255)
    """Idempotency key of the action within the case (a retried write adds nothing)."""
    engineer: str = Field(max_length=128)
    action: str = Field(max_length=64)
    attested: bool = False
    """Whether the sender proved who acted (an attestation), or only named the engineer (typed into the UI)."""
    input_json: str = Field(sa_type=Text)
    before_json: str = Field(sa_type=Text)
    after_json: str = Field(sa_type=Text)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# The triggers that refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) are created by migration 0001.


def append(
    session: Session,
    *,
    case_id: str,
    key: str,
    engineer: str,
    action: str,
    attested: bool,
    input_json: str,
    before_json: str,
    after_json: str,
) -> bool:
    """Append one entry; False (nothing added) when the case already has an entry under ``key``."""
    begin_write(session)
    exists = session.exec(select(AuditEntry.id).where(AuditEntry.case_id == case_id, AuditEntry.key == key)).first()
    if exists is not None:
        session.rollback()
        return False
    session.add(
        AuditEntry(
            case_id=case_id,
            key=key,
            engineer=engineer,
            action=action,
            attested=attested,
            input_json=input_json,
            before_json=before_json,
            after_json=after_json,
        )
    )
    try:
        session.commit()
    except IntegrityError:  # a concurrent retry wrote it first
        session.rollback()
        return False
    return True


def entries(session: Session, *, case_id: str) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(col(AuditEntry.id))))
