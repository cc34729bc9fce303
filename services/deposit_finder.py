"""Finding deposits the exchange did not credit, before anyone claims them: scan a block range of an EVM
chain for transfers to every watched deposit address and open a case for each uncredited one.

Used by the scanner's activities (batch by batch, behind a durable cursor) and by ``recovery scan``
(a backfill). Opening a case is idempotent, so a retried range opens nothing twice.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine

from chains.evm_scan import EvmScanner, FoundTransfer, ScanBatch, UnreadLog, uncredited_reason
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer
from fees.prices import StaticPrices
from recovery.errors import PermanentError
from recovery.i18n import Message
from recovery.models import NewCase, Transfer
from recovery.settings import ChainConfig, Settings
from services.case_opening import CaseOpener, Outcome
from store import scan_cursors, users
from store.db import run_in_session

log = logging.getLogger(__name__)

SCANNER_EVENT_KEY = "opened-by-scanner"
"""Timeline key of the scanner's note; also how a case opened by the scanner is told from a claim."""

BatchCallback = Callable[[ScanBatch, list[str]], Awaitable[None] | None]


class BadRange(PermanentError):
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
    unread: list[UnreadLog] = field(default_factory=list)
    """Transfer events to watched addresses the scanner could not read as deposits (an NFT, an unknown form):
    no case is opened for them (the engine recovers fungible deposits only), but each is logged as a warning and
    listed by ``recovery scan``, so that an operator sees value that may have reached a deposit address."""

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


@dataclass
class ConfirmedScan:
    """One step of the scanner: what it scanned of a range (only confirmed blocks) and where it is now."""

    next_block: int
    head: int
    safe_head: int
    block_time_ms: int
    deposits_found: int = 0
    case_ids: list[str] = field(default_factory=list)


def scanner_message(deposit: Transfer, *, reason: str, block_number: int | None = None) -> str:
    """The note on the timeline of a case the scanner opened: what arrived, and why it was not credited."""
    values = {
        "amount": deposit.amount_message(),
        "chain": deposit.chain,
        "recipient": deposit.recipient,
        "tx_hash": deposit.tx_hash,
        "reason": reason,
    }
    if block_number is None:
        return Message(
            "Opened by the deposit scanner, before any claim: {amount} sent on {chain} to {recipient} in "
            "transaction {tx_hash} was not credited ({reason}).",
            **values,
        )
    return Message(
        "Opened by the deposit scanner, before any claim: {amount} sent on {chain} to {recipient} in block "
        "{block} in transaction {tx_hash} was not credited ({reason}).",
        block=block_number,
        **values,
    )


