"""EVM chain adapter over raw JSON-RPC: tracing, balances, fees and idempotent broadcasting."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from eth_utils import to_checksum_address

from chains.evm_decode import MAX_UINT256, hex_to_int, trace_result
from chains.jsonrpc import JsonRpcClient, RpcError, RpcUnavailable
from recovery.models import TraceResult
from recovery.settings import ChainConfig

log = logging.getLogger(__name__)

TX_HASH_RE = re.compile(r"^0x[0-9a-fA-F]{64}$")
BALANCE_OF_SELECTOR = "0x70a08231"
TRANSFER_SELECTOR = "0xa9059cbb"
DEFAULT_PRIORITY_FEE = 10**9
ALREADY_SENT_HINTS = ("already known", "known transaction", "nonce too low", "already imported")

# Keys of a transaction dict that are JSON-RPC quantities.
_QUANTITY_KEYS = frozenset(
    {"value", "gas", "gasPrice", "maxFeePerGas", "maxPriorityFeePerGas", "nonce", "chainId", "type"}
)


def normalize_tx_hash(tx_hash: str) -> str:
    if not isinstance(tx_hash, str) or not TX_HASH_RE.match(tx_hash):
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

    def __init__(self, chain: ChainConfig, *, rpc: JsonRpcClient | None = None) -> None:
        self.chain = chain
        self.rpc = rpc or JsonRpcClient(chain.rpc_urls, name=chain.name)

    def __repr__(self) -> str:
        return f"EvmChain({self.chain.name!r}, chain_id={self.chain.chain_id})"

    async def trace(self, tx_hash: str) -> TraceResult:
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
        return trace_result(self.chain, tx_hash, tx, receipt, hex_to_int(head))

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
            raise RpcError(-32000, f"{self.chain.name}: latest block has no base fee (no EIP-1559)")
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
            log.info("%s: tx %s was already sent", self.chain.name, expected)
            return expected
        if str(sent).lower() != expected:
            raise ValueError(f"{self.chain.name}: node returned tx hash {sent}, expected {expected}")
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
                raise TimeoutError(f"{self.chain.name}: no receipt for {tx_hash} after {timeout}")
            await asyncio.sleep(poll.total_seconds())


EvmAdapter = EvmChain


async def locate(chains: list[ChainConfig], tx_hash: str) -> TraceResult:
    """Search every chain at once; the first chain that knows the transaction wins."""
    tx_hash = normalize_tx_hash(tx_hash)
    tasks = {asyncio.create_task(EvmChain(c).trace(tx_hash), name=f"locate:{c.name}"): c for c in chains}
    failures: list[str] = []
    pending = set(tasks)
    try:
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                exc = task.exception()
                if exc is not None:
                    if not isinstance(exc, RpcError | RpcUnavailable):
                        raise exc
                    failures.append(f"{tasks[task].name} ({exc})")
                    continue
                result = task.result()
                if result.found:
                    return result
    finally:
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
    if failures:
        raise RpcUnavailable(f"transaction {tx_hash} not found and chain(s) unreachable: " + "; ".join(failures))
    return TraceResult(chain=None, tx_hash=tx_hash, found=False)
