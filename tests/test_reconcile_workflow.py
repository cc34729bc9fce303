"""The reconcile workflow on the time-skipping server, with a fake ``reconcile_fees`` activity registered under the
real name: the verdict lands in the run's own search attributes, a moving window is computed from the workflow's
clock, and a failing activity is retried."""

from __future__ import annotations

import os
import uuid
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from workflows import search_attributes as sa
from workflows.reconcile_messages import ReconcileInput, ReconcileOutcome, ReconcileRequest
from workflows.reconcile_workflow import ReconcileWorkflow, ids_within


class FakeReconcile:
    def __init__(self, outcome: ReconcileOutcome, *, fail_first: int = 0) -> None:
        self.outcome = outcome
        self.requests: list[ReconcileRequest] = []
        self.fail_first = fail_first

    @activity.defn(name="reconcile_fees")
    async def reconcile_fees(self, request: ReconcileRequest) -> ReconcileOutcome:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            raise RuntimeError("database not reachable")
        return self.outcome


async def run(env: WorkflowEnvironment, fake: FakeReconcile, params: ReconcileInput) -> tuple[ReconcileOutcome, dict]:
    task_queue = f"reconcile-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[ReconcileWorkflow], activities=[fake.reconcile_fees]
    ):
        handle = await env.client.start_workflow(
            ReconcileWorkflow.run, params, id=f"reconcile-test-{uuid.uuid4().hex[:8]}", task_queue=task_queue
        )
        result = await handle.result()
        description = await handle.describe()
        attributes = description.typed_search_attributes
        found = {
            "started": description.start_time,
            "verdict": attributes.get(sa.RECONCILIATION),
            "mismatches": attributes.get(sa.RECONCILIATION_MISMATCHES),
        }
        assert await handle.query(ReconcileWorkflow.outcome) == result
        if os.environ.get("RECORD_HISTORIES") and result.mismatches:  # kept for tests/test_replay.py
            history = await handle.fetch_history()
            (Path(__file__).parent / "histories" / "reconcile_mismatch.json").write_text(history.to_json())
    return result, found


async def test_a_mismatch_is_in_the_runs_search_attributes(time_skipping_env: WorkflowEnvironment) -> None:
    outcome = ReconcileOutcome(
        run_id=7,
        cases_checked=3,
        ok=1,
        mismatches=2,
        uncheckable=0,
        mismatched_case_ids=["case-bsc-0xaa-0", "case-bsc-0xbb-1"],
    )
    fake = FakeReconcile(outcome)
    result, found = await run(time_skipping_env, fake, ReconcileInput())
    found.pop("started")

    assert result == outcome
    assert found == {"verdict": "mismatch", "mismatches": ["case-bsc-0xaa-0", "case-bsc-0xbb-1"]}
    assert fake.requests == [ReconcileRequest(trigger="schedule")]


async def test_all_ok_and_a_moving_window_from_the_workflow_clock(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeReconcile(ReconcileOutcome(run_id=1, cases_checked=4, ok=4, mismatches=0, uncheckable=0))
    _, found = await run(time_skipping_env, fake, ReconcileInput(lookback_days=2, trigger="test"))

    (request,) = fake.requests
    assert request.trigger == "test" and request.until is None and request.since is not None
    started = found.pop("started")
    assert found == {"verdict": "ok", "mismatches": []}
    assert abs(started - request.since - timedelta(days=2)) <= timedelta(seconds=5)


async def test_uncheckable_without_mismatch_and_the_activity_is_retried(time_skipping_env: WorkflowEnvironment) -> None:
    fake = FakeReconcile(
        ReconcileOutcome(run_id=2, cases_checked=1, ok=0, mismatches=0, uncheckable=1, uncheckable_case_ids=["c"]),
        fail_first=1,
    )
    _, found = await run(time_skipping_env, fake, ReconcileInput())
    found.pop("started")
    assert found == {"verdict": "uncheckable", "mismatches": []}
    assert len(fake.requests) == 2


def test_the_case_ids_in_the_attribute_stay_within_its_size_limit() -> None:
    ids = [f"case-bsc-0x{i:064x}-0" for i in range(100)]
    kept = ids_within(ids)
    assert ids[: len(kept)] == kept and 15 <= len(kept) < 100
    assert len(str(kept).encode()) <= 1800
