"""Service levels of a manual case, fast tier: 15 and 30 working days on the time-skipping server across
weekends and a holiday, with reminders, escalation at the target and breach at the deadline; and the
engineers' ``escalate`` and ``assign`` updates with their validators."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus
from recovery.working_days import SlaTerms, WorkingCalendar
from tests.workflow_fakes import (
    FakeCase,
    Handle,
    facts,
    refused,
    running,
    saved_soon,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows import search_attributes as sa
from workflows.case_messages import Assignment, Decision, Escalation
from workflows.case_workflow import CaseWorkflow

HISTORIES = Path(__file__).parent / "histories"


async def _with_a_holiday_ahead(env: WorkflowEnvironment) -> WorkingCalendar:
    """Weekends off, and a holiday on the second working day from the test server's clock (which earlier
    tests may have moved far ahead of the wall clock)."""
    now = await env.get_current_time()
    plain = WorkingCalendar()
    return WorkingCalendar(holidays=[plain.add_working_days(now, 2).date()])


def _manual_case(calendar: WorkingCalendar) -> FakeCase:
    deposit = usdt_deposit()
    return FakeCase(
        traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]), terms=SlaTerms(calendar=calendar)
    )


async def _skip_to(env: WorkflowEnvironment, moment: datetime) -> None:
    now = await env.get_current_time()
    if moment > now:
        await env.sleep(moment - now)


async def _search_attributes(handle: Handle) -> dict[str, object]:
    described = await handle.describe()
    attributes = described.typed_search_attributes
    return {key.name: attributes.get(key) for key in sa.ALL}


async def test_thirty_working_days_remind_escalate_and_breach(time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    calendar = await _with_a_holiday_ahead(env)
    fake = _manual_case(calendar)
    async with running(env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        handling = fake.saved_event("awaiting-approval").handling
        assert handling is not None and handling.sla_started_at is not None
        started = handling.sla_started_at
        target, deadline = (
            datetime.fromisoformat(state["sla_target_at"]),
            datetime.fromisoformat(state["sla_deadline_at"]),
        )
        assert target == calendar.add_working_days(started, 15) == handling.sla_target_at
        assert deadline == calendar.add_working_days(started, 30) == handling.sla_deadline_at
        # the holiday costs one working day: without it the target would be a working day earlier
        assert target == WorkingCalendar().add_working_days(started, 16)
        assert calendar.is_working_day(target.date()) and calendar.is_working_day(deadline.date())
        assert fake.sla_requests[0].start == started.date()
        attributes = await _search_attributes(handle)
        assert attributes["SlaState"] == "on_track" and attributes["Tier"] == "first_line"
        assert attributes["SlaDeadline"] == deadline and attributes["SlaBreached"] is False

        await _skip_to(env, target - timedelta(minutes=5))
        await saved_soon(fake, "sla-due_soon")
        state = await handle.query(CaseWorkflow.status)
        assert state["tier"] == "first_line" and state["sla_state"] == "due_soon"
        assert fake.keys[-4:] == ["awaiting-approval", "sla-reminder-1", "sla-reminder-2", "sla-due_soon"]

        await _skip_to(env, target + timedelta(minutes=5))
        await saved_soon(fake, "sla-target")
        state = await handle.query(CaseWorkflow.status)
        assert state["tier"] == "engineering" and state["sla_state"] == "target_missed"
        assert "Escalated: SLA target reached (15 working days)" in fake.saved_event("sla-target").event.message
        # the target escalated the case past first line: alice may no longer approve it
        assert "engineering tier" in await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))

        await _skip_to(env, deadline + timedelta(minutes=5))
        await saved_soon(fake, "sla-deadline")
        breach = fake.saved_event("sla-deadline")
        assert "did not finish your case within 30 working days" in breach.event.message
        assert breach.handling is not None and breach.handling.sla_state == "breached"
        attributes = await _search_attributes(handle)
        assert attributes["SlaState"] == "breached" and attributes["SlaBreached"] is True
        assert attributes["Tier"] == "engineering" and attributes["CaseStatus"] == "AWAITING_APPROVAL"

        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="chen", reason="no owner proof"))
        result = await handle.result()
        history = await handle.fetch_history()
    assert result.status is CaseStatus.REJECTED
    assert fake.keys[-3:] == ["sla-deadline", "decision-rejected", "rejected"]
    assert fake.sign_requests == []
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (HISTORIES / "sla_breached_rejected.json").write_text(history.to_json())


async def test_escalate_and_assign_with_their_validators(time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    fake = _manual_case(await _with_a_holiday_ahead(env))
    async with running(env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert "needs a reason" in await refused(handle, CaseWorkflow.escalate, Escalation(engineer="alice", reason=""))
        assert "roster" in await refused(handle, CaseWorkflow.escalate, Escalation(engineer="mallory", reason="x"))
        assert "roster" in await refused(handle, CaseWorkflow.assign, Assignment(engineer="alice", to="mallory"))

        answer = await handle.execute_update(
            CaseWorkflow.escalate, Escalation(engineer="alice", reason="the token looks like a scam")
        )
        assert answer == "escalated to engineering"
        assert "engineering tier" in await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))

        assert await handle.execute_update(CaseWorkflow.assign, Assignment(engineer="alice", to="bob")) == (
            "assigned to bob"
        )
        assert "already" in await refused(handle, CaseWorkflow.assign, Assignment(engineer="alice", to="bob"))
        to_expert = await handle.execute_update(CaseWorkflow.escalate, Escalation(engineer="bob", reason="expert"))
        assert to_expert == "escalated to expert"
        last = await refused(handle, CaseWorkflow.escalate, Escalation(engineer="chen", reason="again"))
        assert "last line" in last

        state = await handle.query(CaseWorkflow.status)
        assert (state["tier"], state["assigned_to"]) == ("expert", "bob")
        assert "bob" in (await handle.describe()).typed_search_attributes.get(sa.ASSIGNED_TO, "")
        # bob (engineering) is below the expert tier now; chen approves
        assert "expert tier" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob"))
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="chen"))
        result = await handle.result()

    assert result.status is CaseStatus.COMPLETED
    escalated = fake.saved_event("escalated-1")
    assert escalated.event.message == (
        "Escalated by alice from the first-line to the engineering tier: the token looks like a scam"
    )
    assert escalated.handling is not None and escalated.handling.tier == "engineering"
    assert [(r.key, r.engineer) for r in fake.audit] == [
        ("escalate-1", "alice"),
        ("assign-2", "alice"),
        ("escalate-3", "bob"),
        ("approve-4", "chen"),
    ]
    assert (fake.audit[0].before["tier"], fake.audit[0].after["tier"]) == ("first_line", "engineering")
    assert (fake.audit[1].before["assigned_to"], fake.audit[1].after["assigned_to"]) == (None, "bob")
    assert fake.audit[3].after["decision"] is None and fake.audit[3].after["approvals"] == ["chen (typed in)"]
    assigned = fake.saved_event("assigned-1")
    assert assigned.event.message == "Assigned to bob by alice"
    assert assigned.handling is not None and assigned.handling.assigned_to == "bob"
    assert fake.keys[fake.keys.index("awaiting-approval") :][:4] == [
        "awaiting-approval",
        "escalated-1",
        "assigned-1",
        "escalated-2",
    ]


async def test_a_vip_case_starts_at_the_vip_desk(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(
        traces=[trace(deposit)],
        facts=facts(deposit, credited_chains=[], claimant_vip=True),
        terms=SlaTerms(calendar=await _with_a_holiday_ahead(time_skipping_env)),
    )
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["tier"] == "vip"
        attributes = await _search_attributes(handle)
        assert attributes["Vip"] is True and attributes["Tier"] == "vip"
        # first and second line are skipped: alice and bob may not approve, the VIP desk may
        assert "vip tier" in await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        assert "vip tier" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob"))
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="vera", note="VIP desk"))
        result = await handle.result()
    assert result.status is CaseStatus.COMPLETED
    handling = fake.saved_event("awaiting-approval").handling
    assert handling is not None and handling.tier == "vip"
