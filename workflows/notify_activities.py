"""The notification dispatcher's activity: ``deliver_due`` adapts ``services.notifications`` to Temporal. It
heartbeats while it runs, so a worker that dies mid-delivery is noticed within the heartbeat timeout and the
activity is retried elsewhere; what it had not marked delivered is sent again, with the same ``webhook-id``.

Imported by the dispatcher workflow (activities are called by reference): workflow-safe imports only at run time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from temporalio import activity

from workflows.activity_policy import fail_fast_on_permanent
from workflows.notify_messages import DeliverReport, DeliverRequest

if TYPE_CHECKING:
    from services.notifications import NotificationDispatcher

HEARTBEAT_EVERY_S = 5.0


class NotificationActivities:
    def __init__(self, dispatcher: NotificationDispatcher) -> None:
        self._dispatcher = dispatcher

    def all(self) -> list[Any]:
        return [self.deliver_due]

    @activity.defn(name="deliver_due")
    async def deliver_due(self, request: DeliverRequest) -> DeliverReport:
        """Deliver the due notifications, then keep polling the outbox for ``run_for_seconds``; report the counts."""
        with fail_fast_on_permanent():
            async with _heartbeating():
                report = await self._dispatcher.run(run_for=request.run_for_seconds)
        return DeliverReport(
            enabled=report.enabled,
            passes=report.passes,
            delivered=report.delivered,
            failed=report.failed,
            dead=report.dead,
            more_due=report.more_due,
            pending=report.pending,
            dead_total=report.dead_total,
            errors=report.errors,
        )


@contextlib.asynccontextmanager
async def _heartbeating() -> AsyncIterator[None]:
    """Heartbeat every few seconds (three times per heartbeat timeout at least) while the body runs."""
    timeout = activity.info().heartbeat_timeout
    every = min(HEARTBEAT_EVERY_S, timeout.total_seconds() / 3) if timeout else HEARTBEAT_EVERY_S

    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(every)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
