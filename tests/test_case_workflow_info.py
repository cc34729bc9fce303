"""Requests for information, fast tier: an engineer asks, the case waits for the user with its SLA clock
stopped, the answer brings it back (deadlines moved by the pause), and an unanswered question expires the
case after ``info_timeout_days`` working days with nothing moved."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus
from recovery.working_days import SlaTerms, WorkingCalendar
from tests.workflow_fakes import FakeCase, facts, refused, running, saved_soon, trace, usdt_deposit, wait_for_status
from workflows.case_messages import Decision, InfoRequest, UserMessage
from workflows.case_workflow import CaseWorkflow


def _manual_case() -> FakeCase:
    deposit = usdt_deposit()
    return FakeCase(
        traces=[trace(deposit)],
        facts=facts(deposit, credited_chains=[]),
        terms=SlaTerms(calendar=WorkingCalendar(), info_timeout_days=10),
    )


async def test_question_answer_and_the_sla_pause(time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    fake = _manual_case()
    async with running(env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        target_before = datetime.fromisoformat(state["sla_target_at"])
        assert "nobody asked" in (await refused(handle, CaseWorkflow.user_message, UserMessage(text="hi"))).lower()
        assert "needs the question" in await refused(
            handle, CaseWorkflow.request_info, InfoRequest(engineer="alice", question=" ")
        )

        asked = await handle.execute_update(
            CaseWorkflow.request_info,
            InfoRequest(engineer="alice", question="Which wallet did you send from?"),
        )
        assert asked == "asked the user"
        state = await wait_for_status(handle, CaseStatus.AWAITING_USER)
        assert state["paused"] == "true"
        assert "AWAITING_USER" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob"))
        question = fake.saved_event("info-request-1")
        assert question.event.message.startswith("A recovery engineer asks: Which wallet did you send from?")
        assert question.handling is not None and question.handling.paused

        await env.sleep(timedelta(days=3))  # the user takes three days to answer
        assert "empty" in await refused(handle, CaseWorkflow.user_message, UserMessage(text="  "))
        assert "under 2000" in await refused(handle, CaseWorkflow.user_message, UserMessage(text="x" * 2001))
        answered = await handle.execute_update(CaseWorkflow.user_message, UserMessage(text="Trust Wallet, 0xab..12"))
        assert answered == "answer received"
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await saved_soon(fake, "user-answer-1")
        assert fake.saved_event("user-answer-1").event.message == "You answered: Trust Wallet, 0xab..12"
        # the clock stood still: the target moved by the time the case waited for the user
        moved = datetime.fromisoformat(state["sla_target_at"]) - target_before
        assert timedelta(days=3) <= moved < timedelta(days=3, minutes=5), moved
        assert state["paused"] == "false"

        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="bob", note="wallet checked"))
        result = await handle.result()
        if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
            history = await handle.fetch_history()
            (Path(__file__).parent / "histories" / "info_answered_approved.json").write_text(history.to_json())

    assert result.status is CaseStatus.COMPLETED
    assert [(r.action, r.engineer) for r in fake.audit] == [("request_info", "alice"), ("approve", "bob")]


async def test_unanswered_question_expires_the_case(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _manual_case()
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        asked = await handle.execute_update(
            CaseWorkflow.request_info, InfoRequest(engineer="alice", question="Please sign the ownership message.")
        )
        assert asked == "asked the user"
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        result = await handle.result()  # nobody answers: the server skips ten working days

    assert result.status is CaseStatus.EXPIRED
    assert "did not answer" in result.reason and "within 10 working days" in result.reason
    assert fake.keys[-2:] == ["info-request-1", "expired"]
    assert fake.saved_event("expired").event.status is CaseStatus.EXPIRED
    assert fake.sign_requests == [] and fake.settle_requests == []
