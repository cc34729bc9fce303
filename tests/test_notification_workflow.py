"""The notification dispatcher workflow on the time-skipping server, with a fake ``deliver_due`` registered under
the real name: it runs the activity over and over, retries a failing one, idles while delivery is off, carries
its totals through continue-as-new, and its input and reports hold no secret. Then the real activity, on the
same server, against a real receiver."""

from __future__ import annotations

import asyncio
import base64
import inspect
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from devstack.webhook_receiver import WebhookReceiver
from recovery.models import CaseStatus, CaseUpdate, TimelineEvent
from recovery.settings import NotificationsConfig
from services.notifications import NotificationDispatcher
from store import cases, users
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from workflows.notification_workflow import NotificationDispatcherWorkflow
from workflows.notify_activities import NotificationActivities
from workflows.notify_messages import DeliverReport, DeliverRequest, DispatcherInput

HISTORY = Path(__file__).parent / "histories" / "notification_dispatcher.json"


class FakeDeliver:
    def __init__(self, *, enabled: bool = True, fail_first: int = 0) -> None:
        self.requests: list[DeliverRequest] = []
        self.enabled = enabled
        self.fail_first = fail_first

    @activity.defn(name="deliver_due")
    async def deliver_due(self, request: DeliverRequest) -> DeliverReport:
        self.requests.append(request)
        if len(self.requests) <= self.fail_first:
            raise RuntimeError("database not reachable")
        if not self.enabled:
            return DeliverReport(enabled=False, pending=4)
        n = len(self.requests)
        return DeliverReport(
            enabled=True,
            passes=3,
            delivered=2,
            failed=1,
            dead=1 if n == 2 else 0,
            more_due=n % 2 == 0,
            pending=5,
            dead_total=1,
            errors=["HTTP 503 Service Unavailable"],
        )


async def _started(env: WorkflowEnvironment, task_queue: str, params: DispatcherInput) -> WorkflowHandle:
    return await env.client.start_workflow(
        NotificationDispatcherWorkflow.run, params, id=f"dispatcher-test-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )


async def _until(check: Callable[[], bool | Awaitable[bool]], what: str, timeout: float = 30) -> None:
    async def wait() -> None:
        while True:
            result = check()
            if await result if inspect.isawaitable(result) else result:
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(wait(), timeout)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_it_delivers_again_and_again_and_carries_its_totals_through_continue_as_new(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    env = time_skipping_env
    fake = FakeDeliver(fail_first=1)
    task_queue = f"dispatch-{uuid.uuid4().hex[:8]}"
    params = DispatcherInput(stint_seconds=120, stints_per_run=3, pause_seconds=5)
    async with Worker(
        env.client, task_queue=task_queue, workflows=[NotificationDispatcherWorkflow], activities=[fake.deliver_due]
    ):
        handle = await _started(env, task_queue, params)
        first_run = (await handle.describe()).run_id
        for _ in range(200):  # three runs: continue-as-new twice; the pauses pass in a moment
            if len(fake.requests) >= 8:
                break
            await env.sleep(5)
        assert len(fake.requests) >= 8, fake.requests
        status = await handle.query(NotificationDispatcherWorkflow.status)
        latest = await handle.describe()
        await handle.terminate("test over")
        history = await env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()

    assert all(r == DeliverRequest(run_for_seconds=120) for r in fake.requests)
    done = len(fake.requests) - 2  # the failed first attempt, and maybe one in flight
    assert status.delivered >= 2 * done and status.failed >= done and status.dead == 1
    assert status.enabled is True and status.pending == 5 and status.last_errors == ["HTTP 503 Service Unavailable"]
    assert latest.run_id != first_run, "continued as new"
    events = [e for e in history.events if e.HasField("workflow_execution_continued_as_new_event_attributes")]
    assert len(events) == 1, "the first run ended in continue-as-new after its three stints"
    text = history.to_json()
    assert "whsec_" not in text and "http://" not in text  # no secret, no URL in the history
    if os.environ.get("RECORD_HISTORIES"):  # kept for tests/test_replay.py
        HISTORY.write_text(text)


async def test_while_delivery_is_off_it_waits_between_looks(time_skipping_env: WorkflowEnvironment) -> None:
    env = time_skipping_env
    fake = FakeDeliver(enabled=False)
    task_queue = f"dispatch-{uuid.uuid4().hex[:8]}"
    async with Worker(
        env.client, task_queue=task_queue, workflows=[NotificationDispatcherWorkflow], activities=[fake.deliver_due]
    ):
        handle = await _started(env, task_queue, DispatcherInput(stint_seconds=60, disabled_pause_seconds=3600))
        await _until(lambda: len(fake.requests) >= 1, "the first look")
        for hour in range(2, 5):  # three hours pass in a moment, a look expected after each
            await env.sleep(3600 + 20)
            await _until(lambda hour=hour: len(fake.requests) >= hour, "a look every hour")
        status = await handle.query(NotificationDispatcherWorkflow.status)
        description = await handle.describe()
        await handle.terminate("test over")
    assert status.enabled is False and status.pending == 4 and status.delivered == 0
    assert len(fake.requests) <= 5, "it waits an hour between looks, it does not spin"
    assert description.status is not None


async def test_the_real_activity_delivers_the_outbox(
    time_skipping_env: WorkflowEnvironment, db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    env = time_skipping_env
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    receiver = WebhookReceiver(secret=secret, out=lambda _line: None).start()
    with Session(db_engine, expire_on_commit=False) as session:
        users.create_user(session, user_id="alice", signer=fake_signer, path_for=deposit_path_for_tests)
        for case_id in ("case-a", "case-b"):
            cases.create_case(session, case_id=case_id, user_id="alice", chain="bsc", tx_hash="0x01", log_index=0)
            update = CaseUpdate(
                case_id=case_id, event=TimelineEvent(key="tracing", status=CaseStatus.TRACING, message="t")
            )
            assert cases.apply_case_update(session, update=update)
    config = NotificationsConfig(url=receiver.url, secret=secret)  # type: ignore[arg-type]
    activities = NotificationActivities(NotificationDispatcher(config=config, engine=db_engine))
    task_queue = f"dispatch-{uuid.uuid4().hex[:8]}"
    try:
        async with Worker(
            env.client, task_queue=task_queue, workflows=[NotificationDispatcherWorkflow], activities=activities.all()
        ):
            handle = await _started(env, task_queue, DispatcherInput(stint_seconds=2, pause_seconds=1))
            await _until(lambda: len(receiver.received) == 4, "four notifications")
            with Session(db_engine, expire_on_commit=False) as session:
                assert cases.apply_case_update(
                    session,
                    update=CaseUpdate(
                        case_id="case-a", event=TimelineEvent(key="x", status=CaseStatus.TRACING, message="x")
                    ),
                )
            await _until(lambda: len(receiver.received) == 5, "the next one, written while it runs")

            async def totals() -> bool:
                return (await handle.query(NotificationDispatcherWorkflow.status)).delivered == 5

            await _until(totals, "the workflow's totals")
            await handle.terminate("test over")
    finally:
        receiver.stop()
    assert receiver.by_case() == {"case-a": [1, 2, 3], "case-b": [1, 2]}
