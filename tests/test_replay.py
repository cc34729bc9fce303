"""Replay recorded case histories against the current workflow code: a change that breaks
determinism for cases already in flight fails here, not in production."""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.case_workflow import CaseWorkflow
from workflows.notification_workflow import NotificationDispatcherWorkflow
from workflows.reconcile_workflow import ReconcileWorkflow
from workflows.scanner_workflow import ScannerWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_recorded_histories_exist() -> None:
    names = {p.stem for p in HISTORIES}
    assert {"wrong_network_completed", "manual_approved", "not_found_rejected", "unpriced_rejected"} <= names, names
    assert {"memo_credited", "deprecated_address_completed", "reorged_rejected", "scanner_running"} <= names, names
    newer = {"four_eyes_completed", "four_eyes_audited", "sla_breached_rejected", "automatic_confirmed_v4"}
    assert newer | {"info_answered_approved"} <= names, names
    manual_actions = {"automatic_confirmed_v5", "fee_override_completed", "manual_execution_completed"}
    manual_actions |= {"ownership_proven_completed", "refund_completed", "fee_accepted_completed"}
    assert manual_actions <= names, names
    assert "reconcile_mismatch" in names, names
    assert "notification_dispatcher" in names, names
    assert "undecodable_rejected" in names, names
    translated = {"four_eyes_audited_v6", "fee_override_completed_v6", "fee_accepted_completed_v6"}
    assert translated | {"unread_manual_rejected_v6"} <= names, names  # texts as message refs, USD as Decimal


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(
        workflows=[CaseWorkflow, ScannerWorkflow, ReconcileWorkflow, NotificationDispatcherWorkflow],
        data_converter=pydantic_data_converter,
    )
    await replayer.replay_workflow(history)
