"""Is a token safe to sweep automatically? Checks on a live EVM node, read-only (no transaction is sent).

``assess_token`` returns a ``TokenFinding`` per risk it observed, with the numbers in ``detail``:

- ``NOT_A_TOKEN``: no code at the address, or ``balanceOf``/``decimals`` revert or answer garbage.
- ``TRANSFER_REVERTS``: a dry run of the sweep, ``transfer(to, amount)`` sent from the holder, reverts
  or returns ``false`` (a blacklisted or frozen holder, a paused token).
- ``FEE_ON_TRANSFER``: the dry run delivers less than ``amount`` to ``to``.
- ``REBASING``: the holder's balance is not what its ``Transfer`` logs explain.

How the dry run is made, best first (the first the node offers is used; the choice is remembered per
adapter):

1. ``eth_simulateV1`` (geth 1.14.9+, reth, anvil 1.x: checked on anvil 1.7.1): one simulated block of
   ``[balanceOf(to), balanceOf(holder), transfer(to, amount) from holder, balanceOf(to), balanceOf(holder)]``.
   Calls in one simulated block share state, so the delivered amount is a real balance difference,
   whatever the token logs. Validation is off: the holder needs no gas money.
2. ``debug_traceCall`` with ``callTracer`` and ``withLog``: the call's revert status, its return value
   and its ``Transfer`` logs. The delivered amount is what the logs say reached ``to``; a token that logs
   the gross amount but credits less is missed here (the ``REBASING`` history check sees it).
3. plain ``eth_call``: revert and ``false`` only; the fee is not measured (logged as a warning).

The history check (``REBASING``, needs ``deposit_block`` and historical state back to the block before
it, as on an archive node or anvil): ``balanceOf(holder)`` at ``deposit_block - 1``, plus the ``Transfer``
logs to it, minus those from it, from ``deposit_block`` to the head, must equal its balance at the head.
It is skipped (logged) when the node cannot answer the history or the log range.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from eth_abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils import to_checksum_address

from chains.endpoints import RpcError
from chains.evm import BALANCE_OF_SELECTOR, EvmChain, _pad_address, build_erc20_transfer_data, method_unsupported
from chains.evm_decode import TRANSFER_TOPIC, _hex_bytes, _topic_address, hex_to_int
from recovery.i18n import Message, Percent, separated
from recovery.models import TokenFinding, TokenRisk

log = logging.getLogger(__name__)

DECIMALS_SELECTOR = "0x313ce567"
SYMBOL_SELECTOR = "0x95d89b41"
ERROR_STRING_SELECTOR = bytes.fromhex("08c379a0")
MAX_SANE_DECIMALS = 77
"""10**77 < 2**256 <= 10**78: more decimals than that cannot describe a uint256 amount."""

# Per adapter: which dry-run method its node offers ("simulate", "trace_call", "call").
_dry_run_method: weakref.WeakKeyDictionary[EvmChain, str] = weakref.WeakKeyDictionary()
DRY_RUN_METHODS = ("simulate", "trace_call", "call")


@dataclass(frozen=True)
class DryRun:
    """What a dry run of ``transfer(to, amount)`` from the holder showed."""

    method: str
    reverted: bool
    reason: str = ""
    returned_false: bool = False
    delivered: int | None = None
    """Amount that reached ``to``; None when the method cannot tell."""
    debited: int | None = None
    """Amount that left the holder; None when the method cannot tell."""

    @property
    def how(self) -> str:
        if self.method == "simulate":
            return Message("eth_simulateV1, balanceOf before and after")
        if self.method == "trace_call":
            return Message("debug_traceCall, Transfer logs")
        return "eth_call"


def _eth_call(token: str, data: str, sender: str | None = None) -> dict[str, str]:
    call = {"to": token, "data": data}
    if sender is not None:
        call["from"] = sender
    return call


def _balance_call(token: str, holder: str) -> dict[str, str]:
    return _eth_call(token, BALANCE_OF_SELECTOR + _pad_address(holder))


def _word(result: Any) -> int | None:
    """A single ABI word (uint256 / bool / uint8) from call output; None if the output is not one word."""
    raw = _hex_bytes(result)
    if raw is None or len(raw) != 32:
        return None
    return int.from_bytes(raw, "big")


def revert_reason(output: Any) -> str:
    """``Error(string)`` revert data as text; otherwise the raw hex (or "no reason")."""
    raw = _hex_bytes(output) or b""
    if raw[:4] == ERROR_STRING_SELECTOR:
        try:
            (reason,) = decode(["string"], raw[4:])
            return str(reason)
        except (DecodingError, ValueError, OverflowError):
            pass
    return "0x" + raw.hex() if raw else Message("no reason given")


def _bool_false(output: Any) -> bool:
    """ERC-20 ``transfer`` returned ``false``. Empty output is fine: USDT on Ethereum returns nothing."""
    raw = _hex_bytes(output)
    return raw is not None and len(raw) == 32 and not any(raw)


def _short(address: str) -> str:
    return to_checksum_address(address)


def _answered(value: str) -> str:
    return Message("answered {value}", value=value)


def _pct(part: int, whole: int) -> str:
    """``part / whole`` as a percentage with two decimals, computed in integers (no binary fractions), written as
    the reader's language writes one (``33.33%``, ``33,33 %``)."""
    if whole <= 0:
        return "?"
    hundredths = (part * 10_000 + whole // 2) // whole
    return Percent(Decimal(hundredths).scaleb(-2))


# --- metadata -----------------------------------------------------------------------------------


def decode_symbol(output: Any) -> str | None:
    """``symbol()`` output: an ABI string, or a bytes32 (old tokens such as MKR); None if neither."""
    raw = _hex_bytes(output)
    if not raw:
        return None
    if len(raw) == 32:
        text = raw.rstrip(b"\0")
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            return None
        return decoded if decoded.isprintable() and decoded else None
    try:
        (value,) = decode(["string"], raw)
    except (DecodingError, ValueError, OverflowError):
        return None
    symbol = str(value).strip()
    return symbol if symbol and symbol.isprintable() else None


async def token_metadata(chain: EvmChain, token: str) -> tuple[str | None, int | None]:
    """``(symbol, decimals)`` read with ``eth_call``; None for what the contract does not answer sanely."""
    token = to_checksum_address(token)
    symbol_out, decimals_out = await chain.rpc.batch(
        [
            ("eth_call", [_eth_call(token, SYMBOL_SELECTOR), "latest"]),
            ("eth_call", [_eth_call(token, DECIMALS_SELECTOR), "latest"]),
        ]
    )
    symbol = None if isinstance(symbol_out, RpcError) else decode_symbol(symbol_out)
    decimals = None if isinstance(decimals_out, RpcError) else _word(decimals_out)
    if decimals is not None and decimals > MAX_SANE_DECIMALS:
        decimals = None
    return symbol, decimals


# --- dry run ------------------------------------------------------------------------------------


def dry_run_from_simulation(block: Sequence[Mapping[str, Any]]) -> DryRun:
    """Read ``[bal(to), bal(holder), transfer, bal(to), bal(holder)]`` results of one simulated block."""
    calls = list(block[0].get("calls") or []) if block else []
    if len(calls) != 5:
        raise ValueError(f"eth_simulateV1 returned {len(calls)} call results, expected 5")
    to_before, holder_before, transfer, to_after, holder_after = calls
    if hex_to_int(transfer.get("status", "0x0")) != 1:
        return DryRun("simulate", reverted=True, reason=revert_reason(transfer.get("returnData")))
    words = [_word(c.get("returnData")) for c in (to_before, holder_before, to_after, holder_after)]
    if any(w is None for w in words):
        return DryRun("simulate", reverted=False, returned_false=_bool_false(transfer.get("returnData")))
    tb, hb, ta, ha = (w or 0 for w in words)
    return DryRun(
        "simulate",
        reverted=False,
        returned_false=_bool_false(transfer.get("returnData")),
        delivered=ta - tb,
        debited=hb - ha,
    )


def _frame_logs(frame: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    """Logs of a callTracer frame and its children, skipping reverted subtrees."""
    if frame.get("error"):
        return
    yield from frame.get("logs") or []
    for child in frame.get("calls") or []:
        if isinstance(child, Mapping):
            yield from _frame_logs(child)


def dry_run_from_call_trace(frame: Mapping[str, Any], *, token: str, holder: str, to: str) -> DryRun:
    """Read a ``debug_traceCall`` callTracer (``withLog``) result of the transfer."""
    if frame.get("error"):
        reason = frame.get("revertReason") or revert_reason(frame.get("output"))
        return DryRun("trace_call", reverted=True, reason=str(reason))
    token, holder, to = (a.lower() for a in (token, holder, to))
    delivered = debited = 0
    for entry in _frame_logs(frame):
        topics = entry.get("topics") or []
        if str(entry.get("address", "")).lower() != token or len(topics) != 3:
            continue
        if str(topics[0]).lower() != TRANSFER_TOPIC:
            continue
        sender, receiver = _topic_address(topics[1]), _topic_address(topics[2])
        value = _hex_bytes(entry.get("data"))
        if sender is None or receiver is None or value is None or len(value) != 32:
            continue
        amount = int.from_bytes(value, "big")
        if receiver.lower() == to:
            delivered += amount
        if sender.lower() == to:
            delivered -= amount
        if sender.lower() == holder:
            debited += amount
        if receiver.lower() == holder:
            debited -= amount
    return DryRun(
        "trace_call",
        reverted=False,
        returned_false=_bool_false(frame.get("output")),
        delivered=delivered,
        debited=debited,
    )


async def dry_run_transfer(
    chain: EvmChain, *, token: str, holder: str, to: str, amount: int, method: str | None = None
) -> DryRun:
    """Dry-run ``transfer(to, amount)`` from ``holder``: with ``method`` if given, else the best the node offers."""
    token, holder, to = (to_checksum_address(a) for a in (token, holder, to))
    transfer = _eth_call(token, build_erc20_transfer_data(to, amount), sender=holder)
    known = _dry_run_method.get(chain, DRY_RUN_METHODS[0])
    order = [method] if method else list(DRY_RUN_METHODS[DRY_RUN_METHODS.index(known) :])
    for candidate in order:
        try:
            if candidate == "simulate":
                calls = [
                    _balance_call(token, to),
                    _balance_call(token, holder),
                    transfer,
                    _balance_call(token, to),
                    _balance_call(token, holder),
                ]
                block = await chain.rpc.call(
                    "eth_simulateV1", [{"blockStateCalls": [{"calls": calls}], "validation": False}, "latest"]
                )
                result = dry_run_from_simulation(block)
            elif candidate == "trace_call":
                tracer = {"tracer": "callTracer", "tracerConfig": {"withLog": True}}
                frame = await chain.rpc.call("debug_traceCall", [transfer, "latest", tracer])
                result = dry_run_from_call_trace(frame, token=token, holder=holder, to=to)
            elif candidate == "call":
                try:
                    output = await chain.rpc.call("eth_call", [transfer, "latest"])
                except RpcError as exc:
                    if method_unsupported(exc):
                        raise
                    reason = revert_reason(exc.data) if exc.data else exc.message
                    return DryRun("call", reverted=True, reason=reason)
                log.warning("%s: no eth_simulateV1 nor debug_traceCall: fee on transfer not measured", chain)
                result = DryRun("call", reverted=False, returned_false=_bool_false(output))
            else:
                raise ValueError(f"unknown dry-run method {candidate!r}")
        except RpcError as exc:
            if method_unsupported(exc) and method is None:
                log.info("%s: dry run with %s unavailable (%s), trying the next method", chain, candidate, exc)
                continue
            raise
        if method is None:
            _dry_run_method[chain] = candidate
        return result
    raise RpcError(-32601, f"{chain}: the node offers no way to dry-run a transfer")


# --- history ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BalanceHistory:
    before: int
    """Balance at ``deposit_block - 1``."""
    at_deposit: int
    now: int
    head: int
    logged_in: int
    logged_out: int
    logs_after_deposit: int
    """Transfer logs touching the holder after ``deposit_block``."""

    @property
    def explained(self) -> int:
        return self.before + self.logged_in - self.logged_out


async def balance_history(chain: EvmChain, *, token: str, holder: str, deposit_block: int) -> BalanceHistory:
    token, holder = to_checksum_address(token), to_checksum_address(holder)
    head = await chain.block_number()
    topic = "0x" + _pad_address(holder)
    base = {"address": token, "fromBlock": hex(deposit_block), "toBlock": hex(head)}
    before_block = hex(max(deposit_block - 1, 0))
    replies = await chain.rpc.batch(
        [
            ("eth_call", [_balance_call(token, holder), before_block]),
            ("eth_call", [_balance_call(token, holder), hex(deposit_block)]),
            ("eth_call", [_balance_call(token, holder), hex(head)]),
            ("eth_getLogs", [base | {"topics": [TRANSFER_TOPIC, None, topic]}]),
            ("eth_getLogs", [base | {"topics": [TRANSFER_TOPIC, topic]}]),
        ]
    )
    for reply in replies:
        if isinstance(reply, RpcError):
            raise reply
    before_out, at_out, now_out, logs_in, logs_out = replies
    before, at_deposit, now = (_word(o) for o in (before_out, at_out, now_out))
    if before is None or at_deposit is None or now is None:
        raise ValueError("balanceOf did not answer one word")
    if deposit_block == 0:
        before = 0

    def total(logs: Any) -> tuple[int, int]:
        amount = after = 0
        for entry in logs or []:
            if not isinstance(entry, Mapping) or len(entry.get("topics") or []) != 3 or entry.get("removed"):
                continue
            raw = _hex_bytes(entry.get("data"))
            if raw is None or len(raw) != 32:
                continue
            amount += int.from_bytes(raw, "big")
            if hex_to_int(entry.get("blockNumber") or 0) > deposit_block:
                after += 1
        return amount, after

    logged_in, after_in = total(logs_in)
    logged_out, after_out = total(logs_out)
    return BalanceHistory(before, at_deposit, now, head, logged_in, logged_out, after_in + after_out)


# --- assessment ---------------------------------------------------------------------------------


async def assess_token(
    chain: EvmChain, *, token: str, holder: str, amount: int, to: str, deposit_block: int | None
) -> list[TokenFinding]:
    """Risks of sweeping ``amount`` of ``token`` from ``holder`` to ``to``; an empty list means none seen.

    ``deposit_block`` enables the history check (``REBASING``). Raises ``RpcError``/``RpcUnavailable``
    only when the node cannot answer the basic questions (code, balance); a check the node cannot make
    is skipped and logged.
    """
    token, holder, to = (to_checksum_address(a) for a in (token, holder, to))
    where = Message("{token} on {chain}", token=token, chain=chain.config.name)
    code, balance_out, decimals_out = await chain.rpc.batch(
        [
            ("eth_getCode", [token, "latest"]),
            ("eth_call", [_balance_call(token, holder), "latest"]),
            ("eth_call", [_eth_call(token, DECIMALS_SELECTOR), "latest"]),
        ]
    )
    if isinstance(code, RpcError):
        raise code
    if code in (None, "", "0x", "0x0"):
        return [TokenFinding(risk=TokenRisk.NOT_A_TOKEN, detail=Message("no contract code at {where}", where=where))]
    problems: list[str] = []
    balance = None if isinstance(balance_out, RpcError) else _word(balance_out)
    if balance is None:
        why = balance_out.message if isinstance(balance_out, RpcError) else _answered(repr(balance_out))
        problems.append(Message("balanceOf({holder}) failed: {why}", holder=holder, why=why))
    decimals = None if isinstance(decimals_out, RpcError) else _word(decimals_out)
    if decimals is None or decimals > MAX_SANE_DECIMALS:
        why = decimals_out.message if isinstance(decimals_out, RpcError) else _answered(repr(str(decimals_out)[:80]))
        problems.append(Message("decimals() failed: {why}", why=why))
    if problems:
        detail = Message("{where} is not an ERC-20 token: {problems}", where=where, problems=separated(problems))
        return [TokenFinding(risk=TokenRisk.NOT_A_TOKEN, detail=detail)]
    assert balance is not None

    findings: list[TokenFinding] = []
    run = await dry_run_transfer(chain, token=token, holder=holder, to=to, amount=amount)
    sweep = Message(
        "a dry run of transfer({to}, {amount}) from {holder} ({how})", to=to, amount=amount, holder=holder, how=run.how
    )
    if run.reverted:
        detail = Message("{sweep} reverted: {reason}", sweep=sweep, reason=run.reason)
        if balance < amount:
            detail = Message(
                "{detail} (the holder's balance is {balance}, below {amount})",
                detail=detail,
                balance=balance,
                amount=amount,
            )
        findings.append(TokenFinding(risk=TokenRisk.TRANSFER_REVERTS, detail=detail))
    elif run.returned_false:
        findings.append(
            TokenFinding(risk=TokenRisk.TRANSFER_REVERTS, detail=Message("{sweep} returned false", sweep=sweep))
        )
    elif run.delivered is not None and to != holder and run.delivered < amount:
        kept = amount - run.delivered
        detail = Message(
            "{sweep} delivered {delivered} of {amount} to {to}: {kept} ({share}) kept",
            sweep=sweep,
            delivered=run.delivered,
            amount=amount,
            to=to,
            kept=kept,
            share=_pct(kept, amount),
        )
        if run.debited is not None and run.debited != amount:
            detail = Message("{detail}; the holder was debited {debited}", detail=detail, debited=run.debited)
        findings.append(TokenFinding(risk=TokenRisk.FEE_ON_TRANSFER, detail=detail))
    elif run.delivered is None:
        findings.append(
            TokenFinding(
                risk=TokenRisk.UNVERIFIED,
                detail=Message(
                    "{sweep} could not measure what the transfer delivers (the node answered neither eth_simulateV1 "
                    "nor debug_traceCall with balances): fee on transfer not ruled out",
                    sweep=sweep,
                ),
            )
        )

    if deposit_block is None:
        findings.append(
            TokenFinding(risk=TokenRisk.UNVERIFIED, detail=Message("no deposit block: rebasing not ruled out"))
        )
    else:
        try:
            history = await balance_history(chain, token=token, holder=holder, deposit_block=deposit_block)
        except (RpcError, ValueError) as exc:
            log.warning("%s: balance history of %s in %s not read, rebasing not checked: %s", chain, holder, token, exc)
            findings.append(
                TokenFinding(
                    risk=TokenRisk.UNVERIFIED,
                    detail=Message(
                        "the holder's balance history since block {block} could not be read ({error}; it needs an "
                        "archive node): rebasing not ruled out",
                        block=deposit_block,
                        error=str(exc),
                    ),
                )
            )
        else:
            finding = rebasing_finding(history, holder=holder, deposit_block=deposit_block)
            if finding is not None:
                findings.append(finding)
    return findings


def rebasing_finding(history: BalanceHistory, *, holder: str, deposit_block: int) -> TokenFinding | None:
    """A ``REBASING`` finding when the holder's balance is not what its Transfer logs explain."""
    h = history
    if h.now == h.explained:
        return None
    drift = h.now - h.explained
    detail = Message(
        "balance of {holder} at block {head} is {now}, but its balance at block {before_block} ({before}) + "
        "{logged_in} logged in - {logged_out} logged out since block {block} gives {explained} ({drift} unexplained)",
        holder=holder,
        head=h.head,
        now=h.now,
        before_block=deposit_block - 1,
        before=h.before,
        logged_in=h.logged_in,
        logged_out=h.logged_out,
        block=deposit_block,
        explained=h.explained,
        drift=format(drift, "+d"),
    )
    if h.logs_after_deposit == 0 and h.at_deposit != h.now:
        detail = Message(
            "{detail}; no Transfer log touched it after block {block}, yet it moved from {at_deposit}",
            detail=detail,
            block=deposit_block,
            at_deposit=h.at_deposit,
        )
    return TokenFinding(risk=TokenRisk.REBASING, detail=detail)
