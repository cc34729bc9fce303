"""The dev fee policies as a user meets them, on anvil and the Temporal dev server through the status API:
above 1,000 USD nothing is signed before the user accepts the quote; a declined quote cancels the case with
nothing moved; bad answers are refused with what to send and change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from recovery.settings import ChainConfig
from services import incidents
from store import fee_ledger
from tests.stack_fixtures import Stack, open_stack


@pytest.fixture
async def accepting_stack(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """On the dev server: the API's attestations expire by the wall clock, which the time-skipping server's
    clock runs ahead of once a test has skipped time."""
    async for s in open_stack(dev_server_env, tmp_path, dev_chains, quotes_need_acceptance=True):
        yield s


async def _answer(stack: Stack, token: str, case_id: str, body: object) -> tuple[int, dict[str, object]]:
    response = await stack.http.post(
        f"/v1/cases/{case_id}/fee-acceptance", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json()


async def _quoted_case(stack: Stack, amount: str) -> tuple[str, str, str]:
    _, token, address = stack.new_user("quoted")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal(amount))
    response = await stack.claim(token, tx_hash, chain="bsc")
    assert response.status_code == 201, response.text
    return token, response.json()["case_id"], address


async def test_a_quote_above_the_threshold_waits_for_the_users_acceptance(accepting_stack: Stack) -> None:
    stack = accepting_stack
    bsc = EvmChain(stack.chain("bsc"))
    usdt = stack.chain("bsc").token_by_symbol("USDT")
    assert usdt is not None
    token, case_id, address = await _quoted_case(stack, "5000")
    case = await stack.wait_for(token, case_id, "AWAITING_USER", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_USER", case
    fees = case["fees"]
    assert fees["acceptance"] == "required" and fees["policy"] == "default", fees
    assert fees["fee_usd"] == "250.00" and fees["basis"] == "5% of the value (at least 10 USD, at most 500 USD)"
    assert case["next_action"]["text"].startswith("Accept or decline the quote")
    assert case["next_action"]["action"] == "accept_fee" and case["next_action"]["due_at"] is not None
    assert case["next_action"]["request"].startswith(f"POST /v1/cases/{case['case_id']}/fee-acceptance")
    assert await bsc.token_balance(usdt.address, address) == 5000 * 10**18  # nothing moved yet

    # bad answers: refused with what to send, nothing changed
    _, other_token, _ = stack.new_user("stranger")
    assert (await _answer(stack, other_token, case_id, {"accept": True}))[0] == 404
    for bad in ({"accept": "yes"}, {}, {"accept": True, "fee": 1}):
        code, detail = await _answer(stack, token, case_id, bad)
        assert code == 422, (bad, detail)
    assert (await stack.case(token, case_id))["status"] == "AWAITING_USER"

    code, body = await _answer(stack, token, case_id, {"accept": True})
    assert code == 200 and body["answer"] == "quote accepted", body
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED" and case["fees"]["acceptance"] == "accepted"
    assert (
        int(case["credited"]["base_units"])
        + int(case["fees"]["fee"]["base_units"])
        + int(case["fees"]["gas"]["base_units"])
        == 5000 * 10**18
    )
    assert any(e["message"].startswith("You accepted the fee of 250") for e in case["timeline"])
    code, body = await _answer(stack, token, case_id, {"accept": True})
    assert code == 409, body  # answered already: the case is over

    # the fee ledger holds every step: quoted, accepted, charged, the gas charged and the gas each tx spent
    with Session(stack.engine) as session:
        rows = fee_ledger.entries(session, case_id=case_id)
    kinds = [r.kind.value for r in rows]
    assert kinds.count("accepted") == 1 and kinds.count("charged") == 1 and "quoted" in kinds, kinds
    fee = int(case["fees"]["fee"]["base_units"])
    [accepted] = [r for r in rows if r.kind == "accepted"]
    [charged] = [r for r in rows if r.kind == "charged"]
    assert accepted.amount == charged.amount == fee and charged.usd_micros == 250_000_000
    assert charged.route == "automatic" and charged.pattern == case["pattern"]
    spent = [r for r in rows if r.kind == "gas_spent"]
    assert spent and all(r.asset == "BNB" and r.amount == r.gas_used * r.gas_price > 0 for r in spent)


async def test_a_declined_quote_cancels_the_case_and_moves_nothing(accepting_stack: Stack) -> None:
    stack = accepting_stack
    bsc = EvmChain(stack.chain("bsc"))
    usdt = stack.chain("bsc").token_by_symbol("USDT")
    assert usdt is not None
    token, case_id, address = await _quoted_case(stack, "2000")
    await stack.wait_for(token, case_id, "AWAITING_USER", "COMPLETED", "REJECTED")
    code, body = await _answer(stack, token, case_id, {"accept": False})
    assert code == 200 and body["answer"] == "quote declined", body
    case = await stack.wait_for(token, case_id, "CANCELLED", "COMPLETED")
    assert (
        case["status"] == "CANCELLED"
        and case["fees"]["acceptance"] == "declined"
        and case["next_action"]["action"] == "none"
    )
    assert case["credited"] is None
    assert await bsc.token_balance(usdt.address, address) == 2000 * 10**18


async def test_a_quote_at_or_below_the_threshold_needs_no_answer(accepting_stack: Stack) -> None:
    stack = accepting_stack
    token, case_id, _ = await _quoted_case(stack, "1000")
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", "AWAITING_USER")
    assert case["status"] == "COMPLETED" and case["fees"]["acceptance"] is None, case


async def test_an_incident_declared_before_the_deposit_waives_its_fee(accepting_stack: Stack) -> None:
    """Waived before quoting: the quote shows no fee (so nothing to accept), the case completes with the whole
    amount less the network cost, and the ledger books the policy's fee as waived plus the compensation."""
    stack = accepting_stack
    now = datetime.now(UTC)
    with Session(stack.engine) as session:
        incident, _ = incidents.declare(
            session,
            chain="bsc",
            asset="USDT",
            starts_at=now - timedelta(minutes=5),
            ends_at=now + timedelta(hours=1),
            reason="BSC deposits halted by the exchange",
            compensation_usd=Decimal("20"),
            declared_by="ops",
        )
    token, case_id, _ = await _quoted_case(stack, "5000")
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", "AWAITING_USER")
    assert case["status"] == "COMPLETED", case  # no acceptance asked: there is no fee to accept
    assert case["fees"]["fee_usd"] == "0.00" and f"incident #{incident.id}" in case["fees"]["basis"]
    gas = int(case["fees"]["gas"]["base_units"])
    assert int(case["credited"]["base_units"]) == 5000 * 10**18 - gas
    assert any(f"incident #{incident.id}" in e["message"] for e in case["timeline"])
    with Session(stack.engine) as session:
        rows = {r.kind.value: r for r in fee_ledger.entries(session, case_id=case_id)}
    assert rows["charged"].amount == 0 and rows["waived"].amount == 250 * 10**18
    assert rows["waived"].incident_id == incident.id and rows["compensated"].usd_micros == 20_000_000
