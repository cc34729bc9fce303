"""Each rejection of the walking skeleton, through the API on real chains: a readable reason, no funds moved."""

from __future__ import annotations

import secrets
from decimal import Decimal

from sqlmodel import Session, select

from chains.evm import EvmChain
from devstack import devnet
from store.fee_ledger import FeeKind, FeeLedgerEntry
from store.ledger import LedgerCredit
from tests.stack_fixtures import Stack, record_history
from workflows.case_messages import CaseInput
from workflows.starter import start_case


async def _rejected(stack: Stack, token: str, tx_hash: str, chain: str | None = None) -> dict:
    response = await stack.claim(token, tx_hash, chain)
    assert response.status_code == 201, response.text
    case = await stack.wait_for(token, response.json()["case_id"], "COMPLETED", "REJECTED")
    assert case["status"] == "REJECTED", case
    return case


def _no_money_moved(stack: Stack, case_id: str) -> None:
    with Session(stack.engine) as session:
        assert not session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
        assert not session.exec(
            select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id, FeeLedgerEntry.kind == FeeKind.CHARGED)
        ).all()


async def test_not_found_on_any_configured_chain(ts_stack: Stack) -> None:
    _, token, _ = ts_stack.new_user()
    case = await _rejected(ts_stack, token, "0x" + secrets.token_hex(32))
    assert case["pattern"] == "NOT_FOUND"
    assert "not found" in case["reason"]
    await record_history(ts_stack, case["case_id"], "not_found_rejected")
    _no_money_moved(ts_stack, case["case_id"])


async def test_failed_transaction(ts_stack: Stack) -> None:
    _, token, deposit_address = ts_stack.new_user()
    # more USDT than the sender holds: mined with an explicit gas limit, and reverted
    tx_hash = await devnet.send_from_dev_account(
        ts_stack.chain("bsc"), to=deposit_address, asset="USDT", amount=10**40, account_index=5, gas=100_000
    )
    case = await _rejected(ts_stack, token, tx_hash, "bsc")
    assert case["pattern"] == "FAILED_TX"
    assert "failed" in case["reason"]


async def test_not_our_address(ts_stack: Stack) -> None:
    _, token, _ = ts_stack.new_user()
    tx_hash = await ts_stack.send("bsc", to="0x" + secrets.token_hex(20), amount=Decimal("20"))
    case = await _rejected(ts_stack, token, tx_hash)
    assert case["pattern"] == "NOT_OURS"


async def test_someone_elses_deposit_is_refused_and_writes_nothing(ts_stack: Stack) -> None:
    _, _, victim_address = ts_stack.new_user("victim")
    _, thief_token, _ = ts_stack.new_user("thief")
    tx_hash = await ts_stack.send("bsc", to=victim_address, amount=Decimal("20"))
    response = await ts_stack.claim(thief_token, tx_hash)
    assert response.status_code == 403
    assert "another account" in response.json()["detail"]
    listed = await ts_stack.http.get("/v1/cases", headers={"Authorization": f"Bearer {thief_token}"})
    assert listed.json()["data"] == []


async def test_supported_deposit_needs_no_recovery(ts_stack: Stack) -> None:
    _, token, deposit_address = ts_stack.new_user()
    tx_hash = await ts_stack.send("ethereum", to=deposit_address, amount=Decimal("20"))
    case = await _rejected(ts_stack, token, tx_hash)
    assert case["pattern"] == "ALREADY_CREDITED"
    assert "regular deposit" in case["reason"]


async def test_dust_below_the_recovery_cost(ts_stack: Stack) -> None:
    _, token, deposit_address = ts_stack.new_user()
    tx_hash = await ts_stack.send("bsc", to=deposit_address, amount=Decimal("3"))
    case = await _rejected(ts_stack, token, tx_hash)
    assert case["pattern"] == "TOO_SMALL"
    assert "does not cover" in case["reason"]
    assert await EvmChain(ts_stack.chain("bsc")).nonce(deposit_address) == 0


async def test_already_recovered_deposit_is_never_swept_twice(ts_stack: Stack) -> None:
    user_id, token, deposit_address = ts_stack.new_user()
    tx_hash = await ts_stack.send("bsc", to=deposit_address, amount=Decimal("40"))
    first = await ts_stack.claim(token, tx_hash)
    done = await ts_stack.wait_for(token, first.json()["case_id"], "COMPLETED", "REJECTED")
    assert done["status"] == "COMPLETED"

    # a second case for the same deposit started behind the API's back (an operator, a replayed job)
    duplicate = CaseInput(
        case_id=done["case_id"] + "-dup", user_id=user_id, chain="bsc", tx_hash=tx_hash, log_index=done["log_index"]
    )
    with Session(ts_stack.engine) as session:
        from store import cases

        cases.create_case(
            session,
            case_id=duplicate.case_id,
            user_id=user_id,
            chain="bsc",
            tx_hash=tx_hash,
            log_index=duplicate.log_index,
        )
    handle = await start_case(ts_stack.client, task_queue=ts_stack.settings.task_queue, case=duplicate)
    result = await handle.result()
    assert result.status == "REJECTED" and result.pattern == "ALREADY_CREDITED"
    assert await EvmChain(ts_stack.chain("bsc")).nonce(deposit_address) == 1
    with Session(ts_stack.engine) as session:
        assert len(session.exec(select(LedgerCredit).where(LedgerCredit.user_id == user_id)).all()) == 1

    # the gas top-up the exchange sent to the user's address is not a deposit the user can claim
    topup = await _rejected(ts_stack, token, done["topup_tx_hash"])
    assert topup["pattern"] == "NOT_OURS" and "own transfer" in topup["reason"]
