"""Reading a workflow history the way an auditor would: the updates it accepted, with their inputs decoded.

(``WorkflowHistory.to_json()`` holds payloads base64-encoded: searching it for a name finds nothing.)"""

from __future__ import annotations

import json
from typing import Any

from temporalio.client import WorkflowHistory


def accepted_updates(history: WorkflowHistory) -> list[tuple[str, list[Any]]]:
    """``(update name, [decoded arguments])`` of every update the workflow accepted, in order."""
    accepted = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request.input
            accepted.append((request.name, [json.loads(p.data) for p in request.args.payloads]))
    return accepted


def activity_summaries(history: WorkflowHistory) -> list[str]:
    """The summary the Web UI shows for each scheduled activity, in order ('' where there is none)."""
    summaries = []
    for event in history.events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            payload = event.user_metadata.summary
            summaries.append(json.loads(payload.data) if payload.data else "")
    return summaries
