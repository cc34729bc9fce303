"""The deposit scanner: one long-running workflow per chain (id ``scanner-<chain>``) that walks the chain's
confirmed blocks and opens a case for every deposit to a watched address that the exchange did not credit.

Workflow-safe only: the scanning, the database and Temporal clients live in ``services.deposit_finder``
(adapted by ``workflows.scan_activities``); the messages are in ``workflows.scan_messages``.
The cursor (the next block to scan) is the workflow's state, carried through continue-as-new as its
input, and mirrored by the activity into the ``scan_cursors`` table so that a fresh start resumes there.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activity_policy import LIVENESS, RETRY
    from workflows.scan_activities import ScanActivities
    from workflows.scan_messages import CursorRequest, ScannerInput, ScannerStatus, ScanRequest, ScanResult


SCANNER_ID_PREFIX = "scanner-"
SCAN_TIMEOUT = timedelta(minutes=10)
MIN_IDLE = timedelta(milliseconds=250)


def scanner_id(chain: str) -> str:
    return f"{SCANNER_ID_PREFIX}{chain}"


@workflow.defn
class ScannerWorkflow:
    def __init__(self) -> None:
        self._chain = ""
        self._next_block: int | None = None
        self._head: int | None = None
        self._safe_head: int | None = None
        self._blocks_scanned = 0
        self._deposits_found = 0
        self._cases_opened = 0

    @workflow.run
    async def run(self, params: ScannerInput) -> None:
        self._chain = params.chain
        self._blocks_scanned = params.blocks_scanned
        self._deposits_found = params.deposits_found
        self._cases_opened = params.cases_opened
        cursor = params.next_block
        workflow.set_current_details(f"starting the scanner of {params.chain}")
        if cursor is None:
            cursor = await workflow.execute_activity_method(
                ScanActivities.resume_cursor,
                CursorRequest(chain=params.chain),
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RETRY,
                heartbeat_timeout=LIVENESS,
            )
        self._next_block = cursor

        for _ in range(params.iterations_per_run):
            if workflow.info().is_continue_as_new_suggested():
                break
            result: ScanResult = await workflow.execute_activity_method(
                ScanActivities.scan_blocks,
                ScanRequest(chain=params.chain, from_block=cursor, to_block=cursor + params.max_blocks - 1),
                start_to_close_timeout=SCAN_TIMEOUT,
                retry_policy=RETRY,
                heartbeat_timeout=LIVENESS,
            )
            cursor = result.next_block
            self._record(result)
            if result.caught_up:
                idle = timedelta(milliseconds=params.idle_ms if params.idle_ms is not None else result.block_time_ms)
                await workflow.sleep(max(idle, MIN_IDLE))

        workflow.continue_as_new(
            params.model_copy(
                update={
                    "next_block": cursor,
                    "blocks_scanned": self._blocks_scanned,
                    "deposits_found": self._deposits_found,
                    "cases_opened": self._cases_opened,
                }
            )
        )

    def _record(self, result: ScanResult) -> None:
        self._next_block = result.next_block
        self._head, self._safe_head = result.head, result.safe_head
        self._blocks_scanned += result.blocks
        self._deposits_found += result.deposits_found
        self._cases_opened += len(result.cases_opened)
        lag = max(result.safe_head - result.next_block + 1, 0)
        workflow.set_current_details(
            f"**{self._chain}**: scanned up to block {result.next_block - 1} of {result.safe_head} "
            f"(confirmed; head {result.head}), {lag} block(s) behind; {self._cases_opened} case(s) opened"
        )

    @workflow.query
    def cursor(self) -> ScannerStatus:
        return ScannerStatus(
            chain=self._chain,
            next_block=self._next_block,
            safe_head=self._safe_head,
            head=self._head,
            blocks_scanned=self._blocks_scanned,
            deposits_found=self._deposits_found,
            cases_opened=self._cases_opened,
        )
