"""Tron adapter over the Tron HTTP API (``/wallet/...`` and ``/walletsolidity/...``).

A trace reads ``gettransactionbyid`` (unknown: ``{}``), ``gettransactioninfobyid`` (not yet in a block:
``{}``) and, once the transaction is in a block, the head (``wallet/getnowblock``) and the solidified
head (``walletsolidity/getnowblock``). TRX moved by a ``TransferContract`` (or sent along a
``TriggerSmartContract`` call as ``call_value``) is a native transfer (log index -1, amount in sun);
TRC-20 tokens are the ``Transfer`` events in the info's ``log`` (log index = position in that list).
All addresses are base58check ``T...`` strings.

Finality: a Tron block is final once *solidified* (confirmed by 2/3 of the super representatives,
usually about 19 blocks behind the head). ``confirmations`` on Tron is therefore not a block depth but a
yes/no: ``required_confirmations`` is 1 and ``confirmations`` is 1 once the block is solidified and at
least ``config.confirmations`` deep (a lower bound an operator may raise), else 0. The notes give the
actual depth and solidified head.
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

import base58

from chains.adapter import RestAdapter
from chains.bitcoin import memo_text
from chains.endpoints import RpcError
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.settings import ChainConfig

TXID_RE = re.compile(r"^[0-9a-fA-F]{64}$")
TXID_FORMAT = "64 hex digits, no 0x"
TRANSFER_TOPIC = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ADDRESS_PREFIX = 0x41
_HEX_ADDRESS_RE = re.compile(r"^[0-9a-fA-F]{40}$")


def accepts(tx_hash: str) -> bool:
    return isinstance(tx_hash, str) and bool(TXID_RE.match(tx_hash))


def normalize_txid(txid: str) -> str:
    if not accepts(txid):
        raise ValueError(f"not a tron transaction id ({TXID_FORMAT}): {txid!r}")
    return txid.lower()


def hex_to_base58(address: str) -> str:
    """``41`` + 20 bytes in hex (the API's form), or the bare 20 bytes of a log, to ``T...``."""
    body = address.removeprefix("0x")
    if len(body) == 42 and body.startswith("41"):
        body = body[2:]
    if not _HEX_ADDRESS_RE.match(body):
        raise ValueError(f"not a hex tron address: {address!r}")
    return base58.b58encode_check(bytes([ADDRESS_PREFIX]) + bytes.fromhex(body)).decode()


def base58_to_hex(address: str) -> str:
    """``T...`` to ``41`` + 20 bytes in lowercase hex; raises ``ValueError`` on a bad checksum or prefix."""
    raw = base58.b58decode_check(address)
    if len(raw) != 21 or raw[0] != ADDRESS_PREFIX:
        raise ValueError(f"not a tron address: {address!r}")
    return raw.hex()


def to_base58(address: str) -> str:
    """Any address form the API returns (hex, or base58 with ``visible=true``) as ``T...``."""
    if address.startswith("T"):
        base58_to_hex(address)  # validate
        return address
    return hex_to_base58(address)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise RpcError(-32603, f"tron: {what} is not an integer: {value!r}")
    return value


def _decode_hex_text(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return memo_text(bytes.fromhex(value))
    except ValueError:
        return value


def native_transfers(config: ChainConfig, txid: str, tx: dict[str, Any], memo: str | None) -> list[Transfer]:
    """TRX moved by the transaction itself: a ``TransferContract``, or the ``call_value`` of a contract call."""
    out: list[Transfer] = []
    for contract in (tx.get("raw_data") or {}).get("contract") or []:
        kind = contract.get("type")
        value = (contract.get("parameter") or {}).get("value") or {}
        if kind == "TransferContract":
            recipient, amount = value.get("to_address"), value.get("amount")
        elif kind == "TriggerSmartContract":
            recipient, amount = value.get("contract_address"), value.get("call_value")
        else:
            continue
        if not recipient or not amount:
            continue
        out.append(
            Transfer(
                chain=config.name,
                tx_hash=txid,
                log_index=NATIVE_LOG_INDEX,
                token_address=None,
                asset=config.native_symbol,
                decimals=config.native_decimals,
                sender=to_base58(str(value["owner_address"])),
                recipient=to_base58(str(recipient)),
                amount=_int(amount, f"{kind} amount"),
                memo=memo,
            )
        )
    return out


def decode_trc20_log(config: ChainConfig, txid: str, index: int, log: dict[str, Any]) -> Transfer | None:
    """A TRC-20 ``Transfer`` event (topics and data in hex without 0x), or None for anything else."""
    topics = [str(t).lower().removeprefix("0x") for t in log.get("topics") or []]
    if len(topics) != 3 or topics[0] != TRANSFER_TOPIC:
        return None  # TRC-721 puts the token id in a 4th topic
    data = str(log.get("data") or "").removeprefix("0x")
    try:
        if any(int(t[:24] or "0", 16) for t in topics[1:]) or len(data) != 64:
            return None
        token_address = hex_to_base58(str(log["address"]))
        sender, recipient = hex_to_base58(topics[1][24:]), hex_to_base58(topics[2][24:])
        amount = int(data, 16)
    except (KeyError, ValueError):
        return None
    token = config.token_by_address(token_address)
    return Transfer(
        chain=config.name,
        tx_hash=txid,
        log_index=index,
        token_address=token_address,
        asset=token.symbol if token else None,
        decimals=token.decimals if token else None,
        sender=sender,
        recipient=recipient,
        amount=amount,
    )


def failure_reason(tx: dict[str, Any], info: dict[str, Any]) -> str | None:
    """Why the transaction failed, or None if it succeeded (``contractRet``, ``receipt.result``, ``result``)."""
    ret = (tx.get("ret") or [{}])[0].get("contractRet")
    receipt = (info.get("receipt") or {}).get("result")
    reasons: list[str] = []
    if ret not in (None, "SUCCESS"):
        reasons.append(f"contractRet {ret}")
    if receipt not in (None, "SUCCESS"):
        reasons.append(f"receipt {receipt}")
    if info.get("result") == "FAILED":
        message = _decode_hex_text(info.get("resMessage"))
        reasons.append(f"result FAILED{f': {message}' if message else ''}")
    return ", ".join(reasons) or None


def _block_time(value: Any) -> datetime | None:
    """``blockTimeStamp`` of ``gettransactioninfobyid``: milliseconds since the Unix epoch."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value / 1000, UTC)


def _block_number(block: Any, what: str) -> int:
    try:
        number = block["block_header"]["raw_data"]["number"]
    except (KeyError, TypeError) as exc:
        raise RpcError(-32603, f"tron: {what} has no block_header.raw_data.number") from exc
    return _int(number, what)


class TronChain(RestAdapter):
    """One Tron chain over its HTTP API."""

    accepts = staticmethod(accepts)

    async def heads(self) -> tuple[int, int]:
        """``(head, solidified head)`` block numbers."""
        head, solid = await asyncio.gather(
            self.rest.post_json("/wallet/getnowblock", {}),
            self.rest.post_json("/walletsolidity/getnowblock", {}),
        )
        return _block_number(head, "head block"), _block_number(solid, "solidified block")

    async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        """``block_time`` is accepted for the adapter protocol: the block's time comes with the answer here."""
        txid = normalize_txid(tx_hash)
        base = TraceResult(
            chain=self.config.name,
            tx_hash=txid,
            found=False,
            required_confirmations=1,
            block_time_ms=self.config.block_time_ms,
        )
        tx = await self.rest.post_json("/wallet/gettransactionbyid", {"value": txid})
        if not isinstance(tx, dict) or not tx:
            return base
        if "Error" in tx:  # java-tron reports bad requests as {"Error": "..."} with HTTP 200
            raise RpcError(-32602, f"{self.config.name}: {str(tx['Error'])[:200]}")
        if str(tx.get("txID", "")).lower() != txid:
            raise RpcError(-32603, f"{self.config.name}: node answered another transaction for {txid}")
        memo = _decode_hex_text((tx.get("raw_data") or {}).get("data"))
        info = await self.rest.post_json("/wallet/gettransactioninfobyid", {"value": txid})
        if not isinstance(info, dict) or info.get("blockNumber") is None:
            return base.model_copy(
                update={
                    "found": True,
                    "transfers": native_transfers(self.config, txid, tx, memo),
                    "notes": ["not yet in a block"],
                }
            )
        block = _int(info["blockNumber"], "blockNumber")
        head, solid = await self.heads()
        depth = max(1, head - block + 1)
        final = block <= solid and depth >= self.config.confirmations
        notes = [
            f"block {block} is {depth} block(s) deep (head {head}), solidified head {solid}: "
            + ("final" if final else "not final yet")
        ]
        reason = failure_reason(tx, info)
        transfers: list[Transfer] = []
        if reason is None:
            transfers = native_transfers(self.config, txid, tx, memo)
            for index, log in enumerate(info.get("log") or []):
                token = decode_trc20_log(self.config, txid, index, log)
                if token is not None:
                    transfers.append(token.model_copy(update={"memo": memo}))
        else:
            notes.append(f"failed: {reason}; nothing moved")
        return base.model_copy(
            update={
                "found": True,
                "succeeded": reason is None,
                "block_number": block,
                "confirmations": 1 if final else 0,
                "block_timestamp": _block_time(info.get("blockTimeStamp")),
                "transfers": transfers,
                "notes": notes,
            }
        )
