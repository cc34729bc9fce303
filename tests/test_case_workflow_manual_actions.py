"""The manual path's approval options and recoveries done outside the engine, on the time-skipping server
with fake activities (``tests.workflow_fakes``): a fee override within the policy's bounds, the action an
approval may choose, a missing price shown as a step (not a failed activity), and ``record_manual_execution``
with a matching and a mismatching transaction."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus, Pattern, RecoveryChoice
from tests.history_tools import accepted_updates
from tests.workflow_fakes import (
    ATTESTER,
    POLICY,
    FakeCase,
    facts,
    new_case,
    no_price,
    nothing_moved,
    quote,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import Decision, ExecutionCheck, ManualExecution, OwnershipProven, UserMessage
from workflows.case_workflow import OWNERSHIP_PROVER, CaseWorkflow

RESCUE_TX = "0x" + "cd" * 32
SENDER = usdt_deposit().sender


def _failed_activities(history: WorkflowHistory) -> int:
    return sum(1 for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED)


async def test_a_missing_price_is_a_completed_step_with_its_reason_not_a_failed_activity(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=[no_price()])
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="no market for it"))
        result = await handle.result()
        history = await handle.fetch_history()

    assert result.status is CaseStatus.REJECTED
    assert "no USD price configured for USDT" in fake.saved_event("no-quote-1").event.message
    assert _failed_activities(history) == 0


async def test_an_approval_sets_the_fee_within_the_policy_bounds_and_says_so(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]))  # UNLISTED_TOKEN
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        # outside the quote's bounds (1 to 5,000 USD), and not in cents: refused before history
        low = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", fee_usd=Decimal("0.50")))
        assert "outside the fee policy's bounds (1 to 5000 USD)" in low
        odd = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", fee_usd=Decimal("2.001")))
        assert "in cents" in odd
        answer = await handle.execute_update(
            CaseWorkflow.approve, Decision(engineer="alice", note="loyal customer", fee_usd=Decimal("2.00"))
        )
        result = await handle.result()
        history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (Path(__file__).parent / "histories" / "fee_override_completed_v6.json").write_text(history.to_json())

    assert answer == "approved by alice"
    assert result.status is CaseStatus.COMPLETED
    assert fake.quote_requests[-1].fee_usd == Decimal("2.00")
    settled = fake.settle_requests[0].quote
    assert settled.fee_usd == Decimal("2.00") and settled.fee_overridden
    assert "loyal customer (fee set to 2.00 USD)" in fake.saved_event("decision-approved").event.message
    assert fake.audit[0].request["fee_usd"] == "2.00"
    assert [name for name, _ in accepted_updates(history)] == ["approve"]  # the refusals left no event


async def test_an_approval_chooses_only_an_action_the_case_allows(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[], sender_is_contract=True))
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        credit = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", action=RecoveryChoice.CREDIT))
        assert "still sit at the deposit address" in credit and "action 'sweep'" in credit
        refund = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", action=RecoveryChoice.REFUND))
        assert "The sender is a contract" in refund and "action 'sweep'" in refund
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice", action=RecoveryChoice.SWEEP))
        result = await handle.result()

    assert result.status is CaseStatus.COMPLETED
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]


def _off_engine_fake(executions: list[ExecutionCheck]) -> FakeCase:
    """A contract wallet at the recipient without a key the engine holds: CONTRACT_RECIPIENT, off engine."""
    deposit = usdt_deposit()
    return FakeCase(traces=[trace(deposit)], facts=facts(deposit, signer_holds_key=False), executions=executions)


async def test_a_manual_execution_that_does_not_match_is_refused_then_a_matching_one_completes_the_case(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    rescued = deposit.model_copy(update={"tx_hash": RESCUE_TX, "recipient": "0x" + "33" * 20})
    fake = _off_engine_fake(
        [
            ExecutionCheck(problem=f"transaction {RESCUE_TX} moves 5 base units; the deposit is {deposit.amount}"),
            ExecutionCheck(transfer=rescued),
        ]
    )
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == Pattern.CONTRACT_RECIPIENT.value
        approve = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        assert "record_manual_execution" in approve
        # bad inputs, refused before history: off the roster, no hash
        assert "not on the roster" in await refused(
            handle,
            CaseWorkflow.record_manual_execution,
            ManualExecution(engineer="mallory", chain="bsc", tx_hash="0x1"),
        )
        assert "transaction hash" in await refused(
            handle, CaseWorkflow.record_manual_execution, ManualExecution(engineer="bob", chain="bsc", tx_hash=" ")
        )
        # checked on chain and wrong: the update fails with what is wrong, nothing is booked
        wrong = await refused(
            handle,
            CaseWorkflow.record_manual_execution,
            ManualExecution(engineer="bob", chain="bsc", tx_hash=RESCUE_TX),
        )
        assert "moves 5 base units" in wrong
        assert (await handle.query(CaseWorkflow.status))["status"] == "AWAITING_APPROVAL"
        assert fake.settle_requests == []
        attested = ATTESTER.attest(
            case_id=case.case_id,
            engineer="bob",
            action="record_manual_execution",
            now=await time_skipping_env.get_current_time(),  # the server's clock, which skips
        )
        answer = await handle.execute_update(
            "record_manual_execution",
            ManualExecution(engineer="bob", chain="bsc", tx_hash=RESCUE_TX, note="issuer rescue", attestation=attested),
            result_type=str,
        )
        result = await handle.result()
        history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (Path(__file__).parent / "histories" / "manual_execution_completed.json").write_text(history.to_json())

    assert "checked on bsc and booked" in answer
    assert result.status is CaseStatus.COMPLETED
    assert [r.tx_hash for r in fake.execution_requests] == [RESCUE_TX, RESCUE_TX]
    assert fake.execution_requests[0].deposit == deposit
    assert fake.quote_requests[0].on_chain is False  # the engine pays no gas for what was done outside it
    (settle,) = fake.settle_requests
    assert settle.deposit.key == deposit.key and settle.deposit.amount == rescued.amount and settle.receipts == []
    assert fake.sign_requests == [] and fake.broadcasts == []
    assert "Recovered outside the engine by bob" in fake.saved_event("manual-execution").event.message
    assert [(a.action, a.attested) for a in fake.audit] == [("record_manual_execution", True)]


async def test_a_manual_execution_follows_the_approval_rules(time_skipping_env: WorkflowEnvironment) -> None:
    """Recording what moved money is held to the approval rules: the same attestation rule, the roster."""
    fake = _off_engine_fake([ExecutionCheck(problem="unused")])
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        forged = ATTESTER.attest(
            case_id="another-case",
            engineer="bob",
            action="record_manual_execution",
            now=await time_skipping_env.get_current_time(),
        )
        message = await refused(
            handle,
            CaseWorkflow.record_manual_execution,
            ManualExecution(engineer="bob", chain="bsc", tx_hash=RESCUE_TX, attestation=forged),
        )
        assert "attestation" in message.lower()
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="not recoverable"))
        await handle.result()
    assert fake.execution_requests == []
    nothing_moved(fake)


# --- ownership of the sending address --------------------------------------------------------------


def _ownership_fake() -> FakeCase:
    """A 100 USD UNLISTED_TOKEN case under a policy that wants a proof above 50 USD."""
    deposit = usdt_deposit()
    policy = POLICY.model_copy(update={"ownership_proof_usd": Decimal("50")})
    return FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[], approval_policy=policy))


def _proof(case_id: str, now: datetime, address: str = SENDER) -> OwnershipProven:
    attestation = ATTESTER.attest(case_id=case_id, engineer=OWNERSHIP_PROVER, action="ownership_proven", now=now)
    return OwnershipProven(address=address, method="signature", reference="nonce-1", attestation=attestation)


async def test_an_approved_case_moves_nothing_until_the_claimant_proves_ownership(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = _ownership_fake()
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert [n.address for n in fake.ownership_needs] == [SENDER]
        assert "prove that you control" in fake.saved_event("awaiting-approval").event.message
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice"))
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        assert fake.sign_requests == []
        now = await time_skipping_env.get_current_time()
        typed_in = OwnershipProven(address=SENDER, method="signature", reference="x")
        assert "status API" in await refused(handle, CaseWorkflow.ownership_proven, typed_in)
        other = await refused(handle, CaseWorkflow.ownership_proven, _proof(case.case_id, now, "0x" + "99" * 20))
        assert "not the deposit's sender" in other
        forged = await refused(handle, CaseWorkflow.ownership_proven, _proof("another-case", now))
        assert "does not match" in forged
        # an answer to a question nobody asked is refused while the case waits for the proof
        assert "Nobody asked you" in await refused(handle, CaseWorkflow.user_message, UserMessage(text="hi"))
        await handle.execute_update(CaseWorkflow.ownership_proven, _proof(case.case_id, now))
        result = await handle.result()
        history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (Path(__file__).parent / "histories" / "ownership_proven_completed.json").write_text(history.to_json())

    assert result.status is CaseStatus.COMPLETED
    assert fake.keys.index("ownership-wait") < fake.keys.index("ownership-proven") < fake.keys.index("recovering")
    assert [name for name, _ in accepted_updates(history)] == ["approve", "ownership_proven"]


async def test_a_proof_that_never_comes_expires_the_case_and_nothing_moves(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = _ownership_fake()
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice"))
        result = await handle.result()  # the 10 working days are skipped
    assert result.status is CaseStatus.EXPIRED and "did not prove that you control" in result.reason
    nothing_moved(fake)


async def test_a_refund_goes_back_to_the_sender_only_after_the_ownership_proof(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """Below any proof threshold, a refund still needs the proof; then the refund to the sender and what the
    exchange keeps to the hot wallet are signed once each, before the gas top-up that pays for both."""
    deposit = usdt_deposit()
    refund_quote = quote()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]), quotes=[quote(), refund_quote])
    fake.topup_needed = True
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert fake.ownership_needs == []  # 100 USD: no proof needed for a credit
        await handle.execute_update(
            CaseWorkflow.approve, Decision(engineer="alice", note="unlisted", action=RecoveryChoice.REFUND)
        )
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        assert [n.address for n in fake.ownership_needs] == [SENDER] and fake.sign_requests == []
        assert fake.saved_event("ownership-wait").event.message.startswith("Approved for a refund to the sender.")
        await handle.execute_update(
            CaseWorkflow.ownership_proven, _proof(case.case_id, await time_skipping_env.get_current_time())
        )
        result = await handle.result()
        history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (Path(__file__).parent / "histories" / "refund_completed.json").write_text(history.to_json())

    assert result.status is CaseStatus.COMPLETED
    assert [r.refund for r in fake.quote_requests] == [False, True]
    kept = deposit.amount - refund_quote.net_estimate
    assert [(s.purpose, s.amount) for s in fake.sign_requests] == [
        ("refund", refund_quote.net_estimate),
        ("refund_fee", kept),
        ("gas_topup", None),
    ]
    assert fake.sign_requests[2].sweep_key == f"{deposit.key}:refund_fee"  # the top-up pays for both
    assert [b.idempotency_key.rsplit(":", 1)[1] for b in fake.broadcasts][:3] == ["gas_topup", "refund", "refund_fee"]
    settle = fake.settle_requests[0]
    assert settle.refund is not None and settle.refund.to == SENDER
    assert settle.refund.amount == refund_quote.net_estimate and settle.refund.tx_hash == "0xrefund"
    assert fake.keys.index("ownership-proven") < fake.keys.index("refunding") < fake.keys.index("refund-mined")
    assert [name for name, _ in accepted_updates(history)] == ["approve", "ownership_proven"]
