"""Signed once, broadcast idempotently: a transaction that drops out of the chain is sent again with the
same signed bytes, and two deposits at one address are swept one after the other with enough gas."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from sqlmodel import Session, select
from temporalio.testing import ActivityEnvironment

from chains.evm import EvmChain
from fees.prices import StaticPrices
from services.case_services import CaseServices
from store import signed_txs
from store.ledger import LedgerCredit
from tests.stack_fixtures import Stack
from workflows.case_activities import CaseActivities
from workflows.case_messages import SignRequest, TraceRequest


async def test_dropped_transaction_is_sent_again_unchanged(ts_stack: Stack) -> None:
    stack = ts_stack
    acts = CaseActivities(
        CaseServices.build(
            settings=stack.settings,
            engine=stack.engine,
            signer=stack.signer,
            prices=StaticPrices(stack.settings.prices_usd),
        )
    )
    env = ActivityEnvironment()
    _, _, deposit_address = stack.new_user("reorg")
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("50"))
    trace = await env.run(acts.trace_transaction, TraceRequest(chain="bsc", tx_hash=tx_hash))
    deposit = next(t for t in trace.transfers if t.recipient.lower() == deposit_address.lower())

    sweep_key = f"{deposit.key}:sweep"
    await env.run(
        acts.sign_transaction, SignRequest(idempotency_key=sweep_key, case_id="c", purpose="sweep", deposit=deposit)
    )
    topup = await env.run(
        acts.sign_transaction,
        SignRequest(
            idempotency_key=f"{deposit.key}:gas_topup",
            case_id="c",
            purpose="gas_topup",
            deposit=deposit,
            sweep_key=sweep_key,
        ),
    )
    assert topup.tx_hash is not None
    bsc = EvmChain(stack.chain("bsc"))
    rpc = bsc.rpc
    snapshot = await rpc.call("evm_snapshot", [])
    first = await env.run(acts.broadcast_transaction, topup)
    assert first.succeeded and await bsc.balance(deposit_address) > 0

    assert await rpc.call("evm_revert", [snapshot])  # the block with the top-up is gone
    assert await bsc.receipt(topup.tx_hash) is None
    assert await bsc.balance(deposit_address) == 0

    again = await env.run(acts.broadcast_transaction, topup)
    assert again.tx_hash == topup.tx_hash and again.succeeded
    assert await bsc.nonce(stack.gas_wallet) == 1
    with Session(stack.engine) as session:
        rows = session.exec(select(signed_txs.SignedTransaction)).all()
    assert sorted(r.purpose for r in rows) == ["gas_topup", "sweep"]  # nothing was signed a second time


async def test_two_deposits_to_one_address_are_both_recovered(ts_stack: Stack) -> None:
    user_id, token, deposit_address = ts_stack.new_user("twice")
    first = await ts_stack.send("bsc", to=deposit_address, amount=Decimal("40"))
    second = await ts_stack.send("bsc", to=deposit_address, amount=Decimal("60"))
    claims = await asyncio.gather(ts_stack.claim(token, first), ts_stack.claim(token, second))
    assert [c.status_code for c in claims] == [201, 201]
    cases = await asyncio.gather(
        *(ts_stack.wait_for(token, c.json()["case_id"], "COMPLETED", "REJECTED") for c in claims)
    )
    assert [c["status"] for c in cases] == ["COMPLETED", "COMPLETED"], cases
    bsc = EvmChain(ts_stack.chain("bsc"))
    assert await bsc.nonce(deposit_address) == 2
    usdt = ts_stack.chain("bsc").token_by_symbol("USDT")
    assert usdt is not None and await bsc.token_balance(usdt.address, deposit_address) == 0
    with Session(ts_stack.engine) as session:
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.user_id == user_id)).all()
    assert sorted(int(c["credited"]["base_units"]) for c in cases) == sorted(c.amount for c in credits)
