"""Ownership proofs: what a manual case needs the claimant to prove (control of the sending address), the
challenges issued for it, the verification deposits linked to cases, and the proof accepted. One proof per
case; a challenge is used once; a verification deposit proves one case, ever (a UNIQUE constraint)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import Text, UniqueConstraint, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, delete, select

from store.db import UTCDateTime, begin_write, norm_address, utcnow

SIGNATURE = "signature"
VERIFICATION_DEPOSIT = "verification_deposit"
METHODS = (SIGNATURE, VERIFICATION_DEPOSIT)


class OwnershipRequirement(SQLModel, table=True):
    """Written by the case workflow when a case needs the proof; ``proven_at`` set once it is given."""

    __tablename__ = "ownership_requirements"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    chain: str = Field(max_length=64)
    address: str = Field(max_length=128, index=True)
    """The deposit's sender, whose control the claimant proves."""
    recipient: str = Field(max_length=128)
    required_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    proven_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    method: str | None = Field(default=None, max_length=32)
    reference: str | None = Field(default=None, max_length=200)
    """The signature's challenge nonce, or the verification deposit's transaction."""


class OwnershipChallenge(SQLModel, table=True):
    __tablename__ = "ownership_challenges"  # type: ignore[assignment]

    nonce: str = Field(primary_key=True, max_length=64)
    case_id: str = Field(index=True, max_length=255)
    address: str = Field(max_length=128, index=True)
    message: str = Field(sa_type=Text)
    issued_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class VerificationDeposit(SQLModel, table=True):
    """A transaction linked to a case as its verification deposit: linked before the case is told (so two
    cases cannot both take it), ``proven_at`` set once the proof is recorded."""

    __tablename__ = "ownership_verification_deposits"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("chain", "tx_hash", name="uq_ownership_verification_deposits_chain_tx_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    chain: str = Field(max_length=64)
    tx_hash: str = Field(max_length=130)
    """As the chain's adapter writes it (EVM lower-case 0x hex, XRP upper-case hex)."""
    case_id: str = Field(index=True, max_length=255)
    block_timestamp: datetime = Field(sa_type=UTCDateTime)
    linked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    proven_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


def require(session: Session, *, case_id: str, chain: str, address: str, recipient: str) -> OwnershipRequirement:
    """Idempotent: the requirement of ``case_id`` (created the first time)."""
    begin_write(session)
    row = session.get(OwnershipRequirement, case_id)
    if row is None:
        row = OwnershipRequirement(
            case_id=case_id, chain=chain, address=norm_address(address), recipient=norm_address(recipient)
        )
        session.add(row)
    session.commit()
    session.refresh(row)
    return row


def requirement(session: Session, *, case_id: str) -> OwnershipRequirement | None:
    return session.get(OwnershipRequirement, case_id)


def challenge_message(*, case_id: str, address: str, expires_at: datetime, nonce: str) -> str:
    """What the claimant signs with ``personal_sign``: it names the case, the address and the expiry."""
    return (
        "Mis-deposit recovery: ownership proof\n"
        f"I control {address} and claim the deposit of case {case_id}.\n"
        f"Expires: {expires_at.isoformat()}\n"
        f"Nonce: {nonce}"
    )


def issue_challenge(session: Session, *, requirement: OwnershipRequirement, ttl: timedelta) -> OwnershipChallenge:
    now = utcnow()
    expires_at = (now + ttl).replace(microsecond=0)
    nonce = secrets.token_hex(16)
    challenge = OwnershipChallenge(
        nonce=nonce,
        case_id=requirement.case_id,
        address=requirement.address,
        message=challenge_message(
            case_id=requirement.case_id, address=requirement.address, expires_at=expires_at, nonce=nonce
        ),
        issued_at=now,
        expires_at=expires_at,
    )
    begin_write(session)
    session.add(challenge)
    session.commit()
    session.refresh(challenge)
    return challenge


def challenges_for(session: Session, *, address: str) -> list[OwnershipChallenge]:
    """Every challenge issued for ``address``, on any case, newest first."""
    return list(
        session.exec(
            select(OwnershipChallenge)
            .where(OwnershipChallenge.address == norm_address(address))
            .order_by(OwnershipChallenge.issued_at.desc())  # type: ignore[attr-defined]
        )
    )


def first_challenge_at(session: Session, *, case_id: str) -> datetime | None:
    """When the case's first challenge was issued; None if none was."""
    first: datetime | None = session.exec(
        select(func.min(OwnershipChallenge.issued_at)).where(OwnershipChallenge.case_id == case_id)
    ).one()
    return first


def verification_link(session: Session, *, chain: str, tx_hash: str) -> VerificationDeposit | None:
    """The case ``tx_hash`` on ``chain`` is linked to as a verification deposit, if any."""
    return session.exec(
        select(VerificationDeposit).where(VerificationDeposit.chain == chain, VerificationDeposit.tx_hash == tx_hash)
    ).first()


def link_verification(session: Session, *, case_id: str, chain: str, tx_hash: str, block_timestamp: datetime) -> str:
    """Link ``tx_hash`` to ``case_id`` unless a case already has it; returns the case that has it (``case_id``
    when this call or an earlier one of the same case linked it). The UNIQUE constraint decides a race."""
    begin_write(session)
    existing = verification_link(session, chain=chain, tx_hash=tx_hash)
    if existing is not None:
        session.commit()
        return existing.case_id
    session.add(VerificationDeposit(chain=chain, tx_hash=tx_hash, case_id=case_id, block_timestamp=block_timestamp))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        winner = verification_link(session, chain=chain, tx_hash=tx_hash)
        session.commit()
        if winner is None:
            raise
        return winner.case_id
    return case_id


def unlink_verification(session: Session, *, case_id: str, chain: str, tx_hash: str) -> None:
    """Undo :func:`link_verification` of a proof the case did not take (a proven link stays)."""
    begin_write(session)
    session.exec(
        delete(VerificationDeposit).where(
            col(VerificationDeposit.chain) == chain,
            col(VerificationDeposit.tx_hash) == tx_hash,
            col(VerificationDeposit.case_id) == case_id,
            col(VerificationDeposit.proven_at).is_(None),
        )
    )
    session.commit()


def accept(session: Session, *, case_id: str, method: str, reference: str) -> bool:
    """Mark the proof given and use up what it rests on, in one transaction: for a ``signature`` the
    challenge whose nonce is ``reference``, for a ``verification_deposit`` the transaction ``reference``
    linked to this case. False when the proof was already given, the challenge already used, or the
    transaction is not linked to this case."""
    if method not in METHODS:
        raise ValueError(f"unknown ownership proof method {method!r}")
    begin_write(session)
    row = session.get(OwnershipRequirement, case_id)
    if row is None or row.proven_at is not None:
        session.rollback()
        return False
    now = utcnow()
    used: OwnershipChallenge | VerificationDeposit | None
    if method == SIGNATURE:
        used = session.get(OwnershipChallenge, reference)
        if used is None or used.case_id != case_id or used.used_at is not None:
            session.rollback()
            return False
        used.used_at = now
    else:
        used = verification_link(session, chain=row.chain, tx_hash=reference)
        if used is None or used.case_id != case_id or used.proven_at is not None:
            session.rollback()
            return False
        used.proven_at = now
    row.proven_at, row.method, row.reference = now, method, reference
    session.add(row)
    session.add(used)
    session.commit()
    return True
