"""Tron adapter over the Tron HTTP API (``/wallet/...`` and ``/walletsolidity/...``).

A trace reads ``gettransactionbyid`` (unknown: ``{}``), ``gettransactioninfobyid`` (not yet in a block:
``{}``) and, once the transaction is in a block, the head (``wallet/getnowblock``) and the solidified
head (``walletsolidity/getnowblock``). Value moves in three places, each read into ``Transfer`` records:

* The transaction's own contract (log index -1): TRX of a ``TransferContract`` or sent along a
  ``TriggerSmartContract`` as ``call_value`` (amounts in sun); a TRC-10 token of a ``TransferAssetContract``
  or sent along a call as ``call_token_value``.
* TRC-20 tokens: the ``Transfer`` events in the info's ``log`` (log index = position in that list).
* Value forwarded by contracts: the info's ``internal_transactions`` whose ``callValueInfo`` carries TRX, or a
  TRC-10 token when it names a ``tokenId`` (log index ``internal_log_index(1), (2), ...`` in the order the
  node lists them, as the EVM adapter numbers call frames); rejected (reverted) ones moved nothing. A node
  lists them only when it runs with ``vm.saveInternalTx = true``.

A TRC-10 token is keyed by its asset as the chain names it: ``token_address`` is the asset id (``"1002000"``;
before proposal 14, block 5,537,806, the asset's name), with a symbol and decimals only when
``config.tokens`` lists that id, so the classifier treats it like any unlisted token.

Addresses come as hex (``41`` + 20 bytes) by default, as base58 ``T...`` from a node or proxy answering with
``visible=true``, and as the bare 20 bytes in logs; every form is accepted and transfers carry base58.
Whatever the adapter does not understand where value may have moved (a contract type it does not know, a
``Transfer`` event it cannot decode, an internal transaction of an unknown kind) goes to
``TraceResult.unread`` with a note, never to a silent "no deposit".

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

from chains.adapter import Findings, RestAdapter
from chains.bitcoin import memo_text
from chains.endpoints import RpcError
from recovery.i18n import N_, Message
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer, internal_log_index
from recovery.settings import ChainConfig

TXID_RE = re.compile(r"^[0-9a-fA-F]{64}$")
TXID_FORMAT = N_("64 hex digits, no 0x")
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


NO_VALUE_CONTRACTS = frozenset(
    {
        "AccountCreateContract",
        "AccountUpdateContract",
        "AccountPermissionUpdateContract",
        "SetAccountIdContract",
        "FreezeBalanceContract",
        "UnfreezeBalanceContract",
        "FreezeBalanceV2Contract",
        "UnfreezeBalanceV2Contract",
        "WithdrawExpireUnfreezeContract",
        "CancelAllUnfreezeV2Contract",
        "DelegateResourceContract",
        "UnDelegateResourceContract",
        "VoteWitnessContract",
        "WithdrawBalanceContract",
        "WitnessCreateContract",
        "WitnessUpdateContract",
        "UpdateBrokerageContract",
        "ProposalCreateContract",
        "ProposalApproveContract",
        "ProposalDeleteContract",
        "AssetIssueContract",
        "UpdateAssetContract",
        "UnfreezeAssetContract",
        "UpdateSettingContract",
        "UpdateEnergyLimitContract",
        "ClearABIContract",
    }
)
"""Contract types that send nothing to another account (staking and resources, votes and rewards, account,
witness, governance and contract settings, issuing a TRC-10 token): nothing to trace."""

INTERNAL_TRANSFER_KINDS = frozenset({"call", "create", "suicide"})
"""``note`` of an internal transaction that hands its ``callValueInfo`` to ``transferTo_address``."""
INTERNAL_OWN_ACCOUNT_KINDS = (
    "freeze",
    "unfreeze",
    "delegateResource",
    "unDelegateResource",
    "voteWitness",
    "withdrawReward",
    "withdrawExpireUnfreeze",
    "cancelAllUnfreeze",
)
"""Prefixes of the ``note`` of a contract's own staking, resource delegation, votes and rewards: the value
stays with the contract's account (or is a resource, not TRX), so it is noted, not a transfer."""


class Unreadable(ValueError):
    """A part of a transaction that moved value but cannot be turned into a transfer (why in the message)."""


