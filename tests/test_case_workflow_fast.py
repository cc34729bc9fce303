"""The fast tier of the case workflow: every branch of ``CaseWorkflow`` on the time-skipping server with
fake activities under the real activity names (``tests.workflow_fakes``). No chain, database or API: the
fakes answer with canned domain records and record what the workflow asked for.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from recovery.models import CaseStatus, Pattern, TxReceipt
from tests.history_tools import accepted_updates, activity_summaries
from tests.workflow_fakes import (
    CLAIMANT,
    SETTLEMENT,
    FakeCase,
    facts,
    new_case,
    no_price,
    nothing_moved,
    quote,
    receipt,
    refused,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
    xrp_deposit,
)
from workflows import search_attributes as sa
from workflows.case_messages import Decision
from workflows.case_workflow import CaseWorkflow

# --- 1. rejected by classification ----------------------------------------------------------------


async def test_transaction_not_found_is_rejected_without_quote_or_signing(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    fake = FakeCase(traces=[trace(None, chain=None, found=False)], facts=facts(None))
    async with running(time_skipping_env, fake, new_case(chain=None, log_index=None)) as handle:
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.NOT_FOUND
    assert "was not found" in result.reason and result.settlement is None
    assert fake.keys == ["tracing", "rejected"]
    assert fake.statuses == ["TRACING", "REJECTED"]
    assert fake.saved_event("rejected").reason == result.reason
    assert fake.facts_requests[0].vanished_from_block is None
    assert fake.quote_requests == []
    nothing_moved(fake)


# --- 2. automatic recovery ------------------------------------------------------------------------


async def test_automatic_recovery_waits_for_confirmations_then_sweeps_tops_up_and_settles(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(
        traces=[trace(deposit, confirmations=1, required=3), trace(deposit, confirmations=3, required=3)],
        facts=facts(deposit),
        # mined, then the rebroadcast while confirming finds it deep enough
        sweep_receipts=[receipt("0xsweep", confirmations=1), receipt("0xsweep", confirmations=3)],
    )
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
        history = await handle.fetch_history()
        description = await handle.describe()
    if os.environ.get("RECORD_HISTORIES"):  # the newest workflow version, for tests/test_replay.py
        (Path(__file__).parent / "histories" / "automatic_confirmed_v5.json").write_text(history.to_json())

    assert result.status is CaseStatus.COMPLETED and result.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert result.settlement == SETTLEMENT
    # the Web UI's timeline reads like the case, not like a wall of save_case rows
    assert activity_summaries(history) == [
        "timeline: tracing (TRACING)",
        "trace 0xabab…abab on bsc",
        "timeline: deposit-confirmations-1 (WAITING_CONFIRMATIONS)",
        "trace 0xabab…abab on bsc",
        "gather the facts of 0xabab…abab (owner, code, credits, token checks)",
        "timeline: classified (CLASSIFIED)",
        "quote the fee of 100 USDT",
        "timeline: recovering (RECOVERING)",
        "sign the sweep",
        "sign the gas top-up, if the address needs gas",
        "send the gas top-up 0xgas_topup",
        "timeline: gas-topup (RECOVERING)",
        "send the sweep 0xsweep",
        "timeline: sweep-mined (RECOVERING)",
        "re-send the sweep if it was dropped",
        "credit the user and book the fee (one transaction)",
    ]
    assert fake.keys == ["tracing", "deposit-confirmations-1", "classified", "recovering", "gas-topup", "sweep-mined"]
    assert fake.statuses == ["TRACING", "WAITING_CONFIRMATIONS", "CLASSIFIED"] + ["RECOVERING"] * 3
    classified = fake.saved_event("classified")
    assert (classified.pattern, classified.chain, classified.asset, classified.amount) == (
        Pattern.WRONG_NETWORK_SAME_KEY,
        "bsc",
        "USDT",
        deposit.amount,
    )
    assert fake.saved_event("recovering").quote == quote()
    assert fake.saved_event("gas-topup").topup_tx_hash == "0xgas_topup"
    assert fake.saved_event("sweep-mined").sweep_tx_hash == "0xsweep"

    # the deposit was traced again after a (skipped) timer
    assert len(fake.trace_requests) == 2
    assert sum(e.HasField("timer_fired_event_attributes") for e in history.events) >= 2  # deposit + sweep waits
    assert fake.quote_requests[0].on_chain is True

    # the sweep is signed first, the top-up is sized from it; the top-up is mined before the sweep is sent
    assert [(s.purpose, s.idempotency_key, s.sweep_key) for s in fake.sign_requests] == [
        ("sweep", f"{deposit.key}:sweep", None),
        ("gas_topup", f"{deposit.key}:gas_topup", f"{deposit.key}:sweep"),
    ]
    assert [b.idempotency_key for b in fake.broadcasts] == [
        f"{deposit.key}:gas_topup",
        f"{deposit.key}:sweep",
        f"{deposit.key}:sweep",  # re-sent (same signed transaction) while waiting for its confirmations
    ]
    assert fake.status_requests == []  # new cases re-broadcast instead of polling transaction_status

    [settle] = fake.settle_requests
    assert settle.deposit == deposit and settle.quote == quote() and settle.user_id == CLAIMANT
    assert [(r.tx_hash, r.confirmations) for r in settle.receipts] == [("0xgas_topup", 3), ("0xsweep", 3)]

    attributes = description.typed_search_attributes
    assert attributes.get(sa.CASE_STATUS) == "COMPLETED"
    assert attributes.get(sa.PATTERN) == "WRONG_NETWORK_SAME_KEY"
    assert attributes.get(sa.ASSET) == "USDT" and attributes.get(sa.AMOUNT_USD) == 100


async def test_automatic_recovery_without_gas_top_up_sends_only_the_sweep(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), topup_needed=False)
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()

    assert result.status is CaseStatus.COMPLETED
    assert fake.keys == ["tracing", "classified", "recovering", "sweep-mined"]
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]
    assert [b.idempotency_key for b in fake.broadcasts] == [f"{deposit.key}:sweep"]
    assert [r.tx_hash for r in fake.settle_requests[0].receipts] == ["0xsweep"]


# --- 3. and 4. the manual route ---------------------------------------------------------------------


def _manual_fake() -> FakeCase:
    """USDT credited on no chain: UNLISTED_TOKEN, recoverable by a sweep once an engineer approves."""
    deposit = usdt_deposit()
    return FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]))


async def test_manual_case_completes_after_an_engineer_approves(time_skipping_env: WorkflowEnvironment) -> None:
    fake = _manual_fake()
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == "UNLISTED_TOKEN" and "approve or reject" in state["waiting_for"]
        assert fake.sign_requests == []  # nothing happens before the decision
        answer = await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice", reason="checked"))
        result = await handle.result()
        final = await handle.query(CaseWorkflow.status)

    assert answer == "approved by alice"
    assert result.status is CaseStatus.COMPLETED and result.pattern is Pattern.UNLISTED_TOKEN
    assert result.settlement == SETTLEMENT
    assert fake.keys == [
        "tracing",
        "classified",
        "awaiting-approval",
        "decision-approved",
        "recovering",
        "gas-topup",
        "sweep-mined",
    ]
    assert fake.saved_event("decision-approved").event.message == "Approved by alice (typed in): checked"
    assert len(fake.quote_requests) == 1  # the quote made before waiting is the one used
    assert [s.purpose for s in fake.sign_requests] == ["sweep", "gas_topup"]
    assert len(fake.settle_requests) == 1 and fake.settle_requests[0].quote == quote()
    assert final["status"] == "COMPLETED"


async def test_engineer_rejects_with_a_reason_after_validators_refuse_bad_decisions(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(
        # 0 of 12 confirmations, one block a minute: the case sleeps (10 minutes at most) before classifying
        traces=[trace(deposit, confirmations=0, required=12, block_time_ms=60_000), trace(deposit, required=3)],
        facts=facts(deposit, credited_chains=[]),
    )
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.WAITING_CONFIRMATIONS)
        message = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        assert "not awaiting approval" in message

        await time_skipping_env.sleep(timedelta(minutes=11))  # skip the confirmations timer
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert "roster" in await refused(handle, CaseWorkflow.approve, Decision(engineer="mallory"))
        assert "roster" in await refused(handle, CaseWorkflow.reject, Decision(engineer="mallory", reason="no"))
        assert "needs a reason" in await refused(handle, CaseWorkflow.reject, Decision(engineer="bob", reason=" "))

        answer = await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="token is a scam"))
        result = await handle.result()
        history = await handle.fetch_history()

    assert answer == "rejected by bob"
    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.UNLISTED_TOKEN
    assert "token is a scam" in result.reason
    assert fake.keys == [
        "tracing",
        "deposit-confirmations-0",
        "classified",
        "awaiting-approval",
        "decision-rejected",
        "rejected",
    ]
    assert fake.saved_event("rejected").reason == result.reason
    assert fake.saved_event("decision-rejected").event.message == "Rejected by bob: token is a scam"
    # refused by the validators before they reached the history: only bob's rejection is there
    assert accepted_updates(history) == [
        (
            "reject",
            [
                {
                    "engineer": "bob",
                    "reason": "token is a scam",
                    "note": "",
                    "attestation": None,
                    "fee_usd": None,
                    "action": None,
                }
            ],
        )
    ]
    nothing_moved(fake)


# --- 5. quotes --------------------------------------------------------------------------------------


async def test_unquotable_automatic_case_waits_for_an_engineer_who_rejects_it(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=[no_price()])
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == "WRONG_NETWORK_SAME_KEY"
        # approving quotes again; still no price, so the approval is refused and says what to do
        refusal = await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        assert "Configure a USD price" in refusal
        assert (await handle.query(CaseWorkflow.status))["status"] == "AWAITING_APPROVAL"
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="no market for it"))
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert "no market for it" in result.reason
    assert fake.keys == [
        "tracing",
        "classified",
        "no-quote-1",
        "awaiting-approval",
        "no-quote-2",
        "decision-rejected",
        "rejected",
    ]
    assert "no USD price configured for USDT" in fake.saved_event("no-quote-1").event.message
    assert len(fake.quote_requests) == 2  # non-retryable: one attempt each time, no retries
    nothing_moved(fake)


async def test_unquotable_case_is_quoted_again_on_approval_and_recovered(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=[no_price(), quote()])
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert await handle.execute_update(CaseWorkflow.approve, Decision(engineer="bob")) == "approved by bob"
        result = await handle.result()

    assert result.status is CaseStatus.COMPLETED and result.settlement == SETTLEMENT
    assert fake.keys[:5] == ["tracing", "classified", "no-quote-1", "awaiting-approval", "decision-approved"]
    assert fake.saved_event("recovering").quote == quote()
    assert len(fake.quote_requests) == 2
    assert fake.settle_requests[0].quote == quote()


async def test_deposit_that_does_not_cover_the_cost_is_rejected_too_small(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit(amount=10**15)
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=[quote(amount=10**15, net=0)])
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.TOO_SMALL
    assert "does not cover the recovery cost" in result.reason
    assert fake.keys == ["tracing", "classified", "rejected"]
    assert fake.saved_event("rejected").pattern is Pattern.TOO_SMALL
    nothing_moved(fake)


# --- 6. a sweep that reverted -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sweep_receipts", "keys_before"),
    [
        pytest.param([receipt("0xsweep", succeeded=False)], ["gas-topup"], id="reverted-when-mined"),
        pytest.param(  # mined, then re-included after a reorg and reverted this time
            [receipt("0xsweep", confirmations=1), receipt("0xsweep", succeeded=False)],
            ["gas-topup", "sweep-mined"],
            id="reverted-after-reorg",
        ),
    ],
)
async def test_reverted_sweep_fails_the_case_and_settles_nothing(
    time_skipping_env: WorkflowEnvironment, sweep_receipts: list[TxReceipt], keys_before: list[str]
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), sweep_receipts=sweep_receipts)
    async with running(time_skipping_env, fake) as handle:
        with pytest.raises(WorkflowFailureError) as failed:
            await handle.result()

    cause = failed.value.cause
    assert isinstance(cause, ApplicationError) and cause.non_retryable
    assert "reverted" in cause.message and "nothing was credited" in cause.message
    assert fake.keys == ["tracing", "classified", "recovering", *keys_before, "sweep-reverted"]
    assert fake.saved_event("sweep-reverted").event.message == cause.message
    assert fake.settle_requests == []


# --- 7. a deposit reorganised away ----------------------------------------------------------------------


async def test_deposit_reorged_away_while_confirming_is_rejected_not_found(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(
        traces=[
            trace(deposit, block_number=41, confirmations=2, required=12),
            trace(deposit, found=False, required=12),
        ],
        facts=facts(None),
    )
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.NOT_FOUND
    assert "block 41" in result.reason and "reorganisation" in result.reason
    assert fake.keys == ["tracing", "deposit-confirmations-2", "rejected"]
    [request] = fake.facts_requests
    assert request.vanished_from_block == 41 and not request.trace.found
    assert fake.quote_requests == []
    nothing_moved(fake)


# --- 8. a credit, no transaction ----------------------------------------------------------------------


async def test_missing_memo_on_shared_address_is_credited_without_a_transaction(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """The classifier routes CREDIT only manually (no memo on the shared address: an engineer verifies)."""
    tx_hash = "A1" * 32
    deposit = xrp_deposit(tx_hash)
    fake = FakeCase(
        traces=[trace(deposit, tx_hash=tx_hash, chain="xrp", confirmations=1, required=1)],
        facts=facts(
            deposit, family="xrpl", owner_user_id=None, shared_address=True, signer_holds_key=False, credited_chains=[]
        ),
        quotes=[quote(500 * 10**6, decimals=6, asset="XRP")],
    )
    async with running(time_skipping_env, fake, new_case(chain="xrp", tx_hash=tx_hash)) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == "MISSING_OR_WRONG_MEMO"
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice", reason="sender verified"))
        result = await handle.result()

    assert result.status is CaseStatus.COMPLETED and result.pattern is Pattern.MISSING_OR_WRONG_MEMO
    assert "no memo" in result.reason
    assert fake.keys == ["tracing", "classified", "awaiting-approval", "decision-approved", "crediting"]
    assert fake.quote_requests[0].on_chain is False  # no network fee for a credit
    assert fake.sign_requests == [] and fake.broadcasts == []
    [settle] = fake.settle_requests
    assert settle.receipts == [] and settle.deposit == deposit


async def test_off_engine_case_is_not_quoted_and_cannot_be_approved(time_skipping_env: WorkflowEnvironment) -> None:
    """A contract wallet without a key the engine holds: an engineer acts outside the engine, then rejects."""
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, signer_holds_key=False))
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == "CONTRACT_RECIPIENT"
        assert "outside the engine" in await refused(handle, CaseWorkflow.approve, Decision(engineer="alice"))
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="redeployed by hand"))
        result = await handle.result()

    assert result.status is CaseStatus.REJECTED and "redeployed by hand" in result.reason
    assert fake.quote_requests == []
    assert fake.keys == ["tracing", "classified", "awaiting-approval", "decision-rejected", "rejected"]
    nothing_moved(fake)


# --- 9. a transaction that is never mined ---------------------------------------------------------


async def test_transaction_pending_for_three_days_gives_up_within_history_limits(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit()
    pending = trace(deposit, confirmations=0, required=15, block_number=None).model_copy(
        update={"succeeded": None, "transfers": []}
    )
    fake = FakeCase(traces=[pending], facts=facts(None))
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
        history = await handle.fetch_history()

    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.NOT_FOUND
    assert "never mined" in result.reason
    # the confirmation count is saved once, not on every poll; the polls back off to ten minutes
    assert fake.keys == ["tracing", "deposit-confirmations-0", "rejected"]
    assert 400 < len(fake.trace_requests) < 500, len(fake.trace_requests)  # 3 days at 10 minutes, after the ramp
    assert len(history.events) < 5_000, len(history.events)  # Temporal warns at 10,240 and stops at 51,200
