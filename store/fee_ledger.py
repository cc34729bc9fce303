"""The fee ledger: every money fact about a case's fee, append-only.

One row per step (``quoted``, ``accepted``, ``charged``, ``gas_charged``, ``waived``, ``refunded``,
``compensated``, ``gas_spent``), each with its amount in integer base units of ``asset``, its USD value and
the price used at that time, the case, and an idempotency key per case and step. The database refuses to
update or delete a row (triggers on SQLite and PostgreSQL, installed by migration 0002), and a second
``charged`` row for a case violates a partial unique index, whatever code path tries it.

Exact sums in SQL on both databases: amounts are ``store.db.Amount`` (NUMERIC(78,0) on PostgreSQL, TEXT on
SQLite, where SQL cannot add them), so each row also carries its amount split into base-10^12 limbs
(``amount_l0..l2``, and ``amount_hi`` for the part from 10^36 up, NULL on any realistic amount) and its USD
value in micro-dollars likewise (``usd_l0..l1``, ``usd_hi``). ``SUM`` over a limb of 9 million rows stays
below 2^63, and SQLite raises on overflow rather than rounding: the report then falls back to adding the
exact amounts in Python. Why limbs and not a running total per day: the report groups by any of chain,
asset, pattern, day, week and month, and a rollup fine enough for all of them has nearly as many rows as the
ledger; limbs keep one exact aggregate query for every grouping (bench/bench_fee_report.py measures it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, Session, SQLModel, col, select

from store.db import Amount, StrEnumType, UTCDateTime, utcnow

LIMB = 10**12
AMOUNT_LIMBS = 3
USD_LIMBS = 2


class FeeKind(StrEnum):
    QUOTED = "quoted"
    """A fee was quoted (each quote of a case: a re-quote on approval is another row)."""
    ACCEPTED = "accepted"
    """The user accepted the quote (where the policy asks for it)."""
    CHARGED = "charged"
    """The fee taken at settlement, once per case."""
    GAS_CHARGED = "gas_charged"
    """The network cost charged to the user at settlement, in the deposit's asset."""
    WAIVED = "waived"
    """A fee not charged because of a platform-fault incident (the fee the policy would have charged)."""
    REFUNDED = "refunded"
    """A fee already charged, paid back (an incident declared after settlement)."""
    COMPENSATED = "compensated"
    """Compensation paid to the user for a platform-fault incident, never mixed with the fee."""
    GAS_SPENT = "gas_spent"
    """The native coin one recovery transaction actually paid (its receipt's gas used times price)."""


class Route(StrEnum):
    AUTOMATIC = "automatic"
    MANUAL = "manual"


def split_limbs(value: int, limbs: int) -> tuple[list[int], int | None]:
    """``value`` as ``limbs`` base-10^12 digits, low first, and the rest (None when zero)."""
    if value < 0:
        raise ValueError(f"ledger amounts are never negative: {value}")
    parts = []
    for _ in range(limbs):
        value, part = divmod(value, LIMB)
        parts.append(part)
    return parts, (value or None)


def join_limbs(parts: list[int], hi: int) -> int:
    total = hi
    for part in reversed(parts):
        total = total * LIMB + part
    return total


def to_micros(usd: Decimal | Fraction) -> int:
    """USD to whole micro-dollars (half-even), the unit the ledger sums USD in; exact for any size (a Decimal
    product of a 256-bit amount would round at the context's 28 digits)."""
    return round(Fraction(usd) * 10**6)


def usd_micros_of(amount: int, *, decimals: int, price_usd: Decimal) -> int:
    """The USD value of ``amount`` base units at ``price_usd`` per whole unit, in micro-dollars, exactly."""
    return to_micros(Fraction(amount) * Fraction(price_usd) / 10**decimals)


