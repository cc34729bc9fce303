"""The staff API: engineers list, read and act on cases; finance reads the fee report. Every route takes a
staff token (``recovery staff create``) and checks its role; the token names the engineer who acts, and a
decision carries this API's attestation, so the workflow can verify who sent it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel
from temporalio.client import Client

from api.deps import AttesterDep, SessionDep, TemporalConnector, TemporalDep
from api.languages import LocaleDep
from api.schemas import AmountOut, CaseDetail, ErrorOut
from api.staff_actions import (
    ActionRefused,
    CaseNotRunning,
    WorkflowBusy,
    attested_decision,
    attested_execution,
    query_case,
    send_update,
)
from api.staff_auth import ActingEngineer, CaseStaff, FinanceStaff
from api.staff_schemas import (
    ActionDone,
    ApproveBody,
    AssignBody,
    AuditOut,
    EscalateBody,
    ExecutionBody,
    FeeReportOut,
    FeeTotalOut,
    RejectBody,
    RequestInfoBody,
    StaffCaseDetail,
    StaffCaseList,
    WorkflowView,
)
from recovery.i18n import Message
from recovery.models import RecoveryChoice
from services import fee_report as fees
from services.attesting import Attester
from store import audit, cases
from workflows.case_messages import Assignment, Escalation, InfoRequest
from workflows.case_queries import FilterError, case_row, list_query

log = logging.getLogger(__name__)

router = APIRouter(prefix="/staff", tags=["staff"])

AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No staff token, or an unknown one"},
    403: {"model": ErrorOut, "description": "A user's token, or a staff role this route is not for"},
}
ACTION_ERRORS: dict[int | str, dict[str, Any]] = {
    **AUTH_ERRORS,
    404: {"model": ErrorOut, "description": "No running case of that id"},
    409: {"model": ErrorOut, "description": "The workflow refused the action (its validator's message)"},
    503: {"model": ErrorOut, "description": "The workflow engine is unreachable"},
    504: {"model": ErrorOut, "description": "The case's worker did not answer in time"},
}


async def _connected(temporal: TemporalConnector) -> Client:
    try:
        return await temporal()
    except Exception as exc:
        log.error("cannot connect to Temporal: %r", exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Message("the workflow engine is unreachable; nothing was changed, try again later"),
        ) from None


# --- reading cases ---------------------------------------------------------------------------------


@router.get("/cases", response_model=StaffCaseList, responses={**AUTH_ERRORS, 503: {"model": ErrorOut}})
async def list_staff_cases(
    member: CaseStaff,
    temporal: TemporalDep,
    status_: Annotated[
        str | None, Query(alias="status", description="Only cases in this status, e.g. AWAITING_APPROVAL")
    ] = None,
    assigned_to: Annotated[str | None, Query(description="Only cases assigned to this engineer")] = None,
    tier: Annotated[str | None, Query(description="Only cases of this tier: first_line, engineering, ...")] = None,
    sla_breached: Annotated[bool, Query(description="Only cases past their SLA deadline")] = False,
    due_within_days: Annotated[
        int | None, Query(ge=0, le=3650, description="Only cases whose SLA deadline is within this many days")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="At most this many cases")] = 100,
) -> Any:
    """Cases from Temporal's visibility store, newest first, with the filters of `recovery case list`."""
    try:
        query = list_query(
            status=status_,
            assigned_to=assigned_to,
            tier=tier,
            sla_breached=sla_breached,
            due_within_days=due_within_days,
            now=datetime.now(UTC),
        )
    except FilterError as exc:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    client = await _connected(temporal)
    rows = [case_row(execution) async for execution in client.list_workflows(query, limit=limit)]
    return StaffCaseList(query=query, data=rows, count=len(rows))


