"""The ledger port and its development implementation: credits to users and the fees we keep.

Production would post to the exchange's ledger; here both entries live in the case database, in the
same metadata as :mod:`recovery.store`. Each deposit is credited at most once: the primary keys
(``credit:<deposit_key>`` and ``fee:<deposit_key>``) make a second or concurrent settlement fail, and
the credit, the fee and the case's completion commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.models import CaseStatus, Settlement
from recovery.store import (
    Amount,
    Case,
    CaseEvent,
    CaseNotFound,
    UTCDateTime,
    begin_write,
    format_units,
    utcnow,
)


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


def settle_case(
    session: Session,
    *,
    case_id: str,
    user_id: str,
    deposit_key: str,
    chain: str,
    asset: str,
    settlement: Settlement,
    fee_usd: Decimal,
) -> bool:
    """Credit the user, book the fee and complete the case, in one transaction, at most once.

    Returns True when this call settled the deposit, False when it had already been settled (by an
    earlier attempt or a concurrent worker); then nothing changes. Raises :class:`CaseNotFound`, or
    ``ValueError`` for an inconsistent settlement or a case owned by another user.
    """
    parts = (settlement.credited, settlement.fee, settlement.gas)
    if min(parts) < 0 or sum(parts) != settlement.recovered:
        raise ValueError(
            f"settlement does not add up: credited {settlement.credited} + fee {settlement.fee} "
            f"+ gas {settlement.gas} != recovered {settlement.recovered}"
        )
    begin_write(session)
    if session.get(LedgerCredit, credit_key(deposit_key)) is not None:
        session.rollback()
        return False
    case = session.get(Case, case_id)
    if case is None:
        session.rollback()
        raise CaseNotFound(case_id)
    if case.user_id != user_id:
        session.rollback()
        raise ValueError(f"case {case_id} belongs to {case.user_id}, not {user_id}")

    already_noted = session.exec(
        select(CaseEvent.id).where(CaseEvent.case_id == case_id, CaseEvent.key == "credited")
    ).first()

    # queries above, writes below: nothing is flushed before the commit, where a concurrent
    # settlement of the same deposit surfaces as a primary-key violation
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
    case.status = CaseStatus.COMPLETED
    case.credited = settlement.credited
    case.fee = settlement.fee
    case.gas = settlement.gas
    case.fee_usd = str(fee_usd)
    case.updated_at = now
    session.add(case)
    if already_noted is None:
        session.add(
            CaseEvent(
                case_id=case_id,
                key="credited",
                status=CaseStatus.COMPLETED,
                message=_credited_message(case, asset, settlement),
                at=now,
            )
        )
    try:
        session.commit()
    except IntegrityError:  # a concurrent worker settled this deposit first
        session.rollback()
        return False
    return True


def _credited_message(case: Case, asset: str, settlement: Settlement) -> str:
    def show(amount: int) -> str:
        return format_units(amount, case.decimals) if case.decimals is not None else f"{amount} base units of"

    return (
        f"Credited {show(settlement.credited)} {asset} to your account "
        f"(recovery fee {show(settlement.fee)}, network cost {show(settlement.gas)})"
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
