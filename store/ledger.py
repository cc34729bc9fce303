"""The ledger: credits to users and the fees we keep (the development implementation of the exchange's
ledger, in the case database).

Each deposit is credited at most once: the primary keys (``credit:<deposit_key>`` and
``fee:<deposit_key>``) make a second or concurrent settlement fail. This module does not know cases: the
settlement (``services.settlement``) books these entries and completes the case in one transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.models import Settlement
from store.db import Amount, UTCDateTime, utcnow


def credit_key(deposit_key: str) -> str:
    return "credit:" + deposit_key


def fee_key(deposit_key: str) -> str:
    return "fee:" + deposit_key


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
) -> None:
    """Add the deposit's credit and fee entries to the session (not committed: the caller's transaction
    completes the case with them). A second settlement of the deposit fails at commit on the keys."""
    now = utcnow()
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
    fee = session.get(FeeEntry, fee_key(deposit_key))
    if credit is None or fee is None:
        raise LookupError(f"deposit {deposit_key} has no complete settlement in the ledger")
    return Settlement(
        recovered=credit.amount + fee.fee + fee.gas,
        credited=credit.amount,
        fee=fee.fee,
        gas=fee.gas,
        gas_native=gas_native,
    )


def is_credited(session: Session, *, deposit_key: str) -> bool:
    return session.get(LedgerCredit, credit_key(deposit_key)) is not None


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
