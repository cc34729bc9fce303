"""A recovery done outside the engine, recorded by an engineer and checked on a real chain (anvil): a
transaction that does not recover the deposit is refused with what is wrong and books nothing; the one that
does completes the case with recovered = credited + fee + gas; the same transfer cannot settle another case."""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowUpdateFailedError

from chains.evm import EvmChain
from devstack import devnet
from recovery.models import Transfer, deposit_key
from services.manual_executions import ExecutionVerifier
from services.tracing import Tracer
from store import ledger
from tests.history_tools import accepted_updates
from tests.stack_fixtures import Stack
from tests.test_e2e_manual import manual_stack  # noqa: F401  (the fixture)
from workflows.case_messages import ManualExecution
from workflows.case_workflow import CaseWorkflow


async def _refusal(handle: object, execution: ManualExecution) -> str:
    with pytest.raises(WorkflowUpdateFailedError) as failed:
        await handle.execute_update(CaseWorkflow.record_manual_execution, execution)  # type: ignore[attr-defined]
    return str(getattr(failed.value.cause, "message", failed.value.cause))


async def test_a_recorded_manual_execution_is_checked_on_chain_before_it_is_booked(
    manual_stack: Stack,  # noqa: F811
) -> None:
    stack = manual_stack
    bsc = stack.chain("bsc")
    usdt = bsc.token_by_symbol("USDT")
    assert usdt is not None
    _, token, deposit_address = stack.new_user()
    deposit_tx = await stack.send("bsc", to=deposit_address, amount=Decimal("200"))
    case_id = (await stack.claim(token, deposit_tx)).json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    handle = stack.client.get_workflow_handle(case_id)

    # the deposit itself moves USDT to the deposit address, not to the hot wallet
    wrong = await _refusal(handle, ManualExecution(engineer="bob", chain="bsc", tx_hash=deposit_tx))
    assert "not to the exchange's hot wallet" in wrong and stack.hot_wallet in wrong
    # the engineer moves only half by hand: the amount is wrong
    half = await devnet.send_as(bsc, sender=deposit_address, to=stack.hot_wallet, asset="USDT", amount=100 * 10**18)
    await devnet.mine(bsc, bsc.confirmations + 1)
    short = await _refusal(handle, ManualExecution(engineer="bob", chain="bsc", tx_hash=half))
    assert "moves 100000000000000000000 base units; the deposit is 200000000000000000000" in short
    case = await stack.case(token, case_id)
    assert case["status"] == "AWAITING_APPROVAL" and case["credited"] is None

    # the rest comes back, and the whole deposit leaves in one transaction of the engineer's
    await devnet.send_as(bsc, sender=stack.hot_wallet, to=deposit_address, asset="USDT", amount=100 * 10**18)
    chain = EvmChain(bsc)
    hot_before = await chain.token_balance(usdt.address, stack.hot_wallet)
    rescue = await devnet.send_as(bsc, sender=deposit_address, to=stack.hot_wallet, asset="USDT", amount=200 * 10**18)
    assert await chain.token_balance(usdt.address, stack.hot_wallet) == hot_before + 200 * 10**18
    unconfirmed = await _refusal(handle, ManualExecution(engineer="bob", chain="bsc", tx_hash=rescue))
    assert "confirmations" in unconfirmed and "once it is final" in unconfirmed
    await devnet.mine(bsc, bsc.confirmations + 1)
    answer = await handle.execute_update(
        "record_manual_execution",
        ManualExecution(engineer="bob", chain="bsc", tx_hash=rescue, note="keys recovered by hand"),
        result_type=str,
    )
    assert "booked" in answer
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    credited = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert credited + fee + gas == 200 * 10**18 and gas == 0 and fee > 0
    assert any("Recovered outside the engine by bob" in e["message"] for e in case["timeline"])
    history = await handle.fetch_history()
    assert [name for name, _ in accepted_updates(history)] == [
        "record_manual_execution",
        "record_manual_execution",
        "record_manual_execution",
        "record_manual_execution",
    ]  # checked on chain inside the update: the three refusals are failed updates, one booked
    with Session(stack.engine) as session:
        assert ledger.is_credited(session, deposit_key=deposit_key("bsc", deposit_tx, 0))

    # the same rescue transaction can never settle a second case
    deposit = Transfer.model_validate(
        {
            "chain": "bsc",
            "tx_hash": "0x" + "ee" * 32,
            "log_index": 0,
            "token_address": usdt.address,
            "asset": "USDT",
            "decimals": usdt.decimals,
            "sender": "0x" + "44" * 20,
            "recipient": deposit_address,
            "amount": 200 * 10**18,
        }
    )
    verifier = ExecutionVerifier(
        settings=stack.settings, engine=stack.engine, signer=stack.signer, tracer=Tracer(stack.settings)
    )
    transfer, problem = await verifier.verify(
        case_id="case-other", deposit=deposit, chain="bsc", tx_hash=rescue, engineer="bob"
    )
    assert transfer is None and problem is not None and f"already linked to {case_id}" in problem