def _amount(value: Any, what: str) -> int:
    """A non-negative amount in base units: an integer, or digits (some proxies send large ones as text)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise Unreadable(Message("{what} {value} is not an amount", what=what, value=repr(value)))


def _address(value: Any, what: str) -> str:
    """An address in any form the API uses, as base58 ``T...``."""
    if not isinstance(value, str) or not value:
        raise Unreadable(Message("{what} is missing", what=what))
    try:
        return to_base58(value)
    except ValueError as exc:
        raise Unreadable(Message("{what} {value} is not a tron address", what=what, value=repr(value))) from exc


def trc10_asset_id(value: Any) -> str:
    """The TRC-10 asset of a transfer as the chain names it: its id (``"1002000"``), or its name before
    proposal 14. Nodes give ``asset_name`` hex-encoded by default and as text with ``visible=true``: hex that
    decodes to printable ASCII is decoded, anything else is taken as given. (An id in text form has 7 digits,
    an odd length, so it never reads as hex.)"""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # TriggerSmartContract.token_id is a number
    if not isinstance(value, str) or not value:
        raise Unreadable(Message("TRC-10 asset {value} is missing", value=repr(value)))
    if len(value) % 2 == 0:
        try:
            text = bytes.fromhex(value).decode("ascii")
        except ValueError:  # not hex, or not ASCII (UnicodeDecodeError is a ValueError)
            return value
        if text and text.isprintable():
            return text
    return value


def _internal_kind(note: Any) -> str:
    """An internal transaction's ``note``: hex of an ASCII word (``63616c6c`` is ``call``), or the word."""
    if not isinstance(note, str):
        return ""
    try:
        return bytes.fromhex(note).decode("ascii")
    except ValueError:
        return note


def _units(amount: int, token_id: str | None) -> str:
    if token_id is None:
        return Message("{amount} sun", amount=amount)
    return Message("{amount} units of TRC-10 token {token}", amount=amount, token=token_id)


