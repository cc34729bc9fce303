"""The deposit scanner's messages: its input (the cursor, carried through continue-as-new), the requests
its activities take, their results and the ``cursor`` query's answer. Workflow-safe."""

from __future__ import annotations

from pydantic import BaseModel, Field

MAX_BLOCKS = 200
"""Blocks per ``scan_blocks`` activity."""
ITERATIONS_PER_RUN = 500
"""Activities before continue-as-new (about 11 history events each: well under the 10,240 warning)."""


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
