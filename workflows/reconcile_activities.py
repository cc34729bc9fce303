"""The fee reconciliation's activity: one call of ``services.reconciliation.Reconciler``, heartbeating as it
goes through the cases.

Imported by the reconcile workflow (activities are called by reference): workflow-safe imports only at run time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from temporalio import activity

from workflows.activity_policy import fail_fast_on_permanent
from workflows.reconcile_messages import MAX_CASE_IDS, ReconcileOutcome, ReconcileRequest

if TYPE_CHECKING:
    from services.reconciliation import Reconciler


class ReconcileActivities:
    def __init__(self, reconciler: Reconciler) -> None:
        self._reconciler = reconciler

    def all(self) -> list[Any]:
        return [self.reconcile_fees]

    @activity.defn(name="reconcile_fees")
    async def reconcile_fees(self, request: ReconcileRequest) -> ReconcileOutcome:
        """Reconcile the COMPLETED cases charged in ``[since, until)`` (all without bounds) and record the
        findings (``reconciliation_runs``, ``case_reconciliation``). Heartbeats the number of cases done."""
        with fail_fast_on_permanent():
            report = await self._reconciler.run(
                since=request.since, until=request.until, trigger=request.trigger, on_progress=activity.heartbeat
            )
        return ReconcileOutcome(
            run_id=report.run_id,
            cases_checked=len(report.cases),
            ok=report.ok,
            mismatches=len(report.mismatches),
            uncheckable=len(report.uncheckable),
            mismatched_case_ids=sorted(c.case_id for c in report.mismatches)[:MAX_CASE_IDS],
            uncheckable_case_ids=sorted(c.case_id for c in report.uncheckable)[:MAX_CASE_IDS],
        )
