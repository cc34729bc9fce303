"""Starting a case workflow: one workflow per deposit, its id the case id; and the scanners' workflows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from temporalio.client import Client, WorkflowHandle
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from recovery.models import CaseStatus, NewCase
from recovery.settings import Settings
from services.case_opening import StartCase
from workflows import search_attributes as sa
from workflows.case_messages import CaseInput
from workflows.case_workflow import CaseWorkflow
from workflows.scan_messages import ScannerInput
from workflows.scanner_workflow import ScannerWorkflow, scanner_id

CaseStartFn = Callable[..., Awaitable[WorkflowHandle]]


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


def case_starter(client: Client, *, task_queue: str, start: CaseStartFn = start_case) -> StartCase:
    """The :class:`~services.case_opening.CaseOpener`'s way to start a case on ``client``: the workflow's
    input is built here, from the case's row, and nowhere else."""

    async def start_new(case: NewCase) -> bool:
        try:
            await start(client, task_queue=task_queue, case=CaseInput.of(case))
        except WorkflowAlreadyStartedError:
            return False
        return True

    return start_new


async def start_scanner(
    client: Client, settings: Settings, chain: str, *, next_block: int | None = None
) -> WorkflowHandle:
    """Start the deposit scanner of ``chain`` unless it runs (then that one is returned, untouched).

    ``next_block`` starts a new scanner from that block; by default it resumes from its stored cursor,
    or from the chain's safe head the very first time.
    """
    settings.require_chain(chain, family="evm", doing="scanned")
    return await client.start_workflow(
        ScannerWorkflow.run,
        ScannerInput(chain=chain, next_block=next_block),
        id=scanner_id(chain),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Deposit scanner of {chain}",
        static_details=(
            f"Scans every confirmed block of {chain} for deposits to watched addresses that the exchange did "
            "not credit, and opens their cases. Query `cursor` for its position."
        ),
    )


async def start_scanners(client: Client, settings: Settings) -> list[WorkflowHandle]:
    """One scanner per configured EVM chain (idempotent)."""
    return [await start_scanner(client, settings, c.name) for c in settings.chains if c.family == "evm"]