class FeeLedgerEntry(SQLModel, table=True):
    __tablename__ = "fee_ledger"  # type: ignore[assignment]
    __table_args__ = (
        UniqueConstraint("idempotency_key", name="uq_fee_ledger_idempotency_key"),
        Index("ix_fee_ledger_case_id", "case_id"),
        Index("ix_fee_ledger_booked_at", "booked_at"),
        Index(
            "uq_fee_ledger_one_charge_per_case",
            "case_id",
            unique=True,
            sqlite_where=text("kind = 'charged'"),
            postgresql_where=text("kind = 'charged'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=255)
    case_id: str = Field(max_length=255)
    user_id: str = Field(max_length=128)
    kind: FeeKind = Field(sa_type=StrEnumType(FeeKind))
    chain: str = Field(max_length=64)
    asset: str = Field(max_length=128)
    """The asset ``amount`` is in: the deposit's asset, or the chain's native coin for ``gas_spent``."""
    decimals: int | None = None
    amount: int = Field(sa_type=Amount)
    amount_l0: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_l1: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_l2: int = Field(sa_column=Column(BigInteger, nullable=False))
    amount_hi: int | None = Field(default=None, sa_type=Amount)
    usd_micros: int | None = Field(default=None, sa_type=Amount)
    """The amount's USD value in micro-dollars at ``price_usd``; None when there was no price."""
    usd_l0: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    usd_l1: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    usd_hi: int | None = Field(default=None, sa_type=Amount)
    price_usd: str | None = Field(default=None, max_length=64)
    """USD per whole unit of ``asset`` used for ``usd_micros`` (a Decimal as text)."""
    pattern: str | None = Field(default=None, max_length=40)
    route: Route | None = Field(default=None, sa_type=StrEnumType(Route))
    tx_hash: str | None = Field(default=None, max_length=130)
    gas_used: int | None = Field(default=None, sa_type=Amount)
    gas_price: int | None = Field(default=None, sa_type=Amount)
    incident_id: int | None = None
    actor: str | None = Field(default=None, max_length=128)
    note: str | None = Field(default=None, sa_type=Text)
    booked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


@dataclass(frozen=True)
class CaseRef:
    """Who and what an entry is about: the same for every entry of a case."""

    case_id: str
    user_id: str
    chain: str
    pattern: str | None
    route: Route | None


def entry(
    ref: CaseRef,
    *,
    kind: FeeKind,
    key: str,
    asset: str,
    decimals: int | None,
    amount: int,
    price_usd: Decimal | None,
    booked_at: datetime | None = None,
    **extra: Any,
) -> FeeLedgerEntry:
    """A new row (not added): limbs and the USD value computed from ``amount`` and ``price_usd``."""
    limbs, hi = split_limbs(amount, AMOUNT_LIMBS)
    usd = None
    usd_limbs, usd_hi = [0] * USD_LIMBS, None
    if price_usd is not None and decimals is not None:
        usd = usd_micros_of(amount, decimals=decimals, price_usd=price_usd)
        usd_limbs, usd_hi = split_limbs(usd, USD_LIMBS)
    return FeeLedgerEntry(
        idempotency_key=key,
        case_id=ref.case_id,
        user_id=ref.user_id,
        kind=kind,
        chain=ref.chain,
        asset=asset,
        decimals=decimals,
        amount=amount,
        amount_l0=limbs[0],
        amount_l1=limbs[1],
        amount_l2=limbs[2],
        amount_hi=hi,
        usd_micros=usd,
        usd_l0=usd_limbs[0],
        usd_l1=usd_limbs[1],
        usd_hi=usd_hi,
        price_usd=None if price_usd is None else str(price_usd),
        pattern=ref.pattern,
        route=ref.route,
        booked_at=booked_at or utcnow(),
        **extra,
    )


def step_key(case_id: str, step: str) -> str:
    return f"{case_id}:{step}"


def has_key(session: Session, key: str) -> bool:
    found = session.exec(select(FeeLedgerEntry.id).where(FeeLedgerEntry.idempotency_key == key)).first()
    return found is not None


def add_once(session: Session, row: FeeLedgerEntry) -> bool:
    """Add ``row`` to the session unless its idempotency key is booked (not committed: the caller's
    transaction carries it; a concurrent writer of the same key fails at commit on the unique key)."""
    if has_key(session, row.idempotency_key) or any(
        isinstance(o, FeeLedgerEntry) and o.idempotency_key == row.idempotency_key for o in session.new
    ):
        return False
    session.add(row)
    return True


def entries(session: Session, *, case_id: str, kind: FeeKind | None = None) -> list[FeeLedgerEntry]:
    statement = select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id)
    if kind is not None:
        statement = statement.where(FeeLedgerEntry.kind == kind)
    return list(session.exec(statement.order_by(col(FeeLedgerEntry.id))).all())


def one(session: Session, *, case_id: str, kind: FeeKind) -> FeeLedgerEntry | None:
    rows = entries(session, case_id=case_id, kind=kind)
    return rows[-1] if rows else None


@dataclass(frozen=True)
class GasSpent:
    """What one recovery transaction paid in the chain's native coin, from its receipt."""

    tx_hash: str
    gas_used: int
    gas_price: int
    asset: str
    decimals: int
    price_usd: Decimal | None
