"""The fee report (services/fee_report.py) against the same figures worked out row by row in Python
(tests/fee_report_data.py), on SQLite and PostgreSQL: amounts up to 2**256 - 1, 6 and 18 decimals, several
chains, assets, patterns and days, every grouping; the quoted-but-not-charged figure; the overflow fallback."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Context, Decimal, localcontext
from fractions import Fraction
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from services import fee_report as report_module
from services.fee_report import (
    FeeReport,
    ReportError,
    csv_rows,
    fee_report,
    parse_day,
    parse_group_by,
    period,
    to_csv,
    usd,
)
from services.support_metrics import nearest_rank
from store import fee_ledger
from store.fee_ledger import CaseRef, FeeKind, Route, entry, to_micros
from tests import fee_report_data as data

GROUPINGS: list[tuple[str, ...]] = [
    (),
    ("chain",),
    ("asset",),
    ("pattern",),
    ("day",),
    ("week",),
    ("month",),
    ("chain", "asset"),
    ("month", "pattern"),
    ("pattern", "week", "chain"),
    ("chain", "asset", "pattern", "day", "week", "month"),
]
MONEY = ("recovered", "fees_charged", "gas_charged", "waived", "fees_refunded", "compensated", "gas_spent")
COUNTS = (
    "cases",
    "automatic",
    "manual",
    "quoted_not_charged_cases",
    "recon_ok",
    "recon_mismatch",
    "recon_uncheckable",
    "recon_unchecked",
    "usd_unpriced_rows",
)


@pytest.fixture
def seeded(db_engine: Engine) -> data.Ledger:
    ledger = data.build()
    with Session(db_engine, expire_on_commit=False) as session:
        data.store(session, ledger)
    return ledger


def _report(engine: Engine, group_by: tuple[str, ...], **kwargs: Any) -> FeeReport:
    with Session(engine) as session:
        return fee_report(session, start=data.START, end=data.END, group_by=group_by, **kwargs)


def _lines(report: FeeReport) -> dict[tuple[Any, ...], Any]:
    out = {}
    for group in report.groups:
        for line in group.lines:
            key = (*(group.key[d] for d in report.group_by if d not in ("chain", "asset")), line.chain, line.asset)
            out[key] = line
    return out


def _expected_key(key: tuple[Any, ...], group_by: tuple[str, ...]) -> tuple[Any, ...]:
    """The worked-out key (group values in order, chain, asset) as the report's (chain and asset once)."""
    values = dict(zip(group_by, key[:-2], strict=True))
    return (*(values[d] for d in group_by if d not in ("chain", "asset")), key[-2], key[-1])


