"""Fee policies in the case workflow, on the time-skipping server with fake activities: a quote the policy
says needs accepting waits for the user's attested answer (accepted, declined, unanswered), and manual work
below the policy's eligibility floor is refused before it reaches an engineer."""

from __future__ import annotations

import os
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus, Pattern, Quote
from tests.history_tools import accepted_updates
from tests.workflow_fakes import (
    ATTESTER,
    FakeCase,
    facts,
    new_case,
    nothing_moved,
    quote,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import QuoteAnswer
from workflows.case_workflow import OWNERSHIP_PROVER, CaseWorkflow


def _needs_acceptance() -> Quote:
    return quote().model_copy(update={"acceptance_required": True, "basis": "5 % of the value", "policy": "default"})


def _answer(case_id: str, now: datetime, accept: bool) -> QuoteAnswer:
    attestation = ATTESTER.attest(case_id=case_id, engineer=OWNERSHIP_PROVER, action="fee_acceptance", now=now)
    return QuoteAnswer(accept=accept, attestation=attestation)


def _automatic(quotes: list[Quote | Exception]) -> FakeCase:
    deposit = usdt_deposit()
    return FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=quotes)


async def test_nothing_is_signed_before_the_user_accepts_the_quote(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _automatic([_needs_acceptance()])
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        offered = fake.saved_event("quote-offered").event.message
        assert "fee 5 USDT ($5.00, 5 % of the value)" in offered and "fee-acceptance" in offered, offered
        assert fake.sign_requests == []
        typed_in = await refused(handle, CaseWorkflow.fee_acceptance, QuoteAnswer(accept=True))
        assert "status API" in typed_in
        forged = await refused(
            handle,
            CaseWorkflow.fee_acceptance,
            _answer("another-case", await time_skipping_env.get_current_time(), True),
        )
        assert "does not match" in forged
        now = await time_skipping_env.get_current_time()
        assert (
            await handle.execute_update(CaseWorkflow.fee_acceptance, _answer(case.case_id, now, True))
            == "quote accepted"
        )
        result = await handle.result()
        history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        (Path(__file__).parent / "histories" / "fee_accepted_completed_v6.json").write_text(history.to_json())

    assert result.status is CaseStatus.COMPLETED
    assert fake.keys.index("quote-offered") < fake.keys.index("quote-accepted") < fake.keys.index("recovering")
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]
    assert [name for name, _ in accepted_updates(history)] == ["fee_acceptance"]  # the refusals left no event


async def test_a_declined_quote_cancels_the_case_and_nothing_moves(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _automatic([_needs_acceptance()])
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        now = await time_skipping_env.get_current_time()
        assert (
            await handle.execute_update(CaseWorkflow.fee_acceptance, _answer(case.case_id, now, False))
            == "quote declined"
        )
        result = await handle.result()
    assert result.status is CaseStatus.CANCELLED and "You declined the quote (fee 5.00 USD)" in result.reason
    assert fake.keys[-1] == "cancelled"
    nothing_moved(fake)


async def test_an_unanswered_quote_expires_after_the_working_days(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _automatic([_needs_acceptance()])
    async with running(time_skipping_env, fake) as handle:
        started = await time_skipping_env.get_current_time()
        result = await handle.result()  # the five working days are skipped
        ended = await time_skipping_env.get_current_time()
    assert result.status is CaseStatus.EXPIRED and "did not accept the quote within 5 working days" in result.reason
    assert ended - started >= timedelta(days=5)  # at least five calendar days went by
    nothing_moved(fake)


async def test_manual_work_below_the_policys_floor_is_refused_before_an_engineer_sees_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()  # 100 USDT, an UNLISTED_TOKEN case for an engineer (no chain credits it)
    floored = quote().model_copy(update={"eligible_from_usd": Decimal("500")})
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]), quotes=[floored])
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.UNLISTED_TOKEN
    assert "only for deposits worth more than 500 USD; this one is worth 100.00 USD" in result.reason
    assert "awaiting-approval" not in fake.keys
    nothing_moved(fake)


async def test_the_floor_does_not_apply_to_automatic_recoveries(time_skipping_env: WorkflowEnvironment) -> None:
    floored = quote().model_copy(update={"eligible_from_usd": Decimal("500")})
    fake = _automatic([floored])
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
    assert result.status is CaseStatus.COMPLETED
