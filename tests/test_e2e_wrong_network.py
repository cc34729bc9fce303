"""End to end through the HTTP API: USDT sent on bsc to an address the exchange credits on ethereum only.

Real anvil chains, a real Temporal server (time-skipping and dev server), the real worker and database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, deposit_path
from recovery.settings import ChainConfig
from store import cases, signed_txs
from store.fee_ledger import FeeKind, FeeLedgerEntry
from store.ledger import LedgerCredit
from tests.db_fixtures import POSTGRES_URL
from tests.stack_fixtures import Stack, open_stack, record_history
from workflows import search_attributes as sa


async def test_wrong_network_usdt_is_recovered_and_credited(stack: Stack) -> None:
    user_id, token, deposit_address = stack.new_user("alice")
    bsc = EvmChain(stack.chain("bsc"))
    usdt = stack.chain("bsc").token_by_symbol("USDT")
    assert usdt is not None
    hot_before = await bsc.token_balance(usdt.address, stack.hot_wallet)

    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("100"))
    response = await stack.claim(token, tx_hash)  # no chain: every configured chain is searched
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    assert response.json()["status"] == "RECEIVED"

    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    assert case["pattern"] == "WRONG_NETWORK_SAME_KEY"
    assert case["chain"] == "bsc" and case["asset"] == "USDT"
    amount = 100 * 10**18
    assert case["amount"]["base_units"] == str(amount)
    assert Decimal(case["amount"]["decimal"]) == Decimal("100")

    # every unit is accounted for: recovered = credited + fee + gas
    credited = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert case["fees"]["final"] is True
    assert credited + fee + gas == amount
    assert fee == 10 * 10**18  # 5% of 100 USD is below the 10 USD minimum
    assert gas > 0

    # the sweep really moved the deposit to the hot wallet, once
    assert await bsc.token_balance(usdt.address, stack.hot_wallet) - hot_before == amount
    assert await bsc.token_balance(usdt.address, deposit_address) == 0
    sweep = await bsc.receipt(case["sweep_tx_hash"])
    assert sweep is not None and int(sweep["status"], 16) == 1
    assert await bsc.nonce(deposit_address) == 1

    # the actual gas of the top-up and the sweep, converted at the static prices, is what was charged
    gas_native = 0
    for tx in (case["topup_tx_hash"], case["sweep_tx_hash"]):
        receipt = await bsc.receipt(tx)
        assert receipt is not None
        gas_native += int(receipt["gasUsed"], 16) * int(receipt["effectiveGasPrice"], 16)
    bnb, usd = stack.settings.prices_usd["BNB"], stack.settings.prices_usd["USDT"]
    assert gas == -(-gas_native * int(bnb * 100) // (int(usd * 100)))

    # ledger: exactly one credit and one fee row for this deposit
    with Session(stack.engine) as session:
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
        fees = session.exec(
            select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id, FeeLedgerEntry.kind == FeeKind.CHARGED)
        ).all()
    assert [(c.user_id, c.amount) for c in credits] == [(user_id, credited)]
    assert [f.amount for f in fees] == [fee]

    statuses = [e["status"] for e in case["timeline"]]
    assert statuses[0] == "RECEIVED" and statuses[-1] == "COMPLETED"
    # claimed right after sending: the deposit had fewer than 3 confirmations and the case waited for them
    assert {"TRACING", "WAITING_CONFIRMATIONS", "CLASSIFIED", "RECOVERING"} <= set(statuses)

    # what the engineers see in the Temporal UI
    handle = stack.client.get_workflow_handle(case_id)
    description = await handle.describe()
    attrs = description.typed_search_attributes
    assert attrs.get(sa.CASE_STATUS) == "COMPLETED"
    assert attrs.get(sa.PATTERN) == "WRONG_NETWORK_SAME_KEY"
    assert attrs.get(sa.CHAIN) == "bsc"
    assert attrs.get(sa.ASSET) == "USDT"
    assert attrs.get(sa.AMOUNT_USD) == 100
    summary = await description.static_summary()
    assert summary is not None and user_id in summary and "bsc" in summary and "USDT" in summary

    # the same deposit claimed again: 409 with the existing case to its owner, refused to anyone else
    again = await stack.claim(token, tx_hash, chain="bsc")
    assert again.status_code == 409 and again.json()["case_id"] == case_id
    _, other_token, _ = stack.new_user("mallory")
    stolen = await stack.claim(other_token, tx_hash)
    assert stolen.status_code == 403
    other_view = await stack.http.get(f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {other_token}"})
    assert other_view.status_code == 404

    if stack.env.supports_time_skipping:
        await record_history(stack, case_id, "wrong_network_completed")

    listed = await stack.http.get("/v1/cases", headers={"Authorization": f"Bearer {token}"})
    assert [c["case_id"] for c in listed.json()["data"]] == [case_id]

    # neither the seed nor a private key reaches workflow payloads, the database or the API
    assert stack.settings.seed_file is not None
    mnemonic = stack.settings.seed_file.read_text().strip()
    Account.enable_unaudited_hdwallet_features()
    keys = [
        Account.from_mnemonic(mnemonic, account_path=path).key.hex().removeprefix("0x")
        for path in (deposit_path(0), deposit_path(1), HOT_WALLET_PATH, GAS_WALLET_PATH)
    ]
    secrets_ = [mnemonic, mnemonic.split()[0] + " " + mnemonic.split()[1], *keys]
    history = (await handle.fetch_history()).to_json()
    with Session(stack.engine) as session:
        stored = [row.model_dump_json() for row in session.exec(select(signed_txs.SignedTransaction)).all()]
        stored += [row.model_dump_json() for row in session.exec(select(cases.CaseEvent)).all()]
    for text in (history, str(case), *stored):
        assert not any(secret in text for secret in secrets_)


@pytest.fixture
async def pg_stack(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig], postgres_engine: Engine
) -> AsyncIterator[Stack]:
    url = postgres_engine.url.render_as_string(hide_password=False)
    async for s in open_stack(time_skipping_env, tmp_path, dev_chains, database_url=url):
        yield s


@pytest.mark.skipif(POSTGRES_URL is None, reason="runs when TEST_POSTGRES_URL is set (always in CI)")
async def test_wrong_network_recovery_on_postgresql(pg_stack: Stack) -> None:
    """The same recovery with the worker and the API on PostgreSQL: 18-decimal amounts in NUMERIC(78,0)."""
    user_id, token, deposit_address = pg_stack.new_user("pg")
    tx_hash = await pg_stack.send("bsc", to=deposit_address, amount=Decimal("123.456"))
    response = await pg_stack.claim(token, tx_hash)
    assert response.status_code == 201, response.text
    case = await pg_stack.wait_for(token, response.json()["case_id"], "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    amount = 123_456 * 10**15
    credited = int(case["credited"]["base_units"])
    assert credited + int(case["fees"]["fee"]["base_units"]) + int(case["fees"]["gas"]["base_units"]) == amount
    with Session(pg_stack.engine) as session:
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.user_id == user_id)).all()
    assert [c.amount for c in credits] == [credited]
    assert pg_stack.engine.dialect.name == "postgresql"
