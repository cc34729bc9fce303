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
from recovery.i18n import N_, Message
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.names import PROOF_METHOD_NAMES
from recovery.settings import ChainConfig, Settings, UnknownChain
from store import cases, ownership, users
from store.db import norm_address, utcnow

NO_PROOF_NEEDED = N_("case {case_id} needs no ownership proof")
ALREADY_PROVEN = N_("replayed: ownership for case {case_id} was already proven; nothing more is needed.")

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
        raise NoProofNeeded(
            Message("case {case_id} needs no ownership proof (nothing is waiting for one)", case_id=case_id)
        )
    if required.proven_at is not None:
        raise NoProofNeeded(
            Message(
                "ownership for case {case_id} was already proven ({method})",
                case_id=case_id,
                method=_method(required.method),
            )
        )
    return ownership.issue_challenge(session, requirement=required, ttl=ttl)


def check_signature(session: Session, *, case_id: str, signature: str) -> AcceptedProof:
    """The proof ``signature`` gives for ``case_id``, or :class:`ProofRefused` saying why not. Nothing is
    written: the caller hands the proof to the case, then :func:`mark_proven` records it."""
    required = ownership.requirement(session, case_id=case_id)
    if required is None:
        raise NoProofNeeded(Message(NO_PROOF_NEEDED, case_id=case_id))
    if required.proven_at is not None:
        raise ProofRefused(Message(ALREADY_PROVEN, case_id=case_id))
    now = utcnow()
    for challenge in ownership.challenges_for(session, address=required.address):
        if recovered_signer(challenge.message, signature) != challenge.address:
            continue
        if challenge.case_id != case_id:
            raise ProofRefused(
                Message(
                    "other case: this signature is for case {other}, not {case_id}. GET this case's "
                    "ownership-challenge and sign its message.",
                    other=challenge.case_id,
                    case_id=case_id,
                )
            )
        if challenge.used_at is not None:
            raise ProofRefused(Message("replayed: this signature was already used. GET a new challenge and sign it."))
        if challenge.expires_at <= now:
            raise ProofRefused(
                Message(
                    "expired: the challenge expired at {expired_at}. GET a new challenge and sign it before it "
                    "expires.",
                    expired_at=challenge.expires_at.isoformat(),
                )
            )
        return AcceptedProof(
            case_id=case_id, address=required.address, method=ownership.SIGNATURE, reference=challenge.nonce
        )
    raise ProofRefused(
        Message(
            "forged: the signature was not made by {address} over this case's challenge. Sign the exact message of "
            "GET /v1/cases/{case_id}/ownership-challenge with personal_sign from that wallet.",
            address=required.address,
            case_id=case_id,
        )
    )


def mark_proven(session: Session, proof: AcceptedProof) -> None:
    """Record the proof and use up its challenge or verification deposit (a replay is refused from now on)."""
    if not ownership.accept(session, case_id=proof.case_id, method=proof.method, reference=proof.reference):
        raise ProofRefused(
            Message(
                "replayed: this {method} was used at the same moment by another request.",
                method=_method(proof.method),
            )
        )


