"""EVM chain adapter over raw JSON-RPC: tracing, balances, fees and idempotent broadcasting."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from eth_utils import to_checksum_address

from chains.endpoints import RpcError
from chains.evm_decode import (
    MAX_UINT256,
    hex_to_int,
    internal_not_read,
    needs_internal_trace,
    not_decoded,
    trace_result,
    with_internal_transfers,
)
from chains.jsonrpc import JsonRpcClient
from recovery.i18n import Message
from recovery.models import TraceResult
from recovery.settings import ChainConfig

log = logging.getLogger(__name__)

TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
BALANCE_OF_SELECTOR = "0x70a08231"
TRANSFER_SELECTOR = "0xa9059cbb"
DEFAULT_PRIORITY_FEE = 10**9
ALREADY_SENT_HINTS = ("already known", "known transaction", "nonce too low", "already imported")
CALL_TRACER: dict[str, Any] = {"tracer": "callTracer"}
UNSUPPORTED_CODES = frozenset({-32601, -32600})
UNSUPPORTED_HINTS = ("not supported", "not available", "method not found", "does not exist")
TRACE_MANY_CHUNK = 500
"""JSON-RPC calls per batch in ``trace_many`` (two per transaction). Public providers cap batches."""
TRACE_MANY_INTERNAL_CHUNK = 20
"""``debug_traceTransaction`` calls per batch: each is far heavier for the node than a lookup."""
TRACE_MANY_CONCURRENCY = 4

# Keys of a transaction dict that are JSON-RPC quantities.
_QUANTITY_KEYS = frozenset(
    {"value", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "chainId", "type"}
)


def method_unsupported(exc: RpcError) -> bool:
    """The node does not offer the method (as opposed to failing one call of it)."""
    message = exc.message.lower()
    return exc.code in UNSUPPORTED_CODES or any(hint in message for hint in UNSUPPORTED_HINTS)


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


def accepts(tx_hash: str) -> bool:
    return isinstance(tx_hash, str) and bool(TX_HASH_RE.match(tx_hash))


def normalize_tx_hash(tx_hash: str) -> str:
    if not accepts(tx_hash):
        raise ValueError(f"not a transaction hash: {tx_hash!r}")
    return tx_hash.lower()


def _pad_address(address: str) -> str:
    return to_checksum_address(address)[2:].lower().rjust(64, "0")


def build_erc20_transfer_data(to: str, amount: int) -> str:
    if not 0 <= amount <= MAX_UINT256:
        raise ValueError("amount out of uint256 range")
    return TRANSFER_SELECTOR + _pad_address(to) + format(amount, "064x")


def to_rpc_tx(tx: Mapping[str, Any]) -> dict[str, Any]:
    """A web3-style transaction dict (ints, bytes) in JSON-RPC form (hex strings)."""
    out: dict[str, Any] = {}
    for key, value in tx.items():
        if value is None:
            continue
        if key in _QUANTITY_KEYS and isinstance(value, int):
            out[key] = hex(value)
        elif isinstance(value, bytes | bytearray):
            out[key] = "0x" + bytes(value).hex()
        else:
            out[key] = value
    return out


class EvmChain:
    """One chain. Cheap to construct: HTTP connections are pooled per event loop."""

    accepts = staticmethod(accepts)

    def __init__(self, config: ChainConfig, *, rpc: JsonRpcClient | None = None) -> None:
        self.config = config
        self.rpc = rpc or JsonRpcClient(config.rpc_urls, name=config.name)
        self._debug_trace: bool | None = None
        """Whether the node offers ``debug_traceTransaction``: None until a call tells."""

    @classmethod
    def from_config(cls, config: ChainConfig) -> Self:
        """A chain whose client has the config's ``rpc_retries``, ``rpc_backoff_ms`` and ``rpc_timeout_ms``."""
        return cls(config, rpc=JsonRpcClient.from_config(config))

    def __repr__(self) -> str:
        return f"EvmChain({self.config.name!r}, chain_id={self.config.chain_id})"

    async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        """The transaction, its transfers and depth; with ``block_time`` also its block's timestamp (one more
        call: only a verification deposit needs it, not every confirmation poll)."""
        tx_hash = normalize_tx_hash(tx_hash)
        tx, receipt, head = await self.rpc.batch(
            [
                ("eth_getTransactionByHash", [tx_hash]),
                ("eth_getTransactionReceipt", [tx_hash]),
                ("eth_blockNumber", []),
            ]
        )
        if isinstance(tx, RpcError):
            raise tx
        if isinstance(receipt, RpcError):
            raise receipt
        if isinstance(head, RpcError):
            raise head
        result = trace_result(self.config, tx_hash, tx, receipt, hex_to_int(head))
        if result.block_number is None:
            return result
        assert receipt is not None
        if not block_time:
            return await self._with_internal(result, tx, receipt)
        block_timestamp, result = await asyncio.gather(
            self.block_timestamp(str(receipt.get("blockHash") or "")), self._with_internal(result, tx, receipt)
        )
        return result.model_copy(update={"block_timestamp": block_timestamp})

    async def block_timestamp(self, block_hash: str) -> datetime | None:
        """The block's timestamp; None when the node has no such block (reorganised away) or answers an error."""
        if not block_hash:
            return None
        try:
            block = await self.rpc.call("eth_getBlockByHash", [block_hash, False])
        except RpcError as exc:
            log.warning("%s: block %s not read: %s", self.config.name, block_hash, exc)
            return None
        if not block or block.get("timestamp") is None:
            return None
        return datetime.fromtimestamp(hex_to_int(block["timestamp"]), UTC)

    async def _with_internal(
        self, result: TraceResult, tx: Mapping[str, Any], receipt: Mapping[str, Any]
    ) -> TraceResult:
        """``result`` with the native value a contract forwarded inside the transaction, where the node tells."""
        if not needs_internal_trace(tx, receipt):
            return result
        if not self.config.trace_internal:
            return internal_not_read(result, f"internal tracing is off for {self.config.name}")
        if self._debug_trace is False:
            return internal_not_read(result, self._no_debug_trace_note())
        try:
            frame = await self.rpc.call("debug_traceTransaction", [result.tx_hash, CALL_TRACER])
        except RpcError as exc:
            return self._internal_failed(result, exc)
        self._debug_trace = True
        return self._add_frame(result, frame)

    def _add_frame(self, result: TraceResult, frame: Any) -> TraceResult:
        """``result`` with the internal transfers of a ``callTracer`` answer; never raises on the answer."""
        try:
            return with_internal_transfers(self.config, result, frame)
        except Exception as exc:  # one frame must never sink a batch
            log.exception("%s: call trace of %s not decoded", self.config.name, result.tx_hash)
            return result.model_copy(
                update={
                    "notes": [*result.notes, f"call trace not decoded: {type(exc).__name__}: {exc}"],
                    "unread": [
                        *result.unread,
                        Message(
                            "The node's call trace of the transaction could not be decoded; value forwarded by "
                            "contracts may not be listed."
                        ),
                    ],
                }
            )

    async def trace_many(
        self,
        tx_hashes: Sequence[str],
        *,
        chunk_size: int = TRACE_MANY_CHUNK,
        concurrency: int = TRACE_MANY_CONCURRENCY,
    ) -> list[TraceResult]:
        """``trace`` for many transactions in few round trips, in the order given (without the block
        timestamps: a scan does not need them, and they would cost a lookup per block).

        Raw JSON-RPC batches of ``eth_getTransactionByHash`` + ``eth_getTransactionReceipt`` (at most
        ``chunk_size`` calls each, ``concurrency`` batches in flight) and one ``eth_blockNumber``; then,
        for the transactions that ran contract code, batches of ``debug_traceTransaction``. An item's
        error does not sink the others: a missing transaction is ``found=False``; an item the node
        answered with an error is also ``found=False``, but with a note and an ``unread`` entry saying the
        node refused it (so a reader can tell it from a transaction the chain does not have); an answer
        that cannot be decoded is a result with ``unread``. Transport failures raise.
        """
        hashes = [normalize_tx_hash(h) for h in tx_hashes]
        if not hashes:
            return []
        if chunk_size < 3 or concurrency < 1:
            raise ValueError("chunk_size must be at least 3 and concurrency at least 1")
        per_chunk = chunk_size // 2
        limit = asyncio.Semaphore(concurrency)

        async def lookup(chunk: Sequence[str], with_head: bool) -> list[Any]:
            calls: list[tuple[str, Sequence[Any] | None]] = [("eth_blockNumber", [])] if with_head else []
            for h in chunk:
                calls += [("eth_getTransactionByHash", [h]), ("eth_getTransactionReceipt", [h])]
            async with limit:
                return await self.rpc.batch(calls)

        chunks = _chunks(hashes, per_chunk)
        replies = await asyncio.gather(*(lookup(c, i == 0) for i, c in enumerate(chunks)))
        head_reply, *first = replies[0]
        if isinstance(head_reply, RpcError):
            raise head_reply
        head = hex_to_int(head_reply)
        flat = first + [item for reply in replies[1:] for item in reply]

        results: list[TraceResult] = []
        to_trace: list[int] = []
        for i, h in enumerate(hashes):
            tx, receipt = flat[2 * i], flat[2 * i + 1]
            errors = [e for e in (tx, receipt) if isinstance(e, RpcError)]
            if errors:
                results.append(
                    TraceResult(
                        chain=self.config.name,
                        tx_hash=h,
                        found=False,
                        required_confirmations=self.config.confirmations,
                        block_time_ms=self.config.block_time_ms,
                        notes=[f"not read: {errors[0]}"],
                        unread=[
                            Message(
                                "The node answered an error for this transaction, so it was not read: {error}",
                                error=str(errors[0]),
                            )
                        ],
                    )
                )
                continue
            try:
                result = trace_result(self.config, h, tx, receipt, head)
                traced = needs_internal_trace(tx, receipt)
            except Exception as exc:  # one item's answer must never sink the batch
                log.exception("%s: tx %s not decoded", self.config.name, h)
                result, traced = not_decoded(self.config, h, exc), False
            results.append(result)
            if traced:
                to_trace.append(i)
        if to_trace:
            await self._add_internal_many(results, to_trace, concurrency)
        return results

    async def _add_internal_many(self, results: list[TraceResult], indexes: list[int], concurrency: int) -> None:
        """Internal transfers for ``results[i]``, ``i`` in ``indexes``, by batches of ``debug_traceTransaction``.

        (``debug_traceBlockByNumber`` would be cheaper on geth when many wanted transactions share a
        block, but anvil 1.7.1 takes seconds per block where a transaction takes milliseconds.)
        """
        indexes = list(indexes)
        if not self.config.trace_internal or self._debug_trace is False:
            why = (
                f"internal tracing is off for {self.config.name}"
                if not self.config.trace_internal
                else self._no_debug_trace_note()
            )
            for i in indexes:
                results[i] = internal_not_read(results[i], why)
            return
        if self._debug_trace is None:
            # Probe once so an unsupported node costs one call, not a batch of errors.
            first = indexes.pop(0)
            try:
                frame = await self.rpc.call("debug_traceTransaction", [results[first].tx_hash, CALL_TRACER])
            except RpcError as exc:
                results[first] = self._internal_failed(results[first], exc)
                if self._debug_trace is False:
                    await self._add_internal_many(results, indexes, concurrency)
                    return
            else:
                self._debug_trace = True
                results[first] = self._add_frame(results[first], frame)
        limit = asyncio.Semaphore(concurrency)

        async def run(chunk: Sequence[int]) -> None:
            async with limit:
                frames = await self.rpc.batch(
                    [("debug_traceTransaction", [results[i].tx_hash, CALL_TRACER]) for i in chunk]
                )
            for i, frame in zip(chunk, frames, strict=True):
                if isinstance(frame, RpcError):
                    results[i] = self._internal_failed(results[i], frame)
                else:
                    results[i] = self._add_frame(results[i], frame)

        await asyncio.gather(*(run(c) for c in _chunks(indexes, TRACE_MANY_INTERNAL_CHUNK)))

    def _no_debug_trace_note(self) -> str:
        return f"the {self.config.name} node does not offer debug_traceTransaction"

    def _internal_failed(self, result: TraceResult, exc: RpcError) -> TraceResult:
        if method_unsupported(exc):
            if self._debug_trace is not False:
                log.warning(
                    "%s: no debug_traceTransaction (%s); internal transfers are not read", self.config.name, exc
                )
            self._debug_trace = False
            return internal_not_read(result, self._no_debug_trace_note())
        log.warning("%s: debug_traceTransaction %s failed: %s", self.config.name, result.tx_hash, exc)
        return internal_not_read(result, f"debug_traceTransaction failed ({exc})")

    async def block_number(self) -> int:
        return hex_to_int(await self.rpc.call("eth_blockNumber"))

    async def is_contract(self, address: str) -> bool:
        code = await self.rpc.call("eth_getCode", [to_checksum_address(address), "latest"])
        return code not in (None, "0x", "0x0", "")

    async def balance(self, address: str) -> int:
        return hex_to_int(await self.rpc.call("eth_getBalance", [to_checksum_address(address), "latest"]))

    async def nonce(self, address: str, *, block: str = "pending") -> int:
        """Transactions sent from ``address``: counting the mempool (``pending``) or mined only (``latest``)."""
        return hex_to_int(await self.rpc.call("eth_getTransactionCount", [to_checksum_address(address), block]))

    async def token_balance(self, token: str, holder: str) -> int:
        """ERC-20 ``balanceOf``. An address without code answers ``0x``, read as 0."""
        data = BALANCE_OF_SELECTOR + _pad_address(holder)
        result = await self.rpc.call("eth_call", [{"to": to_checksum_address(token), "data": data}, "latest"])
        return hex_to_int(result)

    async def fee_params(self) -> tuple[int, int]:
        """``(max_fee_per_gas, max_priority_fee_per_gas)``: twice the latest base fee plus the tip."""
        block, tip = await self.rpc.batch(
            [("eth_getBlockByNumber", ["latest", False]), ("eth_maxPriorityFeePerGas", [])]
        )
        if isinstance(block, RpcError):
            raise block
        if block is None or block.get("baseFeePerGas") is None:
            raise RpcError(-32000, f"{self.config.name}: latest block has no base fee (no EIP-1559)")
        priority = DEFAULT_PRIORITY_FEE if isinstance(tip, RpcError) or tip is None else hex_to_int(tip)
        base_fee = hex_to_int(block["baseFeePerGas"])
        return 2 * base_fee + priority, priority

    async def estimate_gas(self, tx: Mapping[str, Any]) -> int:
        return hex_to_int(await self.rpc.call("eth_estimateGas", [to_rpc_tx(tx)]))

    async def send_raw(self, raw_tx: bytes, expected_hash: str) -> str:
        """Broadcast; sending the same signed bytes again returns the hash instead of failing."""
        expected = normalize_tx_hash(expected_hash)
        try:
            sent = await self.rpc.call("eth_sendRawTransaction", ["0x" + bytes(raw_tx).hex()])
        except RpcError as exc:
            if not any(hint in exc.message.lower() for hint in ALREADY_SENT_HINTS):
                raise
            if await self.rpc.call("eth_getTransactionByHash", [expected]) is None:
                raise
            log.info("%s: tx %s was already sent", self.config.name, expected)
            return expected
        if str(sent).lower() != expected:
            raise ValueError(f"{self.config.name}: node returned tx hash {sent}, expected {expected}")
        return expected

    async def receipt(self, tx_hash: str) -> dict[str, Any] | None:
        result = await self.rpc.call("eth_getTransactionReceipt", [normalize_tx_hash(tx_hash)])
        return dict(result) if result else None

    async def wait_receipt(
        self,
        tx_hash: str,
        timeout: timedelta = timedelta(seconds=30),
        poll: timedelta = timedelta(milliseconds=200),
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout.total_seconds()
        while True:
            receipt = await self.receipt(tx_hash)
            if receipt is not None:
                return receipt
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self.config.name}: no receipt for {tx_hash} after {timeout}")
            await asyncio.sleep(poll.total_seconds())
