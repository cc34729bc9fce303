"""Find deposits to watched addresses in a range of EVM blocks, over raw JSON-RPC batches.

Two sources, both batched on ``JsonRpcClient.batch``:

* ERC-20 ``Transfer`` logs: ``eth_getLogs`` filtered on topic0 (the Transfer event) and topic2 (the
  recipient, one OR-list of padded watched addresses per filter, ``address_chunk`` addresses each); the
  node does the matching, so the cost grows with the number of filters, not with the chain's traffic.
* Native value: ``eth_getBlockByNumber(n, true)`` for every block, ``block_batch`` blocks per batch;
  transactions whose ``to`` is watched are kept unless their receipt says they failed (a deposit
  address can be a contract on some chain, and a call to a contract can revert; a receipt from before
  Byzantium has no status and is judged by :func:`chains.evm_decode.receipt_outcome`).
* ``Transfer`` events the log filter matches (a watched address as topic2) that are not ERC-20 transfers
  (an ERC-721 NFT, odd data) are reported in :attr:`ScanBatch.unread`, never dropped. A ``Transfer`` that
  does not index its recipient (early tokens, CryptoKitties) and an ERC-1155 transfer (another event) do not
  match the filter and are not seen here.

Value forwarded by contracts (internal transfers) needs traces and is not scanned here: a claim
through the API still finds it.

Pure scanning: no database and no Temporal. The caller decides which deposits need a case
(:func:`uncredited_reason`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chains.endpoints import RpcError
from chains.evm_decode import TRANSFER_TOPIC, hex_to_int, native_transfer, read_transfer_log, receipt_succeeded
from chains.jsonrpc import JsonRpcClient
from recovery.i18n import Message
from recovery.models import Transfer
from recovery.settings import ChainConfig

ADDRESS_CHUNK = 500
"""Watched addresses per ``eth_getLogs`` filter (topic2 OR-list): providers cap request sizes, and
500 padded topics are about 33 KB of JSON."""
BLOCK_BATCH = 25
"""Blocks per ``eth_getBlockByNumber`` batch (full transactions: mainnet blocks are 100+ KB each)."""
LOG_BATCH = 50
"""``eth_getLogs`` filters per JSON-RPC batch."""
WINDOW = 200
"""Blocks per yielded :class:`ScanBatch`: one ``eth_getLogs`` range (per address chunk)."""
BLOCK_CONCURRENCY = 4
"""``eth_getBlockByNumber`` batches in flight at once."""


class ScanError(Exception):
    """The node would not answer for a block or a log range even after splitting it."""


@dataclass(frozen=True)
class FoundTransfer:
    """A transfer to a watched address and the block that holds it."""

    block_number: int
    transfer: Transfer


@dataclass(frozen=True)
class UnreadLog:
    """A ``Transfer`` event to a watched address that is not an ERC-20 transfer the scanner can decode (an
    NFT, a form it does not know): value may have reached the address, so it is reported, never dropped."""

    block_number: int | None
    tx_hash: str | None
    what: str
    """In plain words, as in ``TraceResult.unread``."""


@dataclass
class ScanBatch:
    """What one consecutive run of blocks ``[from_block, to_block]`` holds for the watched addresses."""

    from_block: int
    to_block: int
    found: list[FoundTransfer] = field(default_factory=list)
    unread: list[UnreadLog] = field(default_factory=list)
    """Transfer events to watched addresses the scanner could not read as deposits (see :class:`UnreadLog`)."""

    @property
    def blocks(self) -> int:
        return self.to_block - self.from_block + 1


def address_topic(address: str) -> str:
    """An address as an indexed event topic: 32 bytes, left-padded with zeros, lower-case hex."""
    body = address.lower().removeprefix("0x")
    if len(body) != 40:
        raise ValueError(f"not an EVM address: {address!r}")
    int(body, 16)  # raises ValueError on non-hex
    return "0x" + body.rjust(64, "0")


def chunked(items: Sequence[str], size: int) -> list[list[str]]:
    if size < 1:
        raise ValueError("chunk size must be at least 1")
    return [list(items[i : i + size]) for i in range(0, len(items), size)]


def transfer_log_filters(
    addresses: Iterable[str], from_block: int, to_block: int, *, chunk: int = ADDRESS_CHUNK
) -> list[dict[str, Any]]:
    """``eth_getLogs`` filters for ERC-20 ``Transfer`` logs to any of ``addresses`` in the block range.

    One filter per ``chunk`` addresses (deduplicated, case-insensitive, sorted so the filters are
    stable); topic1 (the sender) is left open.
    """
    if from_block < 0 or to_block < from_block:
        raise ValueError(f"bad block range {from_block}..{to_block}")
    topics = sorted({address_topic(a) for a in addresses})
    return [
        {"fromBlock": hex(from_block), "toBlock": hex(to_block), "topics": [TRANSFER_TOPIC, None, part]}
        for part in chunked(topics, chunk)
    ]


def uncredited_reason(
    chain: ChainConfig,
    transfer: Transfer,
    *,
    internal_senders: Collection[str] = (),
    deprecated_recipient: bool = False,
) -> str | None:
    """Why the exchange did not credit this deposit (it needs a case), or None when it was credited
    normally or is the exchange's own transfer (``internal_senders``: hot and gas wallets, lower-case).
    A deprecated deposit address is no longer credited by the regular process, whatever arrives there."""
    if transfer.sender.lower() in internal_senders:
        return None
    if deprecated_recipient:
        return Message("sent to a deprecated deposit address on {chain}", chain=chain.name)
    asset = transfer.asset
    if asset is None:
        return Message("token {token} is not listed on {chain}", token=str(transfer.token_address), chain=chain.name)
    if asset not in chain.credited_assets:
        return Message("{asset} is not credited on {chain}", asset=asset, chain=chain.name)
    minimum = chain.deposit_minimums.get(asset, 0)
    if transfer.amount < minimum:
        return Message(
            "below the {asset} deposit minimum on {chain} ({minimum} base units)",
            asset=asset,
            chain=chain.name,
            minimum=minimum,
        )
    return None


class EvmScanner:
    """Scans one chain. Cheap to construct; HTTP connections are pooled per event loop."""

    def __init__(
        self,
        config: ChainConfig,
        *,
        rpc: JsonRpcClient | None = None,
        address_chunk: int = ADDRESS_CHUNK,
        block_batch: int = BLOCK_BATCH,
        log_batch: int = LOG_BATCH,
        window: int = WINDOW,
    ) -> None:
        if config.family != "evm":
            raise ValueError(f"chain {config.name!r} is not an EVM chain ({config.family})")
        self.config = config
        self.rpc = rpc or JsonRpcClient.from_config(config)
        self.address_chunk = address_chunk
        self.block_batch = block_batch
        self.log_batch = log_batch
        self.window = window

    async def head(self) -> int:
        return hex_to_int(await self.rpc.call("eth_blockNumber"))

    def safe_head(self, head: int) -> int:
        """The newest block with the chain's confirmations (``head - confirmations + 1``)."""
        return head - max(self.config.confirmations, 1) + 1

    async def scan(self, from_block: int, to_block: int, addresses: Collection[str]) -> AsyncIterator[ScanBatch]:
        """Yield one :class:`ScanBatch` per ``window`` blocks, in block order, each complete: every
        transfer to a watched address in those blocks (sorted by block, then log index; native first)."""
        if from_block < 0 or to_block < from_block:
            raise ValueError(f"bad block range {from_block}..{to_block}")
        watched = {a.lower() for a in addresses}
        ordered = sorted(watched)
        start = from_block
        while start <= to_block:
            end = min(start + max(self.window, 1) - 1, to_block)
            if not watched:
                yield ScanBatch(start, end)
            else:
                (logs, unread), native = await asyncio.gather(
                    self.read_transfer_logs(start, end, ordered), self.native_deposits(start, end, watched)
                )
                found = native + logs
                found.sort(key=lambda f: (f.block_number, f.transfer.log_index))
                yield ScanBatch(start, end, found, unread)
            start = end + 1

    async def scan_all(self, from_block: int, to_block: int, addresses: Collection[str]) -> list[FoundTransfer]:
        return [f async for batch in self.scan(from_block, to_block, addresses) for f in batch.found]

    # --- ERC-20 logs ---------------------------------------------------------------------------

    async def transfer_logs(self, from_block: int, to_block: int, addresses: Sequence[str]) -> list[FoundTransfer]:
        return (await self.read_transfer_logs(from_block, to_block, addresses))[0]

    async def read_transfer_logs(
        self, from_block: int, to_block: int, addresses: Sequence[str]
    ) -> tuple[list[FoundTransfer], list[UnreadLog]]:
        """ERC-20 transfers to ``addresses`` in the block range, and the ``Transfer`` events to them that
        are not ERC-20 transfers the scanner can read (an ERC-721 transfer matches the same filter)."""
        filters = transfer_log_filters(addresses, from_block, to_block, chunk=self.address_chunk)
        logs: list[Mapping[str, Any]] = []
        for part in chunked_filters(filters, self.log_batch):
            replies = await self.rpc.batch([("eth_getLogs", [f]) for f in part])
            for flt, reply in zip(part, replies, strict=True):
                if isinstance(reply, RpcError):
                    # too many results or too wide a range for this node: split the range and ask again
                    logs += await self._logs_split(flt, reply)
                else:
                    logs += reply or []
        out: list[FoundTransfer] = []
        unread: list[UnreadLog] = []
        seen: set[tuple[str, int]] = set()
        for log in logs:
            reading = read_transfer_log(self.config, log)
            for what in reading.unread:
                unread.append(UnreadLog(_block_of(log), _tx_of(log), what))
            for transfer in reading.transfers:
                if (transfer.tx_hash, transfer.log_index) in seen:
                    continue
                seen.add((transfer.tx_hash, transfer.log_index))
                out.append(FoundTransfer(hex_to_int(log["blockNumber"]), transfer))
        return out, list(dict.fromkeys(unread))

    async def _logs_split(self, flt: dict[str, Any], error: RpcError) -> list[Mapping[str, Any]]:
        lo, hi = hex_to_int(flt["fromBlock"]), hex_to_int(flt["toBlock"])
        if lo == hi:
            raise ScanError(f"{self.config.name}: eth_getLogs failed for block {lo}: {error.message}") from error
        mid = (lo + hi) // 2
        out: list[Mapping[str, Any]] = []
        for a, b in ((lo, mid), (mid + 1, hi)):
            part = flt | {"fromBlock": hex(a), "toBlock": hex(b)}
            try:
                out += await self.rpc.call("eth_getLogs", [part]) or []
            except RpcError as exc:
                out += await self._logs_split(part, exc)
        return out

    # --- native value ------------------------------------------------------------------------

    async def native_deposits(self, from_block: int, to_block: int, watched: Collection[str]) -> list[FoundTransfer]:
        gate = asyncio.Semaphore(BLOCK_CONCURRENCY)
        step = max(self.block_batch, 1)

        async def fetch(lo: int, hi: int) -> list[tuple[int, Any]]:
            async with gate:
                replies = await self.rpc.batch([("eth_getBlockByNumber", [hex(n), True]) for n in range(lo, hi + 1)])
            return list(zip(range(lo, hi + 1), replies, strict=True))

        parts = await asyncio.gather(
            *(fetch(lo, min(lo + step - 1, to_block)) for lo in range(from_block, to_block + 1, step))
        )
        candidates: list[tuple[int, Mapping[str, Any]]] = []
        for number, block in (item for part in parts for item in part):
            if isinstance(block, RpcError):
                raise ScanError(f"{self.config.name}: block {number} unavailable: {block.message}")
            if block is None:
                raise ScanError(f"{self.config.name}: block {number} not found (beyond the node's head?)")
            for tx in block.get("transactions") or []:
                to = tx.get("to") if isinstance(tx, Mapping) else None
                if to and to.lower() in watched and hex_to_int(tx.get("value") or 0) > 0:
                    candidates.append((number, tx))
        if not candidates:
            return []
        receipts = await self.rpc.batch([("eth_getTransactionReceipt", [tx["hash"]]) for _, tx in candidates])
        out: list[FoundTransfer] = []
        for (number, tx), receipt in zip(candidates, receipts, strict=True):
            if isinstance(receipt, RpcError) or receipt is None:
                raise ScanError(f"{self.config.name}: no receipt for {tx['hash']} in block {number}")
            if not receipt_succeeded(receipt, tx):
                continue  # failed (a receipt without a status is not taken for a failure)
            transfer = native_transfer(self.config, tx, receipt)
            if transfer is not None:
                out.append(FoundTransfer(number, transfer))
        return out


def _block_of(log: Any) -> int | None:
    try:
        return hex_to_int(log.get("blockNumber"))
    except (AttributeError, TypeError, ValueError):
        return None


def _tx_of(log: Any) -> str | None:
    value = log.get("transactionHash") if isinstance(log, Mapping) else None
    return str(value).lower() if value else None


def chunked_filters(filters: list[dict[str, Any]], size: int) -> list[list[dict[str, Any]]]:
    return [filters[i : i + max(size, 1)] for i in range(0, len(filters), max(size, 1))]
