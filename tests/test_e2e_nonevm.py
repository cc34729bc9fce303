"""Memo mistakes on the XRP Ledger and UTXO forks, end to end: the API, the worker and Temporal, with the
chains' real HTTP APIs answered by local servers (there is no XRP or Bitcoin node here)."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from recovery.settings import ChainConfig
from store import users
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401
from tests.stack_fixtures import Stack, open_stack, record_history
from tests.test_bitcoin_adapter import esplora_tx, p2wpkh
from tests.test_xrpl_adapter import EXCHANGE, LEDGER, meta, payment
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow

XRP_DROPS = 10**6
ALICE_TAG, BOB_TAG = "1001", "1002"
ALICE_BTC = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"


def _xrp_hash() -> str:
    return secrets.token_hex(32).upper()


def _rippled_tx(node: FakeNode, tx_hash: str, tx: dict[str, Any], delivered: str) -> None:
    result = tx | {
        "hash": tx_hash,
        "ledger_index": LEDGER,
        "validated": True,
        "status": "success",
        "meta": meta(delivered=delivered),
        "DeliverMax": tx["Amount"],
    }
    node.route("POST", None, {"result": result}, match={"method": "tx", "params": [{"transaction": tx_hash}]})


def _esplora(node: FakeNode, txid: str, tx: dict[str, Any]) -> None:
    node.route("GET", f"/tx/{txid}", tx | {"txid": txid})
    node.route("GET", "/blocks/tip/height", 840_010)


@pytest.fixture
async def nonevm_stack(
    time_skipping_env: WorkflowEnvironment,
    tmp_path: Path,
    dev_chains: list[ChainConfig],
    fake_nodes: NodeFactory,  # noqa: F811
) -> AsyncIterator[tuple[Stack, FakeNode, FakeNode]]:
    rippled, bch_node = fake_nodes(), fake_nodes()
    xrp = ChainConfig(
        name="xrp",
        family="xrpl",
        rpc_urls=[rippled.url],
        confirmations=1,
        block_time_ms=1000,
        native_symbol="XRP",
        native_decimals=6,
        credited_assets=["XRP"],
        shared_deposit_address=EXCHANGE,
        rpc_backoff_ms=5,
    )
    bch = ChainConfig(
        name="bch",
        family="bitcoin",
        rpc_urls=[bch_node.url],
        confirmations=3,
        block_time_ms=1000,
        native_symbol="BCH",
        native_decimals=8,
        fork_of="bitcoin",
        rpc_backoff_ms=5,
    )
    prices = {"USDT": Decimal("1"), "ETH": Decimal("3000"), "BNB": Decimal("600"), "POL": Decimal("0.5")}
    prices |= {"XRP": Decimal("0.5"), "BCH": Decimal("400")}
    async for stack in open_stack(time_skipping_env, tmp_path, [*dev_chains, xrp, bch], prices_usd=prices):
        yield stack, rippled, bch_node


def _user_with_tag(stack: Stack, tag: str) -> tuple[str, str]:
    user_id, token, _ = stack.new_user()
    with Session(stack.engine) as session:
        users.add_deposit_address(session, user_id=user_id, family="xrpl", address=EXCHANGE, memo=tag)
    return user_id, token


async def _approve_refused(stack: Stack, case_id: str, words: str) -> None:
    with pytest.raises((WorkflowUpdateFailedError, RPCError)) as refused:
        await stack.client.get_workflow_handle(case_id).execute_update(CaseWorkflow.approve, Decision(engineer="bob"))
    assert words in str(refused.value.__cause__ or refused.value)


async def test_missing_memo_is_credited_after_an_engineer_approves(
    nonevm_stack: tuple[Stack, FakeNode, FakeNode],
) -> None:
    stack, rippled, _ = nonevm_stack
    _, token = _user_with_tag(stack, f"{ALICE_TAG}{secrets.randbelow(10**6)}")
    tx_hash, amount = _xrp_hash(), 500 * XRP_DROPS
    _rippled_tx(rippled, tx_hash, payment(str(amount), tag=None), delivered=str(amount))

    response = await stack.claim(token, tx_hash.lower())  # no chain: searched on every chain that takes the format
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "MISSING_OR_WRONG_MEMO", case
    assert "no memo" in case["reason"]
    handle = stack.client.get_workflow_handle(case_id)
    await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice", reason="sender proved ownership"))
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    credited, fee = int(case["credited"]["base_units"]), int(case["fees"]["fee"]["base_units"])
    assert int(case["fees"]["gas"]["base_units"]) == 0  # the funds were already in the exchange's wallet
    assert credited + fee == amount and fee == 80 * XRP_DROPS  # MISSING_OR_WRONG_MEMO: a flat $40 = 80 XRP
    await record_history(stack, case_id, "memo_credited")


async def test_another_users_memo_is_never_automatic(nonevm_stack: tuple[Stack, FakeNode, FakeNode]) -> None:
    stack, rippled, _ = nonevm_stack
    suffix = str(secrets.randbelow(10**6))
    _, alice = _user_with_tag(stack, ALICE_TAG + suffix)
    _, bob = _user_with_tag(stack, BOB_TAG + suffix)
    tx_hash = _xrp_hash()
    _rippled_tx(rippled, tx_hash, payment(str(40 * XRP_DROPS), tag=int(BOB_TAG + suffix)), str(40 * XRP_DROPS))

    # bob's own memo: the regular deposit process credits it
    response = await stack.claim(bob, tx_hash, "xrp")
    assert response.status_code == 201, response.text
    case = await stack.wait_for(bob, response.json()["case_id"], "REJECTED", "AWAITING_APPROVAL", "COMPLETED")
    assert case["pattern"] == "ALREADY_CREDITED", case

    # alice says she typed bob's memo by mistake: an engineer decides, never the engine
    response = await stack.claim(alice, tx_hash, "xrp")
    assert response.status_code == 201, response.text
    case = await stack.wait_for(alice, response.json()["case_id"], "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "MISSING_OR_WRONG_MEMO", case
    assert "belongs to another account" in case["reason"]


async def test_utxo_fork_sent_to_our_bitcoin_address(nonevm_stack: tuple[Stack, FakeNode, FakeNode]) -> None:
    stack, _, bch_node = nonevm_stack
    user_id, token, _ = stack.new_user()
    address = ALICE_BTC[:-6] + secrets.token_hex(3)
    with Session(stack.engine) as session:
        users.add_deposit_address(session, user_id=user_id, family="bitcoin", address=address)
    txid = secrets.token_hex(32)
    _esplora(bch_node, txid, esplora_tx([p2wpkh(address, 2 * 10**8)], height=840_000))

    response = await stack.claim(token, txid, "bch")
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "REJECTED", "COMPLETED")
    assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "UTXO_FORK", case
    assert "fork of bitcoin" in case["reason"]
    await _approve_refused(stack, case_id, "cannot carry out")


async def test_a_bitcoin_style_id_on_an_evm_chain_is_refused(nonevm_stack: tuple[Stack, FakeNode, FakeNode]) -> None:
    stack, _, _ = nonevm_stack
    _, token, _ = stack.new_user()
    response = await stack.claim(token, secrets.token_hex(32), "bsc")
    assert response.status_code == 422 and "not a transaction id on bsc" in response.json()["detail"]
