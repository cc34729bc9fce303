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
- ``recovered``: what the settled cases recovered, ``credited + refunded to the sender + fee + gas charged``:
  the ``recovered`` rows the settlement books with each charge, at the charge's price.
- ``fees_charged``, ``gas_charged``, ``waived``, ``fees_refunded`` (fees paid back), ``compensated``,
  ``gas_spent``: the sums of the rows of that kind booked in the period, wherever their case settled.
- ``quoted_not_charged`` and ``quoted_not_charged_cases``: cases whose latest ``quoted`` row is in the
  period and that have no ``charged`` row at all (yet): the latest quote's amount. A case counts once, in
  the period of its latest quote. Read from ``fee_open_quotes``, which the ledger's writer keeps in the
  same transaction as the rows (``store.fee_ledger.add``): a few rows, not a search of the whole ledger.
- ``automatic``, ``manual`` and their shares: settled cases by the route their charge row records (a row
  without one counts as automatic).
- ``resolution_avg_s``, ``resolution_p90_s``: whole seconds from the case's opening to its settlement, as
  the charge row records it (``resolution_s``); p90 is nearest-rank.
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
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Context, Decimal, Inexact, Rounded
from typing import Annotated, Any

from pydantic import BaseModel, Field, PlainSerializer
from sqlalchemy import ColumnElement, Engine, Table, and_, func, literal_column, or_, select, true
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from recovery.units import format_units
from services.support_metrics import nearest_rank, nearest_rank_of_runs
from store.fee_ledger import AMOUNT_LIMBS, LIMB, USD_LIMBS, FeeKind, FeeLedgerEntry, FeeOpenQuote, Route
from store.reconciliation import CaseReconciliation, ReconStatus

DIMENSIONS = ("chain", "asset", "pattern", "day", "week", "month")
"""What a report can be grouped by, in any combination."""

