"""Ownership proof: a case worth more than the configured threshold moves nothing until its claimant proves
control of the sending address, by signing the case's challenge message (EIP-191 ``personal_sign``) or by a
verification deposit (a new small transfer from that address to the deposit address after the challenge)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from api.deps import (
    AttesterDep,
    ChainUnreachable,
    CurrentUser,
    SessionDep,
    SettingsDep,
    TemporalDep,
    Tracer,
    TracerDep,
    TxHashFormatError,
)
from api.routes.cases import NOTHING_CHANGED, _connected, _must_be_yours
from api.schemas import ErrorOut
from api.staff_actions import ActionRefused, CaseNotRunning, WorkflowBusy, send_update
from recovery.i18n import Message
from recovery.settings import Settings
from services import ownership as proofs
from store import cases
from workflows.case_messages import OwnershipProven
from workflows.case_workflow import OWNERSHIP_PROVER

log = logging.getLogger(__name__)

router = APIRouter(prefix="/cases", tags=["ownership"])


class ChallengeOut(BaseModel):
    address: str = Field(description="The address whose control you prove: the sender of your deposit")
    message: str = Field(description="Sign exactly this text with personal_sign (EIP-191) from that wallet")
    expires_at: datetime = Field(description="Sign and send the proof before this moment (UTC)")


def _exactly_one_proof(schema: dict[str, Any]) -> None:
    """Say in the spec what the handler checks: exactly one of the two proofs, neither of them null."""
    for name in ("signature", "verification_tx_hash"):
        field = schema["properties"][name]
        field.pop("default", None)
        kinds = [k for k in field.pop("anyOf", []) if k.get("type") != "null"]
        if kinds:
            field.update(kinds[0])
    schema["oneOf"] = [{"required": ["signature"]}, {"required": ["verification_tx_hash"]}]
    schema["examples"] = [{"signature": "0x…"}, {"verification_tx_hash": "0x…"}]


class ProofCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=_exactly_one_proof)

    signature: str | None = Field(
        default=None,
        min_length=4,
        max_length=200,
        pattern=r"^0x[0-9a-fA-F]+$",
        description="The 0x-hex personal_sign signature of the challenge's message",
    )
    verification_tx_hash: str | None = Field(
        default=None,
        min_length=1,
        max_length=130,
        description="Or: the hash of a new small transfer of the chain's own coin from the deposit's sender to "
        "the deposit address, made after the challenge was issued",
    )


ONE_PROOF = Message(
    "send exactly one proof: {signature_body} (the challenge's message signed with personal_sign) or "
    "{deposit_body} (a new small transfer from the sender to the deposit address, made after GET "
    "ownership-challenge)",
    signature_body='{"signature": "0x..."}',
    deposit_body='{"verification_tx_hash": "..."}',
)


class ProofAccepted(BaseModel):
    case_id: str
    address: str
    answer: str = Field(description="What the case answered")


ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such case among yours"},
    409: {"model": ErrorOut, "description": "The case needs no ownership proof now"},
}


@router.get("/{case_id}/ownership-challenge", response_model=ChallengeOut, responses=ERRORS)
def ownership_challenge(case_id: str, session: SessionDep, user: CurrentUser, settings: SettingsDep) -> Any:
    """A message to sign with the wallet that sent the deposit: it names the case, the address and an expiry."""
    _must_be_yours(cases.get_case(session, case_id=case_id), user, case_id)
    try:
        challenge = proofs.issue(session, case_id=case_id, ttl=timedelta(minutes=settings.ownership_challenge_minutes))
    except proofs.NoProofNeeded as exc:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=str(exc)) from None
    return ChallengeOut(address=challenge.address, message=challenge.message, expires_at=challenge.expires_at)


@router.post(
    "/{case_id}/ownership-proof",
    response_model=ProofAccepted,
    responses={
        **ERRORS,
        422: {"model": ErrorOut, "description": "The proof does not hold; the message says why and what to do"},
        503: {"model": ErrorOut, "description": "The chain or the workflow engine is unreachable"},
    },
)
async def ownership_proof(
    case_id: str,
    body: ProofCreate,
    session: SessionDep,
    user: CurrentUser,
    settings: SettingsDep,
    tracer: TracerDep,
    temporal: TemporalDep,
    attester: AttesterDep,
) -> Any:
    """Prove that you control the deposit's sender: with the signature of its challenge, or with the hash of
    a verification deposit (a new small transfer of the chain's coin from the sender to the deposit address,
    mined after you GET the challenge, and final). A proof that does not hold answers 422 saying why and
    what to do, and changes nothing."""
    if (body.signature is None) == (body.verification_tx_hash is None):
        raise HTTPException(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=Message("invalid request: {problems}", problems=ONE_PROOF),
        )
    _must_be_yours(await run_in_threadpool(cases.get_case, session, case_id=case_id), user, case_id)
    try:
        if body.signature is not None:
            proof = await run_in_threadpool(proofs.check_signature, session, case_id=case_id, signature=body.signature)
        else:
            assert body.verification_tx_hash is not None
            proof = await _verification_proof(session, settings, tracer, case_id, body.verification_tx_hash)
    except proofs.NoProofNeeded as exc:
        raise HTTPException(status_code=status.HTTP_409_CONFLICT, detail=str(exc)) from None
    except proofs.ProofRefused as exc:
        raise HTTPException(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(exc)) from None
    await run_in_threadpool(session.commit)
    attestation = attester.attest(
        case_id=case_id, engineer=OWNERSHIP_PROVER, action="ownership_proven", now=datetime.now(UTC)
    )
    payload = OwnershipProven(
        address=proof.address, method=proof.method, reference=proof.reference, attestation=attestation
    )
    try:
        client = await _connected(temporal)
    except HTTPException:
        await run_in_threadpool(proofs.release, session, proof)
        raise
    try:
        answer = await send_update(client, case_id, "ownership_proven", payload)
    except (ActionRefused, CaseNotRunning) as exc:
        await run_in_threadpool(proofs.release, session, proof)
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT, detail=Message(NOTHING_CHANGED, reason=str(exc))
        ) from None
    except WorkflowBusy as exc:
        await run_in_threadpool(proofs.release, session, proof)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE, detail=Message("{reason}; try again", reason=str(exc))
        ) from None
    try:
        await run_in_threadpool(proofs.mark_proven, session, proof)
    except proofs.ProofRefused as exc:  # the case has it; a concurrent request got there first
        log.info("ownership proof of %s recorded twice: %s", case_id, exc)
    return ProofAccepted(case_id=case_id, address=proof.address, answer=answer)


async def _verification_proof(
    session: Session, settings: Settings, tracer: Tracer, case_id: str, tx_hash: str
) -> proofs.AcceptedProof:
    """Trace ``tx_hash`` on the case's chain and link it to the case as its verification deposit."""
    target = await run_in_threadpool(proofs.verification_target, session, case_id=case_id, settings=settings)
    await run_in_threadpool(session.commit)  # release the connection while the chain is asked
    try:
        trace = await tracer.trace(target.chain, tx_hash, block_time=True)
    except TxHashFormatError as exc:
        raise proofs.ProofRefused(
            Message("{reason}; POST the hash of your verification deposit", reason=str(exc))
        ) from None
    except ChainUnreachable as exc:
        log.warning("tracing %s failed: %s", tx_hash, exc.__cause__ or exc)
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=Message("chain {chain} unreachable, nothing was recorded; try again later", chain=target.chain.name),
        ) from None
    return await run_in_threadpool(proofs.link_verification_deposit, session, target=target, trace=trace)
