"""Decode value movements from raw JSON-RPC transaction and receipt objects. Pure: no I/O, no ABI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eth_utils import to_checksum_address

from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer, internal_log_index
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


# --- internal (contract-made) native value transfers -------------------------------------------

VALUE_FRAME_TYPES = frozenset({"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"})
"""callTracer frame types that move native value to another account. DELEGATECALL and STATICCALL carry
no value of their own; CALLCODE runs the callee's code on the caller's own balance (nothing moves)."""


def needs_internal_trace(tx: Mapping[str, Any] | None, receipt: Mapping[str, Any] | None) -> bool:
    """Whether a contract may have forwarded native value inside this mined, successful transaction.

    A plain value transfer to an account (empty input) runs no code we need to read; a call with input,
    or a contract creation, may. A reverted transaction moved nothing.
    """
    if tx is None or receipt is None or receipt.get("blockNumber") is None or not receipt_succeeded(receipt):
        return False
    data = tx.get("input") or tx.get("data") or "0x"
    return str(data) not in ("0x", "0X", "") or not tx.get("to")


def internal_transfers(chain: ChainConfig, tx_hash: str, call_frame: Mapping[str, Any] | None) -> list[Transfer]:
    """Native value moved by contracts inside a transaction, from a ``callTracer`` result.

    Every nested frame (not the top one: that is the transaction's own ``value``) of a value-moving
    type with ``value > 0`` is one transfer, numbered ``internal_log_index(1), (2), ...`` in depth-first
    call order. A frame with ``error`` reverted: it and its whole subtree are skipped. Malformed frames
    are skipped, not fatal.
    """
    out: list[Transfer] = []
    if not isinstance(call_frame, Mapping) or call_frame.get("error"):
        return out
    tx_hash = tx_hash.lower()

    def visit(frame: Mapping[str, Any]) -> None:
        for child in frame.get("calls") or []:
            if not isinstance(child, Mapping) or child.get("error"):
                continue  # reverted: nothing in this subtree happened
            transfer = _frame_transfer(chain, tx_hash, child, len(out) + 1)
            if transfer is not None:
                out.append(transfer)
            visit(child)

    visit(call_frame)
    return out


def _frame_transfer(chain: ChainConfig, tx_hash: str, frame: Mapping[str, Any], n: int) -> Transfer | None:
    if str(frame.get("type", "")).upper() not in VALUE_FRAME_TYPES:
        return None
    try:
        value = hex_to_int(frame.get("value") or 0)
        sender, recipient = frame.get("from"), frame.get("to")
        if value <= 0 or not sender or not recipient:
            return None
        sender, recipient = to_checksum_address(sender), to_checksum_address(recipient)
    except (TypeError, ValueError):
        return None
    return Transfer(
        chain=chain.name,
        tx_hash=tx_hash,
        log_index=internal_log_index(n),
        token_address=None,
        asset=chain.native_symbol,
        decimals=chain.native_decimals,
        sender=sender,
        recipient=recipient,
        amount=value,
    )


INTERNAL_NOT_READ = "internal transfers not read"


def with_internal_transfers(
    chain: ChainConfig, result: TraceResult, call_frame: Mapping[str, Any] | None
) -> TraceResult:
    """``result`` with the internal transfers found in ``call_frame`` appended."""
    found = internal_transfers(chain, result.tx_hash, call_frame)
    if not found:
        return result
    return result.model_copy(update={"transfers": [*result.transfers, *found]})


def internal_not_read(result: TraceResult, why: str) -> TraceResult:
    """``result`` with a note saying that native value forwarded by contracts was not looked for."""
    note = f"{INTERNAL_NOT_READ}: {why}"
    return result.model_copy(update={"notes": [*result.notes, note]})
