"""The notification dispatcher: one long-running workflow (id ``notification-dispatcher``, started on worker boot)
that runs the ``deliver_due`` activity over and over. Each activity delivers the due notifications of the outbox
and keeps polling for a few minutes, heartbeating; a crash is retried by the activity's retry policy, and the
database rows, not this workflow, say what was delivered. Continue-as-new every ``stints_per_run`` activities
(or when Temporal suggests it), carrying the totals.

Workflow-safe only: the delivery lives in ``services.notifications`` (adapted by ``workflows.notify_activities``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activity_policy import RETRY
    from workflows.notify_activities import NotificationActivities
    from workflows.notify_messages import DeliverReport, DeliverRequest, DispatcherInput, DispatcherStatus

STINT_MARGIN = timedelta(minutes=5)
"""Start-to-close beyond the stint: the last pass of a stint may still be sending."""


@workflow.defn
class NotificationDispatcherWorkflow:
    def __init__(self) -> None:
        self._totals = DispatcherInput()
        self._last: DeliverReport | None = None

    @workflow.run
    async def run(self, params: DispatcherInput) -> None:
        self._totals = params
        workflow.set_current_details("starting: delivering the notification outbox")
        for _ in range(params.stints_per_run):
            if workflow.info().is_continue_as_new_suggested():
                break
            report: DeliverReport = await workflow.execute_activity_method(
                NotificationActivities.deliver_due,
                DeliverRequest(run_for_seconds=params.stint_seconds),
                start_to_close_timeout=timedelta(seconds=params.stint_seconds) + STINT_MARGIN,
                heartbeat_timeout=timedelta(seconds=params.heartbeat_timeout_seconds),
                retry_policy=RETRY,
                summary="deliver the due notifications",
            )
            self._record(report)
            if not report.enabled:
                await workflow.sleep(
                    timedelta(seconds=params.disabled_pause_seconds), summary="delivery off: notifications.url not set"
                )
            elif not report.more_due and params.pause_seconds > 0:
                await workflow.sleep(timedelta(seconds=params.pause_seconds))
        workflow.continue_as_new(self._totals)

    def _record(self, report: DeliverReport) -> None:
        self._last = report
        self._totals = self._totals.model_copy(
            update={
                "delivered": self._totals.delivered + report.delivered,
                "failed": self._totals.failed + report.failed,
                "dead": self._totals.dead + report.dead,
            }
        )
        if not report.enabled:
            details = (
                f"**delivery off** (notifications.url not set): {report.pending} notification(s) kept in the outbox"
            )
        else:
            details = (
                f"**{report.pending} pending**, {report.dead_total} dead; delivered {self._totals.delivered} since "
                f"started ({report.delivered} in the last activity)"
            )
            if report.errors:
                details += "\n\nLast failures: " + "; ".join(report.errors)
        details += "\n\n`recovery notifications list --pending|--dead` shows them."
        workflow.set_current_details(details)

    @workflow.query
    def status(self) -> DispatcherStatus:
        last = self._last
        return DispatcherStatus(
            enabled=None if last is None else last.enabled,
            delivered=self._totals.delivered,
            failed=self._totals.failed,
            dead=self._totals.dead,
            pending=None if last is None else last.pending,
            dead_total=None if last is None else last.dead_total,
            last_errors=[] if last is None else last.errors,
        )
