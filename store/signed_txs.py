"""Signed transactions: each signed once per idempotency key and stored before it is broadcast, with the
nonce bookkeeping of every sending address. No key material is ever stored here."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text, UniqueConstraint, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from store.db import Amount, UTCDateTime, begin_write_unless_exists, norm_address, utcnow


class SignedTransaction(SQLModel, table=True):
    """A transaction signed once per idempotency key. The raw signed tx is public once broadcast;
    no key material is ever stored here."""

    __tablename__ = "signed_transactions"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("chain", "from_address", "nonce", name="uq_signed_tx_chain_from_nonce"),)

    idempotency_key: str = Field(primary_key=True, max_length=255)
    case_id: str = Field(index=True, max_length=255)
    chain: str = Field(max_length=64)
    purpose: str = Field(max_length=64)
    from_address: str = Field(max_length=128)
    nonce: int
    tx_hash: str = Field(max_length=130)
    raw_tx: str = Field(sa_type=Text)
    """Hex of the signed raw transaction (with or without 0x, as given)."""
    gas_limit: int | None = Field(default=None, sa_type=Amount)
    max_fee_per_gas: int | None = Field(default=None, sa_type=Amount)
    value: int | None = Field(default=None, sa_type=Amount)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


# --------------------------------------------------------------------------------------------------
# Errors


class SignedTxExists(Exception):
    """A transaction was already signed and saved under this idempotency key: use that one."""

    def __init__(self, existing: SignedTransaction) -> None:
        super().__init__(f"a transaction is already signed under {existing.idempotency_key!r}")
        self.existing = existing


class NonceTaken(Exception):
    """Another transaction was already saved for this (chain, from_address, nonce)."""

    def __init__(self, chain: str, from_address: str, nonce: int) -> None:
        super().__init__(f"nonce {nonce} of {from_address} on {chain} is already used by another transaction")
        self.chain, self.from_address, self.nonce = chain, from_address, nonce


def save_signed_tx(
    session: Session,
    *,
    idempotency_key: str,
    case_id: str,
    chain: str,
    purpose: str,
    from_address: str,
    nonce: int,
    tx_hash: str,
    raw_tx: str,
    gas_limit: int | None = None,
    max_fee_per_gas: int | None = None,
    value: int | None = None,
) -> SignedTransaction:
    """Record a signed transaction before broadcasting it.

    Raises :class:`SignedTxExists` (with ``.existing``) when this idempotency key already holds a
    transaction (an earlier attempt or another worker won): broadcast that one, not the new one.
    Raises :class:`NonceTaken` when another key already holds this (chain, from_address, nonce).
    """
    row = SignedTransaction(
        idempotency_key=idempotency_key,
        case_id=case_id,
        chain=chain,
        purpose=purpose,
        from_address=norm_address(from_address),
        nonce=nonce,
        tx_hash=tx_hash,
        raw_tx=raw_tx,
        gas_limit=gas_limit,
        max_fee_per_gas=max_fee_per_gas,
        value=value,
    )
    existing_tx = begin_write_unless_exists(session, SignedTransaction, idempotency_key)
    if existing_tx is not None:
        raise SignedTxExists(existing_tx)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        existing = session.get(SignedTransaction, idempotency_key)
        if existing is not None:
            raise SignedTxExists(existing) from None
        raise NonceTaken(chain, from_address, nonce) from None
    session.refresh(row)
    return row


def get_signed_tx(session: Session, *, idempotency_key: str) -> SignedTransaction | None:
    return session.get(SignedTransaction, idempotency_key)


def signed_from(session: Session, *, chain: str, from_address: str, min_nonce: int) -> list[SignedTransaction]:
    """Transactions signed from the address with a nonce of at least ``min_nonce`` (not yet mined)."""
    statement = select(SignedTransaction).where(
        SignedTransaction.chain == chain,
        SignedTransaction.from_address == norm_address(from_address),
        SignedTransaction.nonce >= min_nonce,
    )
    return list(session.exec(statement).all())


def max_nonce(session: Session, *, chain: str, from_address: str) -> int | None:
    """Highest nonce recorded for the address on the chain, or None."""
    statement = select(func.max(SignedTransaction.nonce)).where(
        SignedTransaction.chain == chain, SignedTransaction.from_address == norm_address(from_address)
    )
    return session.exec(statement).one()
