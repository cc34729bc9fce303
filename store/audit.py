"""The audit trail: one row per engineer action on a case (who, what, when, the input, the state before and
after), append-only. The database itself refuses to update or delete a row (a trigger on SQLite and on
PostgreSQL), so no code path, old or new, can rewrite what happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DDL, Text, UniqueConstraint, event
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


_APPEND_ONLY_SQLITE = [
    f"CREATE TRIGGER IF NOT EXISTS audit_entries_no_{verb.lower()} BEFORE {verb} ON audit_entries "
    "BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END"
    for verb in ("UPDATE", "DELETE")
]
_APPEND_ONLY_POSTGRESQL = [
    "CREATE OR REPLACE FUNCTION audit_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit entries are append-only'; END $$",
    "CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_append_only()",
]
for _statement in _APPEND_ONLY_SQLITE:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="sqlite"))  # type: ignore[attr-defined]
for _statement in _APPEND_ONLY_POSTGRESQL:
    event.listen(AuditEntry.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))  # type: ignore[attr-defined]


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
