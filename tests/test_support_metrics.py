"""Support metrics from real rows (SQLite and PostgreSQL), written through the store's own functions at
times a test clock sets, against figures worked out by hand; and ``recovery support metrics`` in json,
csv and table form, parsed back."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

import store.db
from cli.app import app
from recovery.models import CaseHandling, CaseStatus, CaseUpdate, SlaState, TimelineEvent
from recovery.roster import Tier
from recovery.settings import get_settings
from services.support_metrics import case_facts, compute, nearest_rank, nearest_rank_of_runs, support_metrics
from store import audit, cases
from store.feedback import add_feedback

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


@dataclass
class Clock:
    now: datetime

    def at(self, when: datetime) -> Clock:
        self.now = when
        return self


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Every ``store.db.utcnow()`` (row defaults included) reads this clock."""
    current = Clock(NOV)

    class Frozen(datetime):
        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            return current.now.astimezone(tz) if tz is not None else current.now.replace(tzinfo=None)

    monkeypatch.setattr(store.db, "datetime", Frozen)
    return current


class Writer:
    """Writes a case's life through the store, each step at the clock's time."""

    def __init__(self, session: Session, clock: Clock) -> None:
        self.session, self.clock = session, clock

    def open(self, at: datetime, user_id: str = "ana") -> str:
        self.clock.at(at)
        case_id = f"case-{uuid.uuid4().hex[:16]}"
        cases.create_case(
            self.session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash="0x" + "ab" * 32, log_index=0
        )
        return case_id

    def step(
        self, case_id: str, at: datetime, key: str, status: CaseStatus, handling: CaseHandling | None = None
    ) -> None:
        self.clock.at(at)
        event = TimelineEvent(key=key, status=status, message=key)
        assert cases.apply_case_update(self.session, update=CaseUpdate(case_id=case_id, event=event, handling=handling))

    def act(self, case_id: str, at: datetime, n: int, action: str, engineer: str, tier_before: str) -> None:
        self.clock.at(at)
        assert audit.append(
            self.session,
            case_id=case_id,
            key=f"{action}-{n}",
            engineer=engineer,
            action=action,
            attested=True,
            input_json=json.dumps({"engineer": engineer}),
            before_json=json.dumps({"status": "AWAITING_APPROVAL", "tier": tier_before}),
            after_json=json.dumps({"status": "AWAITING_APPROVAL"}),
        )

    def rate(self, case_id: str, at: datetime, rating: int) -> None:
        self.clock.at(at)
        add_feedback(self.session, case_id=case_id, user_id="ana", rating=rating)


H, D, M = timedelta(hours=1), timedelta(days=1), timedelta(minutes=1)


def november(session: Session, clock: Clock) -> None:
    """Six cases opened in November 2026 (UTC) and two just outside it."""
    w = Writer(session, clock)
    # A, automatic: completed an hour after opening; rated 5
    a0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
    a = w.open(a0)
    w.step(a, a0 + H, "completed", CaseStatus.COMPLETED)
    w.rate(a, a0 + 2 * H, 5)
    # B, manual four-eyes: waits 10 min after opening, first approval 2 h later, second a day later, done 1d1h
    b0 = datetime(2026, 11, 3, 10, 0, tzinfo=UTC)
    b = w.open(b0)
    four_eyes = CaseHandling(tier=Tier.ENGINEERING, approvals_needed=2)
    w.step(b, b0 + 10 * M, "awaiting-approval", CaseStatus.AWAITING_APPROVAL, four_eyes)
    w.act(b, b0 + 10 * M + 2 * H, 1, "approve", "bob", "engineering")
    w.act(b, b0 + D, 2, "approve", "chen", "engineering")
    w.step(b, b0 + D + H, "completed", CaseStatus.COMPLETED)
    w.rate(b, b0 + 2 * D, 4)
    # C, manual: escalated by first line 25 min after waiting, by engineering later, the SLA target escalated
    # it too, breached, rejected 10 days after opening; rated 2
    c0 = datetime(2026, 11, 5, 8, 0, tzinfo=UTC)
    c = w.open(c0)
    w.step(c, c0 + 5 * M, "awaiting-approval", CaseStatus.AWAITING_APPROVAL, CaseHandling(tier=Tier.FIRST_LINE))
    w.act(c, c0 + 30 * M, 1, "escalate", "alice", "first_line")
    w.act(c, c0 + D, 2, "escalate", "bob", "engineering")
    w.step(c, c0 + 3 * D, "sla-target", CaseStatus.AWAITING_APPROVAL, CaseHandling(tier=Tier.EXPERT))
    breached = CaseHandling(tier=Tier.EXPERT, sla_state=SlaState.BREACHED)
    w.step(c, c0 + 6 * D, "sla-deadline", CaseStatus.AWAITING_APPROVAL, breached)
    w.step(c, c0 + 10 * D, "rejected", CaseStatus.REJECTED)
    w.rate(c, c0 + 11 * D, 2)
    # D, manual: waiting, nobody has acted yet
    d0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    d = w.open(d0)
    w.step(d, d0 + M, "awaiting-approval", CaseStatus.AWAITING_APPROVAL, CaseHandling(tier=Tier.FIRST_LINE))
    # E, automatic: rejected a second after opening, in the period's last second
    e0 = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    e = w.open(e0)
    w.step(e, e0 + timedelta(seconds=1), "rejected", CaseStatus.REJECTED)
    # H, still being traced: neither automatic nor manual yet
    w.open(datetime(2026, 11, 10, tzinfo=UTC))
    # outside: F opens at the period's end (exclusive), G a second before its start
    f = w.open(DEC)
    w.step(f, DEC + H, "completed", CaseStatus.COMPLETED)
    w.rate(f, DEC + 2 * H, 1)
    w.open(NOV - timedelta(seconds=1))


