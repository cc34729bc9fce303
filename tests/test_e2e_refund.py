"""A refund of an unlisted token to its sender on anvil, end to end on a dev server: the engineer approves
with action ``refund``, nothing moves until the sender's ownership proof, then the refund and the fee each
leave the deposit address once, and the chain agrees with the books: recovered = refunded + fee + gas."""

from __future__ import annotations

import json
import secrets
from decimal import Decimal
from pathlib import Path

from eth_utils import to_checksum_address
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from devstack import devnet
from recovery.settings import ChainConfig
from store import fee_ledger
from store.fee_ledger import FeeKind, FeeLedgerEntry
from store.ledger import LedgerCredit, RefundEntry
from store.signed_txs import SignedTransaction
from tests.stack_fixtures import Stack, cli_env, open_stack, run_cli


async def recovery_cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    return await run_cli(cli_env(stack), *args)


PRICES = {"USDT": Decimal("1"), "ETH": Decimal("3000"), "BNB": Decimal("600"), "POL": Decimal("0.5")}


async def test_an_unlisted_token_is_refunded_to_its_sender_after_the_ownership_proof(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    bsc = next(c for c in dev_chains if c.name == "bsc")
    token_address = to_checksum_address("0x" + secrets.token_hex(20))
    await devnet.install_token(bsc, token_address, symbol="RARE", decimals=18)
    sender = devnet.dev_account(0)
    async for stack in open_stack(
        dev_server_env, tmp_path, dev_chains, prices_usd=PRICES | {f"bsc:{token_address}": Decimal("2")}
    ):
        chain = EvmChain(bsc)
        _, token, address = stack.new_user("refund")
        amount = 15_000 * 10**18  # 30,000 USD: above the automatic limit, an engineer decides
        await devnet.mint(bsc, asset=token_address, to=sender, amount=amount)
        sender_before = await chain.token_balance(token_address, sender)
        hot_before = await chain.token_balance(token_address, stack.hot_wallet)
        tx_hash = await devnet.send_from_dev_account(bsc, to=address, asset=token_address, amount=amount)
        response = await stack.claim(token, tx_hash, chain="bsc")
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
        assert case["status"] == "AWAITING_APPROVAL" and case["pattern"] == "UNLISTED_TOKEN", case

        code, out, err = await recovery_cli(
            stack, "case", "approve", case_id, "--engineer", "bob", "--action", "refund", "--note", "not ours"
        )
        assert code == 0, err
        case = await stack.wait_for(token, case_id, "AWAITING_USER", "COMPLETED")
        assert case["status"] == "AWAITING_USER" and case["next_action"]["text"].startswith("Prove that you control")
        assert await chain.token_balance(token_address, address) == amount  # nothing moved before the proof

        proof = await stack.prove_ownership(token, case_id)
        assert proof.status_code == 200, proof.text
        case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
        assert case["status"] == "COMPLETED", case

        # the books: nothing credited, the refund, the fee and the network cost add up to the deposit
        refunded = int(case["refund"]["amount"]["base_units"])
        fee = int(case["fees"]["fee"]["base_units"])
        gas = int(case["fees"]["gas"]["base_units"])
        assert int(case["credited"]["base_units"]) == 0
        assert refunded + fee + gas == amount and min(refunded, fee, gas) > 0
        assert case["refund"]["to"].lower() == sender.lower()

        # the chain agrees: the sender got the refund back, the hot wallet the rest, the address is empty
        assert await chain.token_balance(token_address, sender) - (sender_before - amount) == refunded
        assert await chain.token_balance(token_address, stack.hot_wallet) - hot_before == fee + gas
        assert await chain.token_balance(token_address, address) == 0
        receipt = await chain.receipt(case["refund"]["tx_hash"])
        assert receipt is not None and int(receipt["status"], 16) == 1

        with Session(stack.engine) as session:
            signed = session.exec(select(SignedTransaction).where(SignedTransaction.case_id == case_id)).all()
            refunds = session.exec(select(RefundEntry).where(RefundEntry.case_id == case_id)).all()
            fees = session.exec(
                select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id, FeeLedgerEntry.kind == FeeKind.CHARGED)
            ).all()
            credits = session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
            [gas_row] = fee_ledger.entries(session, case_id=case_id, kind=FeeKind.GAS_CHARGED)
        assert sorted(s.purpose for s in signed) == ["gas_topup", "refund", "refund_fee"]  # each signed once
        assert len(refunds) == 1 and refunds[0].amount == refunded and refunds[0].tx_hash == case["refund"]["tx_hash"]
        assert len(fees) == 1 and fees[0].amount == fee and gas_row.amount == gas and credits == []
        timeline = [e["message"] for e in case["timeline"]]
        assert any(m.startswith(f"Refund {case['refund']['tx_hash']} to ") for m in timeline), timeline
        assert any(m.startswith("Refunded 14") and case["refund"]["tx_hash"] in m for m in timeline), timeline

        code, out, err = await recovery_cli(stack, "case", "audit", case_id)
        assert code == 0, err
        assert json.loads(out)[0]["input"]["action"] == "refund"