@router.get(
    "/cases/{case_id}",
    response_model=StaffCaseDetail,
    responses={**AUTH_ERRORS, 404: {"model": ErrorOut, "description": "No such case"}, 503: {"model": ErrorOut}},
)
async def read_staff_case(
    case_id: str, member: CaseStaff, session: SessionDep, temporal: TemporalDep, locale: LocaleDep
) -> Any:
    """A case's row and timeline, what its workflow answers (`status`, `evidence`), and its audit trail."""

    def from_database() -> tuple[CaseDetail | None, list[AuditOut]]:
        try:
            row = cases.get_case(session, case_id=case_id)
            detail = (
                None
                if row is None
                else CaseDetail.model_validate(
                    CaseDetail.fields_of(
                        row,
                        cases.timeline(session, case_id=case_id),
                        cases.get_handling(session, case_id=case_id),
                        locale=locale,
                    )
                )
            )
            return detail, [AuditOut.of(e) for e in audit.entries(session, case_id=case_id)]
        finally:
            session.commit()

    detail, trail = await run_in_threadpool(from_database)
    queried = await query_case(await _connected(temporal), case_id)
    if detail is None and not queried.exists:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=Message(
                "no case {case_id} in the database or in Temporal; list cases with GET /v1/staff/cases",
                case_id=repr(case_id),
            ),
        )
    workflow = (
        WorkflowView(status=queried.status, evidence=queried.evidence, error=queried.error) if queried.exists else None
    )
    return StaffCaseDetail(case_id=case_id, case=detail, workflow=workflow, audit=trail)


# --- acting on cases -------------------------------------------------------------------------------


async def _act(temporal: TemporalConnector, case_id: str, name: str, payload: BaseModel, engineer: str) -> ActionDone:
    client = await _connected(temporal)
    try:
        answer = await send_update(client, case_id, name, payload)
    except CaseNotRunning:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=Message(
                "no running case {case_id}: check the id with GET /v1/staff/cases (a finished case takes no more "
                "actions)",
                case_id=repr(case_id),
            ),
        ) from None
    except ActionRefused as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=Message("refused: {reason}", reason=str(exc))
        ) from None
    except WorkflowBusy as exc:
        raise HTTPException(
            status_code=status.HTTP_504_GATEWAY_TIMEOUT,
            detail=Message(
                "{reason}; check the case with GET /v1/staff/cases/{case_id} before sending it again",
                reason=str(exc),
                case_id=case_id,
            ),
        ) from None
    log.info("%s on %s by %s: %s", name, case_id, engineer, answer)
    return ActionDone(
        case_id=case_id,
        action=name,
        engineer=engineer,
        attested=getattr(payload, "attestation", None) is not None,
        answer=answer,
    )


async def _decide(
    temporal: TemporalConnector,
    attester: Attester,
    case_id: str,
    engineer: str,
    action: str,
    *,
    note: str = "",
    reason: str = "",
    fee_usd: Decimal | None = None,
    choice: RecoveryChoice | None = None,
) -> ActionDone:
    """A decision (approve or reject) signed by this API's attester, so the workflow can tell who sent it."""
    decision = attested_decision(
        attester,
        case_id=case_id,
        engineer=engineer,
        action=action,
        note=note,
        reason=reason,
        fee_usd=fee_usd,
        choice=choice,
    )
    return await _act(temporal, case_id, action, decision, engineer)


@router.post("/cases/{case_id}/approve", response_model=ActionDone, responses=ACTION_ERRORS)
async def approve_case(
    case_id: str, body: ApproveBody, engineer: ActingEngineer, attester: AttesterDep, temporal: TemporalDep
) -> Any:
    """Approve a case awaiting approval, attested (a four-eyes case needs a second engineer's approval)."""
    return await _decide(
        temporal, attester, case_id, engineer.name, "approve", note=body.note, fee_usd=body.fee_usd, choice=body.action
    )


