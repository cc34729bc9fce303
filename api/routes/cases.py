"""Claims: file one by transaction hash, follow its status, list yours."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlmodel import Session
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.deps import (
    ChainUnreachable,
    CurrentUser,
    SessionDep,
    SettingsDep,
    StarterDep,
    TemporalDep,
    TracerDep,
    TxHashFormatError,
)
from api.schemas import CaseCreate, CaseCreated, CaseDetail, CasesPublic, CaseSummary, ConflictOut, ErrorOut
from recovery import store
from recovery.models import CaseInput, CaseStatus, TraceResult, Transfer, case_id_for
from recovery.store import Case, User

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


def _resolve_deposit(session: Session, *, user: User, trace: TraceResult) -> tuple[Transfer | None, bool]:
    """The claimant's transfer in the transaction (first by log index), and whether the transaction
    paid only other users' deposit addresses."""
    ours: list[Transfer] = []
    foreign = False
    for transfer in sorted(trace.transfers, key=lambda t: t.log_index):
        shared = store.is_shared_address(session, address=transfer.recipient)
        owner = store.user_by_address(session, address=transfer.recipient, memo=transfer.memo if shared else None)
        if owner is None:
            continue
        if owner.user_id != user.user_id and shared:
            continue  # another user's memo on our shared address: a memo mistake for an engineer, not a refusal
        if owner.user_id == user.user_id:
            ours.append(transfer)
        else:
            foreign = True
    return (ours[0] if ours else None), (foreign and not ours)


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
        by_name = {c.name.lower(): c for c in settings.chains}
        config = by_name.get(body.chain.strip().lower())
        if config is None:
            raise HTTPException(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=(
                    f"unknown chain {body.chain!r}: use one of {', '.join(settings.chain_names)}, "
                    "or omit chain to search them all"
                ),
            )

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

    deposit, foreign_only = await run_in_threadpool(_resolve_deposit, session, user=user, trace=trace)
    if foreign_only:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=FOREIGN_DEPOSIT)
    if deposit is not None:
        chain: str | None = deposit.chain
        case_id = case_id_for(deposit.chain, body.tx_hash, deposit.log_index)
    else:
        chain = trace.chain or (config.name if config else None)
        case_id = case_id_for(chain or "any", body.tx_hash, None)

    existing = await run_in_threadpool(store.get_case, session, case_id=case_id)
    await run_in_threadpool(session.commit)  # release the connection while Temporal is reached
    if existing is not None:
        return _existing_case_response(existing, user)

    try:
        client = await temporal()
    except Exception as exc:
        log.error("cannot connect to Temporal: %r", exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the case service is temporarily unavailable; nothing was recorded, try again later",
        ) from None

    try:
        await run_in_threadpool(
            lambda: store.create_case(
                session,
                case_id=case_id,
                user_id=user.user_id,
                chain=chain,
                tx_hash=body.tx_hash,
                log_index=deposit.log_index if deposit else None,
                deposit=deposit,
            )
        )
    except store.CaseExists as exc:  # a concurrent request for the same deposit won
        return _existing_case_response(exc.existing, user)

    case_input = CaseInput(
        case_id=case_id,
        user_id=user.user_id,
        chain=chain,
        tx_hash=body.tx_hash,
        log_index=deposit.log_index if deposit else None,
        asset=deposit.asset if deposit else None,
        amount_display=(
            store.format_units(deposit.amount, deposit.decimals)
            if deposit is not None and deposit.decimals is not None
            else None
        ),
    )
    try:
        await start_case(client, task_queue=settings.task_queue, case=case_input)
    except WorkflowAlreadyStartedError:
        # the workflow exists (its row was lost or is being recreated): it keeps the row up to date
        return _conflict(case_id)
    except Exception as exc:
        log.error("could not start the workflow of %s: %r", case_id, exc)
        await run_in_threadpool(lambda: store.delete_case(session, case_id=case_id))
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="could not start processing your claim; nothing was recorded, try again later",
        ) from None

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
    cases = store.list_cases(session, user_id=user.user_id, limit=limit, offset=offset)
    return CasesPublic(
        data=[CaseSummary.of(c) for c in cases],
        count=store.count_cases(session, user_id=user.user_id),
    )


@router.get(
    "/{case_id}",
    response_model=CaseDetail,
    responses={404: {"model": ErrorOut, "description": "No such case among yours"}},
)
def read_case(case_id: str, session: SessionDep, user: CurrentUser) -> Any:
    """A case's status, amounts, fees and timeline."""
    case = store.get_case(session, case_id=case_id)
    if case is None or case.user_id != user.user_id:
        raise HTTPException(
            status_code=status.HTTP_404_NOT_FOUND,
            detail=f"no case {case_id!r} among yours; list your cases with GET /v1/cases",
        )
    return CaseDetail.build(case, store.timeline(session, case_id=case_id))
