"""Decode value movements from raw JSON-RPC transaction and receipt objects. Pure: no I/O, no ABI."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from chains.adapter import Findings
from recovery.i18n import Message
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer, internal_log_index
from recovery.settings import ChainConfig

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
MAX_UINT256 = 2**256 - 1
TRANSFER_SINGLE_TOPIC = "0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"
TRANSFER_BATCH_TOPIC = "0x4a39dc06d4c0dbc64b70af90fd698a233a518aa5d07e595d983b8c0526c8f7fb"
MULTI_TOKEN_TOPICS = frozenset({TRANSFER_SINGLE_TOPIC, TRANSFER_BATCH_TOPIC})
"""ERC-1155 ``TransferSingle`` and ``TransferBatch``."""


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


# --- token transfer logs -----------------------------------------------------------------------


def _log_name(log: Mapping[str, Any]) -> str:
    try:
        return Message("log #{index}", index=hex_to_int(log.get("logIndex")))
    except (TypeError, ValueError):
        return Message("a log")


def read_transfer_log(chain: ChainConfig, log: Mapping[str, Any]) -> Findings:
    """One receipt log: an ERC-20 ``Transfer`` as a ``Transfer``; a log of any other event, nothing.

    A log that carries the ``Transfer`` event (or an ERC-1155 transfer event) but that the adapter
    cannot decode as an ERC-20 transfer is never dropped silently: an ERC-721 (NFT) transfer (the token
    id as a 4th topic) or an ERC-1155 transfer is named in ``unread`` (the engine recovers neither), and
    a ``Transfer`` of any other shape (unindexed arguments, as early tokens and CryptoKitties emitted;
    a short or dirty topic; odd data) is reported as not read: an unindexed ERC-20 transfer and an
    unindexed NFT transfer look the same, so no amount is guessed from it.
    """
    out = Findings()
    if not isinstance(log, Mapping):
        out.not_read(
            Message("A log in the receipt could not be read at all; it may have been a token transfer."),
            f"receipt log is not an object: {log!r:.80}",
        )
        return out
    topics = log.get("topics")
    if topics is None or (isinstance(topics, list) and not topics):
        return out  # an anonymous event: not a transfer
    name = _log_name(log)
    if not isinstance(topics, list):
        out.not_read(
            Message("The topics of event {name} could not be read; it may have been a token transfer.", name=name),
            f"{name}: topics are not a list: {topics!r:.80}",
        )
        return out
    if log.get("removed") is True:
        return out  # a reorganisation took it out of the chain
    topic0 = str(topics[0]).lower()
    if topic0 in MULTI_TOKEN_TOPICS:
        out.not_read(
            Message(
                "Event {name} of contract {contract} is an ERC-1155 multi-token transfer. The engine does not "
                "recover these tokens; if they went to an exchange address an engineer must look.",
                name=name,
                contract=str(log.get("address")),
            ),
            f"{name}: ERC-1155 transfer event, not decoded",
        )
        return out
    if topic0 != TRANSFER_TOPIC:
        return out  # another event
    transfer = _erc20_transfer(chain, log, topics)
    if transfer is not None:
        out.transfers.append(transfer)
        return out
    data = _hex_bytes(log.get("data"))
    if len(topics) == 4 and data == b"":
        sender, recipient, token_id = _topic_address(topics[1]), _topic_address(topics[2]), _hex_bytes(topics[3])
        if sender and recipient and token_id is not None and len(token_id) == 32:
            number = int.from_bytes(token_id, "big")
            out.not_read(
                Message(
                    "Event {name} is an NFT (ERC-721) transfer of token #{number} of contract {contract} from "
                    "{sender} to {recipient}. The engine does not recover NFTs; if it went to an exchange address "
                    "an engineer must look.",
                    name=name,
                    number=number,
                    contract=str(log.get("address")),
                    sender=sender,
                    recipient=recipient,
                ),
                f"{name}: ERC-721 Transfer of token id {number}, not a fungible amount",
            )
            return out
    shape = (
        Message("{topics} topics, {data} data bytes", topics=len(topics), data=len(data))
        if data is not None
        else Message("{topics} topics, bad data", topics=len(topics))
    )
    out.not_read(
        Message(
            "Event {name} of contract {contract} is a token Transfer event of a form the adapter cannot decode "
            "({shape}): tokens may have moved that are not listed.",
            name=name,
            contract=str(log.get("address")),
            shape=shape,
        ),
        f"{name}: Transfer event not decoded ({shape})",
    )
    return out


def _erc20_transfer(chain: ChainConfig, log: Mapping[str, Any], topics: list[Any]) -> Transfer | None:
    """The standard ERC-20 shape: topic0, indexed ``from`` and ``to``, the amount as the 32-byte data."""
    try:
        if len(topics) != 3:
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


def decode_transfer_log(chain: ChainConfig, log: Mapping[str, Any]) -> Transfer | None:
    """An ERC-20 ``Transfer`` as a ``Transfer``, or None if the log is anything else or malformed (see
    :func:`read_transfer_log` for what a malformed or NFT transfer log tells)."""
    found = read_transfer_log(chain, log).transfers
    return found[0] if found else None


def read_logs(chain: ChainConfig, logs: Any) -> Findings:
    out = Findings()
    if logs is None:
        return out
    if not isinstance(logs, list):
        out.not_read(
            Message("The receipt's event logs could not be read; tokens may have moved that are not listed."),
            f"receipt logs are not a list: {logs!r:.80}",
        )
        return out
    for log in logs:
        out.extend(read_transfer_log(chain, log))
    return out


def decode_transfer_logs(chain: ChainConfig, logs: Iterable[Mapping[str, Any]]) -> list[Transfer]:
    return [t for t in (decode_transfer_log(chain, log) for log in logs) if t is not None]


# --- the transaction ---------------------------------------------------------------------------

KNOWN_TX_TYPES = {0: "legacy", 1: "access list", 2: "EIP-1559", 3: "blob", 4: "set-code"}
"""Ethereum's transaction types: in all of them ``value`` is all the native value the transaction itself
moves. Other types (an L2's deposit transaction, which mints native value; Arbitrum's retryables) may move
value in fields the adapter does not read."""


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


def _read_native(chain: ChainConfig, tx: Mapping[str, Any], receipt: Mapping[str, Any]) -> Findings:
    out = Findings()
    try:
        transfer = native_transfer(chain, tx, receipt)
    except (KeyError, TypeError, ValueError) as exc:
        out.not_read(
            Message(
                "The transaction's own value, sender or recipient could not be read ({error}); {symbol} may have "
                "moved that is not listed.",
                error=str(exc),
                symbol=chain.native_symbol,
            ),
            f"native value not decoded: {type(exc).__name__}: {exc}",
        )
        return out
    if transfer is not None:
        out.transfers.append(transfer)
    elif _quantity(tx.get("value") or 0):
        out.not_read(
            Message(
                "The transaction carries {symbol} but neither a recipient nor a created contract is known; where "
                "the value went is not listed.",
                symbol=chain.native_symbol,
            ),
            "native value without a recipient or a contractAddress",
        )
    return out


def _read_type(tx: Mapping[str, Any], receipt: Mapping[str, Any]) -> Findings:
    out = Findings()
    raw = tx.get("type", receipt.get("type"))
    if raw is None:
        return out  # nodes before EIP-2718 give no type: legacy
    kind = _quantity(raw)
    if kind not in KNOWN_TX_TYPES:
        out.not_read(
            Message(
                "The transaction is of type {type}, which the adapter does not know; value it moved in a way only "
                "that type has (such as an L2 deposit) is not listed.",
                type=repr(raw),
            ),
            f"unknown transaction type {raw!r}",
        )
    return out


def receipt_succeeded(receipt: Mapping[str, Any], tx: Mapping[str, Any] | None = None) -> bool:
    """Whether the transaction moved anything: False only when the receipt says it failed.

    ``tx`` (its gas limit) helps judge a receipt without a status: see :func:`receipt_outcome`.
    """
    return receipt_outcome(receipt, tx).succeeded


@dataclass(frozen=True)
class Outcome:
    """Whether a mined transaction succeeded, as far as its receipt tells."""

    succeeded: bool
    """False only when the node says the transaction failed (``status`` 0): a receipt that does not say
    is never taken for a failure (that would report a real deposit as "nothing moved")."""
    notes: tuple[str, ...] = ()
    unread: tuple[str, ...] = ()
    """Set whenever the status was not read from the receipt: the classifier sends the case to an engineer."""


def receipt_outcome(receipt: Mapping[str, Any], tx: Mapping[str, Any] | None = None) -> Outcome:
    """Success of a mined transaction from its receipt's ``status``, or, where the node gives none, from
    the receipt's other facts.

    Receipts before Byzantium (Ethereum block 4,370,000, October 2017) carry a state ``root`` instead of a
    ``status``; Parity/OpenEthereum answered ``"status": null`` for them. Then:

    * logs present: it succeeded (a failed transaction's logs are discarded);
    * a pre-Byzantium receipt (it has a ``root``) that used less gas than the transaction's limit: it
      succeeded, since before REVERT (Byzantium) every failure consumed all the gas;
    * else it cannot be judged: a plain transfer sent with an exact gas limit and a failed call look the
      same. It is not called failed: the transfers are listed as if it succeeded and ``unread`` says so.

    In every case without a status, ``unread`` and ``notes`` say what was judged and how.
    """
    status = receipt.get("status")
    if status is not None:
        try:
            code: int | None = hex_to_int(status)
        except (TypeError, ValueError):
            code = None
        if code == 1:
            return Outcome(True)
        if code == 0:
            return Outcome(False)
        return Outcome(
            True,
            notes=(f"receipt status {status!r} is neither 0x0 nor 0x1: read as not failed",),
            unread=(
                Message(
                    "The receipt's status ({status}) is not one the adapter knows, so it is not known whether the "
                    "transaction succeeded; the transfers listed are what it moved if it did.",
                    status=repr(status),
                ),
            ),
        )
    logs = receipt.get("logs")
    if isinstance(logs, list) and logs:
        return Outcome(
            True,
            notes=("no status in the receipt (before Byzantium): judged succeeded because it emitted logs",),
            unread=(
                Message(
                    "The node gave no success status for this transaction (an old, pre-2017 receipt). It was "
                    "judged successful because it emitted events, which a failed transaction never does."
                ),
            ),
        )
    gas_used, gas_limit = _quantity(receipt.get("gasUsed")), _quantity((tx or {}).get("gas"))
    if receipt.get("root") is not None and gas_used is not None and gas_limit is not None and gas_used < gas_limit:
        return Outcome(
            True,
            notes=(
                f"no status in the receipt (before Byzantium): judged succeeded because it used {gas_used} "
                f"of its {gas_limit} gas (a failure then used all of it)",
            ),
            unread=(
                Message(
                    "The node gave no success status for this transaction (an old, pre-2017 receipt). It was "
                    "judged successful because it used less gas than its limit: before October 2017 a failed "
                    "transaction always used all of it."
                ),
            ),
        )
    why = (
        Message("it used all its gas limit and emitted no events")
        if gas_used is not None and gas_used == gas_limit
        else Message("the receipt does not show enough (no events, and no gas limit or pre-2017 state root to compare)")
    )
    return Outcome(
        True,
        notes=(f"no status in the receipt, and success cannot be judged: {why}",),
        unread=(
            Message(
                "The node gave no success status for this transaction and whether it succeeded cannot be judged: "
                "{why}, which a failed call and a plain transfer with an exact gas limit both do. The transfers "
                "listed are what it moved if it succeeded.",
                why=why,
            ),
        ),
    )


def _quantity(value: Any) -> int | None:
    try:
        return hex_to_int(value)
    except (TypeError, ValueError):
        return None


def read_transaction(chain: ChainConfig, tx: Mapping[str, Any], receipt: Mapping[str, Any]) -> tuple[Outcome, Findings]:
    """Whether a mined transaction succeeded, and what it moved: nothing if it failed. Every part that
    cannot be read is in the findings' ``unread``; one part failing does not hide the others."""
    outcome = receipt_outcome(receipt, tx)
    reading = Findings(notes=list(outcome.notes), unread=list(outcome.unread))
    reading.extend(_read_type(tx, receipt))
    if outcome.succeeded:
        reading.extend(_read_native(chain, tx, receipt))
        reading.extend(read_logs(chain, receipt.get("logs")))
    return outcome, reading


def transfers_of(chain: ChainConfig, tx: Mapping[str, Any], receipt: Mapping[str, Any]) -> list[Transfer]:
    """All transfers of a mined transaction: nothing moved if it reverted."""
    return read_transaction(chain, tx, receipt)[1].transfers


def not_decoded(chain: ChainConfig, tx_hash: str, exc: BaseException, *, found: bool = True) -> TraceResult:
    """The trace of a transaction whose node answer could not be decoded at all: said in ``unread``, so that
    no one reads it as "nothing moved"."""
    return TraceResult(
        chain=chain.name,
        tx_hash=tx_hash.lower(),
        found=found,
        required_confirmations=chain.confirmations,
        block_time_ms=chain.block_time_ms,
        notes=[f"node answer not decoded: {type(exc).__name__}: {exc}"],
        unread=[
            Message(
                "The node's answer for this transaction could not be decoded ({error}); whether it was mined and "
                "what it moved is not known.",
                error=type(exc).__name__,
            )
        ],
    )


def trace_result(
    chain: ChainConfig,
    tx_hash: str,
    tx: Mapping[str, Any] | None,
    receipt: Mapping[str, Any] | None,
    head: int,
) -> TraceResult:
    """What one chain says about ``tx_hash``, from its transaction, receipt and head block number.

    Never raises on what the node answered: an answer it cannot decode is a result with ``unread``.
    """
    base = TraceResult(
        chain=chain.name,
        tx_hash=tx_hash.lower(),
        found=False,
        required_confirmations=chain.confirmations,
        block_time_ms=chain.block_time_ms,
    )
    if tx is None:
        return base
    try:
        if not isinstance(tx, Mapping) or not isinstance(receipt, Mapping | None):
            raise TypeError(f"transaction or receipt is not an object: {type(tx).__name__}, {type(receipt).__name__}")
        if receipt is None or receipt.get("blockNumber") is None:
            return base.model_copy(update={"found": True})  # pending
        block = hex_to_int(receipt["blockNumber"])
        outcome, reading = read_transaction(chain, tx, receipt)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return not_decoded(chain, tx_hash, exc)
    return base.model_copy(
        update={
            "found": True,
            "succeeded": outcome.succeeded,
            "block_number": block,
            # A receipt means the tx is mined: at least one confirmation even if a lagging
            # endpoint answered eth_blockNumber.
            "confirmations": max(1, head - block + 1),
            "transfers": reading.transfers,
            "notes": reading.notes,
            "unread": reading.unread,
        }
    )


# --- internal (contract-made) native value transfers -------------------------------------------

VALUE_FRAME_TYPES = frozenset({"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"})
"""callTracer frame types that move native value to another account. DELEGATECALL and STATICCALL carry
no value of their own; CALLCODE runs the callee's code on the caller's own balance (nothing moves)."""
KNOWN_FRAME_TYPES = VALUE_FRAME_TYPES | {"CALLCODE", "DELEGATECALL", "STATICCALL"}


PLAIN_TRANSFER_GAS = 21_000
"""The gas a value transfer uses when it runs no code (and carries no access list)."""


def needs_internal_trace(tx: Mapping[str, Any] | None, receipt: Mapping[str, Any] | None) -> bool:
    """Whether a contract may have forwarded native value inside this mined, successful transaction.

    A call with input, or a contract creation, may. So may a transfer without input whose receipt used more
    than :data:`PLAIN_TRANSFER_GAS`: code ran (the recipient is a contract whose ``receive``/fallback may
    forward the value, as a forwarding deposit contract does, or an account delegated to code under
    EIP-7702); an access list's cost, or a node that does not give ``gasUsed``, only costs a needless trace.
    Arbitrum counts the L1 data cost in ``gasUsed`` and gives it apart as ``gasUsedForL1``: it is taken off.
    Only a transfer that used exactly the plain gas ran no code. A reverted transaction moved nothing.
    """
    if not isinstance(tx, Mapping) or not isinstance(receipt, Mapping) or receipt.get("blockNumber") is None:
        return False
    if not receipt_succeeded(receipt, tx):
        return False
    data = tx.get("input") or tx.get("data") or "0x"
    if str(data) not in ("0x", "0X", "") or not tx.get("to"):
        return True
    gas_used = _quantity(receipt.get("gasUsed"))
    if gas_used is None:
        return True
    return gas_used - (_quantity(receipt.get("gasUsedForL1")) or 0) > PLAIN_TRANSFER_GAS


def read_internal(chain: ChainConfig, tx_hash: str, call_frame: Any) -> Findings:
    """Native value moved by contracts inside a transaction, from a ``callTracer`` result.

    Every nested frame (not the top one: that is the transaction's own ``value``) of a value-moving
    type with ``value > 0`` is one transfer, numbered ``internal_log_index(1), (2), ...`` in depth-first
    call order. A frame with ``error`` reverted: it and its whole subtree are skipped. A frame the
    adapter cannot read (not an object, a type it does not know, a value frame without a readable value,
    sender or recipient) is in ``unread``; its readable children are still read.
    """
    out = Findings()
    tx_hash = tx_hash.lower()
    if not isinstance(call_frame, Mapping):
        out.not_read(
            Message(
                "The node's call trace of the transaction could not be read; value forwarded by contracts may not "
                "be listed."
            ),
            f"callTracer result is not an object: {call_frame!r:.80}",
        )
        return out
    if call_frame.get("error"):
        return out  # the whole call reverted: nothing inside it happened

    def visit(frame: Mapping[str, Any], path: str) -> None:
        calls = frame.get("calls")
        if calls is None:
            return
        if not isinstance(calls, list):
            out.not_read(
                Message(
                    "The inner calls of call {call} could not be read; value forwarded by contracts may not be listed.",
                    call=path,
                )
                if path
                else Message(
                    "The inner calls of the top call could not be read; value forwarded by contracts may not be listed."
                ),
                f"call {path or 'top'}: calls is not a list",
            )
            return
        for i, child in enumerate(calls):
            where = f"{path}.{i}" if path else str(i)
            if not isinstance(child, Mapping):
                out.not_read(
                    Message(
                        "Inner call {call} could not be read; value forwarded by contracts may not be listed.",
                        call=where,
                    ),
                    f"call {where}: frame is not an object",
                )
                continue
            if child.get("error"):
                continue  # reverted: nothing in this subtree happened
            out.extend(_read_frame(chain, tx_hash, child, where, len(out.transfers) + 1))
            visit(child, where)

    visit(call_frame, "")
    return out


def _read_frame(chain: ChainConfig, tx_hash: str, frame: Mapping[str, Any], where: str, n: int) -> Findings:
    out = Findings()
    kind = str(frame.get("type", "")).upper()
    if kind not in KNOWN_FRAME_TYPES:
        out.not_read(
            Message(
                "Inner call {call} is of a kind the adapter does not know ({type}); value it moved is not listed.",
                call=where,
                type=repr(frame.get("type")),
            ),
            f"call {where}: unknown frame type {frame.get('type')!r}",
        )
        return out
    if kind not in VALUE_FRAME_TYPES:
        return out
    if frame.get("value") is None:
        # geth's callTracer always gives a CALL, CREATE or SELFDESTRUCT its value ("0x0" if none); old
        # tracers gave a SELFDESTRUCT neither value nor beneficiary.
        out.not_read(
            Message(
                "Inner call {call} ({kind}) does not say how much {symbol} it moved, or to whom.",
                call=where,
                kind=kind,
                symbol=chain.native_symbol,
            ),
            f"call {where}: {kind} frame without a value",
        )
        return out
    value = _quantity(frame.get("value"))
    if value is None:
        out.not_read(
            Message(
                "The value of inner call {call} could not be read; {symbol} may have moved that is not listed.",
                call=where,
                symbol=chain.native_symbol,
            ),
            f"call {where}: value {frame.get('value')!r} not read",
        )
        return out
    if value <= 0:
        return out
    try:
        sender, recipient = to_checksum_address(frame["from"]), to_checksum_address(frame["to"])
    except (KeyError, TypeError, ValueError):
        out.not_read(
            Message(
                "Inner call {call} moved {value} base units of {symbol} but its sender or recipient could not be read.",
                call=where,
                value=value,
                symbol=chain.native_symbol,
            ),
            f"call {where}: from/to not read ({frame.get('from')!r}, {frame.get('to')!r})",
        )
        return out
    out.transfers.append(
        Transfer(
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
    )
    return out


def internal_transfers(chain: ChainConfig, tx_hash: str, call_frame: Mapping[str, Any] | None) -> list[Transfer]:
    """The transfers of :func:`read_internal` (what it could not read is left out)."""
    return read_internal(chain, tx_hash, call_frame).transfers


INTERNAL_NOT_READ = "internal transfers not read"


def with_internal_transfers(
    chain: ChainConfig, result: TraceResult, call_frame: Mapping[str, Any] | None
) -> TraceResult:
    """``result`` with the internal transfers found in ``call_frame`` appended, and what could not be read."""
    found = read_internal(chain, result.tx_hash, call_frame)
    if not (found.transfers or found.notes or found.unread):
        return result
    return result.model_copy(
        update={
            "transfers": [*result.transfers, *found.transfers],
            "notes": [*result.notes, *found.notes],
            "unread": [*result.unread, *found.unread],
        }
    )


def internal_not_read(result: TraceResult, why: str) -> TraceResult:
    """``result`` with a note saying that native value forwarded by contracts was not looked for."""
    note = f"{INTERNAL_NOT_READ}: {why}"
    return result.model_copy(update={"notes": [*result.notes, note]})
