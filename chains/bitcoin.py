"""Bitcoin (and UTXO forks) adapter over an Esplora REST API (``GET /tx/:txid``, ``GET /blocks/tip/height``).

Each output paying an address is a ``Transfer`` whose ``log_index`` is the output index; the sender is
the address of the first input's previous output (a transaction has no single sender: this is the
usual refund address). Change outputs back to the sender are kept as they are. A memo can only be an
``OP_RETURN`` output: its pushed bytes, as text when they are printable UTF-8, else as hex, are set on
every transfer of the transaction.

An output without an address (other than an ``OP_RETURN``: a bare public key or multisig script, a
non-standard one) is skipped, with a note when it carries value: a deposit is made to an address. An output
the adapter cannot parse (not an object, a value that is not a whole number of satoshis, an address that is
not text), or a transaction whose outputs are not a list, goes to ``TraceResult.unread`` with a note, never
to a silent "no deposit".
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from chains.adapter import Findings, RestAdapter
from chains.endpoints import RestError, RpcError
from recovery.i18n import N_, Message
from recovery.models import TraceResult, Transfer
from recovery.settings import ChainConfig

TXID_RE = re.compile(r"^[0-9a-fA-F]{64}$")
TXID_FORMAT = N_("64 hex digits, no 0x")
NOT_FOUND_STATUS = frozenset({400, 404})
"""Esplora answers 404 "Transaction not found" (and some deployments 400) for a txid it does not know."""

_OP_RETURN = 0x6A
_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4 = 0x4C, 0x4D, 0x4E


def accepts(tx_hash: str) -> bool:
    return isinstance(tx_hash, str) and bool(TXID_RE.match(tx_hash))


def normalize_txid(txid: str) -> str:
    if not accepts(txid):
        raise ValueError(f"not a bitcoin txid ({TXID_FORMAT}): {txid!r}")
    return txid.lower()


def op_return_payload(script_hex: str) -> bytes:
    """The data pushed after ``OP_RETURN`` (concatenated); empty if the script is not an OP_RETURN."""
    try:
        script = bytes.fromhex(script_hex)
    except ValueError:
        return b""
    if not script or script[0] != _OP_RETURN:
        return b""
    out = bytearray()
    i = 1
    while i < len(script):
        op = script[i]
        i += 1
        if op == 0:
            continue
        if op < _OP_PUSHDATA1:
            size = op
        elif op in (_OP_PUSHDATA1, _OP_PUSHDATA2, _OP_PUSHDATA4):
            width = {_OP_PUSHDATA1: 1, _OP_PUSHDATA2: 2, _OP_PUSHDATA4: 4}[op]
            if i + width > len(script):
                break
            size = int.from_bytes(script[i : i + width], "little")
            i += width
        else:
            break  # not a push: a standard OP_RETURN carries pushes only
        out += script[i : i + size]
        i += size
    return bytes(out)


def memo_text(payload: bytes) -> str | None:
    """Printable UTF-8 as text, anything else as hex; None for no payload."""
    if not payload:
        return None
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.hex()
    return text if text.isprintable() else payload.hex()


def _sender(tx: dict[str, Any]) -> str:
    vin = tx.get("vin") or []
    if not vin:
        return "unknown"
    first = vin[0]
    if first.get("is_coinbase"):
        return "coinbase"
    prevout = first.get("prevout") or {}
    return str(prevout.get("scriptpubkey_address") or "unknown")


def _block_time(value: Any) -> datetime | None:
    """Esplora's ``status.block_time`` (Unix seconds of the block header: a miner's clock, loose by up to
    two hours)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, UTC)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(-32603, f"esplora: {what} is not an integer: {value!r}")
    return value


def transfers_of(config: ChainConfig, tx: dict[str, Any]) -> Findings:
    """The transaction's outputs to addresses, with the OP_RETURN memo; notes for the reader, and the outputs
    it could not parse."""
    found = Findings()
    vout = tx.get("vout")
    if not isinstance(vout, list):
        found.not_read(Message("the outputs (vout is {type}, not a list)", type=type(vout).__name__))
        return found
    memos = [
        memo_text(op_return_payload(str(out.get("scriptpubkey") or "")))
        for out in vout
        if isinstance(out, dict) and out.get("scriptpubkey_type") == "op_return"
    ]
    present = [m for m in memos if m is not None]
    memo = present[0] if present else None
    if len(present) > 1:
        found.notes.append(f"{len(present)} OP_RETURN outputs; the first is used as the memo")
    sender = _sender(tx)
    txid = str(tx["txid"]).lower()
    for index, out in enumerate(vout):
        if not isinstance(out, dict):
            found.not_read(Message("{what} (not an object)", what=Message("output {index}", index=index)))
            continue
        value, address, kind = out.get("value"), out.get("scriptpubkey_address"), out.get("scriptpubkey_type")
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            found.not_read(
                Message(
                    "output {index}: its value {value} is not a whole number of satoshis",
                    index=index,
                    value=repr(value),
                )
            )
            continue
        if address is None or address == "":
            if kind != "op_return" and value > 0:
                found.notes.append(f"output {index} ({kind or 'unknown script'}, {value} sat) pays no address: skipped")
            continue
        if not isinstance(address, str):
            found.not_read(
                Message("output {index}: its address {address} is not text", index=index, address=repr(address))
            )
            continue
        found.transfers.append(
            Transfer(
                chain=config.name,
                tx_hash=txid,
                log_index=index,
                token_address=None,
                asset=config.native_symbol,
                decimals=config.native_decimals,
                sender=sender,
                recipient=address,
                amount=value,
                memo=memo,
            )
        )
    return found


class BitcoinChain(RestAdapter):
    """One Esplora-backed chain."""

    accepts = staticmethod(accepts)

    async def tip_height(self) -> int:
        return _int(await self.rest.get_json("/blocks/tip/height"), "tip height")

    async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        """``block_time`` is accepted for the adapter protocol: the block's time comes with the answer here."""
        txid = normalize_txid(tx_hash)
        base = TraceResult(
            chain=self.config.name,
            tx_hash=txid,
            found=False,
            required_confirmations=self.config.confirmations,
            block_time_ms=self.config.block_time_ms,
        )
        try:
            tx = await self.rest.get_json(f"/tx/{txid}")
        except RestError as exc:
            if exc.status_code in NOT_FOUND_STATUS:
                return base
            raise
        if not isinstance(tx, dict) or str(tx.get("txid", "")).lower() != txid:
            raise RpcError(-32603, f"{self.config.name}: esplora answered another object for tx {txid}")
        found = transfers_of(self.config, tx)
        status = tx.get("status") or {}
        if not status.get("confirmed"):
            return base.model_copy(
                update={
                    "found": True,
                    "transfers": found.transfers,
                    "notes": [*found.notes, "unconfirmed: in the mempool, may still be replaced or dropped"],
                    "unread": found.unread,
                }
            )
        height = _int(status.get("block_height"), "block height")
        tip = await self.tip_height()
        return base.model_copy(
            update={
                "found": True,
                "succeeded": True,
                "block_number": height,
                # Mined means at least one confirmation, even if a lagging endpoint answered the tip.
                "confirmations": max(1, tip - height + 1),
                "block_timestamp": _block_time(status.get("block_time")),
                "transfers": found.transfers,
                "notes": found.notes,
                "unread": found.unread,
            }
        )
