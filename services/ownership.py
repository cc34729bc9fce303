"""Checking a claimant's proof that they control a deposit's sending address: an EIP-191 ``personal_sign``
of the case's challenge message, or a verification deposit (a new small transfer from that address to the
deposit address, made after the case's first challenge). Every refusal says what is wrong and what to do."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from eth_account import Account
from eth_account.messages import encode_defunct
from sqlmodel import Session

from recovery.errors import PermanentError
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.settings import ChainConfig, Settings, UnknownChain
from store import cases, ownership, users
from store.db import norm_address, utcnow

CLOCK_SKEW = {
    "evm": timedelta(seconds=5),
    "tron": timedelta(seconds=5),
    "xrpl": timedelta(seconds=15),
    "bitcoin": timedelta(hours=2),
}
"""How far a chain's block time may lag our clock and still count as after the challenge: a node's clock
drifts, XRP Ledger close times are rounded to 10 s, a Bitcoin block's time is its miner's (consensus allows
two hours). The proof rests on the sender having signed the transfer; the time only keeps old transfers out."""


class ProofRefused(PermanentError):
    """The signature does not prove control of the address (the message says why and what to do)."""


class NoProofNeeded(PermanentError):
    pass


@dataclass(frozen=True)
class AcceptedProof:
    case_id: str
    address: str
    method: str
    reference: str
    """The signed challenge's nonce, or the verification deposit's transaction."""


def recovered_signer(message: str, signature: str) -> str | None:
    """The address that signed ``message`` with ``personal_sign``, lower-case; None for a malformed signature."""
    try:
        signer: str = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # eth-account raises several types for bytes that are no signature at all
        return None
    return signer.lower()


def issue(session: Session, *, case_id: str, ttl: timedelta) -> ownership.OwnershipChallenge:
    required = ownership.requirement(session, case_id=case_id)
    if required is None:
        raise NoProofNeeded(f"case {case_id} needs no ownership proof (nothing is waiting for one)")
    if required.proven_at is not None:
        raise NoProofNeeded(f"ownership for case {case_id} was already proven ({required.method})")
    return ownership.issue_challenge(session, requirement=required, ttl=ttl)


def check_signature(session: Session, *, case_id: str, signature: str) -> AcceptedProof:
    """The proof ``signature`` gives for ``case_id``, or :class:`ProofRefused` saying why not. Nothing is
    written: the caller hands the proof to the case, then :func:`mark_proven` records it."""
    required = ownership.requirement(session, case_id=case_id)
    if required is None:
        raise NoProofNeeded(f"case {case_id} needs no ownership proof")
    if required.proven_at is not None:
        raise ProofRefused(f"replayed: ownership for case {case_id} was already proven; nothing more is needed.")
    now = utcnow()
    for challenge in ownership.challenges_for(session, address=required.address):
        if recovered_signer(challenge.message, signature) != challenge.address:
            continue
        if challenge.case_id != case_id:
            raise ProofRefused(
                f"other case: this signature is for case {challenge.case_id}, not {case_id}. GET this case's "
                "ownership-challenge and sign its message."
            )
        if challenge.used_at is not None:
            raise ProofRefused("replayed: this signature was already used. GET a new challenge and sign it.")
        if challenge.expires_at <= now:
            raise ProofRefused(
                f"expired: the challenge expired at {challenge.expires_at.isoformat()}. GET a new challenge and "
                "sign it before it expires."
            )
        return AcceptedProof(
            case_id=case_id, address=required.address, method=ownership.SIGNATURE, reference=challenge.nonce
        )
    raise ProofRefused(
        f"forged: the signature was not made by {required.address} over this case's challenge. Sign the exact "
        f"message of GET /v1/cases/{case_id}/ownership-challenge with personal_sign from that wallet."
    )


def mark_proven(session: Session, proof: AcceptedProof) -> None:
    """Record the proof and use up its challenge or verification deposit (a replay is refused from now on)."""
    if not ownership.accept(session, case_id=proof.case_id, method=proof.method, reference=proof.reference):
        raise ProofRefused(f"replayed: this {proof.method} was used at the same moment by another request.")


# --- verification deposits -------------------------------------------------------------------------


@dataclass(frozen=True)
class VerificationTarget:
    """What a verification deposit for ``case_id`` must be: a transfer on ``chain`` from ``address`` to
    ``recipient`` (carrying ``memo`` on a shared address), mined at or after ``challenged_at``."""

    case_id: str
    chain: ChainConfig
    address: str
    recipient: str
    memo: str | None
    deposit_tx_hash: str
    challenged_at: datetime | None


def signed_by_sender(family: str, transfer: Transfer) -> bool:
    """Whether the transfer's sender must have signed its transaction. On EVM chains and Tron only the
    transaction's own coin says so: any contract can emit a token ``Transfer`` event naming any sender, and
    an allowance lets a spender move tokens; value a contract forwards is sent by the contract. A Bitcoin
    output's sender is its first input's address (which signed it); an XRP payment's is its signing account."""
    if family in ("evm", "tron"):
        return transfer.native and transfer.log_index == NATIVE_LOG_INDEX
    return family in ("bitcoin", "xrpl")


