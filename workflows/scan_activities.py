"""Activities of the deposit scanner, and the scanning service they share with ``recovery scan``.

``DepositFinder`` scans a block range of a chain for transfers to every watched deposit address and opens
a case (through Temporal, like a claim) for each one the exchange did not credit. Opening a case is
idempotent, so a retried range opens nothing twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from chains.evm_scan import EvmScanner, FoundTransfer, ScanBatch, uncredited_reason
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer
from fees.prices import StaticPrices
from recovery import scan_store, store
from recovery.settings import ChainConfig, Settings
from workflows.activities import asset_key
from workflows.case_opener import open_case_for_deposit
from workflows.scanner_workflow import CursorRequest, ScanRequest, ScanResult

log = logging.getLogger(__name__)

HEARTBEAT_EVERY_S = 5.0

BatchCallback = Callable[[ScanBatch, list[str]], Awaitable[None] | None]


class UnknownChain(ValueError):
    pass


@dataclass
class OpenedCase:
    case_id: str
    user_id: str
    found: FoundTransfer
    reason: str


@dataclass
class ScanSummary:
    from_block: int
    to_block: int
    deposits_found: int = 0
    cases: list[OpenedCase] = field(default_factory=list)

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


class DepositFinder:
    """Finds uncredited deposits to watched addresses and opens their cases."""

    def __init__(self, *, settings: Settings, engine: Engine, client: Client, signer: Signer) -> None:
        self.settings = settings
        self.engine = engine
        self.client = client
        self.signer = signer
        self._scanners: dict[str, EvmScanner] = {}

    def config(self, chain: str) -> ChainConfig:
        try:
            config = self.settings.chain(chain)
        except KeyError:
            raise UnknownChain(f"unknown chain {chain!r}: use one of {', '.join(self.settings.chain_names)}") from None
        if config.family != "evm":
            raise UnknownChain(f"chain {chain!r} is a {config.family} chain: only EVM chains are scanned")
        return config

    def scanner(self, chain: str) -> EvmScanner:
        if chain not in self._scanners:
            self._scanners[chain] = EvmScanner(self.config(chain))
        return self._scanners[chain]

    @cached_property
    def internal_senders(self) -> frozenset[str]:
        """The exchange's own wallets: what they send (gas top-ups) is never a deposit."""
        return frozenset(self.signer.address(p).lower() for p in (HOT_WALLET_PATH, GAS_WALLET_PATH))

    async def db(self, fn: Callable[..., Any], /, **kwargs: Any) -> Any:
        def run() -> Any:
            with Session(self.engine, expire_on_commit=False) as session:
                return fn(session, **kwargs)

        return await asyncio.to_thread(run)

    async def watched(self, family: str = "evm") -> list[str]:
        addresses: list[str] = await self.db(scan_store.watched_addresses, family=family)
        return addresses

    async def open_cases(self, chain: str, found: list[FoundTransfer]) -> list[OpenedCase]:
        """Open a case for each uncredited transfer of ``found`` (already known ones are skipped)."""
        config = self.config(chain)
        opened: list[OpenedCase] = []
        prices = StaticPrices(self.settings.prices_usd)
        for item in found:
            owner = await self.db(store.address_owner, address=item.transfer.recipient)
            if owner is None:
                continue  # no longer anyone's address
            reason = uncredited_reason(
                config, item.transfer, internal_senders=self.internal_senders, deprecated_recipient=owner.deprecated
            )
            if reason is None:
                continue
            if item.transfer.asset is None and prices.usd_price(asset_key(item.transfer)) is None:
                # airdrop spam is unlisted, unpriced and endless: the user can still claim a real one
                log.info(
                    "scanner: skipping unpriced unlisted token %s to %s", item.transfer.token_address, owner.user_id
                )
                continue
            case_id = await open_case_for_deposit(
                engine=self.engine,
                client=self.client,
                task_queue=self.settings.task_queue,
                deposit=item.transfer,
                user_id=owner.user_id,
                reason=reason,
                block_number=item.block_number,
            )
            if case_id is not None:
                opened.append(OpenedCase(case_id=case_id, user_id=owner.user_id, found=item, reason=reason))
        return opened

    async def scan(
        self,
        chain: str,
        from_block: int,
        to_block: int,
        *,
        addresses: list[str] | None = None,
        on_batch: BatchCallback | None = None,
    ) -> ScanSummary:
        """Scan ``from_block..to_block`` (inclusive), opening cases batch by batch; ``on_batch`` is
        called after each batch's cases are opened (progress, heartbeats)."""
        scanner = self.scanner(chain)
        watched = await self.watched() if addresses is None else addresses
        summary = ScanSummary(from_block=from_block, to_block=to_block)
        async for batch in scanner.scan(from_block, to_block, watched):
            opened = await self.open_cases(chain, batch.found)
            summary.deposits_found += len(batch.found)
            summary.cases += opened
            if on_batch is not None:
                result = on_batch(batch, [c.case_id for c in opened])
                if inspect.isawaitable(result):
                    await result
        return summary


