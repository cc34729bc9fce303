"""Who may approve, fast tier: the roster's tiers and limits, four-eyes above ``four_eyes_usd``, the
automatic limit, attested and typed-in approvals, and the refusals the Temporal UI shows in its update
dialog. ``CaseWorkflow`` on the time-skipping server with the fake activities of ``tests.workflow_fakes``."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus, Pattern
from recovery.roster import Engineer, Tier
from services.attesting import Attester
from tests.history_tools import accepted_updates
from tests.workflow_fakes import (
    ATTESTER,
    CLAIMANT,
    POLICY,
    FakeCase,
    facts,
    new_case,
    quote,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow

HISTORIES = Path(__file__).parent / "histories"


def _worth(usd: str, *, manual: bool) -> FakeCase:
    """A USDT deposit quoted at ``usd``: UNLISTED_TOKEN (manual) or WRONG_NETWORK_SAME_KEY (automatic)."""
    deposit = usdt_deposit()
    overrides: dict[str, Any] = {"credited_chains": []} if manual else {}
    return FakeCase(
        traces=[trace(deposit)],
        facts=facts(deposit, **overrides),
        quotes=[quote(amount_usd=Decimal(usd))],
    )


async def _attested(
    env: WorkflowEnvironment, case_id: str, engineer: str, note: str = "", action: str = "approve"
) -> Decision:
    """Attested as the CLI does, at the test server's time (which runs ahead of the wall clock once a
    test has skipped time)."""
    now = await env.get_current_time()
    attestation = ATTESTER.attest(case_id=case_id, engineer=engineer, action=action, now=now)
    return Decision(engineer=engineer, note=note, attestation=attestation)


async def test_four_eyes_case_needs_two_distinct_engineers_the_second_attested(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = _worth("60000", manual=False)  # automatic pattern, but above the automatic and four-eyes limits
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["approvals_needed"] == "2" and state["approvals"] == ""
        refusal = await refused(handle, CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "alice"))
        assert "four-eyes" in refusal and "first-line" in refusal
        # under the dev rule a typed-in approval counts only on a single-approval case
        assert "must be attested" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob"))

        first = await handle.execute_update(
            CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "bob", "sender verified")
        )
        assert first == "approved by bob: 1 of 2 approvals, waiting for a second"
        state = await handle.query(CaseWorkflow.status)
        assert state["status"] == "AWAITING_APPROVAL" and state["approvals"] == "bob (attested)"
        assert fake.sign_requests == []  # nothing moves on one approval
        evidence = await handle.query(CaseWorkflow.evidence)
        assert evidence.facts is not None and evidence.facts.deposit == fake.facts.deposit
        assert evidence.facts.owner_user_id == CLAIMANT and evidence.facts.signer_holds_key
        assert evidence.classification is not None and evidence.classification.route == "MANUAL"
        assert "above the automatic limit" in evidence.classification.reason
        assert evidence.quote is not None and evidence.quote.amount_usd == Decimal("60000")
        assert [(a.engineer, a.attested, a.note) for a in evidence.approvals] == [("bob", True, "sender verified")]

        again = await refused(handle, CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "bob"))
        assert "already approved" in again
        typed = await refused(handle, CaseWorkflow.approve, Decision(engineer="chen"))
        assert "second approval of a four-eyes case must be attested" in typed

        second = await handle.execute_update(
            CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "chen")
        )
        result = await handle.result()
        history = await handle.fetch_history()

    assert second == "approved by chen"
    assert result.status is CaseStatus.COMPLETED and result.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert fake.keys == [
        "tracing",
        "classified",
        "above-auto-limit",
        "awaiting-approval",
        "approval-1",
        "decision-approved",
        "recovering",
        "gas-topup",
        "sweep-mined",
    ]
    assert "above the automatic limit of 20,000 USD" in (fake.saved_event("above-auto-limit").reason or "")
    assert "needs 2 approvals" in fake.saved_event("awaiting-approval").event.message
    assert fake.saved_event("approval-1").event.message.startswith("Approved by bob (attested), 1 of 2 approvals")
    assert fake.saved_event("decision-approved").event.message == (
        "Approved by bob (attested) and chen (attested): sender verified"
    )
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]  # signed once
    assert [(r.key, r.engineer, r.action, r.attested) for r in fake.audit] == [
        ("approve-1", "bob", "approve", True),
        ("approve-2", "chen", "approve", True),
    ]
    assert fake.audit[0].before["approvals"] == [] and fake.audit[0].after["approvals"] == ["bob (attested)"]
    assert fake.audit[1].request["engineer"] == "chen" and fake.audit[1].request["attestation"] is not None
    assert len(fake.settle_requests) == 1
    # the five refusals left no trace in history: only the two attested approvals are there
    accepted = [
        (name, args[0]["engineer"], args[0]["attestation"] is not None) for name, args in accepted_updates(history)
    ]
    assert accepted == [("approve", "bob", True), ("approve", "chen", True)]
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (HISTORIES / "four_eyes_audited_v6.json").write_text(history.to_json())


async def test_either_engineer_can_reject_a_four_eyes_case_after_the_first_approval(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = _worth("75000", manual=True)
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "bob"))
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="chen", reason="sender not verified"))
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and "sender not verified" in result.reason
    assert fake.keys[-3:] == ["approval-1", "decision-rejected", "rejected"]
    assert fake.sign_requests == [] and fake.settle_requests == []


async def test_approval_limits_and_typed_in_approvals_on_a_single_approvalnew_case(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = _worth("5000", manual=True)
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["approvals_needed"] == "1"
        refusal = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        assert refusal.startswith("alice's approval limit is 1000 USD and this case is 5000 USD")
        answer = await handle.execute_update(CaseWorkflow.approve, Decision(engineer="bob", note="checked"))
        result = await handle.result()

    assert answer == "approved by bob" and result.status is CaseStatus.COMPLETED
    assert fake.saved_event("decision-approved").event.message == "Approved by bob (typed in): checked"


async def test_automatic_limit_sends_a_large_automatic_case_to_an_engineer_and_not_a_small_one(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    small = _worth("19999", manual=False)
    async with running(time_skipping_env, small) as handle:
        assert (await handle.result()).status is CaseStatus.COMPLETED
    assert "above-auto-limit" not in small.keys and "awaiting-approval" not in small.keys

    large = _worth("20001", manual=False)
    async with running(time_skipping_env, large) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["approvals_needed"] == "1"
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="chen", reason="recipient unverified"))
        assert (await handle.result()).status is CaseStatus.REJECTED
    assert large.keys[:4] == ["tracing", "classified", "above-auto-limit", "awaiting-approval"]


async def test_engineer_cannot_decide_on_a_case_of_their_own_account(time_skipping_env: WorkflowEnvironment) -> None:
    policy = POLICY.model_copy(
        update={"roster": [*POLICY.roster, Engineer(name="dana", tier=Tier.EXPERT, user_id=CLAIMANT)]}
    )
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[], approval_policy=policy))
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        for update in (CaseWorkflow.approve, CaseWorkflow.reject):
            refusal = await refused(handle, update, Decision(engineer="dana", reason="mine"))
            assert "own account" in refusal
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="duplicate claim"))
        assert (await handle.result()).status is CaseStatus.REJECTED


async def test_attestations_that_do_not_prove_the_sender_arerefused(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _worth("500", manual=True)
    case = new_case()
    stranger = Attester(Ed25519PrivateKey.generate())
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)

        now = await time_skipping_env.get_current_time()
        forged = stranger.attest(case_id=case.case_id, engineer="bob", action="approve", now=now)
        untrusted = await refused(handle, CaseWorkflow.approve, Decision(engineer="bob", attestation=forged))
        assert "does not trust" in untrusted

        other_case = await _attested(time_skipping_env, "case-some-other-case", "bob")
        assert "does not match" in await refused(handle, CaseWorkflow.approve, other_case)

        for_someone_else = await _attested(time_skipping_env, case.case_id, "chen")
        impostor = Decision(engineer="bob", attestation=for_someone_else.attestation)
        assert "does not match" in await refused(handle, CaseWorkflow.approve, impostor)

        for_reject = await _attested(time_skipping_env, case.case_id, "bob", action="reject")
        assert "does not match" in await refused(handle, CaseWorkflow.approve, for_reject)

        past = now - timedelta(hours=1)
        stale = ATTESTER.attest(case_id=case.case_id, engineer="bob", action="approve", now=past)
        assert "expired" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob", attestation=stale))

        tampered = await _attested(time_skipping_env, case.case_id, "bob")
        assert tampered.attestation is not None
        later = tampered.attestation.model_copy(
            update={"expires_at": tampered.attestation.expires_at + timedelta(days=1)}
        )
        assert "does not match" in await refused(
            handle, CaseWorkflow.approve, Decision(engineer="bob", attestation=later)
        )

        await handle.execute_update(CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "bob"))
        result = await handle.result()
    assert result.status is CaseStatus.COMPLETED
    assert fake.saved_event("decision-approved").event.message == "Approved by bob (attested)"


async def test_no_typed_in_approval_counts_when_the_policy_says_never(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    strict = POLICY.model_copy(update={"unattested": "never"})
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[], approval_policy=strict))
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert "must be attested" in await refused(handle, CaseWorkflow.approve, Decision(engineer="bob"))
        await handle.execute_update(CaseWorkflow.approve, await _attested(time_skipping_env, case.case_id, "bob"))
        assert (await handle.result()).status is CaseStatus.COMPLETED
