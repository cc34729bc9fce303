"""The deposit scanner: one long-running workflow per chain (id ``scanner-<chain>``) that walks the chain's
confirmed blocks and opens a case for every deposit to a watched address that the exchange did not credit.

Workflow-safe only: the scanning, the database and Temporal clients live in ``workflows.scan_activities``.
The cursor (the next block to scan) is the workflow's state, carried through continue-as-new as its
input, and mirrored by the activity into the ``scan_cursors`` table so that a fresh start resumes there.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, Field


SCANNER_ID_PREFIX = "scanner-"
MAX_BLOCKS = 200
"""Blocks per ``scan_blocks`` activity."""
ITERATIONS_PER_RUN = 500
"""Activities before continue-as-new (about 11 history events each: well under the 10,240 warning)."""
SCAN_TIMEOUT = timedelta(minutes=10)
LIVENESS = timedelta(seconds=15)
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))
MIN_IDLE = timedelta(milliseconds=250)


def scanner_id(chain: str) -> str:
    return f"{SCANNER_ID_PREFIX}{chain}"


class ScannerInput(BaseModel):
    chain: str
    next_block: int | None = None
    """Where to scan from. None at a first start: the ``scan_cursors`` row, else the chain's safe head.
    Continue-as-new carries the cursor here; an operator may start from an explicit block."""
    max_blocks: int = Field(default=MAX_BLOCKS, ge=1)
    iterations_per_run: int = Field(default=ITERATIONS_PER_RUN, ge=1)
    idle_ms: int | None = None
    """Sleep when caught up; None: the chain's block time."""
    blocks_scanned: int = 0
    """Carried through continue-as-new, for the ``cursor`` query (as are the next two)."""
    deposits_found: int = 0
    cases_opened: int = 0


class CursorRequest(BaseModel):
    """Where a scanner started without a cursor begins: the stored cursor, else the chain's safe head."""

    chain: str


class ScanRequest(BaseModel):
    """Scan ``from_block..to_block``, stopping at the chain's safe head (head - confirmations + 1)."""

    chain: str
    from_block: int = Field(ge=0)
    to_block: int = Field(ge=0)


class ScanResult(BaseModel):
    chain: str
    from_block: int
    next_block: int
    """The block after the last one scanned (``from_block`` when nothing was safe to scan yet)."""
    head: int
    safe_head: int
    block_time_ms: int
    deposits_found: int = 0
    """Transfers to watched addresses in the range (credited or not)."""
    cases_opened: list[str] = Field(default_factory=list)

    @property
    def blocks(self) -> int:
        return self.next_block - self.from_block

    @property
    def caught_up(self) -> bool:
        return self.next_block > self.safe_head


class ScannerStatus(BaseModel):
    chain: str
    next_block: int | None
    safe_head: int | None
    head: int | None
    blocks_scanned: int
    """Since this scanner was started (across continue-as-new)."""
    deposits_found: int
    """Transfers to watched addresses, credited or not."""
    cases_opened: int


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
            cursor = await workflow.execute_activity(
                "resume_cursor",
                CursorRequest(chain=params.chain),
                result_type=int,
                start_to_close_timeout=timedelta(minutes=1),
                retry_policy=RETRY,
                heartbeat_timeout=LIVENESS,
            )
        self._next_block = cursor

        for _ in range(params.iterations_per_run):
            if workflow.info().is_continue_as_new_suggested():
                break
            result: ScanResult = await workflow.execute_activity(
                "scan_blocks",
                ScanRequest(chain=params.chain, from_block=cursor, to_block=cursor + params.max_blocks - 1),
                result_type=ScanResult,
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
