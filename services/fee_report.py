"""The fee report finance reads: what the fee ledger (``store.fee_ledger``) booked over a period, grouped by
any combination of chain, asset, pattern, day, week and month.

The period is ``[start, end)`` in UTC: the CLI and the API take ``--from D`` (inclusive) and ``--to D``
(exclusive), dates whose midnights (UTC) bound it. A ledger row is in the period when its ``booked_at`` is,
and in the group of its own chain, asset, pattern and booking day; day, week (labelled by its Monday, ISO
weeks) and month are UTC.

Amounts are never added across assets: every group is reported as *lines*, one per ``(chain, asset)`` in
it (USDT on bsc with 18 decimals and USDT on ethereum with 6 are two lines), with exact integer base
units and their USD value. The group's own figures add the lines' USD values and counts. ``gas_spent`` is in
the chain's native coin, so it is on the native coin's line (``bsc``/``BNB``), next to nothing else unless
the deposit was in that coin.

What each figure reads (per line; the group adds its lines):

- ``cases``: settled cases, i.e. ``charged`` rows (one per case, the ledger's unique index; a free recovery
  books a charge of 0). Every case-level figure below is about these cases and sits where the charge is
  (its chain, asset, pattern and booking day).
- ``recovered``: what the settled cases recovered, ``credited + refunded to the sender + fee + gas charged``
  (``ledger_credits``, ``ledger_refunds`` and the ``charged`` and ``gas_charged`` rows); its USD value is
  each case's amount at the price its charge was booked at.
- ``fees_charged``, ``gas_charged``, ``waived``, ``fees_refunded`` (fees paid back), ``compensated``,
  ``gas_spent``: the sums of the rows of that kind booked in the period, wherever their case settled.
- ``quoted_not_charged`` and ``quoted_not_charged_cases``: cases whose latest ``quoted`` row is in the
  period and that have no ``charged`` row at all (yet): the latest quote's amount. A case counts once, in
  the period of its latest quote.
- ``automatic``, ``manual`` and their shares: settled cases by the route their charge row records (a row
  without one: manual when the case has a ``case_handling`` row).
- ``resolution_avg_s``, ``resolution_p90_s``: whole seconds from the case's ``created_at`` to its charge's
  ``booked_at`` (the settlement, which completes the case in the same transaction); settled cases with a
  case row; p90 is nearest-rank.
- ``recon_ok``, ``recon_mismatch``, ``recon_uncheckable``, ``recon_unchecked``: the settled cases' latest
  reconciliation finding (``case_reconciliation``), or none yet.
- ``usd_unpriced_rows``: rows with no USD value (no price when booked): their USD is missing from the USD
  totals, which are then lower bounds.

Exact sums in SQL: one grouped query over ``fee_ledger`` sums the base-10^12 limbs (``amount_l0..l2``,
``usd_l0..l1``), never the text amounts, and Python joins them into integers. The rare rows with a part from
10^36 up (``amount_hi``, ``usd_hi``: text on SQLite) are counted in SQL and added in Python. If SQLite
raises on an integer overflow (more than about 9 million rows in one group), the same figures are added
exactly in Python from the rows. USD values are ``Decimal`` from integer micro-dollars; nothing is a float.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, Rounded
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer
from sqlalchemy import ColumnElement, Table, and_, case, exists, func, literal_column, or_, select, true
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from recovery.units import format_units
from services.support_metrics import nearest_rank
from store.cases import Case, CaseHandlingRow
from store.fee_ledger import AMOUNT_LIMBS, LIMB, USD_LIMBS, FeeKind, FeeLedgerEntry, Route, usd_micros_of
from store.ledger import LedgerCredit, RefundEntry
from store.reconciliation import CaseReconciliation, ReconStatus

DIMENSIONS = ("chain", "asset", "pattern", "day", "week", "month")
"""What a report can be grouped by, in any combination."""
TIME_DIMENSIONS = ("day", "week", "month")

MEASURES: dict[str, FeeKind | None] = {
    "recovered": None,
    "fees_charged": FeeKind.CHARGED,
    "gas_charged": FeeKind.GAS_CHARGED,
    "waived": FeeKind.WAIVED,
    "fees_refunded": FeeKind.REFUNDED,
    "compensated": FeeKind.COMPENSATED,
    "gas_spent": FeeKind.GAS_SPENT,
    "quoted_not_charged": None,
}
"""The money figures of a line, each in base units of the line's asset and in USD (``<name>_usd``)."""
KIND_MEASURE = {kind: name for name, kind in MEASURES.items() if kind is not None}

