"""Decode value movements from raw JSON-RPC transaction and receipt objects. Pure: no I/O, no ABI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils import to_checksum_address

from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.settings import ChainConfig

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
MAX_UINT256 = 2**256 - 1


def hex_to_int(value: Any) -> int:
    """JSON-RPC quantity (``"0x1a"``) or int to int."""
    if isinstance(value, bool):
        raise TypeError("bool is not a quantity")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        return int(value, 16) if value not in ("0x", "") else 0
    raise TypeError(f"not a quantity: {value!r}")


def _hex_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if not isinstance(value, str) or not value.startswith(("0x", "0X")):
        return None
    body = value[2:]
    if len(body) % 2:
        return None
    try:
        return bytes.fromhex(body)
    except ValueError:
        return None


def _topic_address(topic: Any) -> str | None:
    raw = _hex_bytes(topic)
    if raw is None or len(raw) != 32 or any(raw[:12]):
        return None
    return to_checksum_address(raw[12:])


def decode_transfer_log(chain: ChainConfig, log: Mapping[str, Any]) -> Transfer | None:
    """An ERC-20 ``Transfer`` as a ``Transfer``, or None if the log is anything else or malformed.

    ERC-721 also emits ``Transfer`` with the same topic0 but the token id as a 4th topic: ignored.
    """
    try:
        topics = log.get("topics") or []
        if len(topics) != 3 or str(topics[0]).lower() != TRANSFER_TOPIC or log.get("removed"):
            return None
        sender, recipient = _topic_address(topics[1]), _topic_address(topics[2])
        data = _hex_bytes(log.get("data"))
        token_raw = _hex_bytes(log.get("address"))
        if sender is None or recipient is None or data is None or len(data) != 32:
            return None
        if token_raw is None or len(token_raw) != 20:
            return None
        tx_hash = str(log["transactionHash"]).lower()
        log_index = hex_to_int(log["logIndex"])
    except (KeyError, TypeError, ValueError):
        return None
    token_address = to_checksum_address(token_raw)
    token = chain.token_by_address(token_address)
    return Transfer(
        chain=chain.name,
        tx_hash=tx_hash,
        log_index=log_index,
        token_address=token_address,
        asset=token.symbol if token else None,
        decimals=token.decimals if token else None,
        sender=sender,
        recipient=recipient,
        amount=int.from_bytes(data, "big"),
    )


def decode_transfer_logs(chain: ChainConfig, logs: Iterable[Mapping[str, Any]]) -> list[Transfer]:
    return [t for t in (decode_transfer_log(chain, log) for log in logs) if t is not None]


def native_transfer(
    chain: ChainConfig, tx: Mapping[str, Any], receipt: Mapping[str, Any] | None = None
) -> Transfer | None:
    """The transaction's own value, if any. A contract creation pays the created contract."""
    value = hex_to_int(tx.get("value") or 0)
    if value <= 0:
        return None
    to = tx.get("to") or (receipt or {}).get("contractAddress")
    if not to:
        return None
    return Transfer(
        chain=chain.name,
        tx_hash=str(tx["hash"]).lower(),
        log_index=NATIVE_LOG_INDEX,
        token_address=None,
        asset=chain.native_symbol,
        decimals=chain.native_decimals,
        sender=to_checksum_address(tx["from"]),
        recipient=to_checksum_address(to),
        amount=value,
    )


def receipt_succeeded(receipt: Mapping[str, Any]) -> bool:
    return hex_to_int(receipt.get("status", "0x0")) == 1


def transfers_of(chain: ChainConfig, tx: Mapping[str, Any], receipt: Mapping[str, Any]) -> list[Transfer]:
    """All transfers of a mined transaction: nothing moved if it reverted."""
    if not receipt_succeeded(receipt):
        return []
    native = native_transfer(chain, tx, receipt)
    return ([native] if native else []) + decode_transfer_logs(chain, receipt.get("logs") or [])


def trace_result(
    chain: ChainConfig,
    tx_hash: str,
    tx: Mapping[str, Any] | None,
    receipt: Mapping[str, Any] | None,
    head: int,
) -> TraceResult:
    """What one chain says about ``tx_hash``, from its transaction, receipt and head block number."""
    base = TraceResult(
        chain=chain.name,
        tx_hash=tx_hash.lower(),
        found=False,
        required_confirmations=chain.confirmations,
        block_time_ms=chain.block_time_ms,
    )
    if tx is None:
        return base
    if receipt is None or receipt.get("blockNumber") is None:
        return base.model_copy(update={"found": True})  # pending
    block = hex_to_int(receipt["blockNumber"])
    succeeded = receipt_succeeded(receipt)
    return base.model_copy(
        update={
            "found": True,
            "succeeded": succeeded,
            "block_number": block,
            # A receipt means the tx is mined: at least one confirmation even if a lagging
            # endpoint answered eth_blockNumber.
            "confirmations": max(1, head - block + 1),
            "transfers": transfers_of(chain, tx, receipt),
        }
    )