class _Reader:
    """Builds the transfers of one transaction, with the rules on log indexes and on what is not read."""

    def __init__(self, config: ChainConfig, txid: str, memo: str | None) -> None:
        self.config, self.txid, self.memo = config, txid, memo
        self.found = Findings()
        self._own_value_taken = False
        self._internal = 0

    def transfer(self, log_index: int, token_id: str | None, sender: str, recipient: str, amount: int) -> None:
        """``token_id`` None is TRX (sun); else a TRC-10 token keyed by its asset id."""
        token = self.config.token_by_address(token_id) if token_id is not None else None
        self.found.transfers.append(
            Transfer(
                chain=self.config.name,
                tx_hash=self.txid,
                log_index=log_index,
                token_address=token_id,
                asset=self.config.native_symbol if token_id is None else (token.symbol if token else None),
                decimals=self.config.native_decimals if token_id is None else (token.decimals if token else None),
                sender=sender,
                recipient=recipient,
                amount=amount,
                memo=self.memo,
            )
        )

    def own(
        self, kind: str, token_id: str | None, sender: Any, recipient: Any, amount: Any, *, optional: bool = False
    ) -> None:
        """Value the transaction's contract itself moves (log index -1). A transaction has one contract and
        sends one asset; a second value (TRX and a TRC-10 token along one call) has no index of its own, so it
        is reported as not read rather than dropped. ``optional``: a missing amount is none (a call's
        ``call_value``); else it is not read (a transfer always names its amount)."""
        if amount is None and not optional:
            raise Unreadable(Message("{what} is missing", what=kind + " amount"))
        units = _amount(amount, f"{kind} amount") if amount is not None else 0
        if units == 0:
            return
        if self._own_value_taken:
            self.found.not_read(
                Message(
                    "{kind} also sent {amount}: a second value in one transaction",
                    kind=kind,
                    amount=_units(units, token_id),
                )
            )
            return
        self.transfer(
            NATIVE_LOG_INDEX,
            token_id,
            _address(sender, f"{kind} owner_address"),
            _address(recipient, f"{kind} recipient"),
            units,
        )
        self._own_value_taken = True

    def contracts(self, tx: dict[str, Any]) -> None:
        """The value the transaction's own contract(s) move; unknown contract types are not read."""
        for position, contract in enumerate((tx.get("raw_data") or {}).get("contract") or []):
            kind = str(contract.get("type") or "") if isinstance(contract, dict) else ""
            parameter = contract.get("parameter") if isinstance(contract, dict) else None
            value = (parameter.get("value") if isinstance(parameter, dict) else None) or {}
            try:
                if not isinstance(value, dict):
                    raise Unreadable(Message("its parameter value {value} is not an object", value=repr(value)[:80]))
                self._contract(kind or f"contract {position}", value)
            except Unreadable as exc:
                part = kind or Message("contract {position}", position=position)
                self.found.not_read(Message("{part}: {problem}", part=part, problem=str(exc)))

    def _contract(self, kind: str, value: dict[str, Any]) -> None:
        owner = value.get("owner_address")
        if kind == "TransferContract":
            self.own(kind, None, owner, value.get("to_address"), value.get("amount"))
        elif kind == "TransferAssetContract":
            self.own(kind, trc10_asset_id(value.get("asset_name")), owner, value.get("to_address"), value.get("amount"))
        elif kind == "TriggerSmartContract":
            target = value.get("contract_address")
            self.own(kind, None, owner, target, value.get("call_value"), optional=True)
            if value.get("call_token_value"):
                self.own(kind, trc10_asset_id(value.get("token_id")), owner, target, value.get("call_token_value"))
        elif kind == "CreateSmartContract":
            new = value.get("new_contract") or {}
            if new.get("call_value") or value.get("call_token_value"):
                self.found.not_read(Message("CreateSmartContract sent value to the contract it created"))
        elif kind not in NO_VALUE_CONTRACTS:
            self.found.not_read(Message("{kind}, a contract type this adapter does not read", kind=kind))

    def logs(self, info: dict[str, Any]) -> None:
        """TRC-20 ``Transfer`` events; one it cannot decode is not read (never swallowed)."""
        logs = info.get("log") or []
        if not isinstance(logs, list):
            self.found.not_read(Message("the event logs (not a list)"))
            return
        for index, log in enumerate(logs):
            try:
                transfer = decode_trc20_log(self.config, self.txid, index, log)
            except Unreadable as exc:
                self.found.not_read(str(exc))
                continue
            if transfer is not None:
                self.found.transfers.append(transfer.model_copy(update={"memo": self.memo}))

    def internal(self, info: dict[str, Any]) -> None:
        """TRX and TRC-10 tokens moved by contracts (``internal_transactions``)."""
        items = info.get("internal_transactions")
        if items is None:
            return
        if not isinstance(items, list):
            self.found.not_read(Message("the internal transactions (not a list)"))
            return
        for position, item in enumerate(items, 1):
            what = Message("internal transaction {position}", position=position)
            if not isinstance(item, dict):
                self.found.not_read(Message("{what} (not an object)", what=what))
                continue
            if item.get("rejected") is True:
                continue  # reverted: it moved nothing
            kind = _internal_kind(item.get("note"))
            values = item.get("callValueInfo") or []
            if not isinstance(values, list):
                self.found.not_read(
                    Message("{what}: callValueInfo {value} is not a list", what=what, value=repr(values)[:80])
                )
                continue
            for value in values:
                try:
                    described = Message("{what} ({kind})", what=what, kind=kind or Message("no kind given"))
                    self._internal_value(described, kind, item, value)
                except Unreadable as exc:
                    self.found.not_read(Message("{part}: {problem}", part=what, problem=str(exc)))

    def _internal_value(self, what: str, kind: str, item: dict[str, Any], value: Any) -> None:
        if not isinstance(value, dict):
            raise Unreadable(Message("callValueInfo {value} is not an object", value=repr(value)))
        amount = _amount(value.get("callValue", 0), "callValue")
        if amount == 0:
            return
        token = value.get("tokenId")
        token_id = None if token in (None, "", "_") else trc10_asset_id(token)
        if kind in INTERNAL_TRANSFER_KINDS:
            sender = _address(item.get("caller_address"), "caller_address")
            recipient = _address(item.get("transferTo_address"), "transferTo_address")
            self._internal += 1
            self.transfer(internal_log_index(self._internal), token_id, sender, recipient, amount)
        elif kind.startswith(INTERNAL_OWN_ACCOUNT_KINDS):
            self.found.notes.append(
                f"{what} moved {_units(amount, token_id)} in the contract's own staking: no transfer"
            )
        else:
            self.found.not_read(
                Message(
                    "{what} moved {amount} in a way this adapter does not know",
                    what=what,
                    amount=_units(amount, token_id),
                )
            )