EXPECTED: dict[str, Any] = {
    "opened": 6,  # A B C D E H
    "closed": 4,  # A B C E
    "still_open": 2,
    "closed_by_status": {"COMPLETED": 2, "REJECTED": 2},
    "manual": 3,  # B C D
    "automatic": 2,  # A E
    "manual_share_pct": "60.0",
    "automatic_share_pct": "40.0",
    "first_action_count": 2,
    "awaiting_first_action": 1,
    "time_to_first_action_p50_s": 1500,  # C: 25 min; sorted [1500, 7200], rank ceil(0.5 * 2) = 1
    "time_to_first_action_p90_s": 7200,  # B: 2 h; rank ceil(0.9 * 2) = 2
    "time_to_resolution_p50_s": 3600,  # sorted [1, 3600, 90000, 864000], rank ceil(0.5 * 4) = 2
    "time_to_resolution_p90_s": 864000,  # rank ceil(0.9 * 4) = 4: C's 10 days
    "sla_breaches": 1,
    "escalations_by_tier": {"first_line": 1, "engineering": 1},
    "escalations_at_sla_target": 1,
    "four_eyes": 1,
    "feedback_count": 3,
    "csat_mean": "3.67",  # (5 + 4 + 2) / 3
    "csat_satisfied_pct": "66.7",  # 2 of 3 rated 4 or 5
    "feedback_rate_pct": "75.0",  # 3 ratings, 4 closed cases (F's rating is outside the period)
}


def test_metrics_from_real_rows(db_engine: Engine, db_session: Session, clock: Clock) -> None:
    november(db_session, clock)
    with Session(db_engine) as session:
        figures = support_metrics(session, start=NOV, end=DEC)
    dumped = figures.model_dump(mode="json")
    assert {k: dumped[k] for k in EXPECTED} == EXPECTED
    assert (figures.period_from, figures.period_to) == (NOV, DEC)
    assert figures.csat_mean == Decimal("3.67")


def test_an_empty_or_backwards_period(db_engine: Engine, db_session: Session, clock: Clock) -> None:
    november(db_session, clock)
    with Session(db_engine) as session:
        empty = support_metrics(session, start=DEC + D, end=DEC + 2 * D)
        with pytest.raises(ValueError, match="the period is empty"):
            support_metrics(session, start=DEC, end=NOV)
    assert (empty.opened, empty.closed, empty.time_to_resolution_p50_s, empty.csat_mean) == (0, 0, None, None)
    assert empty.manual_share_pct is None and empty.feedback_rate_pct is None


def test_nearest_rank() -> None:
    ten = [7, 1, 10, 2, 9, 3, 8, 4, 6, 5]
    assert [nearest_rank(ten, p) for p in (1, 10, 11, 50, 90, 91, 100)] == [1, 1, 2, 5, 9, 10, 10]
    assert nearest_rank([42], 90) == 42 and nearest_rank([], 50) is None
    assert (nearest_rank([5, 1, 3], 50), nearest_rank([5, 1, 3], 90)) == (3, 5)  # ranks ceil(1.5)=2, ceil(2.7)=3