def test_the_test_ledger_has_what_the_report_must_handle() -> None:
    ledger = data.build()
    amounts = [r.amount for r in ledger.rows]
    assert max(amounts) == data.HUGE or max(amounts) > 2**255
    assert any(2**64 < a < 2**128 for a in amounts)
    assert {r.decimals for r in ledger.rows} == {6, 18}
    assert any(r.usd_hi is not None for r in ledger.rows) and any(r.amount_hi is not None for r in ledger.rows)
    assert any(r.usd_micros is None for r in ledger.rows)
    assert {r.kind for r in ledger.rows} == set(FeeKind)
    assert any(r.route is None for r in ledger.rows)
    assert not all(data.in_period(r) for r in ledger.rows) and any(data.in_period(r) for r in ledger.rows)


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "none")
def test_totals_equal_the_ledger_rows_added_in_python(
    db_engine: Engine, seeded: data.Ledger, group_by: tuple[str, ...]
) -> None:
    report = _report(db_engine, group_by)
    got = _lines(report)
    expected = {_expected_key(k, group_by): v for k, v in data.expected_lines(seeded, group_by).items()}
    assert set(got) == set(expected)
    for key, want in expected.items():
        line = got[key]
        for measure in MONEY:
            assert getattr(line, measure) == want.get(measure, 0), (key, measure)
            assert getattr(line, f"{measure}_usd") == usd(want.get(f"{measure}_usd_micros", 0)), (key, measure)
        assert line.quoted_not_charged == want.get("quoted_not_charged", 0), key
        assert line.quoted_not_charged_usd == usd(want.get("quoted_not_charged_usd_micros", 0)), key
        for count in COUNTS:
            assert getattr(line, count) == want.get(count, 0), (key, count)
        durations = want.get("durations", [])
        assert line.resolution_p90_s == nearest_rank(durations, 90), key
        assert line.resolution_avg_s == (sum(durations) // len(durations) if durations else None), key
    with localcontext(Context(prec=200)):  # a group's USD and counts are its lines' added up
        for group in report.groups:
            assert group.cases == sum(line.cases for line in group.lines)
            assert group.fees_charged_usd == sum((line.fees_charged_usd for line in group.lines), Decimal(0))
            assert group.gas_spent_usd == sum((line.gas_spent_usd for line in group.lines), Decimal(0))
        assert set(group.key) == set(group_by)
    # percentiles do not add up: every level has its own, from its own cases
    charges = [r for r in seeded.rows if r.kind is FeeKind.CHARGED and data.in_period(r)]

    def times(*, where: dict[str, str | None]) -> list[int]:
        return [r.resolution_s for r in charges if all(data.dimension(r, d) == v for d, v in where.items())]

    for group in report.groups:
        mine = times(where=group.key)
        assert group.resolution_p90_s == nearest_rank(mine, 90), group.key
        assert group.resolution_avg_s == (sum(mine) // len(mine) if mine else None), group.key
    for line in report.total.lines:
        mine = times(where={"chain": line.chain, "asset": line.asset})
        assert line.resolution_p90_s == nearest_rank(mine, 90), (line.chain, line.asset)
    everything = times(where={})
    assert report.total.resolution_p90_s == nearest_rank(everything, 90) and everything


def test_the_total_adds_base_units_per_chain_and_asset_only(db_engine: Engine, seeded: data.Ledger) -> None:
    by_pattern = _report(db_engine, ("pattern", "day"))
    flat = _report(db_engine, ())
    assert by_pattern.total == flat.total
    assert [(line.chain, line.asset) for line in flat.total.lines] == [
        (line.chain, line.asset) for line in flat.groups[0].lines
    ]
    for line in flat.total.lines:
        assert (
            line.model_dump()
            == next(x for x in flat.groups[0].lines if x.asset == line.asset and x.chain == line.chain).model_dump()
        )
    # gas spent is only ever on the native coins' lines
    for line in flat.total.lines:
        assert (line.gas_spent != 0) <= (line.asset in ("ETH", "BNB", "POL"))
    usdt = {line.chain: line.decimals for line in flat.total.lines if line.asset == "USDT"}
    assert usdt == {"ethereum": 6, "bsc": 18}


def test_the_exact_python_fallback_gives_the_same_report(
    db_engine: Engine, seeded: data.Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _report(db_engine, ("chain", "week"))

    def overflow(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("SELECT ...", {}, Exception("integer overflow"))

    monkeypatch.setattr(report_module, "_sql_sums", overflow)
    assert _report(db_engine, ("chain", "week")) == expected


def test_quoted_but_not_charged_takes_each_cases_latest_quote_once(db_engine: Engine) -> None:
    day = datetime(2026, 11, 10, 12, tzinfo=UTC)

    def ref(case_id: str) -> CaseRef:
        return CaseRef(case_id=case_id, user_id="u", chain="bsc", pattern="UNLISTED_TOKEN", route=Route.AUTOMATIC)

    rows = []
    for case_id, kind, amount, at in (
        ("requoted", FeeKind.QUOTED, 5 * 10**18, day),
        ("requoted", FeeKind.QUOTED, 7 * 10**18, day + timedelta(hours=1)),  # the latest: counts
        ("settled", FeeKind.QUOTED, 3 * 10**18, day),
        ("settled", FeeKind.CHARGED, 3 * 10**18, day + timedelta(days=30)),  # charged after the period: no
        ("later", FeeKind.QUOTED, 11 * 10**18, day),
        ("later", FeeKind.QUOTED, 13 * 10**18, day + timedelta(days=30)),  # latest quote after the period
        ("huge", FeeKind.QUOTED, data.HUGE, day),
    ):
        rows.append(
            entry(
                ref(case_id),
                kind=kind,
                key=f"{case_id}:{len(rows)}",
                asset="USDT",
                decimals=18,
                amount=amount,
                price_usd=Decimal("1"),
                booked_at=at,
            )
        )
    with Session(db_engine) as session:
        for row in rows:  # as the engine books them: the open quotes are kept with the rows
            fee_ledger.add(session, row)
            session.commit()
        november = fee_report(session, start=datetime(2026, 11, 1, tzinfo=UTC), end=datetime(2026, 12, 1, tzinfo=UTC))
        december = fee_report(session, start=datetime(2026, 12, 1, tzinfo=UTC), end=datetime(2027, 1, 1, tzinfo=UTC))
    (line,) = november.total.lines
    assert line.quoted_not_charged_cases == 2
    assert line.quoted_not_charged == 7 * 10**18 + data.HUGE
    assert line.quoted_not_charged_usd == usd(7 * 10**6 + to_micros(Fraction(data.HUGE, 10**18)))
    assert str(line.quoted_not_charged_usd).endswith(".000000") or "E" not in str(line.quoted_not_charged_usd)
    assert november.total.quoted_not_charged_usd == line.quoted_not_charged_usd
    (line,) = december.total.lines
    assert (line.quoted_not_charged_cases, line.quoted_not_charged) == (1, 13 * 10**18)
    assert (line.cases, line.fees_charged) == (1, 3 * 10**18)


def test_shares_and_empty_periods(db_engine: Engine, seeded: data.Ledger) -> None:
    report = _report(db_engine, ())
    total = report.total
    assert total.automatic + total.manual == total.cases > 0
    assert total.manual_share_pct is not None and total.automatic_share_pct is not None
    assert abs(total.manual_share_pct + total.automatic_share_pct - 100) <= Decimal("0.1")
    with Session(db_engine) as session:
        empty = fee_report(session, start=datetime(2030, 1, 1, tzinfo=UTC), end=datetime(2030, 2, 1, tzinfo=UTC))
    assert empty.groups == [] and empty.total.lines == [] and empty.total.cases == 0
    assert empty.total.manual_share_pct is None and empty.total.resolution_p90_s is None


def test_csv_is_the_json_lines_flattened(db_engine: Engine, seeded: data.Ledger) -> None:
    report = _report(db_engine, ("month", "chain"))
    parsed = list(csv.DictReader(io.StringIO(to_csv(report))))
    assert parsed == csv_rows(report)
    as_json = report.model_dump(mode="json")
    flattened = [
        {"month": group["key"]["month"], **{k: "" if v is None else str(v) for k, v in line.items()}}
        for group in as_json["groups"]
        for line in group["lines"]
    ]
    assert parsed == flattened
    assert all(row["fees_charged"].isdigit() for row in parsed)  # exact integers, never 1e+77


def test_input_errors_say_what_to_do() -> None:
    assert parse_group_by("Chain, asset,,chain") == ("chain", "asset")
    assert parse_group_by(["day", "week,month"]) == ("day", "week", "month")
    with pytest.raises(ReportError, match="unknown dimension 'year'.*chain, asset, pattern, day, week, month"):
        parse_group_by("chain,year")
    with pytest.raises(ReportError, match="YYYY-MM-DD"):
        parse_day("31/12/2026", "--from")
    with pytest.raises(ReportError, match="one day is from 2026-11-01 to 2026-11-02"):
        period(date(2026, 11, 1), date(2026, 11, 1))
    assert period(date(2026, 11, 1), date(2026, 11, 2)) == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 2, tzinfo=UTC),
    )
