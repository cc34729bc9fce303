"""``next_action`` for each state a case can be in: always there, in plain words, with a due date where the
case waits for the user (and the SLA target while an engineer reviews it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from api.schemas import CaseDetail, NextAction, next_action
from recovery.models import CaseHandling, CaseStatus
from recovery.roster import Tier
from store.cases import Case, CaseEvent
from store.ownership import OwnershipRequirement

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
DUE = NOW + timedelta(days=14)


def _case(status: CaseStatus) -> Case:
    return Case(case_id="case-1", user_id="alice", tx_hash="0x" + "ab" * 32, status=status, reason="")


def _event(key: str, status: CaseStatus, due_at: datetime | None = None) -> CaseEvent:
    return CaseEvent(case_id="case-1", key=key, status=status, message=key, at=NOW, due_at=due_at)


def _requirement(address: str, proven: bool = False) -> OwnershipRequirement:
    return OwnershipRequirement(
        case_id="case-1",
        chain="bsc",
        address=address,
        recipient="0x" + "22" * 20,
        proven_at=NOW if proven else None,
    )


@pytest.mark.parametrize("status", [s for s in CaseStatus if s.terminal])
def test_a_closed_case_needs_nothing(status: CaseStatus) -> None:
    action = next_action(_case(status), [_event("done", status)], None)
    assert action.action is NextAction.NONE and action.text.startswith("Nothing") and action.due_at is None


def test_a_quote_waits_for_acceptance_until_its_due_date() -> None:
    events = [_event("classified", CaseStatus.CLASSIFIED), _event("quote-offered", CaseStatus.AWAITING_USER, DUE)]
    action = next_action(_case(CaseStatus.AWAITING_USER), events, None)
    assert action.action is NextAction.ACCEPT_FEE and action.due_at == DUE
    assert action.request == 'POST /v1/cases/case-1/fee-acceptance {"accept": true} or {"accept": false}'


def test_a_question_waits_for_the_answer_until_its_due_date() -> None:
    events = [_event("info-request-1", CaseStatus.AWAITING_USER, DUE)]
    action = next_action(_case(CaseStatus.AWAITING_USER), events, None)
    assert action.action is NextAction.ANSWER_QUESTION and action.due_at == DUE
    assert action.request is not None and action.request.startswith("POST /v1/cases/case-1/messages")


def test_an_ownership_proof_names_both_ways_on_evm_and_the_deposit_elsewhere() -> None:
    events = [_event("ownership-wait", CaseStatus.AWAITING_USER, DUE), _event("note", CaseStatus.AWAITING_USER)]
    evm = next_action(_case(CaseStatus.AWAITING_USER), events, _requirement("0x" + "11" * 20))
    assert evm.action is NextAction.PROVE_OWNERSHIP and evm.due_at == DUE  # the due date of the wait, not the note
    assert "personal_sign" in evm.text and "verification_tx_hash" in evm.text
    tron = next_action(_case(CaseStatus.AWAITING_USER), events, _requirement("TXyz"))
    assert "personal_sign" not in tron.text and "verification_tx_hash" in tron.text
    proven = next_action(_case(CaseStatus.RECOVERING), events, _requirement("0x" + "11" * 20, proven=True))
    assert proven.action is NextAction.WAIT


def test_an_engineers_review_is_a_wait_until_the_sla_target() -> None:
    handling = CaseHandling(
        tier=Tier.FIRST_LINE, sla_started_at=NOW, sla_target_at=DUE, sla_deadline_at=DUE + timedelta(days=14)
    )
    action = next_action(
        _case(CaseStatus.AWAITING_APPROVAL), [_event("manual", CaseStatus.AWAITING_APPROVAL)], None, handling
    )
    assert action.action is NextAction.WAIT and action.due_at == DUE and action.request is None


@pytest.mark.parametrize(
    "status",
    [
        CaseStatus.RECEIVED,
        CaseStatus.TRACING,
        CaseStatus.WAITING_CONFIRMATIONS,
        CaseStatus.CLASSIFIED,
        CaseStatus.RECOVERING,
    ],
)
def test_a_running_recovery_is_a_wait(status: CaseStatus) -> None:
    action = next_action(_case(status), [_event("step", status)], None)
    assert action.action is NextAction.WAIT and action.request is None


def test_the_case_detail_always_has_a_next_action_and_due_dates_on_the_timeline() -> None:
    events = [_event("received", CaseStatus.RECEIVED), _event("info-request-1", CaseStatus.AWAITING_USER, DUE)]
    detail = CaseDetail.model_validate(CaseDetail.fields_of(_case(CaseStatus.AWAITING_USER), events))
    body = detail.model_dump(mode="json")
    assert body["next_action"]["action"] == "answer_question"
    assert [e["due_at"] for e in body["timeline"]] == [None, DUE.isoformat().replace("+00:00", "Z")]
