"""Each pattern of the classifier end to end on real anvil chains, through the API, the worker and Temporal.

Tokens are real compiled contracts placed on the chains; balances are read back from the chains.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address
from sqlmodel import Session, select
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from chains.signer import deposit_path
from devstack import devnet, devtokens
from recovery.models import case_id_for
from recovery.settings import ChainConfig
from store import cases, users
from store.fee_ledger import FeeKind, FeeLedgerEntry
from store.ledger import LedgerCredit
from tests.stack_fixtures import Stack, open_stack, record_history
from workflows.case_messages import CaseInput, Decision
from workflows.case_workflow import CaseWorkflow
from workflows.starter import start_case

USDT_POLYGON_MIN = 50 * 10**6


def _fresh_address() -> str:
    return to_checksum_address("0x" + secrets.token_hex(20))


@pytest.fixture
async def pattern_stack(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """The dev chains with a 50 USDT deposit minimum on polygon and a rescue route for bsc USDT."""
    chains = []
    for chain in dev_chains:
        update: dict[str, Any] = {}
        if chain.name == "polygon":
            update["deposit_minimums"] = {"USDT": USDT_POLYGON_MIN}
        chains.append(chain.model_copy(update=update))
    async for s in open_stack(time_skipping_env, tmp_path, chains):
        yield s


async def _claim(stack: Stack, token: str, tx_hash: str, *statuses: str) -> dict[str, Any]:
    response = await stack.claim(token, tx_hash)
    assert response.status_code == 201, response.text
    return await stack.wait_for(token, response.json()["case_id"], *statuses)


def _ledger(stack: Stack, case_id: str) -> tuple[list[LedgerCredit], list[FeeLedgerEntry]]:
    with Session(stack.engine) as session:
        credits = list(session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all())
        fees = list(
            session.exec(
                select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id, FeeLedgerEntry.kind == FeeKind.CHARGED)
            ).all()
        )
    return credits, fees


def _accounted(case: dict[str, Any], amount: int) -> None:
    """recovered = credited + fee + gas, to the base unit."""
    assert case["status"] == "COMPLETED", case
    credited = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert credited + fee + gas == amount and min(credited, fee, gas) >= 0


async def _refused(handle: Any, decision: Decision, words: str) -> None:
    with pytest.raises((WorkflowUpdateFailedError, RPCError)) as refused:
        await handle.execute_update(CaseWorkflow.approve, decision)
    assert words in str(refused.value.__cause__ or refused.value)


async def test_unlisted_token_safe_and_priced_is_recovered_automatically(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    bsc = next(c for c in dev_chains if c.name == "bsc")
    token_address = _fresh_address()
    await devnet.install_token(bsc, token_address, symbol="GOOD", decimals=18)
    prices = {"USDT": Decimal("1"), "ETH": Decimal("3000"), "BNB": Decimal("600"), "POL": Decimal("0.5")}
    prices[f"bsc:{token_address}"] = Decimal("2")
    async for stack in open_stack(time_skipping_env, tmp_path, dev_chains, prices_usd=prices):
        _, token, address = stack.new_user()
        amount = 500 * 10**18
        await devnet.mint(bsc, asset=token_address, to=devnet.dev_account(0), amount=amount)
        tx_hash = await devnet.send_from_dev_account(bsc, to=address, asset=token_address, amount=amount)
        case = await _claim(stack, token, tx_hash, "COMPLETED", "REJECTED", "AWAITING_APPROVAL")
        assert case["pattern"] == "UNLISTED_TOKEN" and "automatically" in case["reason"], case
        _accounted(case, amount)
        hot = await EvmChain(bsc).token_balance(token_address, stack.hot_wallet)
        assert hot == amount
        credits, fees = _ledger(stack, case["case_id"])
        assert len(credits) == 1 and len(fees) == 1
        assert credits[0].asset == f"bsc:{token_address.lower()}"  # never under the token's self-chosen symbol


async def test_unlisted_token_without_price_waits_for_an_engineer(pattern_stack: Stack) -> None:
    bsc = pattern_stack.chain("bsc")
    token_address = _fresh_address()
    await devnet.install_token(bsc, token_address, symbol="USDT", decimals=6)  # claims to be USDT: no price
    _, token, address = pattern_stack.new_user()
    await devnet.mint(bsc, asset=token_address, to=devnet.dev_account(0), amount=10**9)
    tx_hash = await devnet.send_from_dev_account(bsc, to=address, asset=token_address, amount=10**9)
    case = await _claim(pattern_stack, token, tx_hash, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "UNLISTED_TOKEN"
    assert "no price" in case["reason"]


async def test_token_sent_to_its_own_contract_is_unrecoverable(pattern_stack: Stack) -> None:
    bsc = pattern_stack.chain("bsc")
    usdt = bsc.token_by_symbol("USDT")
    assert usdt is not None
    _, token, _ = pattern_stack.new_user()
    tx_hash = await pattern_stack.send("bsc", to=usdt.address, amount=Decimal("30"))
    case = await _claim(pattern_stack, token, tx_hash, "REJECTED", "AWAITING_APPROVAL", "COMPLETED")
    assert case["status"] == "REJECTED" and case["pattern"] == "TOKEN_CONTRACT_RECIPIENT", case
    assert "cannot be recovered" in case["reason"]


async def test_token_contract_recipient_with_a_rescue_route_goes_to_an_engineer(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    route = "the issuer's rescueTokens procedure (ticket to the issuer with the tx hash)"
    chains = [
        c.model_copy(update={"rescue_routes": {c.tokens[0].address: route}}) if c.name == "bsc" else c
        for c in dev_chains
    ]
    async for stack in open_stack(time_skipping_env, tmp_path, chains):
        usdt = stack.chain("bsc").tokens[0].address
        _, token, _ = stack.new_user()
        tx_hash = await stack.send("bsc", to=usdt, amount=Decimal("30"))
        case = await _claim(stack, token, tx_hash, "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
        assert case["pattern"] == "TOKEN_CONTRACT_RECIPIENT" and route in case["reason"]
        handle = stack.client.get_workflow_handle(case["case_id"])
        await _refused(handle, Decision(engineer="alice"), "cannot carry out")
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="rescued by the issuer"))
        case = await stack.wait_for(token, case["case_id"], "REJECTED")
        assert _ledger(stack, case["case_id"]) == ([], [])
        await record_history(stack, case["case_id"], "token_contract_rejected")


async def test_contract_wallet_without_code_on_the_deposit_chain(pattern_stack: Stack) -> None:
    eth, bsc = pattern_stack.chain("ethereum"), pattern_stack.chain("bsc")
    user_id, token, _ = pattern_stack.new_user()
    wallet = _fresh_address()
    # the user's deposit address is a contract wallet on ethereum (e.g. a forwarder) and has no code on bsc
    await EvmChain(eth).rpc.call("anvil_setCode", [wallet, "0x6080604052"])
    with Session(pattern_stack.engine) as session:
        users.add_deposit_address(session, user_id=user_id, family="evm", address=wallet)
    tx_hash = await pattern_stack.send("bsc", to=wallet, amount=Decimal("40"))
    case = await _claim(pattern_stack, token, tx_hash, "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "CONTRACT_RECIPIENT", case
    assert "ethereum" in case["reason"] and "race" in case["reason"]
    assert not await EvmChain(bsc).is_contract(wallet)
    handle = pattern_stack.client.get_workflow_handle(case["case_id"])
    await _refused(handle, Decision(engineer="bob"), "cannot carry out")


async def test_below_minimum_is_credited_once_the_total_passes(pattern_stack: Stack) -> None:
    _, token, address = pattern_stack.new_user()
    first = await pattern_stack.send("polygon", to=address, amount=Decimal("20"))
    case = await _claim(pattern_stack, token, first, "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "BELOW_MINIMUM", case
    assert "50 USDT" in case["reason"]
    second = await pattern_stack.send("polygon", to=address, amount=Decimal("40"))
    case2 = await _claim(pattern_stack, token, second, "COMPLETED", "REJECTED", "AWAITING_APPROVAL")
    assert case2["pattern"] == "BELOW_MINIMUM" and "60 USDT" in case2["reason"], case2
    _accounted(case2, 40 * 10**6)


async def test_deposit_to_a_deprecated_address_is_recovered_with_its_own_key(pattern_stack: Stack) -> None:
    user_id, token, old_address = pattern_stack.new_user()
    with Session(pattern_stack.engine) as session:
        user = users.rotate_deposit_address(
            session, user_id=user_id, signer=pattern_stack.signer, path_for=deposit_path
        )
    assert user.deposit_address.lower() != old_address.lower()
    tx_hash = await pattern_stack.send("ethereum", to=old_address, amount=Decimal("100"))
    case = await _claim(pattern_stack, token, tx_hash, "COMPLETED", "REJECTED", "AWAITING_APPROVAL")
    assert case["pattern"] == "DEPRECATED_ADDRESS", case
    _accounted(case, 100 * 10**6)
    await record_history(pattern_stack, case["case_id"], "deprecated_address_completed")
    eth = EvmChain(pattern_stack.chain("ethereum"))
    assert await eth.token_balance(pattern_stack.chain("ethereum").tokens[0].address, old_address) == 0


async def test_deposit_reorged_out_before_depth_is_never_credited(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    chains = [c.model_copy(update={"confirmations": 1_000}) if c.name == "bsc" else c for c in dev_chains]
    async for stack in open_stack(time_skipping_env, tmp_path, chains):
        rpc = EvmChain(stack.chain("bsc")).rpc
        _, token, address = stack.new_user()
        await devnet.mint(stack.chain("bsc"), asset="USDT", to=devnet.dev_account(0), amount=25 * 10**18)
        snapshot = await rpc.call("evm_snapshot", [])
        tx_hash = await devnet.send_from_dev_account(stack.chain("bsc"), to=address, asset="USDT", amount=25 * 10**18)
        response = await stack.claim(token, tx_hash)
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        await stack.wait_for(token, case_id, "WAITING_CONFIRMATIONS")
        assert await rpc.call("evm_revert", [snapshot])  # the deposit's block is gone, and the deposit with it
        await time_skipping_env.sleep(timedelta(minutes=11))  # the case's next confirmation poll
        case = await stack.wait_for(token, case_id, "REJECTED", "COMPLETED")
        assert case["status"] == "REJECTED" and case["pattern"] == "NOT_FOUND"
        assert "reorganisation" in case["reason"] and "Nothing was credited" in case["reason"]
        assert _ledger(stack, case_id) == ([], [])
        await record_history(stack, case_id, "reorged_rejected")


@pytest.mark.parametrize("kind", ["fee", "rebasing", "blacklist"])
async def test_risky_unlisted_token_goes_to_an_engineer_with_the_finding(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig], kind: str
) -> None:
    bsc = next(c for c in dev_chains if c.name == "bsc")
    token_address = _fresh_address()
    if kind == "fee":
        await devtokens.install_fee_token(bsc, token_address, fee_bps=250)
    elif kind == "rebasing":
        await devtokens.install_rebasing_token(bsc, token_address)
    else:
        await devtokens.install_blacklist_token(bsc, token_address, decimals=18)
    prices = {"USDT": Decimal("1"), "ETH": Decimal("3000"), "BNB": Decimal("600"), "POL": Decimal("0.5")}
    prices[f"bsc:{token_address}"] = Decimal("1")  # priced: only the finding keeps it from the automatic route
    async for stack in open_stack(time_skipping_env, tmp_path, dev_chains, prices_usd=prices):
        _, token, address = stack.new_user()
        sender = devnet.dev_account(3)
        await devtokens.mint_token(bsc, token_address, sender, 10**21)
        tx_hash = await devtokens.send_as(
            bsc, sender, token_address, devtokens.calldata("transfer(address,uint256)", address, 400 * 10**18)
        )
        if kind == "rebasing":
            await devtokens.send_as(bsc, sender, token_address, devtokens.calldata("rebase(uint256,uint256)", 11, 10))
        elif kind == "blacklist":  # frozen by the issuer after it arrived, like USDT's blacklist
            await devtokens.send_as(bsc, sender, token_address, devtokens.calldata("addBlackList(address)", address))
        case = await _claim(stack, token, tx_hash, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
        assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "UNLISTED_TOKEN", case
        expected = {"fee": "delivered", "rebasing": "unexplained", "blacklist": "blacklisted"}[kind]
        assert expected in case["reason"], case["reason"]
        assert _ledger(stack, case["case_id"]) == ([], [])


async def test_native_value_forwarded_by_a_contract_is_its_own_deposit(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    chains = [c.model_copy(update={"credited_assets": []}) if c.name == "bsc" else c for c in dev_chains]
    bsc = next(c for c in chains if c.name == "bsc")
    forwarder = await devtokens.install_forwarder(bsc, _fresh_address())
    async for stack in open_stack(time_skipping_env, tmp_path, chains):
        _, token, address = stack.new_user()
        amount = 2 * 10**18
        data = devtokens.calldata("forward(address)", address)
        tx_hash = await devtokens.send_as(bsc, devnet.dev_account(4), forwarder, data, value=amount)
        response = await stack.claim(token, tx_hash)
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        assert case_id.endswith("-i1")  # the first internal value transfer, not the call to the forwarder
        case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
        assert case["pattern"] == "UNLISTED_TOKEN" and case["asset"] == "BNB", case  # BNB is credited nowhere
        handle = stack.client.get_workflow_handle(case_id)
        # 2 BNB is 1,200 USD: above alice's limit (1,000), within bob's
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="bob", reason="user's own BNB"))
        case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
        _accounted(case, amount)
        # the sweep sent the value less its gas at the fee cap; the unspent part of the cap stays behind
        assert await EvmChain(bsc).balance(address) < 21_000 * 10**11


async def test_a_claim_that_resolved_to_no_transfer_finds_the_claimants_one_later(pattern_stack: Stack) -> None:
    """The API may file a claim without a log index (e.g. its trace could not read an internal transfer):
    the workflow looks for the claimant's transfer again, and the ledger key keeps it credited once."""
    user_id, token, address = pattern_stack.new_user()
    tx_hash = await pattern_stack.send("bsc", to=address, amount=Decimal("60"))
    case_id = case_id_for("bsc", tx_hash, None)
    with Session(pattern_stack.engine) as session:
        cases.create_case(session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash=tx_hash, log_index=None)
    case_input = CaseInput(case_id=case_id, user_id=user_id, chain="bsc", tx_hash=tx_hash, log_index=None)
    await start_case(pattern_stack.client, task_queue=pattern_stack.settings.task_queue, case=case_input)
    case = await pattern_stack.wait_for(token, case_id, "COMPLETED", "REJECTED", "AWAITING_APPROVAL")
    assert case["pattern"] == "WRONG_NETWORK_SAME_KEY", case
    _accounted(case, 60 * 10**18)
