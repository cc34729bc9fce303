"""Activities of the deposit scanner: each adapts one call of ``services.deposit_finder`` to Temporal
(heartbeats, resumption after a crash, non-retryable failures). The scanning itself, and the opening of
cases for what it finds, is the service's.

Imported by the scanner workflow (activities are called by reference): workflow-safe imports only at
run time.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from temporalio import activity

from workflows.activity_policy import fail_fast_on_permanent
from workflows.scan_messages import CursorRequest, ScanRequest, ScanResult

if TYPE_CHECKING:
    from services.deposit_finder import DepositFinder

HEARTBEAT_EVERY_S = 5.0


class ScanActivities:
    def __init__(self, finder: DepositFinder) -> None:
        self._finder = finder

    def all(self) -> list[Any]:
        return [self.resume_cursor, self.scan_blocks]

    @activity.defn(name="resume_cursor")
    async def resume_cursor(self, request: CursorRequest) -> int:
        """Where a freshly started scanner begins: the stored cursor, else the block after the chain's
        current safe head (stored at once, so a restart before the first scan agrees)."""
        with fail_fast_on_permanent():
            return await self._finder.resume_cursor(request.chain)

    @activity.defn(name="scan_blocks")
    async def scan_blocks(self, request: ScanRequest) -> ScanResult:
        """Scan the confirmed part of the range, open the cases, then store the cursor.

        Heartbeats carry the next block to scan: a retry after a crash continues from there."""
        with fail_fast_on_permanent():
            async with _heartbeating(request.from_block) as progress:

                def on_batch(next_block: int) -> None:
                    progress[0] = next_block
                    activity.heartbeat(next_block)

                scan = await self._finder.scan_confirmed(
                    request.chain,
                    request.from_block,
                    request.to_block,
                    resume_from=_heartbeat_progress(),
                    on_progress=on_batch,
                )
        return ScanResult(
            chain=request.chain,
            from_block=request.from_block,
            next_block=scan.next_block,
            head=scan.head,
            safe_head=scan.safe_head,
            block_time_ms=scan.block_time_ms,
            deposits_found=scan.deposits_found,
            cases_opened=scan.case_ids,
        )


def _heartbeat_progress() -> int | None:
    """The next block an earlier attempt of this activity reported in its heartbeats, if any."""
    details = activity.info().heartbeat_details
    if details:
        with contextlib.suppress(TypeError, ValueError):
            return int(details[0])
    return None


@contextlib.asynccontextmanager
async def _heartbeating(start: int) -> AsyncIterator[list[int]]:
    """Heartbeat the progress (a one-item list the caller updates) every few seconds, so that a slow
    batch does not look like a dead worker."""
    progress = [start]

    async def beat() -> None:
        while True:
            activity.heartbeat(progress[0])
            await asyncio.sleep(HEARTBEAT_EVERY_S)

    task = asyncio.create_task(beat())
    try:
        yield progress
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