def _method(method: str | None) -> str:
    """How ownership was proven, named for the reader (the code itself where it has no name)."""
    name = PROOF_METHOD_NAMES.get(method or "")
    return str(method) if name is None else Message(name)


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
    send_new = _send_new(target)
    if target.challenged_at is None:
        raise ProofRefused(
            Message(
                "no challenge: a verification deposit counts only when it is made after this case's challenge, and "
                "none was issued yet. GET /v1/cases/{case_id}/ownership-challenge first, then {send_new}.",
                case_id=case_id,
                send_new=send_new,
            )
        )
    if trace.tx_hash.lower() == target.deposit_tx_hash.lower():
        raise ProofRefused(
            Message(
                "own deposit: this is the deposit the case is about, not a new transfer; {send_new}.", send_new=send_new
            )
        )
    if linked_to is not None and linked_to != case_id:
        raise ProofRefused(
            Message(
                "replayed: this transaction is already the ownership proof of another case; a transaction proves one "
                "case only: {send_new}.",
                send_new=send_new,
            )
        )
    if not trace.found:
        raise ProofRefused(
            Message(
                "not found: {chain} does not know transaction {tx_hash}. Check the hash (it must be on {chain}, the "
                "chain of your deposit); if you just sent it, POST it again once it is mined.",
                chain=chain.name,
                tx_hash=trace.tx_hash,
            )
        )
    if trace.block_number is None:
        raise _not_final(trace, chain)
    if trace.succeeded is False:
        raise ProofRefused(
            Message(
                "failed: the transaction failed on {chain} and moved nothing; {send_new}.",
                chain=chain.name,
                send_new=send_new,
            )
        )
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
                Message(
                    "wrong tag: the payment does not carry your destination tag {memo}, so it is not linked to you; "
                    "{send_new}.",
                    memo=str(target.memo),
                    send_new=send_new,
                )
            )
        if to_recipient:
            raise ProofRefused(
                Message(
                    "not signed by the sender: on {chain} only {coin} sent by {address} itself counts (a token "
                    "transfer, or value sent through a contract, does not show who signed it); {send_new}.",
                    chain=chain.name,
                    coin=coin,
                    address=target.address,
                    send_new=send_new,
                )
            )
        raise ProofRefused(
            Message(
                "no matching transfer: the transaction moves nothing from {address} (the sender of your deposit) to "
                "{recipient} (the address you deposited to); {send_new}.",
                address=target.address,
                recipient=target.recipient,
                send_new=send_new,
            )
        )
    if trace.block_timestamp is None:
        if not trace.confirmed:
            raise _not_final(trace, chain)
        raise ProofRefused(
            Message(
                "time unknown: {chain} did not say when block {block} was made, so it cannot be compared with the "
                "challenge. POST it again in a minute.",
                chain=chain.name,
                block=trace.block_number,
            )
        )
    # block times have whole seconds and come from the chain's clock, not ours
    challenged_at = target.challenged_at.replace(microsecond=0) - CLOCK_SKEW.get(chain.family, timedelta(0))
    if trace.block_timestamp < challenged_at:
        raise ProofRefused(
            Message(
                "before the challenge: the transaction was mined at {mined_at}, before this case's first challenge "
                "({challenged_at}), so it proves nothing new; {send_new}.",
                mined_at=trace.block_timestamp.isoformat(),
                challenged_at=challenged_at.isoformat(),
                send_new=send_new,
            )
        )
    if not trace.confirmed:
        raise _not_final(trace, chain)
    return proving[0]


def _send_new(target: VerificationTarget) -> str:
    """What to do instead of a transfer that does not prove control: send a new one (and how)."""
    values = {
        "coin": target.chain.native_symbol,
        "address": target.address,
        "recipient": target.recipient,
        "case_id": target.case_id,
    }
    if target.memo is None:
        return Message(
            "send a new small {coin} transfer from {address} to {recipient} and POST its hash to "
            "/v1/cases/{case_id}/ownership-proof",
            **values,
        )
    return Message(
        "send a new small {coin} transfer from {address} to {recipient} with destination tag {memo} and POST its "
        "hash to /v1/cases/{case_id}/ownership-proof",
        memo=target.memo,
        **values,
    )


def _not_final(trace: TraceResult, chain: ChainConfig) -> ProofRefused:
    values = {"have": trace.confirmations, "need": trace.required_confirmations, "chain": chain.name}
    if trace.block_number is None:
        return ProofRefused(
            Message(
                "not final: {have} of {need} confirmation(s) on {chain} (not mined yet). POST the same hash again once "
                "it has {need}; nothing was recorded.",
                **values,
            )
        )
    return ProofRefused(
        Message(
            "not final: {have} of {need} confirmation(s) on {chain}. POST the same hash again once it has {need}; "
            "nothing was recorded.",
            **values,
        )
    )


def verification_target(session: Session, *, case_id: str, settings: Settings) -> VerificationTarget:
    """What a verification deposit for ``case_id`` must be; :class:`NoProofNeeded` or :class:`ProofRefused`
    when the case takes none."""
    required = ownership.requirement(session, case_id=case_id)
    case = cases.get_case(session, case_id=case_id)
    if required is None or case is None:
        raise NoProofNeeded(Message(NO_PROOF_NEEDED, case_id=case_id))
    if required.proven_at is not None:
        raise ProofRefused(Message(ALREADY_PROVEN, case_id=case_id))
    try:
        chain = settings.require_chain(required.chain)
    except UnknownChain:
        raise ProofRefused(
            Message("chain {chain} of this case is no longer configured; contact support.", chain=required.chain)
        ) from None
    memo = None
    shared = chain.shared_deposit_address
    if shared is not None and norm_address(shared) == required.recipient:
        memo = users.memo_of(session, user_id=case.user_id, address=required.recipient)
        if memo is None:
            raise ProofRefused(
                Message(
                    "no tag: {recipient} is shared by many accounts and yours has no destination tag on it, so no "
                    "payment to it can be linked to you; contact support.",
                    recipient=required.recipient,
                )
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
