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

from sqlalchemy import BigInteger, Index, Text, UniqueConstraint, delete, text
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
    RECOVERED = "recovered"
    """What a settled case recovered, credited (or refunded) + fee + gas charged, in the deposit's asset: booked
    with the charge, so that the report adds recovered value in the same pass as the fees."""


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


CHARGE_COLUMNS = ("booked_at", "chain", "asset", "pattern", "route", "resolution_s", "case_id")
"""The charges' own index holds everything the report reads of a settled case (one row each): its per-case
figures come from the index alone, not from the ledger's rows."""


HUGE_CONDITION = "amount_hi IS NOT NULL OR usd_hi IS NOT NULL"
"""Rows with an amount from 10^36 base units or a USD value from 10^24 micro-dollars (rare): the report adds
their high parts in Python, found through a partial index."""


class Money(SQLModel):
    """An exact amount with its limbs, and its USD value with its limbs (see the module's docstring): the
    columns the report sums, in the ledger and in its open-quotes projection alike."""

    amount: int = Field(sa_type=Amount)
    amount_l0: int = Field(sa_type=BigInteger)
    amount_l1: int = Field(sa_type=BigInteger)
    amount_l2: int = Field(sa_type=BigInteger)
    amount_hi: int | None = Field(default=None, sa_type=Amount)
    usd_micros: int | None = Field(default=None, sa_type=Amount)
    """The amount's USD value in micro-dollars at the row's price; None when there was no price."""
    usd_l0: int = Field(default=0, sa_type=BigInteger)
    usd_l1: int = Field(default=0, sa_type=BigInteger)
    usd_hi: int | None = Field(default=None, sa_type=Amount)


class FeeLedgerEntry(Money, table=True):
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
        Index(
            "ix_fee_ledger_charges",
            *CHARGE_COLUMNS,
            sqlite_where=text("kind = 'charged'"),
            postgresql_where=text("kind = 'charged'"),
        ),
        Index(
            "ix_fee_ledger_huge",
            "booked_at",
            sqlite_where=text(HUGE_CONDITION),
            postgresql_where=text(HUGE_CONDITION),
        ),
        Index(
            "ix_fee_ledger_unpriced",
            "booked_at",
            "chain",
            "asset",
            "kind",
            "pattern",
            sqlite_where=text("usd_micros IS NULL"),
            postgresql_where=text("usd_micros IS NULL"),
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
    price_usd: str | None = Field(default=None, max_length=64)
    """USD per whole unit of ``asset`` used for ``usd_micros`` (a Decimal as text)."""
    pattern: str | None = Field(default=None, max_length=40)
    route: Route | None = Field(default=None, sa_type=StrEnumType(Route))
    tx_hash: str | None = Field(default=None, max_length=130)
    gas_used: int | None = Field(default=None, sa_type=Amount)
    gas_price: int | None = Field(default=None, sa_type=Amount)
    incident_id: int | None = None
    resolution_s: int | None = Field(default=None, sa_type=BigInteger)
    """On a ``charged`` row: whole seconds from the case's opening to this settlement."""
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
    usd_micros: int | None = None,
    **extra: Any,
) -> FeeLedgerEntry:
    """A new row (not added): limbs and the USD value computed from ``amount`` and ``price_usd``; without a
    price, ``usd_micros`` is the USD value when one is known otherwise (a quote's own USD figure)."""
    limbs, hi = split_limbs(amount, AMOUNT_LIMBS)
    usd = usd_micros
    if price_usd is not None and decimals is not None:
        usd = usd_micros_of(amount, decimals=decimals, price_usd=price_usd)
    usd_limbs, usd_hi = ([0] * USD_LIMBS, None) if usd is None else split_limbs(usd, USD_LIMBS)
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


class FeeOpenQuote(Money, table=True):
    """The latest quote of each case not charged yet (a projection of the ledger, kept by :func:`add` in the
    same transaction as the rows): the report's quoted-but-not-charged reads these few rows instead of
    searching the whole ledger for quotes without a later quote or a charge."""

    __tablename__ = "fee_open_quotes"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    entry_key: str = Field(max_length=255)
    """The idempotency key of the case's latest ``quoted`` row; the columns below are copied from it."""
    chain: str = Field(max_length=64)
    asset: str = Field(max_length=128)
    decimals: int | None = None
    pattern: str | None = Field(default=None, max_length=40)
    booked_at: datetime = Field(sa_type=UTCDateTime)

    @classmethod
    def of(cls, row: FeeLedgerEntry) -> FeeOpenQuote:
        return cls(entry_key=row.idempotency_key, **row.model_dump(include=set(OPEN_QUOTE_COLUMNS)))


OPEN_QUOTE_COLUMNS = ("case_id", "chain", "asset", "decimals", "pattern", "booked_at", *Money.model_fields)
"""What an open quote copies from its ledger row (and ``entry_key``, the row's idempotency key)."""


def add(session: Session, row: FeeLedgerEntry) -> None:
    """Add ``row`` to the session (not committed: the caller's transaction carries it, and a second row under
    its key fails there, on the unique key), and keep :class:`FeeOpenQuote` with it: a quote becomes its
    case's open quote, a charge closes it. Flushes nothing early (no autoflush), so a conflict surfaces at the
    caller's commit."""
    with session.no_autoflush:
        pending = [o for o in session.new if isinstance(o, FeeLedgerEntry) and o.case_id == row.case_id]
        session.add(row)
        if row.kind is FeeKind.CHARGED:
            session.execute(delete(FeeOpenQuote).where(col(FeeOpenQuote.case_id) == row.case_id))
        elif row.kind is FeeKind.QUOTED:
            charged = any(o.kind is FeeKind.CHARGED for o in pending)
            if not charged and one(session, case_id=row.case_id, kind=FeeKind.CHARGED) is None:
                session.merge(FeeOpenQuote.of(row))  # the case's newer quote replaces its older one


def add_once(session: Session, row: FeeLedgerEntry) -> bool:
    """:func:`add` unless the row's idempotency key is booked or pending (a retried step adds nothing)."""
    with session.no_autoflush:
        pending = (o for o in session.new if isinstance(o, FeeLedgerEntry))
        if has_key(session, row.idempotency_key) or any(o.idempotency_key == row.idempotency_key for o in pending):
            return False
    add(session, row)
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