@router.post("/cases/{case_id}/reject", response_model=ActionDone, responses=ACTION_ERRORS)
async def reject_case(
    case_id: str, body: RejectBody, engineer: ActingEngineer, attester: AttesterDep, temporal: TemporalDep
) -> Any:
    """Reject a case awaiting approval, attested; the user reads the reason."""
    return await _decide(temporal, attester, case_id, engineer.name, "reject", reason=body.reason)


@router.post("/cases/{case_id}/record-execution", response_model=ActionDone, responses=ACTION_ERRORS)
async def record_execution(
    case_id: str, body: ExecutionBody, engineer: ActingEngineer, attester: AttesterDep, temporal: TemporalDep
) -> Any:
    """Book a recovery done outside the engine, attested: the engine checks the transaction on chain (the
    deposit's asset and amount, to the exchange's hot wallet, final) and refuses it (409) with what is wrong."""
    payload = attested_execution(
        attester, case_id=case_id, engineer=engineer.name, chain=body.chain, tx_hash=body.tx_hash, note=body.note
    )
    return await _act(temporal, case_id, "record_manual_execution", payload, engineer.name)


@router.post("/cases/{case_id}/request-info", response_model=ActionDone, responses=ACTION_ERRORS)
async def request_info(case_id: str, body: RequestInfoBody, engineer: ActingEngineer, temporal: TemporalDep) -> Any:
    """Ask the user a question; the case waits for the answer with its SLA clock stopped."""
    payload = InfoRequest(engineer=engineer.name, question=body.question)
    return await _act(temporal, case_id, "request_info", payload, engineer.name)


@router.post("/cases/{case_id}/assign", response_model=ActionDone, responses=ACTION_ERRORS)
async def assign_case(case_id: str, body: AssignBody, engineer: ActingEngineer, temporal: TemporalDep) -> Any:
    """Make an engineer on the roster the owner of the case."""
    return await _act(temporal, case_id, "assign", Assignment(engineer=engineer.name, to=body.to), engineer.name)


@router.post("/cases/{case_id}/escalate", response_model=ActionDone, responses=ACTION_ERRORS)
async def escalate_case(case_id: str, body: EscalateBody, engineer: ActingEngineer, temporal: TemporalDep) -> Any:
    """Send the case to the next tier (first_line → engineering → expert)."""
    payload = Escalation(engineer=engineer.name, reason=body.reason)
    return await _act(temporal, case_id, "escalate", payload, engineer.name)


# --- finance ---------------------------------------------------------------------------------------


def _utc(when: datetime | None) -> datetime | None:
    if when is None or when.tzinfo is not None:
        return when
    return when.replace(tzinfo=UTC)


@router.get("/fees/report", response_model=FeeReportOut, responses=AUTH_ERRORS, deprecated=True)
def fee_report(
    member: FinanceStaff,
    session: SessionDep,
    since: Annotated[datetime | None, Query(description="From this ISO datetime (UTC if no zone), inclusive")] = None,
    until: Annotated[datetime | None, Query(description="Up to this ISO datetime (UTC if no zone), exclusive")] = None,
) -> Any:
    """Fees and network costs charged, per chain and asset. Kept for existing callers: use
    `GET /v1/finance/fees`, the full report (`recovery fees report`), instead."""
    start, end = _utc(since), _utc(until)
    try:
        report = fees.fee_report(session, start=start, end=end, group_by=("chain", "asset"))
    except fees.ReportError as exc:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    out = []
    for group in report.groups:
        for t in group.lines:
            if not t.cases:  # only the assets fees were charged in, as before
                continue
            fee, gas = AmountOut.of(t.fees_charged, t.decimals), AmountOut.of(t.gas_charged, t.decimals)
            assert fee is not None and gas is not None
            out.append(
                FeeTotalOut(
                    chain=t.chain, asset=t.asset, count=t.cases, fee=fee, gas=gas, fee_usd=str(t.fees_charged_usd)
                )
            )
    return FeeReportOut(since=start, until=end, totals=out)
