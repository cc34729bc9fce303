"""Staff members and their API tokens in the database (SQLite and PostgreSQL): hashed at rest, one name one
member by the database's own unique constraint."""

from __future__ import annotations

import hashlib

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from store.staff import StaffExists, StaffMember, StaffRole, authenticate_staff, create_staff, list_staff


def test_create_and_authenticate_with_the_token_hashed_at_rest(db_session: Session) -> None:
    member, token = create_staff(db_session, name="bob", role=StaffRole.ENGINEER)
    assert member.role is StaffRole.ENGINEER and len(token) >= 40

    stored = db_session.connection().execute(text("SELECT name, role, token_hash FROM staff_members")).all()
    assert [tuple(r) for r in stored] == [("bob", "engineer", hashlib.sha256(token.encode()).hexdigest())]
    db_session.commit()

    found = authenticate_staff(db_session, token=token)
    assert found is not None and found.name == "bob" and found.role is StaffRole.ENGINEER
    assert authenticate_staff(db_session, token=token + "x") is None
    assert authenticate_staff(db_session, token="") is None
    assert authenticate_staff(db_session, token=member.token_hash) is None  # the hash is no token


def test_a_name_is_taken_once_and_the_database_refuses_a_second_row(db_session: Session) -> None:
    create_staff(db_session, name="fiona", role=StaffRole.FINANCE)
    with pytest.raises(StaffExists, match="'fiona' already exists"):
        create_staff(db_session, name="fiona", role=StaffRole.ADMIN)
    with pytest.raises(StaffExists):
        create_staff(db_session, name=" fiona ", role=StaffRole.ADMIN)  # the name is stripped first

    # not only the code: a row written around create_staff is refused by the unique constraint
    db_session.add(StaffMember(name="fiona", role=StaffRole.ADMIN, token_hash="0" * 64))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()

    with pytest.raises(ValueError, match="must not be empty"):
        create_staff(db_session, name="  ", role=StaffRole.ADMIN)
    assert [(m.name, m.role) for m in list_staff(db_session)] == [("fiona", StaffRole.FINANCE)]


def test_tokens_are_distinct_and_each_names_its_member(db_session: Session) -> None:
    made = {name: create_staff(db_session, name=name, role=StaffRole.ADMIN)[1] for name in ("ada", "ben", "cyd")}
    assert len(set(made.values())) == 3
    for name, token in made.items():
        found = authenticate_staff(db_session, token=token)
        assert found is not None and found.name == name
    assert [m.name for m in list_staff(db_session)] == ["ada", "ben", "cyd"]