@given(
    runs=st.lists(st.lists(st.integers(min_value=-(10**12), max_value=10**12), max_size=40), max_size=8),
    percent=st.integers(min_value=1, max_value=100),
)
def test_nearest_rank_of_sorted_runs_is_the_nearest_rank_of_them_all(runs: list[list[int]], percent: int) -> None:
    """The fee report's p90 of a level selects from its lines' sorted times without merging them."""
    runs = [sorted(run) for run in runs]
    assert nearest_rank_of_runs(runs, percent) == nearest_rank([v for run in runs for v in run], percent)


def test_a_first_action_counts_from_when_the_case_waited() -> None:
    """An audit row from before the case waited is not its first engineer action; the first after it is."""
    opened = NOV
    case = cases.Case(case_id="c", user_id="ana", tx_hash="0x", status=CaseStatus.AWAITING_APPROVAL, created_at=opened)
    waited = cases.CaseEvent(case_id="c", key="awaiting", status=CaseStatus.AWAITING_APPROVAL, at=opened + H)

    def row(at: datetime) -> audit.AuditEntry:
        return audit.AuditEntry(
            case_id="c",
            key=str(at),
            engineer="bob",
            action="assign",
            input_json="{}",
            before_json="{}",
            after_json="{}",
            at=at,
        )

    facts = case_facts(case, [waited], None, [row(opened + 3 * H), row(opened + M)], None)
    assert (facts.waited_at, facts.first_action_at, facts.first_action_s) == (opened + H, opened + 3 * H, 7200)
    alone = case_facts(case, [waited], None, [row(opened + M)], None)
    figures = compute(NOV, DEC, [alone])
    assert (figures.manual, figures.first_action_count, figures.awaiting_first_action) == (1, 0, 1)


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def cli_db(db_engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Engine]:
    """``recovery`` run in process on the test's database."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("RECOVERY_DATABASE_URL", db_engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("RECOVERY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield db_engine
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["support", "metrics", *args])
    return result.exit_code, result.output


def test_cli_json_csv_and_table(cli_db: Engine, clock: Clock) -> None:
    with Session(cli_db) as session:
        november(session, clock)

    code, out = run("--from", "2026-11-01", "--to", "2026-12-01", "--format", "json")
    assert code == 0, out
    data = json.loads(out)
    assert {k: data[k] for k in EXPECTED} == EXPECTED
    assert (data["period_from"], data["period_to"]) == ("2026-11-01T00:00:00Z", "2026-12-01T00:00:00Z")

    code, out = run("--from", "2026-11-01", "--to", "2026-12-01", "--format", "csv")
    assert code == 0, out
    rows = list(csv.DictReader(io.StringIO(out)))
    assert set(rows[0]) == {"metric", "value"}
    values = {r["metric"]: r["value"] for r in rows}
    assert values["opened"] == "6" and values["time_to_resolution_p90_s"] == "864000"
    assert values["escalations_by_tier.first_line"] == "1" and values["escalations_by_tier.engineering"] == "1"
    assert (values["csat_mean"], values["feedback_rate_pct"]) == ("3.67", "75.0")

    code, out = run("--from", "2026-11-01", "--to", "2026-12-01")
    assert code == 0, out
    assert "10d 00:00:00" in out and "01:00:00" in out  # p90 and p50 of the time to resolution
    assert "csat_mean" in out and "3.67" in out

    # Berlin's November starts an hour earlier (G is in, E is not) and ends an hour earlier
    code, out = run("--from", "2026-11-01", "--to", "2026-12-01", "--format", "json", "--timezone", "Europe/Berlin")
    assert code == 0, out
    berlin = json.loads(out)
    assert (berlin["opened"], berlin["closed"], berlin["still_open"], berlin["automatic"]) == (6, 3, 3, 1)
    assert berlin["period_from"] == "2026-11-01T00:00:00+01:00"


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--from", "2026-11-31", "--to", "2026-12-01"), "--from: expected a date as YYYY-MM-DD"),
        (("--from", "2026-11-01", "--to", "next week"), "--to: expected a date as YYYY-MM-DD"),
        (("--from", "2026-11-01", "--to", "2026-11-01"), "--to (2026-11-01) must come after --from"),
        (("--from", "2026-11-01", "--to", "2026-12-01", "--timezone", "Mars/Olympus"), "unknown time zone"),
    ],
)
def test_cli_refuses_bad_periods(cli_db: Engine, args: tuple[str, ...], needle: str) -> None:
    code, out = run(*args)
    assert code == 1 and needle in out, out


def test_cli_refuses_an_unknown_format(cli_db: Engine) -> None:
    code, out = run("--from", "2026-11-01", "--to", "2026-12-01", "--format", "xml")
    assert code == 2 and "xml" in out
