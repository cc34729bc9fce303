"""Terminal states are final: a Reset from the Temporal Web UI re-runs a completed case (the re-run finds the
deposit credited and would reject it), and the case's record stays as it was, with the re-run on the
timeline. A real reset on the dev server, through the workflow service the UI calls."""

from __future__ import annotations

import uuid
from decimal import Decimal

from sqlmodel import Session, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

from store import cases
from store.ledger import LedgerCredit
from tests.stack_fixtures import Stack
from workflows.case_messages import CaseResult


async def test_reset_of_a_completed_case_leaves_its_record_as_it_was(dev_stack: Stack) -> None:
    stack = dev_stack
    _, token, address = stack.new_user("reset")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal("100"))
    case_id = (await stack.claim(token, tx_hash, chain="bsc")).json()["case_id"]
    before = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert before["status"] == "COMPLETED", before

    handle = stack.client.get_workflow_handle(case_id)
    history = await handle.fetch_history()
    first_task = next(
        e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    )
    reset = await stack.client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=stack.client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=case_id),
            reason="operator clicked Reset",
            workflow_task_finish_event_id=first_task,
            request_id=str(uuid.uuid4()),
        )
    )
    rerun = stack.client.get_workflow_handle(case_id, run_id=reset.run_id, result_type=CaseResult)
    result = await rerun.result()
    assert result.status == "REJECTED" and result.pattern == "ALREADY_CREDITED"  # what the re-run concluded

    after = await stack.case(token, case_id)
    for field in ("status", "pattern", "reason", "amount", "credited", "fees", "sweep_tx_hash"):
        assert after[field] == before[field], field
    rerun_notes = [e["message"] for e in after["timeline"][len(before["timeline"]) :]]
    assert rerun_notes and all(m.startswith("After the case was closed as completed") for m in rerun_notes)
    assert any("already" in m for m in rerun_notes), rerun_notes
    with Session(stack.engine) as session:
        case = cases.get_case(session, case_id=case_id)
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.case_id == case_id)).all()
    assert case is not None and case.status == "COMPLETED" and len(credits) == 1