def check_verification_deposit(trace: TraceResult, target: VerificationTarget, *, linked_to: str | None) -> Transfer:
    """The transfer of ``trace`` that proves ``target.address`` is the claimant's, or :class:`ProofRefused`
    saying what is wrong and what to do. ``linked_to``: the case the transaction already proves, if any.
    Pure: the caller traced the transaction and read the link."""
    chain, case_id = target.chain, target.case_id
    coin = chain.native_symbol
    send_new = (
        f"send a new small {coin} transfer from {target.address} to {target.recipient}"
        + (f" with destination tag {target.memo}" if target.memo is not None else "")
        + f" and POST its hash to /v1/cases/{case_id}/ownership-proof"
    )
    if target.challenged_at is None:
        raise ProofRefused(
            f"no challenge: a verification deposit counts only when it is made after this case's challenge, and "
            f"none was issued yet. GET /v1/cases/{case_id}/ownership-challenge first, then {send_new}."
        )
    if trace.tx_hash.lower() == target.deposit_tx_hash.lower():
        raise ProofRefused(f"own deposit: this is the deposit the case is about, not a new transfer; {send_new}.")
    if linked_to is not None and linked_to != case_id:
        raise ProofRefused(
            f"replayed: this transaction is already the ownership proof of another case; a transaction proves one "
            f"case only. {send_new[0].upper()}{send_new[1:]}."
        )
    if not trace.found:
        raise ProofRefused(
            f"not found: {chain.name} does not know transaction {trace.tx_hash}. Check the hash (it must be on "
            f"{chain.name}, the chain of your deposit); if you just sent it, POST it again once it is mined."
        )
    if trace.block_number is None:
        raise _not_final(trace, chain)
    if trace.succeeded is False:
        raise ProofRefused(f"failed: the transaction failed on {chain.name} and moved nothing; {send_new}.")
    to_recipient = [
        t
        for t in trace.transfers
        if norm_address(t.sender) == target.address and norm_address(t.recipient) == target.recipient
    ]
    signed = [t for t in to_recipient if signed_by_sender(chain.family, t)]
    proving = [t for t in signed if target.memo is None or t.memo == target.memo]
    if not proving:
        if signed:
            raise ProofRefused(
                f"wrong tag: the payment does not carry your destination tag {target.memo}, so it is not linked "
                f"to you; {send_new}."
            )
        if to_recipient:
            raise ProofRefused(
                f"not signed by the sender: on {chain.name} only {coin} sent by {target.address} itself counts (a "
                f"token transfer, or value sent through a contract, does not show who signed it); {send_new}."
            )
        raise ProofRefused(
            f"no matching transfer: the transaction moves nothing from {target.address} (the sender of your "
            f"deposit) to {target.recipient} (the address you deposited to); {send_new}."
        )
    if trace.block_timestamp is None:
        if not trace.confirmed:
            raise _not_final(trace, chain)
        raise ProofRefused(
            f"time unknown: {chain.name} did not say when block {trace.block_number} was made, so it cannot be "
            "compared with the challenge. POST it again in a minute."
        )
    # block times have whole seconds and come from the chain's clock, not ours
    challenged_at = target.challenged_at.replace(microsecond=0) - CLOCK_SKEW.get(chain.family, timedelta(0))
    if trace.block_timestamp < challenged_at:
        raise ProofRefused(
            f"before the challenge: the transaction was mined at {trace.block_timestamp.isoformat()}, before this "
            f"case's first challenge ({challenged_at.isoformat()}), so it proves nothing new; {send_new}."
        )
    if not trace.confirmed:
        raise _not_final(trace, chain)
    return proving[0]


