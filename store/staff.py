"""Staff of the recovery team and their API tokens: engineers act on cases, finance reads the fee report,
admins do both. Tokens are hashed at rest exactly like users' tokens (:func:`store.users.hash_token`); the
token itself is shown once, when the member is created."""

from __future__ import annotations

import hmac
import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from store.db import StrEnumType, UTCDateTime, begin_write, utcnow
from store.users import hash_token


class StaffRole(StrEnum):
    ENGINEER = "engineer"
    FINANCE = "finance"
    ADMIN = "admin"


class StaffMember(SQLModel, table=True):
    __tablename__ = "staff_members"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=128)
    """An engineer's name is their name on the roster (``settings.engineers``): the workflow checks it."""
    role: StaffRole = Field(sa_type=StrEnumType(StaffRole))
    token_hash: str = Field(unique=True, max_length=64)
    """sha256 hex of the API token; the token itself is never stored."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StaffExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a staff member named {name!r} already exists; choose another name")
        self.name = name


def create_staff(session: Session, *, name: str, role: StaffRole) -> tuple[StaffMember, str]:
    """Add a staff member with a fresh API token; returns (member, token). Raises :class:`StaffExists`
    when the name is taken: the database's unique constraint decides, so two concurrent creations of one
    name cannot both succeed."""
    name = name.strip()
    if not name:
        raise ValueError("the name must not be empty")
    begin_write(session)
    token = secrets.token_urlsafe(32)
    member = StaffMember(name=name, role=StaffRole(role), token_hash=hash_token(token))
    session.add(member)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise StaffExists(name) from None
    session.refresh(member)
    return member, token


def authenticate_staff(session: Session, *, token: str) -> StaffMember | None:
    if not token:
        return None
    wanted = hash_token(token)
    member = session.exec(select(StaffMember).where(StaffMember.token_hash == wanted)).first()
    if member is None or not hmac.compare_digest(member.token_hash, wanted):
        return None
    return member


def list_staff(session: Session) -> list[StaffMember]:
    return list(session.exec(select(StaffMember).order_by(col(StaffMember.name))))
