"""The manual path's newer actions through the ``recovery`` CLI on a dev server, as engineers use them: an
approval that sets the fee and the action, and a recovery done outside the engine recorded with
``recovery case record-execution`` (a mismatching transaction refused, then the matching one booked)."""

from __future__ import annotations

import json
from decimal import Decimal

from chains.evm import EvmChain
from devstack import devnet
from tests.stack_fixtures import Stack, cli_env, run_cli


async def _manual_case(stack: Stack, amount: str) -> tuple[str, str, str, str]:
    """A wrong-network bsc USDT deposit above the automatic limit: (token, case id, deposit address, tx)."""
    _, token, address = stack.new_user("manual")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal(amount))
    response = await stack.claim(token, tx_hash, chain="bsc")
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    proof = await stack.prove_ownership(token, case_id)  # above ownership_proof_usd: the sender's signature
    assert proof.status_code == 200, proof.text
    return token, case_id, address, tx_hash


async def test_approve_with_a_fee_override_and_an_action(dev_stack: Stack) -> None:
    stack, env = dev_stack, cli_env(dev_stack)
    token, case_id, _, _ = await _manual_case(stack, "30000")  # 5% would be capped at the 500 USD maximum

    code, _, err = await run_cli(env, "case", "approve", case_id, "--engineer", "bob", "--fee-usd", "lots")
    assert code == 1 and "is not an amount" in err, err
    code, _, err = await run_cli(env, "case", "approve", case_id, "--engineer", "bob", "--fee-usd", "600")
    assert code == 1 and "refused:" in err and "outside the fee policy's bounds (10 to 500 USD)" in err, err
    code, _, err = await run_cli(env, "case", "approve", case_id, "--engineer", "bob", "--action", "credit")
    assert code == 1 and "action 'sweep'" in err, err
    code, out, err = await run_cli(
        env, "case", "approve", case_id, "--engineer", "bob", "--fee-usd", "120.00", "--action", "sweep"
    )
    assert code == 0 and json.loads(out)["answer"] == "approved by bob", err

    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    assert case["fees"]["fee_usd"] == "120.00", case["fees"]
    credited = int(case["credited"]["base_units"])
    fee = int(case["fees"]["fee"]["base_units"])
    gas = int(case["fees"]["gas"]["base_units"])
    assert credited + fee + gas == 30000 * 10**18 and fee == 120 * 10**18
    code, out, _ = await run_cli(env, "case", "audit", case_id)
    (approval,) = [row for row in json.loads(out) if row["action"] == "approve"]
    assert approval["attested"] and approval["input"]["fee_usd"] == "120.00" and approval["input"]["action"] == "sweep"


async def test_record_execution_is_checked_on_chain(dev_stack: Stack) -> None:
    stack, env = dev_stack, cli_env(dev_stack)
    token, case_id, address, deposit_tx = await _manual_case(stack, "25000")
    bsc = stack.chain("bsc")

    code, _, err = await run_cli(
        env, "case", "record-execution", case_id, "--engineer", "bob", "--chain", "bsc", "--tx-hash", deposit_tx
    )
    assert code == 1 and "refused:" in err and "not to the exchange's hot wallet" in err, err
    code, _, err = await run_cli(
        env, "case", "record-execution", case_id, "--engineer", "bob", "--chain", "moon", "--tx-hash", deposit_tx
    )
    assert code == 1 and "moon" in err, err

    usdt = bsc.token_by_symbol("USDT")
    assert usdt is not None
    hot_before = await EvmChain(bsc).token_balance(usdt.address, stack.hot_wallet)
    rescue = await devnet.send_as(bsc, sender=address, to=stack.hot_wallet, asset="USDT", amount=25000 * 10**18)
    await devnet.mine(bsc, bsc.confirmations + 1)
    code, out, err = await run_cli(
        env, "case", "record-execution", case_id, "--engineer", "bob", "--chain", "bsc", "--tx-hash", rescue,
        "--note", "swept by hand",
    )  # fmt: skip
    assert code == 0 and "booked" in json.loads(out)["answer"], err
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case
    assert await EvmChain(bsc).token_balance(usdt.address, stack.hot_wallet) == hot_before + 25000 * 10**18
    credited = int(case["credited"]["base_units"])
    assert credited + int(case["fees"]["fee"]["base_units"]) == 25000 * 10**18
    code, out, _ = await run_cli(env, "case", "audit", case_id)
    assert [(r["action"], r["engineer"], r["attested"]) for r in json.loads(out)] == [
        ("record_manual_execution", "bob", True)
    ]
