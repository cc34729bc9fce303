"""The ledger: credits to users and the fees we keep (the development implementation of the exchange's
ledger, in the case database).

Each deposit is settled at most once: the primary keys (``credit:<deposit_key>`` or, for a deposit sent back
to its sender, ``refund:<deposit_key>``, and ``fee:<deposit_key>``, which every settlement books) make a
second or concurrent settlement fail. This module does not know cases: the
settlement (``services.settlement``) books these entries and completes the case in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.models import Refund, Settlement
from store.db import Amount, UTCDateTime, utcnow


def credit_key(deposit_key: str) -> str:
    return "credit:" + deposit_key


def fee_key(deposit_key: str) -> str:
    return "fee:" + deposit_key


def refund_key(deposit_key: str) -> str:
    return "refund:" + deposit_key


class LedgerCredit(SQLModel, table=True):
    __tablename__ = "ledger_credits"  # type: ignore[assignment]

    idempotency_key: str = Field(primary_key=True, max_length=255)
    case_id: str = Field(index=True, max_length=255)
    user_id: str = Field(index=True, max_length=128)
    asset: str = Field(max_length=64)
    amount: int = Field(sa_type=Amount)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FeeEntry(SQLModel, table=True):
    __tablename__ = "fee_entries"  # type: ignore[assignment]

    idempotency_key: str = Field(primary_key=True, max_length=255)
    case_id: str = Field(index=True, max_length=255)
    user_id: str = Field(max_length=128)
    chain: str = Field(max_length=64)
    asset: str = Field(max_length=64)
    fee: int = Field(sa_type=Amount)
    gas: int = Field(sa_type=Amount)
    fee_usd: str = Field(max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class RefundEntry(SQLModel, table=True):
    """A deposit sent back to its sender on chain: nothing is credited to the claimant for it."""

    __tablename__ = "ledger_refunds"  # type: ignore[assignment]

    idempotency_key: str = Field(primary_key=True, max_length=255)
    case_id: str = Field(index=True, max_length=255)
    user_id: str = Field(index=True, max_length=128)
    chain: str = Field(max_length=64)
    asset: str = Field(max_length=64)
    amount: int = Field(sa_type=Amount)
    to_address: str = Field(max_length=128)
    tx_hash: str = Field(max_length=130)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class FeeTotal(BaseModel):
    """Fees collected on one (chain, asset), in the asset's base units; ``fee_usd`` at quote time."""

    chain: str
    asset: str
    count: int
    fee: int
    gas: int
    fee_usd: Decimal


def add_entries(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    deposit_key: str,
    chain: str,
    asset: str,
    settlement: Settlement,
    fee_usd: Decimal,
    refund: Refund | None = None,
) -> None:
    """Add the deposit's credit (or refund) and fee entries to the session (not committed: the caller's
    transaction completes the case with them). A second settlement of the deposit fails at commit on the keys."""
    now = utcnow()
    if refund is None:
        session.add(
            LedgerCredit(
                idempotency_key=credit_key(deposit_key),
                case_id=case_id,
                user_id=user_id,
                asset=asset,
                amount=settlement.credited,
                created_at=now,
            )
        )
    else:
        session.add(
            RefundEntry(
                idempotency_key=refund_key(deposit_key),
                case_id=case_id,
                user_id=user_id,
                chain=chain,
                asset=asset,
                amount=refund.amount,
                to_address=refund.to,
                tx_hash=refund.tx_hash,
                created_at=now,
            )
        )
    session.add(
        FeeEntry(
            idempotency_key=fee_key(deposit_key),
            case_id=case_id,
            user_id=user_id,
            chain=chain,
            asset=asset,
            fee=settlement.fee,
            gas=settlement.gas,
            fee_usd=str(fee_usd),
            created_at=now,
        )
    )


def booked_settlement(session: Session, *, deposit_key: str, gas_native: int) -> Settlement:
    """The settlement as the ledger recorded it (for a retry that finds the deposit already settled)."""
    credit = session.get(LedgerCredit, credit_key(deposit_key))
    refund = session.get(RefundEntry, refund_key(deposit_key))
    fee = session.get(FeeEntry, fee_key(deposit_key))
    if (credit is None and refund is None) or fee is None:
        raise LookupError(f"deposit {deposit_key} has no complete settlement in the ledger")
    credited = credit.amount if credit is not None else 0
    refunded = refund.amount if refund is not None else 0
    return Settlement(
        recovered=credited + refunded + fee.fee + fee.gas,
        credited=credited,
        refunded=refunded,
        fee=fee.fee,
        gas=fee.gas,
        gas_native=gas_native,
    )


def is_credited(session: Session, *, deposit_key: str) -> bool:
    return session.get(LedgerCredit, credit_key(deposit_key)) is not None


def is_settled(session: Session, *, deposit_key: str) -> bool:
    """Credited or refunded: every settlement books the deposit's fee entry."""
    return session.get(FeeEntry, fee_key(deposit_key)) is not None or is_credited(session, deposit_key=deposit_key)


def refund_of(session: Session, *, case_id: str) -> RefundEntry | None:
    return session.exec(select(RefundEntry).where(RefundEntry.case_id == case_id)).first()


def fee_report(session: Session, *, since: datetime | None = None, until: datetime | None = None) -> list[FeeTotal]:
    """Totals per (chain, asset) of fee entries with ``since <= created_at < until``.

    Summed in Python: amounts are text on SQLite, so SQL ``SUM`` would not be exact there.
    """
    statement = select(FeeEntry)
    if since is not None:
        statement = statement.where(col(FeeEntry.created_at) >= since)
    if until is not None:
        statement = statement.where(col(FeeEntry.created_at) < until)
    totals: dict[tuple[str, str], FeeTotal] = {}
    for entry in session.exec(statement):
        total = totals.setdefault(
            (entry.chain, entry.asset),
            FeeTotal(chain=entry.chain, asset=entry.asset, count=0, fee=0, gas=0, fee_usd=Decimal(0)),
        )
        total.count += 1
        total.fee += entry.fee
        total.gas += entry.gas
        total.fee_usd += Decimal(entry.fee_usd)
    return [totals[k] for k in sorted(totals)]
