"""The ledger: credits to users and the fees we keep (the development implementation of the exchange's
ledger, in the case database).

Each deposit is settled at most once: the primary keys (``credit:<deposit_key>`` or, for a deposit sent back
to its sender, ``refund:<deposit_key>``) make a second or concurrent settlement fail, and so do the fee
ledger's one-charge-per-case index and its ``<case>:charged`` key (``store.fee_ledger``). This module
does not know cases: the settlement (``services.settlement``) books these entries and completes the case in
one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

from sqlmodel import Field, Session, SQLModel, select

from recovery.models import Refund, Settlement
from store import fee_ledger
from store.db import Amount, UTCDateTime, utcnow
from store.fee_ledger import CaseRef, FeeKind, GasSpent


def credit_key(deposit_key: str) -> str:
    return "credit:" + deposit_key


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
    ref: CaseRef,
    decimals: int | None,
    price_usd: Decimal | None,
    gas_spent: Sequence[GasSpent] = (),
    opened_at: datetime | None = None,
) -> None:
    """Add the deposit's credit (or refund) and fee entries to the session (not committed: the caller's
    transaction completes the case with them). A second settlement of the deposit fails at commit on the keys.
    ``opened_at``: when the case was opened, for the charge's ``resolution_s``."""
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
    charged = fee_ledger.entry(
        ref,
        kind=FeeKind.CHARGED,
        key=fee_ledger.step_key(case_id, FeeKind.CHARGED),
        asset=asset,
        decimals=decimals,
        amount=settlement.fee,
        price_usd=price_usd,
        booked_at=now,
        usd_micros=fee_ledger.to_micros(fee_usd),  # without a price: the quote's own USD figure of the fee
        resolution_s=None if opened_at is None else max(0, (now - opened_at) // timedelta(seconds=1)),
    )
    fee_ledger.add(session, charged)
    for kind, amount in ((FeeKind.GAS_CHARGED, settlement.gas), (FeeKind.RECOVERED, settlement.recovered)):
        fee_ledger.add(
            session,
            fee_ledger.entry(
                ref,
                kind=kind,
                key=fee_ledger.step_key(case_id, kind),
                asset=asset,
                decimals=decimals,
                amount=amount,
                price_usd=price_usd,
                booked_at=now,
            ),
        )
    for spent in gas_spent:
        fee_ledger.add(
            session,
            fee_ledger.entry(
                ref,
                kind=FeeKind.GAS_SPENT,
                key=fee_ledger.step_key(case_id, f"gas_spent:{spent.tx_hash}"),
                asset=spent.asset,
                decimals=spent.decimals,
                amount=spent.gas_used * spent.gas_price,
                price_usd=spent.price_usd,
                booked_at=now,
                tx_hash=spent.tx_hash,
                gas_used=spent.gas_used,
                gas_price=spent.gas_price,
            ),
        )


def booked_settlement(session: Session, *, case_id: str, deposit_key: str, gas_native: int) -> Settlement:
    """The settlement as the ledger recorded it (for a retry that finds the deposit already settled)."""
    credit = session.get(LedgerCredit, credit_key(deposit_key))
    refund = session.get(RefundEntry, refund_key(deposit_key))
    fee = fee_ledger.one(session, case_id=case_id, kind=FeeKind.CHARGED)
    gas = fee_ledger.one(session, case_id=case_id, kind=FeeKind.GAS_CHARGED)
    if (credit is None and refund is None) or fee is None or gas is None:
        raise LookupError(f"deposit {deposit_key} has no complete settlement in the ledger")
    credited = credit.amount if credit is not None else 0
    refunded = refund.amount if refund is not None else 0
    return Settlement(
        recovered=credited + refunded + fee.amount + gas.amount,
        credited=credited,
        refunded=refunded,
        fee=fee.amount,
        gas=gas.amount,
        gas_native=gas_native,
    )


def is_credited(session: Session, *, deposit_key: str) -> bool:
    return session.get(LedgerCredit, credit_key(deposit_key)) is not None


def is_settled(session: Session, *, deposit_key: str) -> bool:
    """Credited or refunded: every settlement books one of the two."""
    return (
        is_credited(session, deposit_key=deposit_key) or session.get(RefundEntry, refund_key(deposit_key)) is not None
    )


def refund_of(session: Session, *, case_id: str) -> RefundEntry | None:
    return session.exec(select(RefundEntry).where(RefundEntry.case_id == case_id)).first()
