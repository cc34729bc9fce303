"""Staff of the recovery team and their API tokens: engineers act on cases, finance reads the fee report,
admins do both. Tokens are hashed at rest exactly like users' tokens (:func:`store.api_tokens.hash_token`); the
token itself is shown once, when the member is created."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from store import api_tokens
from store.api_tokens import hash_token
from store.db import StrEnumType, UTCDateTime, begin_write, utcnow


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
    token_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the token stops working; NULL: never."""
    token_revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the token was revoked (its hash then belongs to a token nobody was given)."""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class StaffExists(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a staff member named {name!r} already exists; choose another name")
        self.name = name


def create_staff(
    session: Session, *, name: str, role: StaffRole, token_days: int | None = None
) -> tuple[StaffMember, str]:
    """Add a staff member with a fresh API token (valid ``token_days`` days; None: no expiry); returns
    (member, token). Raises :class:`StaffExists` when the name is taken: the database's unique constraint
    decides, so two concurrent creations of one name cannot both succeed."""
    name = name.strip()
    if not name:
        raise ValueError("the name must not be empty")
    expires_at = api_tokens.expiry(token_days)
    begin_write(session)
    token, token_hash = api_tokens.new_token()
    member = StaffMember(name=name, role=StaffRole(role), token_hash=token_hash, token_expires_at=expires_at)
    session.add(member)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise StaffExists(name) from None
    session.refresh(member)
    return member, token


def authenticate_staff(session: Session, *, token: str) -> StaffMember | None:
    """The member whose live token this is; None for none (or revoked); raises
    :class:`store.api_tokens.TokenExpired` for an expired one."""
    if not token:
        return None
    member = session.exec(select(StaffMember).where(StaffMember.token_hash == hash_token(token))).first()
    if member is None or not api_tokens.check(member, token=token):
        return None
    return member


def rotate_staff_token(session: Session, *, name: str, token_days: int | None = None) -> tuple[StaffMember, str]:
    """A new token for ``name`` (valid ``token_days`` days; None: no expiry); the old one stops working in
    the same transaction."""
    api_tokens.expiry(token_days)  # a bad lifetime is refused before the transaction opens
    begin_write(session)
    member = _member(session, name)
    token = api_tokens.reissue(member, days=token_days)
    session.add(member)
    session.commit()
    session.refresh(member)
    return member, token


def revoke_staff_token(session: Session, *, name: str) -> StaffMember:
    """Make ``name``'s token stop working at once (until a rotation issues a new one)."""
    begin_write(session)
    member = _member(session, name)
    api_tokens.revoke(member)
    session.add(member)
    session.commit()
    session.refresh(member)
    return member


def _member(session: Session, name: str) -> StaffMember:
    member = session.exec(select(StaffMember).where(StaffMember.name == name)).first()
    if member is None:
        session.rollback()
        raise ValueError(f"no staff member {name!r}; see them with `recovery staff list`")
    return member


def list_staff(session: Session) -> list[StaffMember]:
    return list(session.exec(select(StaffMember).order_by(col(StaffMember.name))))
