"""Claims: file one by transaction hash, follow its status, list yours."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BeforeValidator
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.case_views import MAX_CASE_ID, MAX_IF_NONE_MATCH, ReadsBusy, case_answer, case_views_of
from api.deps import (
    TOKEN_HELP,
    BearerDep,
    CaseStarter,
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
    get_current_user,
    unauthorized,
)
from api.languages import current_locale, request_locale, use_user_locale
from api.previews import ClaimPreviewerDep
from api.rate_limits import Budget, limiter_of
from api.schemas import (
    CaseCreate,
    CaseCreated,
    CaseDetail,
    CasesPublic,
    CaseSummary,
    ClaimAnswer,
    ConflictOut,
    ErrorOut,
    MessageAccepted,
    MessageCreate,
)
from api.staff_actions import refusal_text
from recovery.i18n import N_, Listed, Message, MessageError, render
from recovery.models import CaseStatus, NewCase, TraceResult
from recovery.names import STATUS_NAMES
from recovery.settings import Settings, UnknownChain
from services.case_opening import CaseOpener, Outcome
from services.claim_preview import ClaimPreviewer
from services.facts import CodeAhead, StoredFacts
from store import cases, users
from store.cases import Case
from store.users import User
from workflows.case_messages import UserMessage
from workflows.case_workflow import CaseWorkflow
from workflows.starter import case_starter

log = logging.getLogger(__name__)

router = APIRouter(prefix="/cases", tags=["cases"])

FOREIGN_DEPOSIT = Message(
    "this deposit was made to an address that belongs to another account; "
    "claim it from that account, or contact support if you believe this is wrong"
)
CLAIMED_ELSEWHERE = Message(
    "this transaction has already been claimed by another account; contact support if you sent it yourself"
)
NOTHING_CHANGED = N_("{reason}; nothing was changed")


def _conflict(case_id: str) -> JSONResponse:
    detail = Message(
        "you already filed a claim for this deposit; follow it at GET /v1/cases/{case_id}", case_id=case_id
    )
    return JSONResponse(
        status_code=status.HTTP_409_CONFLICT,
        content={"detail": render(detail, current_locale()), "case_id": case_id},
    )


def _existing_case_response(existing: Case, user: User) -> JSONResponse:
    if existing.user_id != user.user_id:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=CLAIMED_ELSEWHERE)
    return _conflict(existing.case_id)


def _must_be_yours(case: Case | None, user: User, case_id: str) -> Case:
    """The case, if it is the caller's; else 404, the same whether it exists or not (nobody learns of
    another user's case)."""
    if case is None or case.user_id != user.user_id:
        raise _not_yours(case_id)
    return case


def _not_yours(case_id: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_404_NOT_FOUND,
        detail=Message("no case {case_id} among yours; list your cases with GET /v1/cases", case_id=repr(case_id)),
    )