MEASURES: dict[str, FeeKind | None] = {
    "recovered": FeeKind.RECOVERED,
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
class _Resolution:
    """Times to resolution: their exact sum and count (averages add up from these) and the p90, which does not
    add up: it is taken from the times themselves for each line, each group and the total (:func:`_p90_levels`)."""

    total_s: int = 0
    count: int = 0
    p90_s: int | None = None

    @property
    def average_s(self) -> int | None:
        return self.total_s // self.count if self.count else None

    def __add__(self, other: _Resolution) -> _Resolution:
        return _Resolution(self.total_s + other.total_s, self.count + other.count)


@dataclass
class _CaseFacts:
    """What the report needs of the settled cases of a line ."""

    recon: dict[str, int] = field(default_factory=dict)
    manual: int = 0
    automatic: int = 0
    resolution: _Resolution = field(default_factory=_Resolution)


LEDGER: Table = FeeLedgerEntry.__table__  # type: ignore[attr-defined]
T = LEDGER.c


def _sql(text: str) -> ColumnElement[Any]:
    """A constant as SQL text, not a bound parameter: PostgreSQL matches a select expression to its GROUP BY
    term only when both are the same text, and separate parameters make them differ."""
    return literal_column(text)


def _dim_column(dim: str, dialect: str, table: Table = LEDGER) -> ColumnElement[Any]:
    if dim in ("chain", "asset", "pattern"):
        column: ColumnElement[Any] = getattr(table.c, dim)
        return column
    booked_at = table.c.booked_at
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


def _line_keys(
    session: Session, group_by: Sequence[str], table: Table = LEDGER
) -> tuple[list[str], list[ColumnElement[Any]]]:
    """The dimensions grouped besides chain and asset, and the SQL keys of a line (those, chain, asset)."""
    dialect = session.get_bind().dialect.name
    dims = _key_dims(group_by)
    return dims, [_dim_column(d, dialect, table) for d in dims] + [table.c.chain, table.c.asset]


def _key_dims(group_by: Sequence[str]) -> list[str]:
    """The dimensions grouped in SQL besides chain and asset (which every line has)."""
    return [d for d in group_by if d not in ("chain", "asset")]


def _in_period(
    start: datetime | None, end: datetime | None, *, scan: bool = False, table: Table = LEDGER
) -> ColumnElement[bool]:
    """``booked_at`` in ``[start, end)``; ``scan``: written so that SQLite reads the table rather than the
    ``booked_at`` index (see :func:`_reads_most_rows`)."""
    c = table.c
    booked_at: ColumnElement[Any] = func.coalesce(c.booked_at, c.booked_at) if scan else c.booked_at
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
    # two queries: SQLite answers a lone min() or max() from the index, both together by a scan
    first = session.execute(select(func.min(T.booked_at))).scalar()
    last = session.execute(select(func.max(T.booked_at))).scalar()
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
    table: Table = LEDGER,
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    """Exact sums of the rows of ``table`` (the ledger, or the open quotes, which carry the same money
    columns) matching ``where`` per line (and per kind when ``by_kind``), summing limbs in SQL; the exact
    Python addition over the rows if SQLite overflows."""
    try:
        return _sql_sums(session, group_by=group_by, where=where, by_kind=by_kind, table=table)
    except OperationalError as exc:
        if "integer overflow" not in str(exc):
            raise
        session.rollback()
        return python_sums(session, group_by=group_by, where=where, by_kind=by_kind, table=table)


def _sql_sums(
    session: Session, *, group_by: Sequence[str], where: ColumnElement[bool], by_kind: bool, table: Table
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    dims, keys = _line_keys(session, group_by, table)
    c = table.c
    if by_kind:
        keys.append(c.kind)
    statement = (
        select(
            *keys,
            func.count(),
            func.sum(c.amount_l0),
            func.sum(c.amount_l1),
            func.sum(c.amount_l2),
            func.sum(c.usd_l0),
            func.sum(c.usd_l1),
            func.max(c.decimals),
        )
        .select_from(table)
        .where(where)
        .group_by(*keys)
    )
    sums: dict[tuple[LineKey, FeeKind | None], _Sum] = {}
    n = len(keys)
    for row in session.execute(statement):
        line = _group_key(row, dims, group_by)
        kind = FeeKind(row[n - 1]) if by_kind else None
        count, a0, a1, a2, u0, u1, decimals = row[n:]
        sums[(line, kind)] = _Sum(
            rows=count,
            amount=int(a0) + int(a1) * LIMB + int(a2) * LIMB**2,
            usd_micros=int(u0) + int(u1) * LIMB,
            decimals=decimals,
        )
    # The rare rows below are found through their own partial indexes (ix_fee_ledger_huge, ix_fee_ledger_unpriced),
    # not counted in the pass above: each extra aggregate there costs every row of the ledger.
    huge = select(*keys, c.amount_hi, c.usd_hi).select_from(table).where(and_(where, _huge_rows(c)))
    for row in session.execute(huge):  # parts from 10^36 (amounts) or 10^24 micro-dollars: text on SQLite
        line = _group_key(row, dims, group_by)
        kind = FeeKind(row[n - 1]) if by_kind else None
        sums[(line, kind)].amount += _int(row[n]) * _HI_AMOUNT
        sums[(line, kind)].usd_micros += _int(row[n + 1]) * _HI_USD
    unpriced = select(*keys, func.count()).select_from(table).where(and_(where, c.usd_micros.is_(None)))
    for row in session.execute(unpriced.group_by(*keys)):
        line = _group_key(row, dims, group_by)
        kind = FeeKind(row[n - 1]) if by_kind else None
        sums[(line, kind)].unpriced = int(row[n])
    return sums


def _huge_rows(c: Any) -> ColumnElement[bool]:
    """The condition of ``ix_fee_ledger_huge``: SQLite uses a partial index only for a query that says it."""
    return or_(c.amount_hi.is_not(None), c.usd_hi.is_not(None))


def _int(value: Any) -> int:
    return 0 if value is None else int(value)


def python_sums(
    session: Session,
    *,
    group_by: Sequence[str],
    where: ColumnElement[bool],
    by_kind: bool,
    table: Table = LEDGER,
) -> dict[tuple[LineKey, FeeKind | None], _Sum]:
    """The same sums as the SQL aggregate, added exactly in Python from the rows (the overflow fallback)."""
    dims, keys = _line_keys(session, group_by, table)
    c = table.c
    if by_kind:
        keys.append(c.kind)
    n = len(keys)
    statement = select(*keys, c.amount, c.usd_micros, c.decimals).select_from(table).where(where)
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


def _charges(start: datetime | None, end: datetime | None) -> ColumnElement[bool]:
    """The charges booked in the period: read from their covering index (``ix_fee_ledger_charges``), whatever
    the period's length."""
    return and_(T.kind == _kind(FeeKind.CHARGED), _in_period(start, end))


OPEN_QUOTES: Table = FeeOpenQuote.__table__  # type: ignore[attr-defined]
"""Each case's latest quote while it has no charge (``store.fee_ledger.FeeOpenQuote``), with the quote row's
money columns: a few rows, summed like the ledger's, however large the ledger."""


def _case_facts(
    session: Session, *, group_by: Sequence[str], start: datetime | None, end: datetime | None
) -> tuple[dict[LineKey, _CaseFacts], dict[LineKey, list[int]]]:
    """Routes, times to resolution and reconciliation findings of the cases charged in the period, by line,
    from the charge rows (which carry route and ``resolution_s``: no join), read from the charges' covering
    index; the findings driven from the findings. Also every line's times, for the p90 of each level.

    The times come in one value per line and route, gathered by the database (``array_agg`` on PostgreSQL;
    ``group_concat`` on SQLite, whose text Python splits): no row per case crosses to Python, and no
    percentile is sorted in SQL per level (PostgreSQL's ``percentile_disc`` and a window on SQLite both cost
    more, measured with bench/bench_fee_report.py)."""
    dims, keys = _line_keys(session, group_by)
    n = len(keys)
    facts: dict[LineKey, _CaseFacts] = defaultdict(_CaseFacts)
    times: dict[LineKey, list[int]] = defaultdict(list)
    postgres = session.get_bind().dialect.name == "postgresql"
    timed = T.resolution_s.is_not(None)
    gathered = func.array_agg(T.resolution_s).filter(timed) if postgres else func.group_concat(T.resolution_s)
    charged = _charges(start, end)
    statement = select(*keys, T.route, func.count(), gathered).where(charged).group_by(*keys, T.route)
    for row in session.execute(statement):
        key = _group_key(row, dims, group_by)
        fact = facts[key]
        if row[n] is Route.MANUAL:
            fact.manual += int(row[n + 1])
        else:
            fact.automatic += int(row[n + 1])
        durations = _durations(row[n + 2])
        fact.resolution += _Resolution(sum(durations), len(durations))
        times[key].extend(durations)

    recon = CaseReconciliation.__table__  # type: ignore[attr-defined]
    statement = (
        select(*keys, recon.c.status, func.count())
        .select_from(recon.join(LEDGER, T.case_id == recon.c.case_id))
        .where(charged)
        .group_by(*keys, recon.c.status)
    )
    for row in session.execute(statement):
        fact = facts[_group_key(row, dims, group_by)]
        status = str(row[n])
        fact.recon[status] = fact.recon.get(status, 0) + int(row[n + 1])
    return facts, times


def _durations(gathered: Any) -> list[int]:
    """A line's times as the database gathered them: an int array (PostgreSQL, NULLs filtered out in SQL) or
    comma-separated text (SQLite's ``group_concat``, which skips NULLs); None when there were none."""
    if not gathered:
        return []
    if isinstance(gathered, str):
        return list(map(int, gathered.split(",")))
    return list(gathered)


def _p90_levels(
    times: Mapping[LineKey, list[int]],
) -> tuple[dict[LineKey, int], dict[GroupKey, int], dict[GroupKey, int], dict[GroupKey, int]]:
    """From every line's times: the nearest-rank p90 of each line, each group, each (chain, asset) and all.
    Each line's times are sorted once; a level made of one line takes that line's p90, and a level of several
    selects from its lines' sorted runs without merging them (:func:`nearest_rank_of_runs`)."""
    ordered = {key: sorted(values) for key, values in times.items() if values}
    lines = {key: _p90_sorted(values) for key, values in ordered.items()}

    def level(of: Callable[[LineKey], GroupKey]) -> dict[GroupKey, int]:
        members: dict[GroupKey, list[LineKey]] = defaultdict(list)
        for key in ordered:
            members[of(key)].append(key)
        out = {}
        for name, keys in members.items():
            if len(keys) == 1:
                out[name] = lines[keys[0]]
            else:
                found = nearest_rank_of_runs([ordered[key] for key in keys], 90)
                assert found is not None  # a level has at least one value
                out[name] = found
        return out

    return lines, level(lambda k: k[0]), level(lambda k: (k[1], k[2])), level(lambda k: ())


def _p90_sorted(values: Sequence[int]) -> int:
    found = nearest_rank(values, 90, presorted=True)
    assert found is not None  # a level has at least one value
    return found


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


def build_lines(
    sums: Mapping[tuple[LineKey, FeeKind | None], _Sum],
    quoted: Mapping[tuple[LineKey, FeeKind | None], _Sum],
    facts: Mapping[LineKey, _CaseFacts],
) -> dict[LineKey, tuple[FeeLine, _Resolution]]:
    """Every line with its figures, and the resolution times of its cases (for the groups' averages)."""
    keys = {line for line, _ in sums} | {line for line, _ in quoted} | set(facts)
    decimals_of: dict[LineKey, int] = {}
    for (line_key, _), total in sums.items():
        if total.decimals is not None:
            decimals_of.setdefault(line_key, total.decimals)
    lines: dict[LineKey, tuple[FeeLine, _Resolution]] = {}
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
        line = FeeLine(
            chain=chain,
            asset=asset,
            decimals=decimals,
            cases=charged.rows,
            automatic=fact.automatic,
            manual=fact.manual,
            resolution_avg_s=fact.resolution.average_s,
            resolution_p90_s=fact.resolution.p90_s,
            recon_ok=fact.recon.get(ReconStatus.OK.value, 0),
            recon_mismatch=fact.recon.get(ReconStatus.MISMATCH.value, 0),
            recon_uncheckable=fact.recon.get(ReconStatus.UNCHECKABLE.value, 0),
            recon_unchecked=charged.rows - sum(fact.recon.values()),
            usd_unpriced_rows=unpriced,
            **values,
        )
        lines[key] = (line, fact.resolution)
    return lines


def sum_usd(values: Iterable[Decimal]) -> Decimal:
    """USD amounts added exactly."""
    total = usd(0)
    for value in values:
        total = EXACT.add(total, value)
    return total


def build_group(
    key: dict[str, str | None], members: Iterable[tuple[FeeLine, _Resolution]], p90_s: int | None
) -> FeeGroup:
    """A group from its lines: USD and counts added, the average time to resolution over all its cases, and
    its own p90 (percentiles do not add up)."""
    items = list(members)
    lines = [line for line, _ in items]
    resolution = sum((r for _, r in items), _Resolution())

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
        resolution_avg_s=resolution.average_s,
        resolution_p90_s=p90_s,
        recon_ok=count("recon_ok"),
        recon_mismatch=count("recon_mismatch"),
        recon_uncheckable=count("recon_uncheckable"),
        recon_unchecked=count("recon_unchecked"),
        usd_unpriced_rows=count("usd_unpriced_rows"),
        lines=lines,
    )


def _merge_total(
    lines: Mapping[LineKey, tuple[FeeLine, _Resolution]], p90: Mapping[GroupKey, int]
) -> list[tuple[FeeLine, _Resolution]]:
    """The period's lines per (chain, asset), across groups: base units of one asset only are added; ``p90``
    is each (chain, asset)'s own."""
    merged: dict[tuple[str, str], tuple[dict[str, Any], _Resolution]] = {}
    for (_, chain, asset), (line, resolution) in lines.items():
        values, so_far = merged.get((chain, asset), ({}, _Resolution()))
        merged[(chain, asset)] = (values, so_far + resolution)
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
    for (chain, asset), (values, resolution) in sorted(merged.items()):
        line = FeeLine(
            chain=chain,
            asset=asset,
            resolution_avg_s=resolution.average_s,
            resolution_p90_s=p90.get((chain, asset)),
            **values,
        )
        out.append((line, resolution))
    return out


_SideFigures = tuple[
    dict[tuple[LineKey, FeeKind | None], _Sum],
    dict[LineKey, _CaseFacts],
    tuple[dict[LineKey, int], dict[GroupKey, int], dict[GroupKey, int], dict[GroupKey, int]],
]


def _side_figures_in(
    session: Session, group_by: Sequence[str], start: datetime | None, end: datetime | None
) -> _SideFigures:
    """Everything but the money pass: quoted but not charged, the case-level figures and every level's p90."""
    quoted = _ledger_sums(
        session, group_by=group_by, where=_in_period(start, end, table=OPEN_QUOTES), by_kind=False, table=OPEN_QUOTES
    )
    facts, times = _case_facts(session, group_by=group_by, start=start, end=end)
    return quoted, facts, _p90_levels(times)  # percentiles do not add up: each level has its own


def _side_figures(
    engine: Engine, *, group_by: Sequence[str], start: datetime | None, end: datetime | None
) -> _SideFigures:
    """:func:`_side_figures_in` on a connection of its own, run beside the money pass: the two read different
    rows (the charges' index and the open quotes, the whole ledger), so on two cores they overlap. A settlement
    committed between the two starts may show in one and not yet in the other, as between two statements of
    one read-committed PostgreSQL transaction; the next report has both."""
    with Session(engine) as session:
        try:
            return _side_figures_in(session, group_by, start, end)
        finally:
            session.commit()


def _single_connection(engine: Engine) -> bool:
    """An in-memory SQLite database lives in one connection, which two threads must not share."""
    return engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")


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
    engine = session.get_bind()
    side: Future[_SideFigures] | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="fee-report") as pool:
        if isinstance(engine, Engine) and not _single_connection(engine):
            side = pool.submit(_side_figures, engine, group_by=group_by, start=start, end=end)
        try:
            scan = _reads_most_rows(session, start, end)
            sums = _ledger_sums(session, group_by=group_by, where=_in_period(start, end, scan=scan), by_kind=True)
            found = side.result() if side is not None else _side_figures_in(session, group_by, start, end)
        finally:
            session.commit()  # hand the connection back (reads only)
    quoted, facts, (line_p90, group_p90, asset_p90, total_p90) = found
    for key, p90 in line_p90.items():
        facts[key].resolution.p90_s = p90
    lines = build_lines(sums, quoted, facts)
    by_group: dict[GroupKey, list[tuple[FeeLine, _Resolution]]] = defaultdict(list)
    for (group, _, _), item in lines.items():
        by_group[group].append(item)
    groups = [
        build_group(dict(zip(group_by, key, strict=True)), items, group_p90.get(key)) for key, items in by_group.items()
    ]
    return FeeReport(
        period_from=start or datetime.min.replace(tzinfo=UTC),
        period_to=end or datetime.max.replace(tzinfo=UTC),
        group_by=list(group_by),
        groups=groups,
        total=build_group({}, _merge_total(lines, asset_p90), total_p90.get(())),
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
