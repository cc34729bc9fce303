"""The manual path's approval options and recoveries done outside the engine, on the time-skipping server
with fake activities (``tests.workflow_fakes``): a fee override within the policy's bounds, the action an
approval may choose, a missing price shown as a step (not a failed activity), and ``record_manual_execution``
with a matching and a mismatching transaction."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus, Pattern, RecoveryChoice
from tests.history_tools import accepted_updates
from tests.workflow_fakes import (
    ATTESTER,
    FakeCase,
    facts,
    new_case,
    no_price,
    nothing_moved,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import Decision, ExecutionCheck, ManualExecution
from workflows.case_workflow import CaseWorkflow

RESCUE_TX = "0x" + "cd" * 32


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
        (Path(__file__).parent / "histories" / "fee_override_completed.json").write_text(history.to_json())

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
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]))
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        credit = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", action=RecoveryChoice.CREDIT))
        assert "still sit at the deposit address" in credit and "action 'sweep'" in credit
        refund = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice", action=RecoveryChoice.REFUND))
        assert "Refunds to the sender are not available" in refund
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
