"""Ownership proof by a verification deposit, end to end on a dev server and anvil: the status API traces the
transaction on the case's chain and refuses, with 422 saying why and changing nothing, one sent before the
challenge, one from another sender, the case's own deposit, a token transfer and one not final yet; it
accepts a new coin transfer from the sender to the deposit address, refuses the same transaction for
another case, and the approval then moves the funds. The verification transfer stays at the address."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from eth_account import Account
from sqlmodel import Session, select

from chains.evm import EvmChain
from devstack import devnet
from services.ownership import CLOCK_SKEW
from store.ownership import OwnershipRequirement, VerificationDeposit
from tests.history_tools import accepted_updates
from tests.stack_fixtures import DEV_ACCOUNT_0_KEY, Stack, cli_env, run_cli

OTHER_ACCOUNT = 1  # anvil dev account 1: 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d
SMALL_BNB = Decimal("0.001")
SMALL_USDT = Decimal("1.5")


async def _manual_case(stack: Stack) -> tuple[str, str, str, str]:
    """(token, case_id, deposit address, deposit tx) of a case above ``ownership_proof_usd``."""
    _, token, address = stack.new_user("verifier")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal("25000"))  # above the automatic limit
    case_id = (await stack.claim(token, tx_hash, chain="bsc")).json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    return token, case_id, address, tx_hash


async def _post(stack: Stack, token: str, case_id: str, body: dict[str, str]) -> tuple[int, str]:
    response = await stack.http.post(
        f"/v1/cases/{case_id}/ownership-proof", json=body, headers={"Authorization": f"Bearer {token}"}
    )
    return response.status_code, response.json()["detail"] if response.status_code != 200 else response.text


async def _verify(stack: Stack, token: str, case_id: str, tx_hash: str) -> tuple[int, str]:
    return await _post(stack, token, case_id, {"verification_tx_hash": tx_hash})


async def _challenge(stack: Stack, token: str, case_id: str) -> None:
    response = await stack.http.get(
        f"/v1/cases/{case_id}/ownership-challenge", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text


def _nothing_recorded(stack: Stack, *case_ids: str) -> None:
    with Session(stack.engine) as session:
        for case_id in case_ids:
            assert session.get(OwnershipRequirement, case_id).proven_at is None  # type: ignore[union-attr]
            assert session.exec(select(VerificationDeposit).where(VerificationDeposit.case_id == case_id)).all() == []


async def test_ownership_proof_by_verification_deposit(dev_stack: Stack) -> None:
    stack = dev_stack
    bsc = stack.chain("bsc")
    token, case_id, address, deposit_tx = await _manual_case(stack)
    sender = Account.from_key(DEV_ACCOUNT_0_KEY).address.lower()

    # one proof per request, not both nor none
    for body in ({}, {"signature": "0x1234", "verification_tx_hash": deposit_tx}):
        code, detail = await _post(stack, token, case_id, body)
        assert code == 422 and detail.startswith("invalid request: send exactly one proof"), detail

    # sent before any challenge: not yet; and still not once the challenge is issued after it
    early = await stack.send("bsc", to=address, amount=SMALL_BNB, asset="BNB")
    code, detail = await _verify(stack, token, case_id, early)
    assert code == 422 and detail.startswith("no challenge:"), detail
    await asyncio.sleep(CLOCK_SKEW["evm"].total_seconds() + 1.2)  # older than the clock skew allowed
    await _challenge(stack, token, case_id)
    code, detail = await _verify(stack, token, case_id, early)
    assert code == 422 and detail.startswith("before the challenge:"), detail

    # after the challenge, but from another sender; the case's own deposit; a token transfer (its Transfer
    # event does not show who signed); a hash that is no transaction on bsc
    other_sender = await devnet.send_from_dev_account(
        bsc, to=address, asset="BNB", amount=10**15, account_index=OTHER_ACCOUNT
    )
    code, detail = await _verify(stack, token, case_id, other_sender)
    assert code == 422 and detail.startswith(f"no matching transfer: the transaction moves nothing from {sender}")
    code, detail = await _verify(stack, token, case_id, deposit_tx)
    assert code == 422 and detail.startswith("own deposit:"), detail
    usdt = await stack.send("bsc", to=address, amount=SMALL_USDT)
    code, detail = await _verify(stack, token, case_id, usdt)
    assert code == 422 and detail.startswith(f"not signed by the sender: on bsc only BNB sent by {sender}"), detail
    code, detail = await _verify(stack, token, case_id, "0x1234")
    assert code == 422 and "is not a transaction id on bsc" in detail, detail

    # the right one, not final yet (bsc needs 3 confirmations): post it again once it is
    good = await stack.send("bsc", to=address, amount=SMALL_BNB, asset="BNB")
    code, detail = await _verify(stack, token, case_id, good)
    if code != 200:  # it may reach 3 confirmations before the call on a slow machine
        assert code == 422 and detail.startswith("not final: ") and "of 3 confirmation(s) on bsc" in detail, detail

        # no refusal changed anything
        _nothing_recorded(stack, case_id)
        assert accepted_updates(await stack.client.get_workflow_handle(case_id).fetch_history()) == []

        await devnet.mine(bsc, bsc.confirmations)
        code, detail = await _verify(stack, token, case_id, good)
    assert code == 200, detail

    with Session(stack.engine) as session:
        row = session.get(OwnershipRequirement, case_id)
        assert row is not None and row.proven_at is not None
        assert (row.method, row.reference) == ("verification_deposit", good.lower())
    [(name, [proof])] = accepted_updates(await stack.client.get_workflow_handle(case_id).fetch_history())
    assert name == "ownership_proven" and proof["method"] == "verification_deposit"
    assert proof["reference"] == good.lower() and proof["address"] == sender
    case = await stack.case(token, case_id)
    assert (
        case["next_action"]["action"] == "wait"
        and case["next_action"]["text"] == "Nothing: a recovery engineer is reviewing your case."
    )
    code, detail = await _verify(stack, token, case_id, good)
    assert code == 422 and detail.startswith("replayed: ownership for case"), detail

    # the same transaction for another case (same sender, challenged): one transaction proves one case
    other_token, other_case, _, _ = await _manual_case(stack)
    await _challenge(stack, other_token, other_case)
    code, detail = await _verify(stack, other_token, other_case, good)
    assert code == 422 and detail.startswith("replayed: this transaction is already the ownership proof"), detail
    _nothing_recorded(stack, other_case)

    code, _, err = await run_cli(cli_env(stack), "case", "approve", case_id, "--engineer", "bob")
    assert code == 0, err
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", "EXPIRED")
    assert case["status"] == "COMPLETED", case
    assert f"You proved that you control {sender} (verification deposit)" in [e["message"] for e in case["timeline"]]
    assert case["next_action"]["action"] == "none"

    # the sweep moved the deposit's amount only: the verification transfers stay at the deposit address
    chain, usdt_token = EvmChain(bsc), bsc.token_by_symbol("USDT")
    assert usdt_token is not None
    assert await chain.token_balance(usdt_token.address, address) == int(SMALL_USDT.scaleb(usdt_token.decimals))
    print("BNB left at the deposit address:", await chain.balance(address), "top-up:", case["topup_tx_hash"])
