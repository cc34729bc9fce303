"""The user's answer to a quote that needs accepting: nothing is signed before an accepted quote; a declined
one closes the case (``CANCELLED``, nothing moved). The API attests the answer, so one typed into the
Temporal UI does not count."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.deps import AttesterDep, CurrentUser, SessionDep, TemporalDep
from api.routes.cases import NOTHING_CHANGED, _connected, _must_be_yours
from api.schemas import ErrorOut
from api.staff_actions import ActionRefused, CaseNotRunning, WorkflowBusy, send_update
from recovery.i18n import Message
from recovery.models import CaseStatus
from recovery.names import STATUS_NAMES
from store import cases
from workflows.case_messages import QuoteAnswer
from workflows.case_workflow import OWNERSHIP_PROVER

router = APIRouter(prefix="/cases", tags=["quotes"])


class FeeAcceptanceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"accept": True}]})

    accept: StrictBool = Field(description="true: accept the quoted fee and go ahead; false: decline, close the case")


class FeeAcceptanceOut(BaseModel):
    case_id: str
    accepted: bool
    answer: str = Field(description="What the case answered")


@router.post(
    "/{case_id}/fee-acceptance",
    response_model=FeeAcceptanceOut,
    responses={
        404: {"model": ErrorOut, "description": "No such case among yours"},
        409: {"model": ErrorOut, "description": "The case is not waiting for an answer to its quote"},
        503: {"model": ErrorOut, "description": "The workflow engine is unreachable"},
    },
)
async def fee_acceptance(
    case_id: str,
    body: FeeAcceptanceCreate,
    session: SessionDep,
    user: CurrentUser,
    temporal: TemporalDep,
    attester: AttesterDep,
) -> Any:
    """Accept or decline your case's quote (``GET /v1/cases/{id}`` shows it under ``fees``)."""
    found = await run_in_threadpool(cases.get_case, session, case_id=case_id)
    await run_in_threadpool(session.commit)
    case = _must_be_yours(found, user, case_id)
    if case.status is not CaseStatus.AWAITING_USER:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=Message(
                "this case is not waiting for your answer to a quote (it is {status}); nothing was changed",
                status=Message(STATUS_NAMES[case.status]),
            ),
        )
    attestation = attester.attest(
        case_id=case_id, engineer=OWNERSHIP_PROVER, action="fee_acceptance", now=datetime.now(UTC)
    )
    client = await _connected(temporal)
    try:
        answer = await send_update(
            client, case_id, "fee_acceptance", QuoteAnswer(accept=body.accept, attestation=attestation)
        )
    except (ActionRefused, CaseNotRunning) as exc:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=Message(NOTHING_CHANGED, reason=str(exc))
        ) from None
    except WorkflowBusy as exc:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail=Message("{reason}; try again", reason=str(exc))
        ) from None
    return FeeAcceptanceOut(case_id=case_id, accepted=body.accept, answer=answer)
