"""What an adapter could not read reaches the case: a case that would be recovered automatically waits for an
engineer instead, and the timeline's classification says what was not read (issue 11's rule, through the real
workflow on the time-skipping server with fake activities)."""

from __future__ import annotations

import os

from temporalio.testing import WorkflowEnvironment

from recovery.i18n import Message, render_ref
from recovery.models import CaseStatus, Pattern
from tests.stack_fixtures import HISTORIES
from tests.workflow_fakes import FakeCase, facts, nothing_moved, running, trace, usdt_deposit, wait_for_status
from workflows.case_messages import Decision
from workflows.case_workflow import UNDECODABLE_POLLS, CaseWorkflow

UNREAD = "the receipt has no status (before Byzantium): success judged from its logs"


async def test_an_unread_part_sends_an_automatic_case_to_an_engineer(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    traced = trace(deposit).model_copy(update={"unread": [UNREAD]})
    fake = FakeCase(traces=[traced], facts=facts(deposit))
    async with running(time_skipping_env, fake) as handle:
        state = await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        assert state["pattern"] == Pattern.WRONG_NETWORK_SAME_KEY.value
        nothing_moved(fake)
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="checked by hand"))
        result = await handle.result()
        if os.environ.get("RECORD_HISTORIES"):  # named codes and handed-on texts as refs, for tests/test_replay.py
            (HISTORIES / "unread_manual_rejected_v6.json").write_text((await handle.fetch_history()).to_json())
    classified = fake.saved_event("classified")
    assert "(manual)" in classified.event.message and UNREAD in classified.event.message
    assert "an engineer checks it before anything moves" in classified.event.message
    assert classified.event.text is not None  # the reader's language, too
    assert result.status is CaseStatus.REJECTED
    nothing_moved(fake)


async def test_without_unread_parts_the_same_case_is_automatic(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit))
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
    assert result.status is CaseStatus.COMPLETED
    assert "(automatic)" in fake.saved_event("classified").event.message


async def test_an_answer_that_cannot_be_decoded_is_not_polled_for_days(time_skipping_env: WorkflowEnvironment) -> None:
    undecodable = trace(None).model_copy(
        update={"succeeded": None, "block_number": None, "confirmations": 0, "unread": ["the receipt is not an object"]}
    )
    fake = FakeCase(traces=[undecodable], facts=facts(None))
    async with running(time_skipping_env, fake) as handle:
        result = await handle.result()
        if os.environ.get("RECORD_HISTORIES"):  # for tests/test_replay.py
            (HISTORIES / "undecodable_rejected.json").write_text((await handle.fetch_history()).to_json())
    assert len(fake.trace_requests) == UNDECODABLE_POLLS  # a passing hiccup is polled through, then no more
    assert result.status is CaseStatus.REJECTED and result.pattern is Pattern.NOT_FOUND
    assert "could not read the node's answer" in result.reason and "contact support" in result.reason
    nothing_moved(fake)


NFT = (
    "Event {name} is an NFT (ERC-721) transfer of token #{number} of contract {contract} from {sender} to "
    "{recipient}. The engine does not recover NFTs; if it went to an exchange address an engineer must look."
)


async def test_hundreds_of_unread_parts_still_classify_and_read_in_any_language(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    """An NFT sweep beside a deposit: one part not read per NFT transfer, each a message. They join into the
    classification's reason as refs nested by halves (a chain of 300 nested refs is past pydantic's depth and
    would fail the workflow task for ever)."""
    parts = [
        Message(NFT, name=f"log {n}", number=n, contract="0x" + "aa" * 20, sender="0x" + "bb" * 20, recipient="0x1")
        for n in range(300)
    ]
    deposit = usdt_deposit()
    fake = FakeCase(traces=[trace(deposit).model_copy(update={"unread": parts})], facts=facts(deposit))
    async with running(time_skipping_env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="alice", reason="checked by hand"))
        await handle.result()
    classified = fake.saved_event("classified").event
    assert all(str(part) in classified.message for part in parts)
    assert classified.message.count("; Event log ") == len(parts) - 1
    assert classified.text is not None
    german = render_ref("de", classified.text.msgid, classified.text.params)
    assert german != classified.message and german.count("ERC-721") == len(parts)