class ScanActivities:
    def __init__(self, finder: DepositFinder) -> None:
        self._finder = finder

    def all(self) -> list[Any]:
        return [self.resume_cursor, self.scan_blocks]

    def _scanner(self, chain: str) -> EvmScanner:
        try:
            return self._finder.scanner(chain)
        except UnknownChain as exc:
            raise ApplicationError(str(exc), non_retryable=True) from None

    @activity.defn(name="resume_cursor")
    async def resume_cursor(self, request: CursorRequest) -> int:
        """Where a freshly started scanner begins: the stored cursor, else the block after the chain's
        current safe head (stored at once, so a restart before the first scan agrees)."""
        scanner = self._scanner(request.chain)
        stored = await self._finder.db(scan_store.get_cursor, chain=request.chain)
        if stored is not None:
            return int(stored.next_block)
        start = max(scanner.safe_head(await scanner.head()) + 1, 0)
        cursor: int = await self._finder.db(scan_store.ensure_cursor, chain=request.chain, next_block=start)
        log.info("scanner of %s starts at block %d", request.chain, cursor)
        return cursor

    @activity.defn(name="scan_blocks")
    async def scan_blocks(self, request: ScanRequest) -> ScanResult:
        """Scan the confirmed part of the range, open the cases, then store the cursor.

        Heartbeats carry the next block to scan: a retry after a crash continues from there."""
        scanner = self._scanner(request.chain)
        if request.to_block < request.from_block:
            raise ApplicationError(f"bad range {request.from_block}..{request.to_block}", non_retryable=True)
        head = await scanner.head()
        safe = scanner.safe_head(head)
        end = min(request.to_block, safe)
        result = ScanResult(
            chain=request.chain,
            from_block=request.from_block,
            next_block=request.from_block,
            head=head,
            safe_head=safe,
            block_time_ms=scanner.chain.block_time_ms,
        )
        if end < request.from_block:
            return result  # nothing confirmed beyond the cursor yet

        start = _resume_point(request.from_block, end)
        summary = ScanSummary(from_block=start, to_block=end)
        if start <= end:
            async with _heartbeating(start) as progress:

                def on_batch(batch: ScanBatch, _opened: list[str]) -> None:
                    progress[0] = batch.to_block + 1
                    activity.heartbeat(progress[0])

                summary = await self._finder.scan(request.chain, start, end, on_batch=on_batch)
        await self._finder.db(
            scan_store.advance_cursor, chain=request.chain, from_block=request.from_block, to_block=end
        )
        result.next_block = end + 1
        result.deposits_found = summary.deposits_found
        result.cases_opened = [c.case_id for c in summary.cases]
        if summary.cases:
            log.info("scanner of %s opened %d case(s) in blocks %d..%d", request.chain, len(summary.cases), start, end)
        return result


def _resume_point(from_block: int, end: int) -> int:
    """The block to start from: after what an earlier attempt reported done in its heartbeats."""
    details = activity.info().heartbeat_details
    if details:
        with contextlib.suppress(TypeError, ValueError):
            done = int(details[0])
            if from_block <= done <= end + 1:
                return done
    return from_block


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
