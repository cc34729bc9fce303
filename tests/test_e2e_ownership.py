"""Ownership proof end to end on a dev server and anvil: a manual case above ``ownership_proof_usd`` says
what is missing, refuses a forged, an expired, another case's and a replayed signature with 422 saying which
(changing nothing), accepts the sender's own signature, and only then lets the approval move the funds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlmodel import Session, select

from store.db import utcnow
from store.ownership import OwnershipChallenge, OwnershipRequirement
from tests.history_tools import accepted_updates
from tests.stack_fixtures import DEV_ACCOUNT_0_KEY, Stack, cli_env, run_cli

OTHER_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil dev account 1


async def _manual_case(stack: Stack) -> tuple[str, str]:
    _, token, address = stack.new_user("owner")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal("25000"))  # above the automatic limit
    case_id = (await stack.claim(token, tx_hash, chain="bsc")).json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    return token, case_id


async def _post(stack: Stack, token: str, case_id: str, message: str, key: str) -> tuple[int, str]:
    signature = Account.sign_message(encode_defunct(text=message), private_key=key).signature.to_0x_hex()
    response = await stack.http.post(
        f"/v1/cases/{case_id}/ownership-proof",
        json={"signature": signature},
        headers={"Authorization": f"Bearer {token}"},
    )
    return response.status_code, response.json()["detail"] if response.status_code != 200 else response.text


async def _challenge(stack: Stack, token: str, case_id: str) -> dict[str, str]:
    response = await stack.http.get(
        f"/v1/cases/{case_id}/ownership-challenge", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, str] = response.json()
    return body


async def test_ownership_proof_by_signature(dev_stack: Stack) -> None:
    stack = dev_stack
    token, case_id = await _manual_case(stack)
    sender = Account.from_key(DEV_ACCOUNT_0_KEY).address.lower()
    case = await stack.case(token, case_id)
    assert case["next_action"]["text"].startswith(f"Prove that you control {sender}")
    # asked before an engineer approved: the proof may come early, and no date runs out yet
    assert case["next_action"]["action"] == "prove_ownership" and case["next_action"]["due_at"] is None

    challenge = await _challenge(stack, token, case_id)
    assert challenge["address"] == sender and case_id in challenge["message"] and sender in challenge["message"]
    assert challenge["expires_at"][:16] in challenge["message"]

    code, detail = await _post(stack, token, case_id, challenge["message"], OTHER_KEY)
    assert code == 422 and detail.startswith("forged:"), detail
    code, detail = await _post(stack, token, case_id, "some other text", DEV_ACCOUNT_0_KEY)
    assert code == 422 and detail.startswith("forged:"), detail

    # another case of the same sender: its signature does not prove this one
    other_token, other_case = await _manual_case(stack)
    other_challenge = await _challenge(stack, other_token, other_case)
    code, detail = await _post(stack, token, case_id, other_challenge["message"], DEV_ACCOUNT_0_KEY)
    assert code == 422 and detail.startswith(f"other case: this signature is for case {other_case}"), detail

    # an expired challenge (its expiry moved into the past in the database, as time would)
    old = await _challenge(stack, token, case_id)
    with Session(stack.engine) as session:
        row = session.exec(select(OwnershipChallenge).where(OwnershipChallenge.message == old["message"])).one()
        row.expires_at = utcnow() - timedelta(minutes=1)
        session.add(row)
        session.commit()
    code, detail = await _post(stack, token, case_id, old["message"], DEV_ACCOUNT_0_KEY)
    assert code == 422 and detail.startswith("expired:"), detail

    # nothing changed by any refusal
    with Session(stack.engine) as session:
        assert session.get(OwnershipRequirement, case_id).proven_at is None  # type: ignore[union-attr]
    handle = stack.client.get_workflow_handle(case_id)
    assert accepted_updates(await handle.fetch_history()) == []

    code, _ = await _post(stack, token, case_id, challenge["message"], DEV_ACCOUNT_0_KEY)
    assert code == 200
    code, detail = await _post(stack, token, case_id, challenge["message"], DEV_ACCOUNT_0_KEY)
    assert code == 422 and detail.startswith("replayed:"), detail
    case = await stack.case(token, case_id)
    assert (
        case["next_action"]["action"] == "wait"
        and case["next_action"]["text"] == "Nothing: a recovery engineer is reviewing your case."
    )

    code, _, err = await run_cli(cli_env(stack), "case", "approve", case_id, "--engineer", "bob")
    assert code == 0, err
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", "EXPIRED")
    assert case["status"] == "COMPLETED", case
    assert any("You proved that you control" in e["message"] for e in case["timeline"])
    assert case["next_action"]["action"] == "none"
