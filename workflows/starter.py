"""Starting a case workflow: one workflow per deposit, its id the case id; the scanners' workflows; the
notification dispatcher; and the daily fee reconciliation's Schedule."""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from datetime import timedelta
from enum import StrEnum

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowHandle,
)
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
from workflows.notification_workflow import NotificationDispatcherWorkflow
from workflows.notify_messages import DISPATCHER_ID, DispatcherInput
from workflows.reconcile_messages import ReconcileInput
from workflows.reconcile_workflow import ReconcileWorkflow
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


async def start_notification_dispatcher(
    client: Client, settings: Settings, *, params: DispatcherInput | None = None
) -> WorkflowHandle:
    """Start the notification dispatcher (``notification-dispatcher``) unless it runs: then that one is returned,
    untouched. Its input holds no URL and no secret: its activity reads them from the worker's settings."""
    return await client.start_workflow(
        NotificationDispatcherWorkflow.run,
        params or DispatcherInput(),
        id=DISPATCHER_ID,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary="Notification dispatcher: case changes to the exchange's notification service",
        static_details=(
            "Delivers the notification outbox as signed webhooks (Standard Webhooks), in order per case, retried "
            "with backoff for days. Query `status`; `recovery notifications list --pending|--dead` lists them. "
            "See docs/notifications.md."
        ),
    )


RECONCILE_SCHEDULE_ID = "reconcile-fees"
"""Daily at ``settings.reconciliation`` (03:30 UTC by default: after the day's settlements, before the
working day)."""


class ScheduleChange(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


def reconcile_schedule(
    settings: Settings,
    *,
    hour: int | None = None,
    minute: int | None = None,
    time_zone: str | None = None,
    params: ReconcileInput | None = None,
) -> Schedule:
    """The Schedule that starts :class:`ReconcileWorkflow` every day at ``hour:minute`` in ``time_zone`` (a run
    still going at the next start is not overlapped: that start is skipped). Unset: ``settings.reconciliation``."""
    at = settings.reconciliation
    hour = at.hour if hour is None else hour
    minute = at.minute if minute is None else minute
    time_zone = time_zone or at.time_zone
    return Schedule(
        action=ScheduleActionStartWorkflow(
            ReconcileWorkflow.run,
            params or ReconcileInput(trigger="schedule"),
            id=RECONCILE_SCHEDULE_ID,
            task_queue=settings.task_queue,
            execution_timeout=timedelta(hours=6),
            static_summary="Daily fee reconciliation: the ledger against the chains",
            static_details=(
                "Checks every COMPLETED case: recovered = credited (or refunded) + fee + gas, against the receipts "
                "and logs of its transactions. Search attribute Reconciliation = ok | mismatch | uncheckable; "
                "ReconciliationMismatches lists the cases. Details: `recovery fees reconcile` or the "
                "case_reconciliation table."
            ),
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=[ScheduleRange(0)],
                    minute=[ScheduleRange(minute)],
                    hour=[ScheduleRange(hour)],
                    comment=f"daily at {hour:02d}:{minute:02d} {time_zone}",
                )
            ],
            time_zone_name=time_zone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


def _same_schedule(current: Schedule, wanted: Schedule) -> bool:
    """Whether the existing Schedule already starts what ``wanted`` would, when it would (its state, e.g. an
    operator's pause, is not compared: it is kept)."""
    have, want = current.action, wanted.action
    if not isinstance(have, ScheduleActionStartWorkflow) or not isinstance(want, ScheduleActionStartWorkflow):
        return False

    def when(spec: ScheduleSpec) -> list[tuple[object, ...]]:
        return [(tuple(c.hour), tuple(c.minute), tuple(c.second)) for c in spec.calendars]

    return (
        have.workflow == want.workflow
        and have.task_queue == want.task_queue
        and have.id == want.id
        and when(current.spec) == when(wanted.spec)
        and current.spec.time_zone_name == wanted.spec.time_zone_name
        and not current.spec.intervals
        and not current.spec.cron_expressions
        and current.policy.overlap == wanted.policy.overlap
    )


async def ensure_reconcile_schedule(
    client: Client,
    settings: Settings,
    *,
    hour: int | None = None,
    minute: int | None = None,
    time_zone: str | None = None,
) -> ScheduleChange:
    """Create the daily reconciliation Schedule, or bring an existing one up to date (never a second one; an
    operator's pause is kept)."""
    wanted = reconcile_schedule(settings, hour=hour, minute=minute, time_zone=time_zone)
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, wanted)
        return ScheduleChange.CREATED
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    if _same_schedule((await handle.describe()).schedule, wanted):
        return ScheduleChange.UNCHANGED

    def update(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(wanted, state=current.description.schedule.state))

    await handle.update(update)
    return ScheduleChange.UPDATED