async def _connected(temporal: TemporalConnector) -> Client:
    try:
        return await temporal()
    except Exception as exc:
        log.error("cannot connect to Temporal: %r", exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Message("the case service is temporarily unavailable; nothing was recorded, try again later"),
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
    previewer: ClaimPreviewerDep,
) -> Any:
    """File a claim for funds sent on the wrong network. Answers at once with what the engine expects to do
    (``answer``: the provisional pattern, the route, what happens next and when, the fee policy, what you will
    be asked to do); the recovery runs in the background and its progress shows at ``GET /v1/cases/{case_id}``."""
    config = None
    if body.chain is not None:
        wanted = body.chain.strip().lower()
        name = next((c.name for c in settings.chains if c.name.lower() == wanted), body.chain)
        try:
            config = settings.require_chain(name)
        except UnknownChain as exc:
            raise HTTPException(
                status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                detail=Message("{reason}, or omit chain to search them all", reason=str(exc)),
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
        unreachable = (
            Message("chain {chain} unreachable, try again later", chain=exc.chains[0])
            if len(exc.chains) == 1
            else Message("chains {chains} unreachable, try again later", chains=Listed(exc.chains))
        )
        raise HTTPException(status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail=unreachable) from None

    chain_name = trace.chain or (config.name if config else None)
    ahead = previewer.look_ahead(trace)  # the answer's chain lookups start while the database is read
    try:
        return await _file_claim(
            body=body,
            response=response,
            session=session,
            engine=engine,
            user=user,
            settings=settings,
            temporal=temporal,
            start_case=start_case,
            previewer=previewer,
            trace=trace,
            chain_name=chain_name,
            ahead=ahead,
        )
    finally:
        ahead.cancel()  # what the answer did not take (a 403, 409 or 503 takes none)


async def _file_claim(
    *,
    body: CaseCreate,
    response: Response,
    session: Session,
    engine: Engine,
    user: User,
    settings: Settings,
    temporal: TemporalConnector,
    start_case: CaseStarter,
    previewer: ClaimPreviewer,
    trace: TraceResult,
    chain_name: str | None,
    ahead: CodeAhead,
) -> Any:
    """The claim once its transaction is traced: its deposit, its case and workflow, and the answer."""

    def look_up() -> tuple[NewCase | None, Case | None, StoredFacts | None]:
        """The claimant's deposit in the transaction, its case if filed already, and what the answer needs from
        the database: one thread hop, one session."""
        deposit, foreign_only = users.claimant_deposit(session, user_id=user.user_id, trace=trace)
        if foreign_only:
            return None, None, None
        new_case = NewCase.of(user_id=user.user_id, tx_hash=body.tx_hash, deposit=deposit, chain=chain_name)
        existing = cases.get_case(session, case_id=new_case.case_id)
        stored = None if existing else previewer.stored(session, user_id=user.user_id, deposit=deposit)
        session.commit()  # release the connection while chains and Temporal are reached
        return new_case, existing, stored

    new_case, existing, stored = await run_in_threadpool(look_up)
    if new_case is None:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail=FOREIGN_DEPOSIT)
    if existing is not None:
        return _existing_case_response(existing, user)
    case_id = new_case.case_id

    # the answer's own lookups run while the claim is filed; they never fail it (the preview never raises)
    preview = asyncio.ensure_future(
        previewer.preview(
            case_id=case_id,
            user_id=user.user_id,
            trace=trace,
            deposit=new_case.deposit,
            stored=stored,
            locale=current_locale(),
            ahead=ahead,
        )
    )
    try:
        client = await _connected(temporal)

        opener = CaseOpener(engine=engine, start=case_starter(client, task_queue=settings.task_queue, start=start_case))
        try:
            opened = await opener.open(new_case, undo_on_failure=True)
        except Exception as exc:
            log.error("could not start the workflow of %s: %r", case_id, exc)
            raise HTTPException(
                status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                detail=Message("could not start processing your claim; nothing was recorded, try again later"),
            ) from None
        if opened.outcome is Outcome.EXISTS:  # a concurrent request for the same deposit won
            assert opened.existing is not None
            return _existing_case_response(opened.existing, user)
        if opened.outcome is Outcome.ALREADY_STARTED:
            # the workflow exists (its row was lost or is being recreated): it keeps the row up to date
            return _conflict(case_id)

        response.headers["Location"] = f"/v1/cases/{case_id}"
        return CaseCreated(case_id=case_id, status=CaseStatus.RECEIVED, answer=ClaimAnswer.of(await preview))
    finally:
        preview.cancel()  # a claim answered otherwise (409, 403, 503) does not wait for it


