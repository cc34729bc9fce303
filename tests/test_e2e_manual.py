"""The manual route: a recoverable case waits for an engineer's approve or reject update."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from devstack import devnet
from recovery.models import NATIVE_LOG_INDEX
from recovery.settings import ChainConfig
from tests.history_tools import accepted_updates
from tests.stack_fixtures import Stack, open_stack, record_history
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow


@pytest.fixture
async def manual_stack(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """USDT credited on no chain at all: a bsc USDT deposit is recoverable but not automatic."""
    chains = [c.model_copy(update={"credited_assets": []}) for c in dev_chains]
    async for s in open_stack(time_skipping_env, tmp_path, chains):
        yield s


async def _awaiting(stack: Stack) -> tuple[str, str]:
    _, token, deposit_address = stack.new_user()
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("200"))
    response = await stack.claim(token, tx_hash)
    assert response.status_code == 201
    case = await stack.wait_for(token, response.json()["case_id"], "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    assert case["pattern"] == "UNLISTED_TOKEN"
    return token, case["case_id"]


async def test_validator_refuses_unknown_engineer_then_approval_recovers(manual_stack: Stack) -> None:
    token, case_id = await _awaiting(manual_stack)
    handle = manual_stack.client.get_workflow_handle(case_id)
    # the one-line "current details" the Web UI shows for the case
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert "AWAITING_APPROVAL" in metadata.current_details
    assert "approve or reject" in metadata.current_details
    assert (await handle.query(CaseWorkflow.status))["status"] == "AWAITING_APPROVAL"
    with pytest.raises((WorkflowUpdateFailedError, RPCError)) as refused:
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="mallory"))
    assert "roster" in str(refused.value.__cause__ or refused.value)
    history = await handle.fetch_history()
    assert accepted_updates(history) == []  # refused by the validator before reaching history

    assert (
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice", reason="checked"))
        == "approved by alice"
    )
    case = await manual_stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED"
    assert (
        int(case["credited"]["base_units"])
        + int(case["fees"]["fee"]["base_units"])
        + int(case["fees"]["gas"]["base_units"])
        == 200 * 10**18
    )
    assert any("alice" in e["message"] for e in case["timeline"])
    await record_history(manual_stack, case_id, "manual_approved")


async def test_engineer_rejects_with_a_reason(manual_stack: Stack) -> None:
    token, case_id = await _awaiting(manual_stack)
    handle = manual_stack.client.get_workflow_handle(case_id)
    with pytest.raises((WorkflowUpdateFailedError, RPCError)):
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason=" "))
    await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="token is a scam"))
    case = await manual_stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "REJECTED"
    assert "token is a scam" in case["reason"]


async def test_native_coin_recovered_after_approval(ts_stack: Stack) -> None:
    """BNB is credited on no chain: a BNB deposit is manual. Approved, the sweep pays its own gas out
    of the deposit (no top-up), and every wei is still accounted for."""
    _, token, deposit_address = ts_stack.new_user()
    bsc = EvmChain(ts_stack.chain("bsc"))
    hot_before = await bsc.balance(ts_stack.hot_wallet)
    tx_hash = await ts_stack.send("bsc", to=deposit_address, amount=Decimal("1"), asset="BNB")
    response = await ts_stack.claim(token, tx_hash)
    assert response.status_code == 201
    case_id = response.json()["case_id"]
    case = await ts_stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert (case["status"], case["pattern"], case["asset"]) == ("AWAITING_APPROVAL", "UNLISTED_TOKEN", "BNB")
    assert case["log_index"] == NATIVE_LOG_INDEX

    handle = ts_stack.client.get_workflow_handle(case_id)
    await handle.execute_update(CaseWorkflow.approve, Decision(engineer="bob", reason="owner verified"))
    case = await ts_stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    assert case["topup_tx_hash"] is None

    amount = 10**18
    credited = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert credited + fee + gas == amount
    # UNLISTED_TOKEN's policy: free up to 100 USD, then 5 % of the 500 above = 25 USD = 0.041666.. BNB, rounded up
    assert fee == 41_666_666_666_666_667
    receipt = await bsc.receipt(case["sweep_tx_hash"])
    assert receipt is not None
    assert gas == int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    swept = await bsc.balance(ts_stack.hot_wallet) - hot_before
    left_on_deposit_address = await bsc.balance(deposit_address)
    assert swept + left_on_deposit_address + gas == amount  # unused gas reserve stays on our address


async def test_unpriced_token_cannot_be_approved_only_rejected(ts_stack: Stack) -> None:
    """A token the exchange does not know has no price: no fee can be quoted, so approval is refused
    with a message saying what to do, and the engineer can still reject."""
    _, token, deposit_address = ts_stack.new_user()
    bsc = ts_stack.chain("bsc")
    scam = "0x" + secrets.token_hex(20)
    await devnet.install_token(bsc, scam, symbol="SCAM", decimals=9)
    tx_hash = await devnet.mint(bsc, asset=scam, to=deposit_address, amount=5 * 10**9)
    response = await ts_stack.claim(token, tx_hash)
    assert response.status_code == 201
    case_id = response.json()["case_id"]
    case = await ts_stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert (case["status"], case["pattern"], case["asset"]) == ("AWAITING_APPROVAL", "UNLISTED_TOKEN", None)
    assert any("cannot be quoted" in e["message"] for e in case["timeline"])

    handle = ts_stack.client.get_workflow_handle(case_id)
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice"))
    assert "Configure a USD price" in str(refused.value.cause)
    assert (await handle.query(CaseWorkflow.status))["status"] == "AWAITING_APPROVAL"

    await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="unknown token, no market"))
    case = await ts_stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "REJECTED" and "no market" in case["reason"]
    assert await EvmChain(bsc).nonce(deposit_address) == 0
    await record_history(ts_stack, case_id, "unpriced_rejected")
