"""Claims: file one by transaction hash, follow its status, list yours."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.deps import (
    ChainUnreachable,
    CurrentUser,
    EngineDep,
    SessionDep,
    SettingsDep,
    StarterDep,
    TemporalConnector,
    TemporalDep,
    TracerDep,
    TxHashFormatError,
)
from api.schemas import (
    CaseCreate,
    CaseCreated,
    CaseDetail,
    CasesPublic,
    CaseSummary,
    ConflictOut,
    ErrorOut,
    MessageAccepted,
    MessageCreate,
)
from recovery.models import CaseStatus, NewCase
from recovery.settings import UnknownChain
from services.case_opening import CaseOpener, Outcome
from store import cases, ledger, ownership, users
from store.cases import Case
from store.users import User
from workflows.case_messages import UserMessage
from workflows.case_workflow import CaseWorkflow
from workflows.starter import case_starter

log = logging.getLogger(__name__)

router = APIRouter(prefix="/cases", tags=["cases"])

FOREIGN_DEPOSIT = (
    "this deposit was made to an address that belongs to another account; "
    "claim it from that account, or contact support if you believe this is wrong"
)
CLAIMED_ELSEWHERE = (
    "this transaction has already been claimed by another account; contact support if you sent it yourself"
)


def _conflict(case_id: str) -> JSONResponse:
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={
            "detail": f"you already filed a claim for this deposit; follow it at GET /v1/cases/{case_id}",
            "case_id": case_id,
        },
    )


def _existing_case_response(existing: Case, user: User) -> JSONResponse:
    if existing.user_id != user.user_id:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=CLAIMED_ELSEWHERE)
    return _conflict(existing.case_id)


def _must_be_yours(case: Case | None, user: User, case_id: str) -> Case:
    """The case, if it is the caller's; else 404, the same whether it exists or not (nobody learns of
    another user's case)."""
    if case is None or case.user_id != user.user_id:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"no case {case_id!r} among yours; list your cases with GET /v1/cases",
        )
    return case


async def _connected(temporal: TemporalConnector) -> Client:
    try:
        return await temporal()
    except Exception as exc:
        log.error("cannot connect to Temporal: %r", exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the case service is temporarily unavailable; nothing was recorded, try again later",
        ) from None


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=CaseCreated,
    responses={
        401: {"model": ErrorOut, "description": "Missing or invalid API token"},
        403: {"model": ErrorOut, "description": "The deposit belongs to another account"},
        409: {"model": ConflictOut, "description": "You already filed this claim"},
        413: {"model": ErrorOut, "description": "Request body too large"},
        422: {"model": ErrorOut, "description": "Malformed hash, unknown chain or invalid body"},
        503: {"model": ErrorOut, "description": "A chain or the workflow engine is unreachable"},
    },
)
async def create_case(
    body: CaseCreate,
    response: Response,
    session: SessionDep,
    engine: EngineDep,
    user: CurrentUser,
    settings: SettingsDep,
    tracer: TracerDep,
    temporal: TemporalDep,
    start_case: StarterDep,
) -> Any:
    """File a claim for funds sent on the wrong network. Answers at once; the recovery runs in the
    background and its progress shows at ``GET /v1/cases/{case_id}``."""
    config = None
    if body.chain is not None:
        wanted = body.chain.strip().lower()
        name = next((c.name for c in settings.chains if c.name.lower() == wanted), body.chain)
        try:
            config = settings.require_chain(name)
        except UnknownChain as exc:
            raise HTTPException(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=f"{exc}, or omit chain to search them all",
            ) from None

    try:
        if config is not None:
            trace = await tracer.trace(config, body.tx_hash)
        else:
            trace = await tracer.locate(settings.chains, body.tx_hash)
    except TxHashFormatError as exc:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    except ChainUnreachable as exc:
        log.warning("tracing %s failed: %s", body.tx_hash, exc.__cause__ or exc)
        where = f"chain {', '.join(exc.chains)}" if len(exc.chains) == 1 else f"chains {', '.join(exc.chains)}"
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"{where} unreachable, try again later",
        ) from None

    deposit, foreign_only = await run_in_threadpool(users.claimant_deposit, session, user_id=user.user_id, trace=trace)
    if foreign_only:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=FOREIGN_DEPOSIT)
    new_case = NewCase.of(
        user_id=user.user_id,
        tx_hash=body.tx_hash,
        deposit=deposit,
        chain=trace.chain or (config.name if config else None),
    )
    case_id = new_case.case_id

    existing = await run_in_threadpool(cases.get_case, session, case_id=case_id)
    await run_in_threadpool(session.commit)  # release the connection while Temporal is reached
    if existing is not None:
        return _existing_case_response(existing, user)

    client = await _connected(temporal)

    opener = CaseOpener(engine=engine, start=case_starter(client, task_queue=settings.task_queue, start=start_case))
    try:
        opened = await opener.open(new_case, undo_on_failure=True)
    except Exception as exc:
        log.error("could not start the workflow of %s: %r", case_id, exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="could not start processing your claim; nothing was recorded, try again later",
        ) from None
    if opened.outcome is Outcome.EXISTS:  # a concurrent request for the same deposit won
        assert opened.existing is not None
        return _existing_case_response(opened.existing, user)
    if opened.outcome is Outcome.ALREADY_STARTED:
        # the workflow exists (its row was lost or is being recreated): it keeps the row up to date
        return _conflict(case_id)

    response.headers["Location"] = f"/v1/cases/{case_id}"
    return CaseCreated(case_id=case_id, status=CaseStatus.RECEIVED)