class DepositFinder:
    """Finds uncredited deposits to watched addresses and opens their cases."""

    def __init__(self, *, settings: Settings, engine: Engine, opener: CaseOpener, signer: Signer) -> None:
        self.settings = settings
        self.engine = engine
        self.opener = opener
        self.signer = signer
        self._scanners: dict[str, EvmScanner] = {}

    def config(self, chain: str) -> ChainConfig:
        return self.settings.require_chain(chain, family="evm", doing="scanned")

    def scanner(self, chain: str) -> EvmScanner:
        if chain not in self._scanners:
            self._scanners[chain] = EvmScanner(self.config(chain))
        return self._scanners[chain]

    @cached_property
    def internal_senders(self) -> frozenset[str]:
        """The exchange's own wallets: what they send (gas top-ups) is never a deposit."""
        return frozenset(self.signer.address(p).lower() for p in (HOT_WALLET_PATH, GAS_WALLET_PATH))

    async def watched(self, family: str = "evm") -> list[str]:
        return await run_in_session(self.engine, users.watched_addresses, family=family)

    async def open_cases(self, chain: str, found: list[FoundTransfer]) -> list[OpenedCase]:
        """Open a case for each uncredited transfer of ``found`` (already known ones are skipped)."""
        config = self.config(chain)
        opened: list[OpenedCase] = []
        prices = StaticPrices(self.settings.prices_usd)
        for item in found:
            deposit = item.transfer
            owner = await run_in_session(self.engine, users.deposit_owner, address=deposit.recipient, memo=deposit.memo)
            if owner is None:
                continue  # no longer anyone's address
            reason = uncredited_reason(
                config, deposit, internal_senders=self.internal_senders, deprecated_recipient=owner.deprecated
            )
            if reason is None:
                continue
            if deposit.asset is None and prices.usd_price(deposit.asset_key) is None:
                # airdrop spam is unlisted, unpriced and endless: the user can still claim a real one
                log.info("scanner: skipping unpriced unlisted token %s to %s", deposit.token_address, owner.user_id)
                continue
            result = await self.opener.open(
                NewCase.of(user_id=owner.user_id, tx_hash=deposit.tx_hash, deposit=deposit),
                note_key=SCANNER_EVENT_KEY,
                note=scanner_message(deposit, reason=reason, block_number=item.block_number),
                undo_on_failure=False,
            )
            if result.outcome is Outcome.OPENED:
                log.info("scanner opened %s for %s: %s", result.case_id, owner.user_id, deposit.amount_text())
                opened.append(OpenedCase(case_id=result.case_id, user_id=owner.user_id, found=item, reason=reason))
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
            for unread in batch.unread:
                log.warning(
                    "scanner of %s could not read a transfer to a watched address in block %s, tx %s: %s",
                    chain,
                    unread.block_number,
                    unread.tx_hash,
                    unread.what,
                )
            summary.unread += batch.unread
            if on_batch is not None:
                result = on_batch(batch, [c.case_id for c in opened])
                if inspect.isawaitable(result):
                    await result
        return summary

    async def resume_cursor(self, chain: str) -> int:
        """Where a freshly started scanner of ``chain`` begins: the stored cursor, else the block after
        the chain's current safe head (stored at once, so a restart before the first scan agrees)."""
        scanner = self.scanner(chain)
        stored = await run_in_session(self.engine, scan_cursors.get_cursor, chain=chain)
        if stored is not None:
            return int(stored.next_block)
        start = max(scanner.safe_head(await scanner.head()) + 1, 0)
        cursor = await run_in_session(self.engine, scan_cursors.ensure_cursor, chain=chain, next_block=start)
        log.info("scanner of %s starts at block %d", chain, cursor)
        return cursor

    async def scan_confirmed(
        self,
        chain: str,
        from_block: int,
        to_block: int,
        *,
        resume_from: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> ConfirmedScan:
        """Scan the confirmed part of ``from_block..to_block``, open the cases, then store the cursor.

        ``resume_from``: the next block an interrupted earlier attempt had reached (ignored when outside
        the range); ``on_progress(next_block)`` after each batch."""
        scanner = self.scanner(chain)
        if to_block < from_block:
            raise BadRange(f"bad range {from_block}..{to_block}")
        head = await scanner.head()
        safe = scanner.safe_head(head)
        end = min(to_block, safe)
        result = ConfirmedScan(
            next_block=from_block, head=head, safe_head=safe, block_time_ms=scanner.config.block_time_ms
        )
        if end < from_block:
            return result  # nothing confirmed beyond the cursor yet

        start = resume_from if resume_from is not None and from_block <= resume_from <= end + 1 else from_block
        summary = ScanSummary(from_block=start, to_block=end)
        if start <= end:

            def on_batch(batch: ScanBatch, _opened: list[str]) -> None:
                if on_progress is not None:
                    on_progress(batch.to_block + 1)

            summary = await self.scan(chain, start, end, on_batch=on_batch)
        await run_in_session(self.engine, scan_cursors.advance_cursor, chain=chain, from_block=from_block, to_block=end)
        result.next_block = end + 1
        result.deposits_found = summary.deposits_found
        result.case_ids = [c.case_id for c in summary.cases]
        if summary.cases:
            log.info("scanner of %s opened %d case(s) in blocks %d..%d", chain, len(summary.cases), start, end)
        return result
