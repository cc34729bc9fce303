"""End to end: the answer at claim time says what the workflow then does.

Real anvil chains, a real Temporal server (time-skipping and dev server), the real worker and the real API (in
process, through ASGI): the provisional pattern and route of the ``201`` are the ones the case workflow decides
once the deposit is confirmed, and so are the steps it asks of the user and its SLA.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from tests.stack_fixtures import Stack
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow


async def test_automatic_answer_matches_the_recovery(stack: Stack) -> None:
    _, token, deposit_address = stack.new_user("alice")
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("100"))

    response = await stack.claim(token, tx_hash)
    assert response.status_code == 201, response.text
    answer = response.json()["answer"]
    assert answer["available"] is True, answer
    assert (answer["pattern"], answer["route"]) == ("WRONG_NETWORK_SAME_KEY", "automatic")
    assert answer["confirmations"]["need"] == stack.chain("bsc").confirmations
    assert answer["fee"]["policy"] == "default" and answer["fee"]["estimated_fee_usd"] == "10.00"
    assert answer["expected_steps"] == [] and answer["sla"] is None

    case = await stack.wait_for(token, response.json()["case_id"], "COMPLETED", "REJECTED", "AWAITING_APPROVAL")
    assert case["status"] == "COMPLETED", case
    assert case["pattern"] == answer["pattern"]
    assert "AWAITING_APPROVAL" not in {e["status"] for e in case["timeline"]}  # no engineer: automatic
    assert case["fees"]["policy"] == answer["fee"]["policy"] and case["fees"]["fee_usd"] == "10.00"
    assert stack.signer_mnemonic_absent_from(response.text)


async def test_engineer_answer_matches_the_wait_for_an_engineer(stack: Stack) -> None:
    _, token, deposit_address = stack.new_user("whale")
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("25000"))  # above the automatic limit

    response = await stack.claim(token, tx_hash, chain="bsc")
    assert response.status_code == 201, response.text
    case_id, answer = response.json()["case_id"], response.json()["answer"]
    assert answer["available"] is True, answer
    assert (answer["pattern"], answer["route"]) == ("WRONG_NETWORK_SAME_KEY", "engineer")
    assert "automatic limit" in answer["reason"]
    assert [s["action"] for s in answer["expected_steps"]] == ["prove_ownership"]  # these settings ask no acceptance

    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case
    assert case["pattern"] == answer["pattern"]
    assert case["next_action"]["action"] == "prove_ownership"
    assert answer["sla"] is not None and case["sla"] is not None
    if stack.env.supports_time_skipping:
        return  # the workflow's clock jumps ahead there (its timers are skipped): its dates are not today's
    # the SLA the workflow started is the one the answer announced (same working days, same calendar)
    announced = datetime.fromisoformat(answer["sla"]["target_at"]).date()
    assert datetime.fromisoformat(case["sla"]["target_at"]).date() == announced
    deadline = datetime.fromisoformat(answer["sla"]["deadline_at"]).date()
    assert datetime.fromisoformat(case["sla"]["deadline_at"]).date() == deadline

    handle = stack.client.get_workflow_handle(case_id)
    await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="end of the test"))
    await stack.wait_for(token, case_id, "REJECTED")
