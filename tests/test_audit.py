"""The audit trail is append-only in the database itself, on SQLite and PostgreSQL: no UPDATE, no DELETE
(and on PostgreSQL no TRUNCATE) gets through, whatever code tries."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from store import audit
from tests.db_fixtures import POSTGRES_URL


def _append(session: Session, case_id: str, key: str = "approve-1") -> bool:
    return audit.append(
        session,
        case_id=case_id,
        key=key,
        engineer="bob",
        action="approve",
        attested=True,
        input_json='{"engineer": "bob"}',
        before_json='{"status": "AWAITING_APPROVAL"}',
        after_json='{"approvals": ["bob"]}',
    )


def test_entries_are_appended_once_per_key(db_session: Session) -> None:
    case_id = f"case-{uuid.uuid4().hex}"
    assert _append(db_session, case_id)
    assert not _append(db_session, case_id)  # a retried write adds nothing
    assert _append(db_session, case_id, key="reject-2")
    rows = audit.entries(db_session, case_id=case_id)
    assert [(r.key, r.engineer, r.action, r.attested) for r in rows] == [
        ("approve-1", "bob", "approve", True),
        ("reject-2", "bob", "approve", True),
    ]


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_entries SET engineer = 'mallory' WHERE case_id = :case_id",
        "DELETE FROM audit_entries WHERE case_id = :case_id",
    ],
)
def test_the_database_refuses_to_rewrite_the_audit(db_engine: Engine, statement: str) -> None:
    case_id = f"case-{uuid.uuid4().hex}"
    with Session(db_engine) as session:
        assert _append(session, case_id)
    with pytest.raises(DBAPIError, match="append-only"), db_engine.begin() as conn:
        conn.execute(text(statement), {"case_id": case_id})
    with Session(db_engine) as session:
        rows = audit.entries(session, case_id=case_id)
    assert [(r.engineer, r.key) for r in rows] == [("bob", "approve-1")]


@pytest.mark.skipif(POSTGRES_URL is None, reason="runs when TEST_POSTGRES_URL is set (always in CI)")
def test_postgresql_refuses_truncate_too(postgres_engine: Engine) -> None:
    with pytest.raises(DBAPIError, match="append-only"), postgres_engine.begin() as conn:
        conn.execute(text("TRUNCATE audit_entries"))