def contract_transfers(config: ChainConfig, txid: str, tx: dict[str, Any], memo: str | None) -> Findings:
    """What the transaction's own contract moves (TRX, or a TRC-10 token), as found by a trace."""
    reader = _Reader(config, txid, memo)
    reader.contracts(tx)
    return reader.found


def _topic_address(topic: str) -> str:
    """An address topic: a 32-byte word whose first 12 bytes are zero (a TVM may leave the ``41`` byte in the
    12th), or an address in another form (a proxy's base58)."""
    word = topic.removeprefix("0x")
    if len(word) == 64:
        head = word[:24].lower()
        if head not in ("0" * 24, "0" * 22 + "41"):
            raise ValueError(Message("address topic {topic} has non-zero upper bytes", topic=repr(topic)))
        return hex_to_base58(word[24:])
    return to_base58(word)


def decode_trc20_log(config: ChainConfig, txid: str, index: int, log: Any) -> Transfer | None:
    """A TRC-20 ``Transfer`` event as a transfer; None for any other event. The log address and the address
    topics may come in any form (hex with or without ``41``, base58); a ``Transfer`` event that still cannot
    be decoded (or a TRC-721 one, which moves a token id) raises ``Unreadable``: value moved there."""
    if not isinstance(log, dict):
        raise Unreadable(Message("log {index} is not an object", index=index))
    topics = [str(t) for t in log.get("topics") or []]
    if not topics or topics[0].lower().removeprefix("0x") != TRANSFER_TOPIC:
        return None
    where = Message("Transfer event (log {index}) of {contract}", index=index, contract=repr(log.get("address")))
    if len(topics) == 4:
        raise Unreadable(Message("{what} moved a TRC-721 token (an NFT, token id in its 4th topic)", what=where))
    if len(topics) != 3:
        raise Unreadable(Message("{what} has {topics} topics, not 3", what=where, topics=len(topics)))
    data = str(log.get("data") or "").removeprefix("0x")
    try:
        token_address = to_base58(str(log.get("address") or ""))
        sender, recipient = _topic_address(topics[1]), _topic_address(topics[2])
        if len(data) != 64:
            raise ValueError(Message("its data is {size} bytes, not 32", size=len(data) // 2))
        amount = int(data, 16)
    except ValueError as exc:
        raise Unreadable(Message("{what} could not be decoded: {problem}", what=where, problem=str(exc))) from exc
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


def _is_contract_call(tx: dict[str, Any]) -> bool:
    contracts = (tx.get("raw_data") or {}).get("contract") or []
    return any(isinstance(c, dict) and c.get("type") == "TriggerSmartContract" for c in contracts)


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
        reader = _Reader(self.config, txid, memo)
        reader.contracts(tx)
        info = await self.rest.post_json("/wallet/gettransactioninfobyid", {"value": txid})
        if not isinstance(info, dict) or info.get("blockNumber") is None:
            return base.model_copy(
                update={
                    "found": True,
                    "transfers": reader.found.transfers,
                    "notes": ["not yet in a block", *reader.found.notes],
                    "unread": reader.found.unread,
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
        found = Findings()  # a failed transaction moved nothing
        if reason is None:
            reader.logs(info)
            reader.internal(info)
            found = reader.found
            if _is_contract_call(tx) and "internal_transactions" not in info:
                notes.append(
                    "the node listed no internal transactions: TRX or TRC-10 tokens a contract forwarded are "
                    "only seen on a node that keeps them (vm.saveInternalTx)"
                )
        else:
            notes.append(f"failed: {reason}; nothing moved")
        return base.model_copy(
            update={
                "found": True,
                "succeeded": reason is None,
                "block_number": block,
                "confirmations": 1 if final else 0,
                "block_timestamp": _block_time(info.get("blockTimeStamp")),
                "transfers": found.transfers,
                "notes": [*notes, *found.notes],
                "unread": found.unread,
            }
        )
