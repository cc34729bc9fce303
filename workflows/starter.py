"""Starting a case workflow: one workflow per deposit, its id the case id."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from recovery.models import CaseInput, CaseStatus
from workflows import search_attributes as sa
from workflows.case_workflow import CaseWorkflow


async def start_case(client: Client, *, task_queue: str, case: CaseInput) -> WorkflowHandle:
    """Start the case; raises ``temporalio.exceptions.WorkflowAlreadyStartedError`` for a known deposit."""
    return await client.start_workflow(
        CaseWorkflow.run,
        case,
        id=case.case_id,
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(sa.CASE_STATUS, CaseStatus.RECEIVED.value),
                SearchAttributePair(sa.CHAIN, case.chain or "unknown"),
                SearchAttributePair(sa.USER_ID, case.user_id),
            ]
        ),
        static_summary=(
            f"{case.user_id} · {case.chain or 'unknown chain'} · "
            f"{case.amount_display or '?'} {case.asset or 'unknown asset'}"
        ),
        static_details=(
            f"Case {case.case_id}\n\nUser: {case.user_id}\nChain: {case.chain or 'searching all chains'}\n"
            f"Transaction: {case.tx_hash}\nLog index: {case.log_index}"
        ),
    )
