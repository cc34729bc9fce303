"""Platform-fault incidents: waivers before quoting, after quoting and after settlement, compensation, once
each; the CLI. Both databases."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from cli.app import app
from fees.policy import quote, waive
from recovery.models import CaseStatus, Refund, Settlement
from recovery.settings import FeePolicyConfig
from services import incidents as incident_service
from services.incidents import IncidentRefused
from services.settlement import settle_case
from store import cases, fee_ledger, incidents, ledger
from store.fee_ledger import FeeKind
from tests.test_cli_users import cli_env

__all__ = ["cli_env"]

HOUR = timedelta(hours=1)


def _case(session: Session, case_id: str, *, chain: str = "bsc", asset: str = "USDT", opened: datetime) -> None:
    cases.create_case(session, case_id=case_id, user_id="alice", chain=chain, tx_hash="0x" + case_id, log_index=0)
    case = cases.get_case(session, case_id=case_id)
    assert case is not None
    case.asset, case.decimals, case.created_at, case.amount = asset, 18, opened, 100 * 10**18
    case.status = CaseStatus.RECOVERING
    session.add(case)
    session.commit()


def _settle(session: Session, case_id: str, *, fee: int = 5 * 10**18, gas: int = 10**16, **kw: object) -> None:
    recovered = 100 * 10**18
    refund = kw.pop("refund", None)
    refunded = refund.amount if isinstance(refund, Refund) else 0
    settlement = Settlement(
        recovered=recovered,
        credited=recovered - refunded - fee - gas,
        refunded=refunded,
        fee=fee,
        gas=gas,
        gas_native=1,
    )
    assert settle_case(
        session,
        case_id=case_id,
        user_id="alice",
        deposit_key=f"bsc:0x{case_id}:0",
        chain="bsc",
        asset="USDT",
        settlement=settlement,
        fee_usd=Decimal("5.00"),
        price_usd=Decimal(1),
        refund=refund if isinstance(refund, Refund) else None,
        **kw,  # type: ignore[arg-type]
    )


def _kinds(session: Session, case_id: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for row in fee_ledger.entries(session, case_id=case_id):
        out.setdefault(row.kind.value, []).append(row.amount)
    return out


def _declare(session: Session, start: datetime, *, compensation: str | None = "25.50", **kw: object):  # type: ignore[no-untyped-def]
    return incident_service.declare(
        session,
        chain=str(kw.get("chain", "bsc")),
        asset=kw.get("asset"),  # type: ignore[arg-type]
        starts_at=start,
        ends_at=start + 2 * HOUR,
        reason="BSC deposits congested",
        compensation_usd=None if compensation is None else Decimal(compensation),
        declared_by="ops",
    )


def test_a_settled_case_gets_its_fee_paid_back_and_compensation_once(db_session: Session) -> None:
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    _case(db_session, "settled", opened=t0 + HOUR)
    _settle(db_session, "settled")
    incident, applied = _declare(db_session, t0)
    assert (applied.cases, applied.fees_refunded, applied.compensated, applied.pending) == (1, 1, 1, 0)
    kinds = _kinds(db_session, "settled")
    assert kinds["charged"] == [5 * 10**18] and kinds["refunded"] == [5 * 10**18]
    assert kinds["compensated"] == [25_500_000]  # micro-USD, a separate entry, never netted with the fee
    [comp] = fee_ledger.entries(db_session, case_id="settled", kind=FeeKind.COMPENSATED)
    assert (comp.asset, comp.usd_micros, comp.incident_id) == ("USD", 25_500_000, incident.id)
    [note] = [e for e in cases.timeline(db_session, case_id="settled") if e.key == f"incident-{incident.id}"]
    assert "waived and paid back" in note.message and "BSC deposits congested" in note.message
    assert "compensated 25.50 USD" in note.message and note.status is CaseStatus.COMPLETED

    again = incident_service.apply(db_session, incident=incident)  # a second application books nothing
    assert (again.fees_refunded, again.compensated) == (0, 0)
    assert _kinds(db_session, "settled") == kinds


def test_a_case_quoted_before_the_incident_settles_without_its_fee(db_session: Session) -> None:
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    _case(db_session, "pending", opened=t0 + HOUR)
    incident, applied = _declare(db_session, t0)
    assert (applied.cases, applied.pending, applied.compensated) == (1, 1, 0)
    [note] = [e for e in cases.timeline(db_session, case_id="pending") if e.key == f"incident-{incident.id}"]
    assert "fee is waived" in note.message and "when your case completes" in note.message

    _settle(db_session, "pending")  # the quote charged 5 USDT; the settlement waives it
    kinds = _kinds(db_session, "pending")
    assert kinds["charged"] == [0] and kinds["waived"] == [5 * 10**18] and kinds["gas_charged"] == [10**16]
    assert kinds["compensated"] == [25_500_000]
    booked = ledger.booked_settlement(db_session, case_id="pending", deposit_key="bsc:0xpending:0", gas_native=1)
    assert (booked.credited, booked.fee, booked.gas) == (100 * 10**18 - 10**16, 0, 10**16)
    assert booked.recovered == booked.credited + booked.fee + booked.gas == 100 * 10**18
    case = cases.get_case(db_session, case_id="pending")
    assert case is not None and case.status is CaseStatus.COMPLETED and case.fee == 0
    credited = [e.message for e in cases.timeline(db_session, case_id="pending") if e.key == "credited"]
    assert "fee is waived: incident #" in credited[0]


def test_a_case_quoted_after_the_incident_books_the_waived_fee(db_session: Session) -> None:
    """The quoter already waived the fee (fee 0): the settlement books what the policy would have charged."""
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    incident, _ = _declare(db_session, t0, compensation=None)
    _case(db_session, "later", opened=t0 + HOUR)
    assert incident_service.covering(db_session, case_id="later") is not None
    _settle(db_session, "later", fee=0, waived_fee=4 * 10**18)
    kinds = _kinds(db_session, "later")
    assert kinds["charged"] == [0] and kinds["waived"] == [4 * 10**18] and "compensated" not in kinds


def test_a_refund_in_the_window_pays_the_fee_back(db_session: Session) -> None:
    """A refund sends the fee to the hot wallet before the settlement: it is charged, then paid back."""
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    _declare(db_session, t0, compensation=None)
    _case(db_session, "refund", opened=t0 + HOUR)
    refund = Refund(to="0xsender", amount=100 * 10**18 - 5 * 10**18 - 10**16, tx_hash="0xr")
    _settle(db_session, "refund", refund=refund)
    kinds = _kinds(db_session, "refund")
    assert kinds["charged"] == [5 * 10**18] and kinds["refunded"] == [5 * 10**18] and "waived" not in kinds


def test_cases_outside_the_window_chain_or_asset_are_untouched(db_session: Session) -> None:
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    _case(db_session, "before", opened=t0 - timedelta(seconds=1))
    _case(db_session, "at-end", opened=t0 + 2 * HOUR)  # the window's end is exclusive
    _case(db_session, "eth", chain="ethereum", opened=t0 + HOUR)
    _case(db_session, "other-asset", asset="BUSD", opened=t0 + HOUR)
    _case(db_session, "in", opened=t0)
    _, applied = _declare(db_session, t0, asset="USDT")
    assert (applied.cases, applied.pending) == (1, 1)
    for case_id in ("before", "at-end", "eth", "other-asset"):
        assert incident_service.covering(db_session, case_id=case_id) is None
        assert not [e for e in cases.timeline(db_session, case_id=case_id) if e.key.startswith("incident-")]
    _settle(db_session, "before")
    assert _kinds(db_session, "before")["charged"] == [5 * 10**18]


def test_a_closed_incident_keeps_its_waivers(db_session: Session) -> None:
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    incident, _ = _declare(db_session, t0)
    _case(db_session, "late", opened=t0 + HOUR)
    assert incident.id is not None
    closed = incidents.close(db_session, incident_id=incident.id, closed_by="ops")
    assert closed is not None and closed.closed_at is not None
    _settle(db_session, "late")
    assert _kinds(db_session, "late")["charged"] == [0]


@pytest.mark.parametrize(
    ("hours", "reason", "compensation", "message"),
    [
        (0, "x", None, "the window is empty"),
        (-1, "x", None, "the window is empty"),
        (1, "  ", None, "give a --reason"),
        (1, "x", "-1", "--compensation-usd must be a positive amount"),
    ],
)
def test_bad_declarations_are_refused_and_store_nothing(
    db_session: Session, hours: int, reason: str, compensation: str | None, message: str
) -> None:
    t0 = datetime(2026, 11, 1, 10, tzinfo=UTC)
    with pytest.raises(IncidentRefused, match=message):
        incident_service.declare(
            db_session,
            chain="bsc",
            asset=None,
            starts_at=t0,
            ends_at=t0 + hours * HOUR,
            reason=reason,
            compensation_usd=None if compensation is None else Decimal(compensation),
            declared_by="ops",
        )
    assert incidents.list_incidents(db_session) == []


def test_waive_keeps_the_policy_fee_and_needs_no_acceptance() -> None:
    policy = FeePolicyConfig(acceptance_above_usd=Decimal(1000))
    quoted = quote(asset="USDT", amount=5_000 * 10**6, decimals=6, price_usd=Decimal(1), gas_estimate=7, policy=policy)
    assert quoted.fee > 0 and quoted.acceptance_required
    waived = waive(quoted, incident_id=7, reason="halted chain")
    assert (waived.fee, waived.fee_usd, waived.waived_fee, waived.waived_by) == (0, Decimal("0.00"), quoted.fee, 7)
    assert waived.net_estimate == quoted.amount - quoted.gas_estimate and not waived.acceptance_required
    assert "incident #7 (halted chain)" in waived.basis
    assert waive(waived, incident_id=8, reason="other") == waived  # once


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_cli_declare_list_close(cli_env: Path) -> None:
    code, out = _run(
        "incidents", "declare", "--chain", "bsc", "--from", "2026-11-01T10:00", "--to", "2026-11-01T12:00",
        "--reason", "BSC deposits congested", "--compensation-usd", "10", "--by", "ops",
    )  # fmt: skip
    assert code == 0, out
    declared = json.loads(out)
    assert declared["chain"] == "bsc" and declared["asset"] == "(every asset)" and declared["cases"] == 0
    code, out = _run("incidents", "list", "--open")
    assert code == 0 and [i["id"] for i in json.loads(out)] == [declared["id"]], out
    code, out = _run("incidents", "close", str(declared["id"]), "--by", "ops")
    assert code == 0 and json.loads(out)["closed_by"] == "ops", out
    code, out = _run("incidents", "list", "--open")
    assert code == 0 and json.loads(out) == [], out

    code, out = _run("incidents", "close", "999", "--by", "ops")
    assert code == 1 and "no incident #999" in out
    code, out = _run(
        "incidents", "declare", "--chain", "nochain", "--from", "2026-11-01", "--to", "2026-11-02",
        "--reason", "r", "--by", "ops",
    )  # fmt: skip
    assert code == 1 and "nochain" in out
    code, out = _run(
        "incidents", "declare", "--chain", "bsc", "--from", "2026-11-02", "--to", "2026-11-01",
        "--reason", "r", "--by", "ops",
    )  # fmt: skip
    assert code == 1 and "the window is empty" in out
    code, out = _run(
        "incidents", "declare", "--chain", "bsc", "--from", "2026-11-01", "--to", "2026-11-02",
        "--reason", "r", "--by", "ops", "--compensation-usd", "ten",
    )  # fmt: skip
    assert code == 1 and "expected an amount in USD" in out
    code, out = _run("incidents", "list")
    assert code == 0 and len(json.loads(out)) == 1, out
