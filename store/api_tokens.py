"""API tokens of users and staff: made, hashed at rest, expiring, rotated and revoked the same way for both.

A token is shown once, when it is issued; only its sha256 is stored. Rotating replaces the hash (the old
token is dead at once, by the same update that makes the new one); revoking replaces it with the hash of a
token nobody was given and stamps ``token_revoked_at``. An expired token is recognised as such, so its
holder is told to get a new one rather than that it never existed.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Protocol

from store.db import utcnow


class TokenExpired(Exception):
    """The token is right but its time is over."""

    def __init__(self, expired_at: datetime) -> None:
        super().__init__(f"the API token expired at {expired_at.isoformat(timespec='seconds')}")
        self.expired_at = expired_at


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token and its hash."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def expiry(days: int | None, *, now: datetime | None = None) -> datetime | None:
    """When a token issued now for ``days`` days expires; None: never."""
    if days is None:
        return None
    if days < 1:
        raise ValueError(f"a token must live at least one day, got {days}")
    return (now or utcnow()) + timedelta(days=days)


class TokenHolder(Protocol):
    token_hash: str
    token_expires_at: datetime | None
    token_revoked_at: datetime | None


def check(holder: TokenHolder, *, token: str, now: datetime | None = None) -> bool:
    """Whether ``token`` is ``holder``'s live token; raises :class:`TokenExpired` when it is, but expired."""
    if holder.token_revoked_at is not None or not hmac.compare_digest(holder.token_hash, hash_token(token)):
        return False
    if holder.token_expires_at is not None and holder.token_expires_at <= (now or utcnow()):
        raise TokenExpired(holder.token_expires_at)
    return True


def reissue(holder: TokenHolder, *, days: int | None) -> str:
    """Give ``holder`` a new token (valid ``days`` days; None: no expiry) and return it; the old one is dead
    once the change commits."""
    expires_at = expiry(days)
    token, holder.token_hash = new_token()
    holder.token_expires_at = expires_at
    holder.token_revoked_at = None
    return token


def revoke(holder: TokenHolder) -> None:
    """Kill ``holder``'s token: its hash becomes that of a token nobody was given."""
    _unknowable, holder.token_hash = new_token()
    holder.token_revoked_at = utcnow()
