"""A workflow that only runs N no-op activities in sequence: the engine's ceiling on this machine.

Workflow-safe: nothing but temporalio and the standard library; no side effects at import.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from bench.bare_activities import noop

NOOP_TIMEOUT = timedelta(seconds=60)


@workflow.defn
class BareWorkflow:
    @workflow.run
    async def run(self, activities: int) -> int:
        """Execute ``activities`` no-op activities one after the other; return how many ran."""
        for _ in range(activities):
            await workflow.execute_activity(noop, start_to_close_timeout=NOOP_TIMEOUT)
        return activities