@router.get("", response_model=CasesPublic)
def list_cases(
    session: SessionDep,
    user: CurrentUser,
    limit: int = Query(default=20, ge=1, le=100),
    offset: int = Query(default=0, ge=0),
) -> Any:
    """Your cases, newest first."""
    found = cases.list_cases(session, user_id=user.user_id, limit=limit, offset=offset)
    return CasesPublic(
        data=[CaseSummary.of(c) for c in found],
        count=cases.count_cases(session, user_id=user.user_id),
    )


@router.get(
    "/{case_id}",
    response_model=CaseDetail,
    responses={404: {"model": ErrorOut, "description": "No such case among yours"}},
)
def read_case(case_id: str, session: SessionDep, user: CurrentUser) -> Any:
    """A case's status, amounts, fees and timeline."""
    case = _must_be_yours(cases.get_case(session, case_id=case_id), user, case_id)
    return CaseDetail.build(
        case,
        cases.timeline(session, case_id=case_id),
        cases.get_handling(session, case_id=case_id),
        ownership.requirement(session, case_id=case_id),
        ledger.refund_of(session, case_id=case_id),
    )


@router.post(
    "/{case_id}/messages",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=MessageAccepted,
    responses={
        404: {"model": ErrorOut, "description": "No such case among yours"},
        409: {"model": ErrorOut, "description": "Nobody asked you anything on this case right now"},
        503: {"model": ErrorOut, "description": "The workflow engine is unreachable"},
    },
)
async def post_message(
    case_id: str, body: MessageCreate, session: SessionDep, user: CurrentUser, temporal: TemporalDep
) -> Any:
    """Answer a recovery engineer's question on your case (the case waits for it, its deadlines paused)."""
    found = await run_in_threadpool(cases.get_case, session, case_id=case_id)
    await run_in_threadpool(session.commit)
    case = _must_be_yours(found, user, case_id)
    if case.status is not CaseStatus.AWAITING_USER:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail=f"nobody asked you anything on this case right now (it is {case.status}); nothing was changed",
        )
    client = await _connected(temporal)
    try:
        delivered = await client.get_workflow_handle(case_id).execute_update(
            CaseWorkflow.user_message, UserMessage(text=body.text)
        )
        log.info("answer to %s: %s", case_id, delivered)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else "the case cannot take an answer now"
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=f"{message}; nothing was changed") from None
    except RPCError as exc:
        log.error("answer to %s not delivered: %r", case_id, exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="your answer could not be delivered; nothing was recorded, try again later",
        ) from None
    return MessageAccepted(case_id=case_id, status=CaseStatus.AWAITING_APPROVAL)
