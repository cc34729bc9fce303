"""The daily fee reconciliation: a Temporal Schedule (``reconcile-fees``, see ``workflows.starter``) starts this
workflow, which runs the reconciliation activity and carries its verdict in its own search attributes.

A completed case's workflow is closed and its search attributes can no longer change, so the run says it:
``Reconciliation`` (``ok``, ``mismatch`` or ``uncheckable``) and ``ReconciliationMismatches`` (the case ids that
did not reconcile). In the Web UI: ``WorkflowType = "ReconcileWorkflow" AND Reconciliation = "mismatch"``, or
``ReconciliationMismatches = "case-…"`` for one case.

Workflow-safe only: the reading and writing live in ``services.reconciliation`` (adapted by
``workflows.reconcile_activities``).
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows import search_attributes as sa
    from workflows.activity_policy import LIVENESS, RETRY
    from workflows.reconcile_activities import ReconcileActivities
    from workflows.reconcile_messages import ReconcileInput, ReconcileOutcome, ReconcileRequest

RECONCILE_TIMEOUT = timedelta(hours=2)
ATTRIBUTE_BYTES = 1800
"""Case ids put in ``ReconciliationMismatches``, at most this many bytes: a search attribute value is limited
(2 KB by default on the server)."""


def ids_within(case_ids: list[str], budget: int = ATTRIBUTE_BYTES) -> list[str]:
    """The first case ids whose JSON list fits in ``budget`` bytes."""
    kept: list[str] = []
    used = 2
    for case_id in case_ids:
        used += len(case_id.encode()) + 3
        if used > budget:
            break
        kept.append(case_id)
    return kept


@workflow.defn
class ReconcileWorkflow:
    def __init__(self) -> None:
        self._outcome: ReconcileOutcome | None = None

    @workflow.run
    async def run(self, params: ReconcileInput) -> ReconcileOutcome:
        since = params.since
        if params.lookback_days is not None:
            since = workflow.now() - timedelta(days=params.lookback_days)
        workflow.set_current_details("reconciling the fee ledger with the chains")
        outcome: ReconcileOutcome = await workflow.execute_activity_method(
            ReconcileActivities.reconcile_fees,
            ReconcileRequest(since=since, until=params.until, trigger=params.trigger),
            start_to_close_timeout=RECONCILE_TIMEOUT,
            retry_policy=RETRY,
            heartbeat_timeout=LIVENESS,
            summary="reconcile the completed cases' fees and gas with the chains",
        )
        self._outcome = outcome
        workflow.upsert_search_attributes(
            [
                sa.RECONCILIATION.value_set(outcome.verdict),
                sa.RECONCILIATION_MISMATCHES.value_set(ids_within(outcome.mismatched_case_ids)),
            ]
        )
        shown = ", ".join(outcome.mismatched_case_ids[:10])
        more = len(outcome.mismatched_case_ids) > 10 or outcome.mismatches > len(outcome.mismatched_case_ids)
        workflow.set_current_details(
            f"**{outcome.verdict}**: run {outcome.run_id}, {outcome.cases_checked} case(s), {outcome.ok} ok, "
            f"{outcome.mismatches} mismatch(es), {outcome.uncheckable} uncheckable"
            + (f"\n\nMismatched: {shown}{' and more' if more else ''}" if shown else "")
            + "\n\n`recovery fees reconcile` or the case_reconciliation table give each case's detail."
        )
        return outcome

    @workflow.query
    def outcome(self) -> ReconcileOutcome | None:
        return self._outcome