def _not_final(trace: TraceResult, chain: ChainConfig) -> ProofRefused:
    have, need = trace.confirmations, trace.required_confirmations
    return ProofRefused(
        f"not final: {have} of {need} confirmation(s) on {chain.name}"
        + ("" if trace.block_number is not None else " (not mined yet)")
        + f". POST the same hash again once it has {need}; nothing was recorded."
    )


def verification_target(session: Session, *, case_id: str, settings: Settings) -> VerificationTarget:
    """What a verification deposit for ``case_id`` must be; :class:`NoProofNeeded` or :class:`ProofRefused`
    when the case takes none."""
    required = ownership.requirement(session, case_id=case_id)
    case = cases.get_case(session, case_id=case_id)
    if required is None or case is None:
        raise NoProofNeeded(f"case {case_id} needs no ownership proof")
    if required.proven_at is not None:
        raise ProofRefused(f"replayed: ownership for case {case_id} was already proven; nothing more is needed.")
    try:
        chain = settings.require_chain(required.chain)
    except UnknownChain:
        raise ProofRefused(f"chain {required.chain} of this case is no longer configured; contact support.") from None
    memo = None
    shared = chain.shared_deposit_address
    if shared is not None and norm_address(shared) == required.recipient:
        memo = users.memo_of(session, user_id=case.user_id, address=required.recipient)
        if memo is None:
            raise ProofRefused(
                f"no tag: {required.recipient} is shared by many accounts and yours has no destination tag on it, "
                "so no payment to it can be linked to you; contact support."
            )
    return VerificationTarget(
        case_id=case_id,
        chain=chain,
        address=required.address,
        recipient=required.recipient,
        memo=memo,
        deposit_tx_hash=case.tx_hash,
        challenged_at=ownership.first_challenge_at(session, case_id=case_id),
    )


def link_verification_deposit(session: Session, *, target: VerificationTarget, trace: TraceResult) -> AcceptedProof:
    """Check ``trace`` as ``target``'s verification deposit and link it to the case (the database's UNIQUE
    constraint keeps it from proving two cases); :class:`ProofRefused` (nothing written) otherwise. The
    caller hands the proof to the case, then :func:`mark_proven`, or :func:`release` if the case refused it."""
    chain = target.chain.name
    link = ownership.verification_link(session, chain=chain, tx_hash=trace.tx_hash)
    check_verification_deposit(trace, target, linked_to=link.case_id if link else None)
    assert trace.block_timestamp is not None
    holder = ownership.link_verification(
        session, case_id=target.case_id, chain=chain, tx_hash=trace.tx_hash, block_timestamp=trace.block_timestamp
    )
    if holder != target.case_id:  # another request linked it to another case since the check
        check_verification_deposit(trace, target, linked_to=holder)
    return AcceptedProof(
        case_id=target.case_id,
        address=target.address,
        method=ownership.VERIFICATION_DEPOSIT,
        reference=trace.tx_hash,
    )


def release(session: Session, proof: AcceptedProof) -> None:
    """Undo :func:`link_verification_deposit` when the case did not take the proof (a signature links nothing)."""
    if proof.method != ownership.VERIFICATION_DEPOSIT:
        return
    required = ownership.requirement(session, case_id=proof.case_id)
    if required is not None:
        ownership.unlink_verification(session, case_id=proof.case_id, chain=required.chain, tx_hash=proof.reference)