def _iso_datetime(value: object) -> object:
    """Only an ISO 8601 text is a time here (pydantic would also take a number as seconds since 1970)."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            raise MessageError(
                Message("must be an ISO 8601 date-time such as {example}", example="2026-03-01T00:00:00Z")
            ) from None
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_datetime)]


@router.get(
    "",
    response_model=CasesPublic,
    responses={422: {"model": ErrorOut, "description": "A bad cursor, status or date"}},
)
def list_cases(
    session: SessionDep,
    user: CurrentUser,
    limit: Annotated[int, Query(ge=1, le=100, description="Cases per page")] = 20,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="next_cursor of the previous page; omit it for the first page"),
    ] = None,
    status_in: Annotated[
        list[CaseStatus] | None,
        Query(alias="status", max_length=len(CaseStatus), description="Only cases in these statuses (repeatable)"),
    ] = None,
    created_from: Annotated[
        IsoDateTime | None, Query(description="Only cases filed at or after this time (ISO 8601; UTC if no zone)")
    ] = None,
    created_to: Annotated[
        IsoDateTime | None, Query(description="Only cases filed before this time (ISO 8601; UTC if no zone)")
    ] = None,
) -> Any:
    """Your cases, newest first, a page at a time: follow ``next_cursor`` until it is null. A window whose
    ``created_to`` is not after its ``created_from`` holds no case."""
    where = cases.CaseFilter(
        statuses=tuple(dict.fromkeys(status_in or ())),
        created_from=_utc(created_from),
        created_to=_utc(created_to),
    )
    found = cases.list_cases(session, user_id=user.user_id, limit=limit + 1, after=_decode_cursor(cursor), where=where)
    page, more = found[:limit], len(found) > limit
    return CasesPublic(
        data=[CaseSummary.of(c) for c in page],
        count=cases.count_cases(session, user_id=user.user_id, where=where),
        next_cursor=_encode_cursor(page[-1]) if more else None,
    )


def _utc(at: datetime | None) -> datetime | None:
    return None if at is None else _aware(at)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


def _encode_cursor(case: Case) -> str:
    raw = json.dumps([case.created_at.isoformat(), case.case_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        at, case_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return _aware(datetime.fromisoformat(at)), str(case_id)
    except (ValueError, TypeError):
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=Message(
                "cursor is not one this API gave: pass next_cursor from the previous page as it is, "
                "or omit cursor for the first page"
            ),
        ) from None


READ_RETRY_AFTER_S = 5
"""``Retry-After`` of a read refused because the database did not answer in time."""


@router.get(
    "/{case_id}",
    response_model=CaseDetail,
    responses={
        304: {"description": "Unchanged since the ETag sent in If-None-Match"},
        404: {"model": ErrorOut, "description": "No such case among yours"},
        503: {"model": ErrorOut, "description": "The database did not answer in time; try again"},
    },
)
async def read_case(
    request: Request,
    case_id: Annotated[str, Path(max_length=MAX_CASE_ID)],
    credentials: BearerDep,
    if_none_match: Annotated[str | None, Header(max_length=MAX_IF_NONE_MATCH)] = None,
) -> Any:
    """A case's status, amounts, fees and timeline. The answer carries an ``ETag``: send it back in
    ``If-None-Match`` and an unchanged case answers ``304 Not Modified`` with no body."""
    views = case_views_of(request)
    token = credentials.credentials if credentials is not None else ""
    asked = request_locale(request).header  # Accept-Language first, else the user's stored locale
    try:
        found, rendered = await views.read(token=token, case_id=case_id, locale=asked) if token else (None, None)
    except ReadsBusy:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Message("the database is busy; nothing was read: try again in a few seconds"),
            headers={"Retry-After": str(READ_RETRY_AFTER_S)},
        ) from None
    if found is None or not found.live:
        await run_in_threadpool(_refuse, request, credentials)  # the same answers as every user route
        raise AssertionError("unreachable: _refuse raises")
    use_user_locale(request, found.locale)
    limiter_of(request).spend(Budget.READS, f"user:{found.user_id}")
    if rendered is None:
        raise _not_yours(case_id)
    return case_answer(rendered, if_none_match)


def _refuse(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    """Answer a read whose token is missing, unknown, expired or revoked as ``get_current_user`` does."""
    with Session(request.app.state.engine) as session:
        get_current_user(request, session, credentials)
    raise unauthorized(Message("invalid API token: {help}", help=TOKEN_HELP))


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
            detail=Message(
                "nobody asked you anything on this case right now (it is {status}); nothing was changed",
                status=Message(STATUS_NAMES[case.status]),
            ),
        )
    client = await _connected(temporal)
    try:
        delivered = await client.get_workflow_handle(case_id).execute_update(
            CaseWorkflow.user_message, UserMessage(text=body.text)
        )
        log.info("answer to %s: %s", case_id, delivered)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        refused = isinstance(cause, ApplicationError)
        message = refusal_text(cause) if refused else Message("the case cannot take an answer now")
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=Message(NOTHING_CHANGED, reason=message)
        ) from None
    except RPCError as exc:
        log.error("answer to %s not delivered: %r", case_id, exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Message("your answer could not be delivered; nothing was recorded, try again later"),
        ) from None
    return MessageAccepted(case_id=case_id, status=CaseStatus.AWAITING_APPROVAL)
