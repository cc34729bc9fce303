"""Ownership proof by a verification deposit: the pure check (every refusal says what is wrong and what to
do), the store's link of a transaction to one case (a UNIQUE constraint in the database), and ``accept``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer, internal_log_index
from recovery.settings import ChainConfig, dev_chains
from services.ownership import (
    CLOCK_SKEW,
    ProofRefused,
    VerificationTarget,
    check_verification_deposit,
    signed_by_sender,
)
from store import ownership
from store.ownership import OwnershipRequirement, VerificationDeposit

SENDER = "0x" + "a1" * 20
DEPOSIT_ADDRESS = "0x" + "d2" * 20
OTHER = "0x" + "0e" * 20
USDT = "0x55d398326f99059fF775485246999027B3197955"
CHALLENGED = datetime(2025, 3, 3, 12, 0, 0, 250_000, tzinfo=UTC)
DEPOSIT_TX = "0x" + "de" * 32
VERIFY_TX = "0x" + "7e" * 32
BSC = next(c for c in dev_chains() if c.name == "bsc")


def transfer(
    *,
    sender: str = SENDER,
    recipient: str = DEPOSIT_ADDRESS,
    log_index: int = NATIVE_LOG_INDEX,
    token: str | None = None,
    chain: str = "bsc",
    memo: str | None = None,
) -> Transfer:
    return Transfer(
        chain=chain,
        tx_hash=VERIFY_TX,
        log_index=log_index,
        token_address=token,
        asset="USDT" if token else "BNB",
        decimals=18,
        sender=sender,
        recipient=recipient,
        amount=10**15,
        memo=memo,
    )


def trace(*transfers: Transfer, **update: object) -> TraceResult:
    base = TraceResult(
        chain="bsc",
        tx_hash=VERIFY_TX,
        found=True,
        succeeded=True,
        block_number=1_000,
        confirmations=3,
        required_confirmations=3,
        block_timestamp=CHALLENGED + timedelta(minutes=2),
        transfers=list(transfers) or [transfer()],
    )
    return base.model_copy(update=update)


def target(**update: object) -> VerificationTarget:
    values: dict[str, object] = {
        "case_id": "case-1",
        "chain": BSC,
        "address": SENDER,
        "recipient": DEPOSIT_ADDRESS,
        "memo": None,
        "deposit_tx_hash": DEPOSIT_TX,
        "challenged_at": CHALLENGED,
    } | update
    return VerificationTarget(**values)  # type: ignore[arg-type]


def refusal(result: TraceResult, to: VerificationTarget | None = None, *, linked_to: str | None = None) -> str:
    with pytest.raises(ProofRefused) as refused:
        check_verification_deposit(result, to or target(), linked_to=linked_to)
    return str(refused.value)


def test_a_native_transfer_from_the_sender_after_the_challenge_proves_it() -> None:
    proving = check_verification_deposit(trace(), target(), linked_to=None)
    assert (proving.sender, proving.recipient, proving.log_index) == (SENDER, DEPOSIT_ADDRESS, NATIVE_LOG_INDEX)
    # checksummed addresses on chain, lower-case in the requirement: the same address
    checksummed = transfer(sender="0x" + "A1" * 20, recipient="0x" + "D2" * 20)
    assert check_verification_deposit(trace(checksummed), target(), linked_to=None) == checksummed
    # a retry of the same case's own link (after a crash between link and update) is not a replay
    assert check_verification_deposit(trace(), target(), linked_to="case-1").sender == SENDER


def test_it_counts_from_the_challenge_less_the_chains_clock_skew() -> None:
    earliest = CHALLENGED.replace(microsecond=0) - CLOCK_SKEW["evm"]  # block times have whole seconds
    assert check_verification_deposit(trace(block_timestamp=earliest), target(), linked_to=None)
    detail = refusal(trace(block_timestamp=earliest - timedelta(seconds=1)))
    assert detail.startswith("before the challenge: the transaction was mined at 2025-03-03T11:59:54+00:00")
    assert "send a new small BNB transfer from " + SENDER in detail


def test_no_challenge_yet() -> None:
    detail = refusal(trace(), target(challenged_at=None))
    assert detail.startswith("no challenge:") and "GET /v1/cases/case-1/ownership-challenge first" in detail


def test_the_cases_own_deposit_is_no_proof() -> None:
    detail = refusal(trace(tx_hash=DEPOSIT_TX.upper().replace("0X", "0x")))
    assert detail.startswith("own deposit: this is the deposit the case is about")


def test_a_transaction_proves_one_case_only() -> None:
    detail = refusal(trace(), linked_to="case-2")
    assert detail.startswith("replayed: this transaction is already the ownership proof of another case")
    assert "case-2" not in detail  # another user's case is not named


def test_not_found_failed_and_other_transfers() -> None:
    assert refusal(trace(found=False, succeeded=None, block_number=None)).startswith("not found: bsc does not know")
    assert refusal(trace(succeeded=False)).startswith("failed: the transaction failed on bsc")
    assert refusal(trace(transfer(sender=OTHER))).startswith("no matching transfer: the transaction moves nothing")
    assert refusal(trace(transfer(recipient=OTHER))).startswith("no matching transfer:")


def test_only_what_the_sender_signed_counts_on_evm() -> None:
    # any contract can emit a token Transfer event naming any sender: a token transfer proves nothing
    token = transfer(log_index=4, token=USDT)
    assert refusal(trace(token)).startswith("not signed by the sender: on bsc only BNB sent by " + SENDER)
    # value a contract forwards is sent by the contract, whoever called it
    forwarded = transfer(log_index=internal_log_index(1))
    assert refusal(trace(forwarded)).startswith("not signed by the sender:")
    assert check_verification_deposit(trace(token, transfer()), target(), linked_to=None).native
    assert not signed_by_sender("tron", transfer(log_index=0, token="TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"))
    assert signed_by_sender("bitcoin", transfer(log_index=1)) and signed_by_sender("xrpl", transfer(token="USD.r"))


def test_not_final_says_have_and_need() -> None:
    detail = refusal(trace(confirmations=1))
    assert detail == (
        "not final: 1 of 3 confirmation(s) on bsc. POST the same hash again once it has 3; nothing was recorded."
    )
    pending = refusal(trace(block_number=None, confirmations=0, succeeded=None, block_timestamp=None))
    assert pending.startswith("not final: 0 of 3 confirmation(s) on bsc (not mined yet)")
    # the other faults are told before the wait: no point waiting for a transaction that proves nothing
    assert refusal(trace(transfer(sender=OTHER), confirmations=1)).startswith("no matching transfer:")


def test_a_block_without_a_time_is_not_guessed() -> None:
    assert refusal(trace(block_timestamp=None)).startswith("time unknown: bsc did not say when block 1000 was made")


def test_a_shared_address_needs_the_claimants_own_tag() -> None:
    xrp = ChainConfig(
        name="xrp",
        family="xrpl",
        rpc_urls=["http://xrp.invalid"],
        native_symbol="XRP",
        native_decimals=6,
        confirmations=1,
    )
    to = target(chain=xrp, address="rSender", recipient="rExchange", memo="104729")
    payment = transfer(sender="rSender", recipient="rExchange", chain="xrp", memo="104729")
    xrp_trace = trace(payment, chain="xrp", required_confirmations=1, confirmations=1)
    assert check_verification_deposit(xrp_trace, to, linked_to=None).memo == "104729"
    other_tag = payment.model_copy(update={"memo": "555"})
    detail = refusal(xrp_trace.model_copy(update={"transfers": [other_tag]}), to)
    assert detail.startswith("wrong tag: the payment does not carry your destination tag 104729")
    assert "with destination tag 104729 and POST its hash" in detail


# --- the store: one transaction proves one case ----------------------------------------------------


def _requirement(session: Session, case_id: str) -> OwnershipRequirement:
    return ownership.require(session, case_id=case_id, chain="bsc", address=SENDER, recipient=DEPOSIT_ADDRESS)


def test_link_is_unique_per_chain_and_transaction(db_session: Session) -> None:
    when = CHALLENGED + timedelta(minutes=1)
    link = ownership.link_verification
    assert link(db_session, case_id="case-1", chain="bsc", tx_hash=VERIFY_TX, block_timestamp=when) == "case-1"
    assert link(db_session, case_id="case-1", chain="bsc", tx_hash=VERIFY_TX, block_timestamp=when) == "case-1"
    assert link(db_session, case_id="case-2", chain="bsc", tx_hash=VERIFY_TX, block_timestamp=when) == "case-1"
    # the same hash on another chain is another transaction
    assert link(db_session, case_id="case-2", chain="ethereum", tx_hash=VERIFY_TX, block_timestamp=when) == "case-2"
    # the database itself refuses a second row, whatever the code
    db_session.add(VerificationDeposit(chain="bsc", tx_hash=VERIFY_TX, case_id="case-3", block_timestamp=when))
    with pytest.raises(IntegrityError):
        db_session.commit()
    db_session.rollback()
    ownership.unlink_verification(db_session, case_id="case-2", chain="bsc", tx_hash=VERIFY_TX)  # not its link
    assert ownership.verification_link(db_session, chain="bsc", tx_hash=VERIFY_TX).case_id == "case-1"  # type: ignore[union-attr]
    ownership.unlink_verification(db_session, case_id="case-1", chain="bsc", tx_hash=VERIFY_TX)
    assert ownership.verification_link(db_session, chain="bsc", tx_hash=VERIFY_TX) is None


def test_accept_a_verification_deposit(db_session: Session) -> None:
    _requirement(db_session, "case-1")
    _requirement(db_session, "case-2")
    when = CHALLENGED + timedelta(minutes=1)
    method = ownership.VERIFICATION_DEPOSIT
    ownership.link_verification(db_session, case_id="case-1", chain="bsc", tx_hash=VERIFY_TX, block_timestamp=when)
    assert not ownership.accept(db_session, case_id="case-2", method=method, reference=VERIFY_TX)  # not its link
    assert not ownership.accept(db_session, case_id="case-1", method=method, reference=DEPOSIT_TX)  # not linked
    assert ownership.accept(db_session, case_id="case-1", method=method, reference=VERIFY_TX)
    proven = ownership.requirement(db_session, case_id="case-1")
    assert proven is not None and proven.proven_at is not None
    assert (proven.method, proven.reference) == ("verification_deposit", VERIFY_TX)
    link = ownership.verification_link(db_session, chain="bsc", tx_hash=VERIFY_TX)
    assert link is not None and link.proven_at is not None
    assert not ownership.accept(db_session, case_id="case-1", method=method, reference=VERIFY_TX)  # once
    ownership.unlink_verification(db_session, case_id="case-1", chain="bsc", tx_hash=VERIFY_TX)
    assert ownership.verification_link(db_session, chain="bsc", tx_hash=VERIFY_TX) is not None  # proven: stays
    with pytest.raises(ValueError, match="unknown ownership proof method"):
        ownership.accept(db_session, case_id="case-2", method="telepathy", reference="x")


def test_first_challenge_at(db_session: Session) -> None:
    required = _requirement(db_session, "case-1")
    assert ownership.first_challenge_at(db_session, case_id="case-1") is None
    first = ownership.issue_challenge(db_session, requirement=required, ttl=timedelta(minutes=30))
    ownership.issue_challenge(db_session, requirement=required, ttl=timedelta(minutes=30))
    assert ownership.first_challenge_at(db_session, case_id="case-1") == first.issued_at