_HI_AMOUNT = LIMB**AMOUNT_LIMBS
_HI_USD = LIMB**USD_LIMBS


EXACT = Context(prec=400, traps=[Inexact, Rounded])
"""Decimal arithmetic that raises rather than round (USD sums of 256-bit amounts have over 80 digits)."""


def usd(micros: int) -> Decimal:
    """Micro-dollars as USD, exactly, always with six decimals (the default context would keep 28 digits)."""
    return Decimal(micros).scaleb(-6, EXACT)


class ReportError(ValueError):
    """Bad input to the report, with a message that says what to do."""


# --- the period and the grouping --------------------------------------------------------------------


def parse_day(value: str, name: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ReportError(f"{name}: expected a date as YYYY-MM-DD, such as 2026-11-01, got {value!r}") from None


def period(from_day: date, to_day: date) -> tuple[datetime, datetime]:
    """Midnight (UTC) of ``from_day``, inclusive, to midnight of ``to_day``, exclusive."""
    if to_day <= from_day:
        raise ReportError(
            f"to ({to_day}) must come after from ({from_day}): to is exclusive, so one day is "
            f"from {from_day} to {from_day + timedelta(days=1)}"
        )
    return datetime.combine(from_day, time(), UTC), datetime.combine(to_day, time(), UTC)


def parse_group_by(value: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"chain,asset"`` (or a list of names) as dimensions, in the order given, without repeats."""
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else [p for v in value for p in v.split(",")]
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        if item not in DIMENSIONS:
            raise ReportError(
                f"group by: unknown dimension {item!r}; use any of {', '.join(DIMENSIONS)}, comma-separated "
                "(e.g. chain,asset,month)"
            )
        if item not in out:
            out.append(item)
    return tuple(out)


# --- the report's shape ----------------------------------------------------------------------------

BaseUnits = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]
"""An exact amount in base units: an int in Python, a string of digits in JSON (no float rounding)."""


class FeeLine(BaseModel):
    """One asset of one group: money in base units of ``asset`` (on ``chain``) and in USD."""

    chain: str
    asset: str
    decimals: int | None = Field(description="The asset's decimals; null when the ledger does not know them")
    cases: int = Field(description="Settled cases (one charge each)")
    recovered: BaseUnits = 0
    recovered_usd: Decimal = usd(0)
    fees_charged: BaseUnits = 0
    fees_charged_usd: Decimal = usd(0)
    gas_charged: BaseUnits = 0
    gas_charged_usd: Decimal = usd(0)
    waived: BaseUnits = 0
    waived_usd: Decimal = usd(0)
    fees_refunded: BaseUnits = 0
    fees_refunded_usd: Decimal = usd(0)
    compensated: BaseUnits = 0
    compensated_usd: Decimal = usd(0)
    gas_spent: BaseUnits = 0
    gas_spent_usd: Decimal = usd(0)
    quoted_not_charged: BaseUnits = 0
    quoted_not_charged_usd: Decimal = usd(0)
    quoted_not_charged_cases: int = 0
    automatic: int = 0
    manual: int = 0
    resolution_avg_s: int | None = None
    resolution_p90_s: int | None = None
    recon_ok: int = 0
    recon_mismatch: int = 0
    recon_uncheckable: int = 0
    recon_unchecked: int = 0
    usd_unpriced_rows: int = 0

    def display(self, measure: str) -> str:
        """A money figure in whole units of the asset (base units when the decimals are unknown)."""
        amount: int = getattr(self, measure)
        return str(amount) if self.decimals is None else format_units(amount, self.decimals)


class FeeGroup(BaseModel):
    """One group: its key, the USD and counts of its lines added up, and the lines."""

    key: dict[str, str | None] = Field(description="The group's value of each group-by dimension")
    cases: int
    recovered_usd: Decimal
    fees_charged_usd: Decimal
    gas_charged_usd: Decimal
    waived_usd: Decimal
    fees_refunded_usd: Decimal
    compensated_usd: Decimal
    gas_spent_usd: Decimal
    quoted_not_charged_usd: Decimal
    quoted_not_charged_cases: int
    automatic: int
    manual: int
    automatic_share_pct: Decimal | None
    manual_share_pct: Decimal | None
    resolution_avg_s: int | None
    resolution_p90_s: int | None
    recon_ok: int
    recon_mismatch: int
    recon_uncheckable: int
    recon_unchecked: int
    usd_unpriced_rows: int
    lines: list[FeeLine]


class FeeReport(BaseModel):
    period_from: datetime = Field(description="Start of the period (UTC), inclusive")
    period_to: datetime = Field(description="End of the period (UTC), exclusive")
    group_by: list[str]
    groups: list[FeeGroup]
    total: FeeGroup = Field(description="The whole period in one group (its lines per chain and asset)")


# --- what the database gives ------------------------------------------------------------------------

GroupKey = tuple[str | None, ...]
LineKey = tuple[GroupKey, str, str]
"""(the group's key, chain, asset)"""


@dataclass
class _Sum:
    """Exact sums of one line and one kind."""

    rows: int = 0
    amount: int = 0
    usd_micros: int = 0
    unpriced: int = 0
    decimals: int | None = None


@dataclass
class _CaseFacts:
    """What the report needs of the settled cases of a line."""

    recovered: int = 0
    recovered_usd_micros: int = 0
    durations: list[int] = field(default_factory=list)
    recon: dict[str, int] = field(default_factory=dict)
    manual: int = 0
    automatic: int = 0


LEDGER: Table = FeeLedgerEntry.__table__  # type: ignore[attr-defined]
T = LEDGER.c


def _sql(text: str) -> ColumnElement[Any]:
    """A constant as SQL text, not a bound parameter: PostgreSQL matches a select expression to its GROUP BY
    term only when both are the same text, and separate parameters make them differ."""
    return literal_column(text)


def _dim_column(dim: str, dialect: str) -> ColumnElement[Any]:
    if dim in ("chain", "asset", "pattern"):
        column: ColumnElement[Any] = getattr(T, dim)
        return column
    booked_at = T.booked_at
    if dialect == "postgresql":
        utc = func.timezone(_sql("'UTC'"), booked_at)
        if dim == "day":
            return func.to_char(utc, _sql("'YYYY-MM-DD'"))
        if dim == "week":
            return func.to_char(func.date_trunc(_sql("'week'"), utc), _sql("'YYYY-MM-DD'"))
        return func.to_char(utc, _sql("'YYYY-MM'"))
    if dialect == "sqlite":  # naive UTC text 'YYYY-MM-DD HH:MM:SS.ffffff'
        if dim == "day":
            return func.substr(booked_at, _sql("1"), _sql("10"))
        if dim == "week":  # the Sunday on or after, minus six days: the ISO week's Monday
            return func.date(booked_at, _sql("'weekday 0'"), _sql("'-6 days'"))
        return func.substr(booked_at, _sql("1"), _sql("7"))
    raise ReportError(f"the fee report supports SQLite and PostgreSQL, not {dialect}")


def _line_keys(session: Session, group_by: Sequence[str]) -> tuple[list[str], list[ColumnElement[Any]]]:
    """The dimensions grouped besides chain and asset, and the SQL keys of a line (those, chain, asset)."""
    dialect = session.get_bind().dialect.name
    dims = _key_dims(group_by)
    return dims, [_dim_column(d, dialect) for d in dims] + [T.chain, T.asset]


def _key_dims(group_by: Sequence[str]) -> list[str]:
    """The dimensions grouped in SQL besides chain and asset (which every line has)."""
    return [d for d in group_by if d not in ("chain", "asset")]


def _in_period(start: datetime | None, end: datetime | None, *, scan: bool = False) -> ColumnElement[bool]:
    """``booked_at`` in ``[start, end)``; ``scan``: written so that SQLite reads the table rather than the
    ``booked_at`` index (see :func:`_reads_most_rows`)."""
    booked_at: ColumnElement[Any] = func.coalesce(T.booked_at, T.booked_at) if scan else T.booked_at
    terms: list[ColumnElement[bool]] = []
    if start is not None:
        terms.append(booked_at >= start)
    if end is not None:
        terms.append(booked_at < end)
    return and_(*terms) if terms else true()


SCAN_FROM_SHARE = Decimal("0.3")


def _reads_most_rows(session: Session, start: datetime | None, end: datetime | None) -> bool:
    """Whether SQLite should scan the ledger for this period instead of walking the ``booked_at`` index.

    SQLite keeps no histogram, so it takes the index for any range, and reading most of a million rows
    through it is about a third slower than a plain scan (a narrow period is the other way round). The
    ledger is spread over time, so the period's share of the time it spans (two index lookups) decides.
    PostgreSQL's planner has the statistics: never."""
    if session.get_bind().dialect.name != "sqlite":
        return False
    first, last = session.execute(select(func.min(T.booked_at), func.max(T.booked_at))).one()
    if first is None or last is None:
        return False
    first, last = _aware(first), _aware(last)
    span = last - first
    lo, hi = max(first, start or first), min(last, end or last)
    if span <= timedelta(0):
        return True
    return hi > lo and Decimal((hi - lo) // timedelta(seconds=1)) >= SCAN_FROM_SHARE * (span // timedelta(seconds=1))


def _kind(kind: FeeKind) -> ColumnElement[Any]:
    """A kind as an SQL literal, not a bound parameter: SQLite uses a partial index (``WHERE kind =
    'charged'``) only for a query whose condition names the same literal."""
    return literal_column(f"'{kind.value}'")


def _group_key(row: Sequence[Any], dims: Sequence[str], group_by: Sequence[str]) -> LineKey:
    values = dict(zip(dims, row[: len(dims)], strict=True))
    chain, asset = row[len(dims)], row[len(dims) + 1]
    values["chain"], values["asset"] = chain, asset
    key = tuple(None if values[d] is None else str(values[d]) for d in group_by)
    return key, chain, asset


def _ledger_sums(
    session: Session,
    *,
    group_by: Sequence[str],
    where: ColumnElement[bool],
    by_kind: bool,
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    """Exact sums of the rows matching ``where`` per line (and per kind when ``by_kind``), summing limbs in
    SQL; the exact Python addition over the rows if SQLite overflows."""
    try:
        return _sql_sums(session, group_by=group_by, where=where, by_kind=by_kind)
    except OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        session.rollback()
        return python_sums(session, group_by=group_by, where=where, by_kind=by_kind)


def _sql_sums(
    session: Session, *, group_by: Sequence[str], where: ColumnElement[bool], by_kind: bool
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    dims, keys = _line_keys(session, group_by)
    if by_kind:
        keys.append(T.kind)
    statement = (
        select(
            *keys,
            func.count(),
            func.sum(T.amount_l0),
            func.sum(T.amount_l1),
            func.sum(T.amount_l2),
            func.sum(T.usd_l0),
            func.sum(T.usd_l1),
            func.count(func.coalesce(T.amount_hi, T.usd_hi)),
            func.count(T.usd_micros),
            func.max(T.decimals),
        )
        .where(where)
        .group_by(*keys)
    )
    sums: dict[tuple[LineKey, FeeKind | None], _Sum] = {}
    with_hi = False
    n = len(keys)
    for row in session.execute(statement):
        line = _group_key(row, dims, group_by)
        kind = FeeKind(row[n - 1]) if by_kind else None
        count, a0, a1, a2, u0, u1, hi, priced, decimals = row[n:]
        with_hi = with_hi or bool(hi)
        sums[(line, kind)] = _Sum(
            rows=count,
            amount=int(a0) + int(a1) * LIMB + int(a2) * LIMB**2,
            usd_micros=int(u0) + int(u1) * LIMB,
            unpriced=count - priced,
            decimals=decimals,
        )
    if with_hi:  # parts from 10^36 (amounts) or 10^24 micro-dollars: text on SQLite, added here
        hi_rows = select(*keys, T.amount_hi, T.usd_hi).where(
            and_(where, or_(T.amount_hi.is_not(None), T.usd_hi.is_not(None)))
        )
        for row in session.execute(hi_rows):
            line = _group_key(row, dims, group_by)
            kind = FeeKind(row[n - 1]) if by_kind else None
            amount_hi, usd_hi = _int(row[n]), _int(row[n + 1])
            sums[(line, kind)].amount += amount_hi * _HI_AMOUNT
            sums[(line, kind)].usd_micros += usd_hi * _HI_USD
    return sums


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def python_sums(
    session: Session, *, group_by: Sequence[str], where: ColumnElement[bool], by_kind: bool
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    """The same sums as the SQL aggregate, added exactly in Python from the rows (the overflow fallback)."""
    dims, keys = _line_keys(session, group_by)
    if by_kind:
        keys.append(T.kind)
    n = len(keys)
    amount = T.amount
    statement = select(*keys, amount, T.usd_micros, T.decimals).where(where)
    sums: dict[tuple[LineKey, FeeKind | None], _Sum] = {}
    for row in session.execute(statement):
        line = _group_key(row, dims, group_by)
        kind = FeeKind(row[n - 1]) if by_kind else None
        total = sums.setdefault((line, kind), _Sum())
        value, micros, decimals = row[n:]
        total.rows += 1
        total.amount += int(value)
        if micros is None:
            total.unpriced += 1
        else:
            total.usd_micros += int(micros)
        if decimals is not None:
            total.decimals = decimals if total.decimals is None else max(total.decimals, decimals)
    return sums


def _charges(start: datetime | None, end: datetime | None, scan: bool) -> ColumnElement[bool]:
    return and_(T.kind == _kind(FeeKind.CHARGED), _in_period(start, end, scan=scan))


def _quoted_not_charged(start: datetime | None, end: datetime | None, scan: bool) -> ColumnElement[bool]:
    """Latest quotes of cases without a charge, booked in the period."""
    other = LEDGER.alias("other")
    charged = exists().where(and_(other.c.case_id == T.case_id, other.c.kind == _kind(FeeKind.CHARGED)))
    later = exists().where(and_(other.c.case_id == T.case_id, other.c.kind == _kind(FeeKind.QUOTED), other.c.id > T.id))
    return and_(T.kind == _kind(FeeKind.QUOTED), _in_period(start, end, scan=scan), ~charged, ~later)


def _case_facts(
    session: Session, *, group_by: Sequence[str], start: datetime | None, end: datetime | None, scan: bool
) -> dict[LineKey, _CaseFacts]:
    """Routes, reconciliation findings, credits, refunds and resolution times of the cases charged in the
    period, by line: two passes over the charges (found by the one-charge-per-case index), the first grouped in
    SQL, the second one row per case that has a case row, a credit or a refund."""
    dims, keys = _line_keys(session, group_by)
    n = len(keys)
    facts: dict[LineKey, _CaseFacts] = defaultdict(_CaseFacts)
    charged = _charges(start, end, scan)
    recon = CaseReconciliation.__table__  # type: ignore[attr-defined]
    handling = CaseHandlingRow.__table__  # type: ignore[attr-defined]
    manual = or_(T.route == Route.MANUAL.value, and_(T.route.is_(None), handling.c.case_id.is_not(None)))
    is_manual = case((manual, 1), else_=0)
    statement = (
        select(*keys, is_manual, recon.c.status, func.count())
        .select_from(LEDGER)
        .outerjoin(recon, recon.c.case_id == T.case_id)
        .outerjoin(handling, handling.c.case_id == T.case_id)
        .where(charged)
        .group_by(*keys, is_manual, recon.c.status)
    )
    for row in session.execute(statement):
        fact = facts[_group_key(row, dims, group_by)]
        count = int(row[n + 2])
        if row[n]:
            fact.manual += count
        else:
            fact.automatic += count
        status = "unchecked" if row[n + 1] is None else str(row[n + 1])
        fact.recon[status] = fact.recon.get(status, 0) + count

    # recovered = credited or refunded to the sender (text amounts: added here) + fee + gas charged (summed later)
    cases = Case.__table__  # type: ignore[attr-defined]
    credits = LedgerCredit.__table__  # type: ignore[attr-defined]
    refunds = RefundEntry.__table__  # type: ignore[attr-defined]
    statement = (
        select(*keys, cases.c.created_at, T.booked_at, credits.c.amount, refunds.c.amount, T.decimals, T.price_usd)
        .select_from(LEDGER)
        .outerjoin(cases, cases.c.case_id == T.case_id)
        .outerjoin(credits, credits.c.case_id == T.case_id)
        .outerjoin(refunds, refunds.c.case_id == T.case_id)
        .where(
            and_(
                charged,
                or_(cases.c.case_id.is_not(None), credits.c.case_id.is_not(None), refunds.c.case_id.is_not(None)),
            )
        )
    )
    for row in session.execute(statement):
        fact = facts[_group_key(row, dims, group_by)]
        opened, settled, credited, refunded, decimals, price = row[n:]
        if opened is not None:
            fact.durations.append(max(0, (_aware(settled) - _aware(opened)) // timedelta(seconds=1)))
        paid_out = _int(credited) + _int(refunded)
        fact.recovered += paid_out
        if price is not None and decimals is not None and paid_out:
            fact.recovered_usd_micros += usd_micros_of(paid_out, decimals=decimals, price_usd=Decimal(price))
    return facts


def _aware(value: Any) -> datetime:
    """A timestamp read through a raw column (SQLite gives naive UTC, sometimes as text)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# --- the report ------------------------------------------------------------------------------------


def _pct(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def _average(values: Sequence[int]) -> int | None:
    return sum(values) // len(values) if values else None


def build_lines(
    sums: Mapping[tuple[LineKey, FeeKind | None], _Sum],
    quoted: Mapping[tuple[LineKey, FeeKind | None], _Sum],
    facts: Mapping[LineKey, _CaseFacts],
) -> dict[LineKey, tuple[FeeLine, list[int]]]:
    """Every line with its figures, and the resolution durations of its cases (for the groups' p90)."""
    keys = {line for line, _ in sums} | {line for line, _ in quoted} | set(facts)
    decimals_of: dict[LineKey, int] = {}
    for (line_key, _), total in sums.items():
        if total.decimals is not None:
            decimals_of.setdefault(line_key, total.decimals)
    lines: dict[LineKey, tuple[FeeLine, list[int]]] = {}
    for key in sorted(keys, key=lambda k: tuple("" if v is None else v for v in (*k[0], k[1], k[2]))):
        _, chain, asset = key
        values: dict[str, Any] = {}
        decimals = decimals_of.get(key)
        unpriced = 0
        measured = key in facts
        for kind, measure in KIND_MEASURE.items():
            found = sums.get((key, kind))
            if found is None:
                continue
            measured = True
            values[measure] = found.amount
            values[f"{measure}_usd"] = usd(found.usd_micros)
            unpriced += found.unpriced
        charged = sums.get((key, FeeKind.CHARGED)) or _Sum()
        q = quoted.get((key, None))
        if q is not None:
            measured = True
            values["quoted_not_charged"] = q.amount
            values["quoted_not_charged_usd"] = usd(q.usd_micros)
            values["quoted_not_charged_cases"] = q.rows
            decimals = q.decimals if decimals is None else decimals
            unpriced += q.unpriced
        if not measured:  # only quotes and acceptances that do not count here
            continue
        fact = facts.get(key) or _CaseFacts()
        if charged.rows:
            gas = sums.get((key, FeeKind.GAS_CHARGED)) or _Sum()
            values["recovered"] = fact.recovered + charged.amount + gas.amount
            values["recovered_usd"] = usd(fact.recovered_usd_micros + charged.usd_micros + gas.usd_micros)
        line = FeeLine(
            chain=chain,
            asset=asset,
            decimals=decimals,
            cases=charged.rows,
            automatic=fact.automatic,
            manual=fact.manual,
            resolution_avg_s=_average(fact.durations),
            resolution_p90_s=nearest_rank(fact.durations, 90),
            recon_ok=fact.recon.get(ReconStatus.OK.value, 0),
            recon_mismatch=fact.recon.get(ReconStatus.MISMATCH.value, 0),
            recon_uncheckable=fact.recon.get(ReconStatus.UNCHECKABLE.value, 0),
            recon_unchecked=fact.recon.get("unchecked", 0),
            usd_unpriced_rows=unpriced,
            **values,
        )
        lines[key] = (line, fact.durations)
    return lines


def sum_usd(values: Iterable[Decimal]) -> Decimal:
    """USD amounts added exactly."""
    total = usd(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def build_group(key: dict[str, str | None], members: Iterable[tuple[FeeLine, list[int]]]) -> FeeGroup:
    """A group from its lines: USD and counts added, resolution times over all its cases."""
    items = list(members)
    lines = [line for line, _ in items]
    durations = [d for _, ds in items for d in ds]

    def usd(measure: str) -> Decimal:
        return sum_usd(getattr(line, f"{measure}_usd") for line in lines)

    def count(name: str) -> int:
        return sum(getattr(line, name) for line in lines)

    automatic, manual = count("automatic"), count("manual")
    return FeeGroup(
        key=key,
        cases=count("cases"),
        **{f"{m}_usd": usd(m) for m in MEASURES},
        quoted_not_charged_cases=count("quoted_not_charged_cases"),
        automatic=automatic,
        manual=manual,
        automatic_share_pct=_pct(automatic, automatic + manual),
        manual_share_pct=_pct(manual, automatic + manual),
        resolution_avg_s=_average(durations),
        resolution_p90_s=nearest_rank(durations, 90),
        recon_ok=count("recon_ok"),
        recon_mismatch=count("recon_mismatch"),
        recon_uncheckable=count("recon_uncheckable"),
        recon_unchecked=count("recon_unchecked"),
        usd_unpriced_rows=count("usd_unpriced_rows"),
        lines=lines,
    )


def _merge_total(lines: Mapping[LineKey, tuple[FeeLine, list[int]]]) -> list[tuple[FeeLine, list[int]]]:
    """The period's lines per (chain, asset), across groups: base units of one asset only are added."""
    merged: dict[tuple[str, str], tuple[dict[str, Any], list[int]]] = {}
    for (_, chain, asset), (line, durations) in lines.items():
        values, all_durations = merged.setdefault((chain, asset), ({}, []))
        all_durations.extend(durations)
        for name, value in line.model_dump().items():
            if name in ("chain", "asset", "resolution_avg_s", "resolution_p90_s"):
                continue
            if name == "decimals":
                values[name] = value if values.get(name) is None else values[name]
            elif isinstance(value, Decimal):
                values[name] = EXACT.add(values.get(name, usd(0)), value)
            else:
                values[name] = values.get(name, 0) + value
    out = []
    for (chain, asset), (values, durations) in sorted(merged.items()):
        line = FeeLine(
            chain=chain,
            asset=asset,
            resolution_avg_s=_average(durations),
            resolution_p90_s=nearest_rank(durations, 90),
            **values,
        )
        out.append((line, durations))
    return out


def fee_report(
    session: Session,
    *,
    start: datetime | None,
    end: datetime | None,
    group_by: Sequence[str] = (),
) -> FeeReport:
    """The fee report of ``[start, end)`` (aware datetimes; None: unbounded) grouped by ``group_by``."""
    group_by = parse_group_by(list(group_by))
    for bound in (start, end):
        if bound is not None and bound.tzinfo is None:
            raise ReportError("the period's bounds must be aware datetimes (UTC)")
    if start is not None and end is not None and end <= start:
        raise ReportError(f"the period is empty: it ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    try:
        scan = _reads_most_rows(session, start, end)
        sums = _ledger_sums(session, group_by=group_by, where=_in_period(start, end, scan=scan), by_kind=True)
        quoted = _ledger_sums(session, group_by=group_by, where=_quoted_not_charged(start, end, scan), by_kind=False)
        facts = _case_facts(session, group_by=group_by, start=start, end=end, scan=scan)
    finally:
        session.commit()  # hand the connection back (reads only)
    lines = build_lines(sums, quoted, facts)
    by_group: dict[GroupKey, list[tuple[FeeLine, list[int]]]] = defaultdict(list)
    for (group, _, _), item in lines.items():
        by_group[group].append(item)
    groups = [build_group(dict(zip(group_by, key, strict=True)), items) for key, items in by_group.items()]
    return FeeReport(
        period_from=start or datetime.min.replace(tzinfo=UTC),
        period_to=end or datetime.max.replace(tzinfo=UTC),
        group_by=list(group_by),
        groups=groups,
        total=build_group({}, _merge_total(lines)),
    )


# --- renderings shared by the CLI and the API ----------------------------------------------------------

LINE_COLUMNS = [name for name in FeeLine.model_fields if name not in ("chain", "asset")]


def csv_rows(report: FeeReport) -> list[dict[str, str]]:
    """One row per line: the group-by columns (except chain and asset), then chain, asset and the line's
    figures; base units as integers, USD as decimals, empty for none. The JSON's ``groups[].lines`` flattened."""
    key_columns = _key_dims(report.group_by)
    rows = []
    for group in report.groups:
        for line in group.lines:
            values = line.model_dump(mode="json")
            row = {d: group.key.get(d) or "" for d in key_columns}
            row |= {"chain": line.chain, "asset": line.asset}
            row |= {c: "" if values[c] is None else str(values[c]) for c in LINE_COLUMNS}
            rows.append(row)
    return rows


def to_csv(report: FeeReport) -> str:
    out = io.StringIO()
    columns = [*_key_dims(report.group_by), "chain", "asset", *LINE_COLUMNS]
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(csv_rows(report))
    return out.getvalue()
