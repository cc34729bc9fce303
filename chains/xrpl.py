"""XRP Ledger adapter over rippled's JSON-RPC ``tx`` method (API v1 and v2 response shapes).

rippled reports errors inside ``result`` (``status: "error"``, ``error: "txnNotFound"``) with HTTP 200,
not as a JSON-RPC ``error`` object. ``txnNotFound`` means "not found"; server-side conditions
(``tooBusy``, ``noNetwork``...) are endpoint failures and fail over; any other error raises ``XrplError``.

Only a ``Payment`` is a transfer, and its amount is what the ledger *delivered* (``meta.delivered_amount``,
else ``meta.DeliveredAmount``), never ``Amount``/``DeliverMax``: a partial payment may deliver far less
than it names. Native XRP is in drops (6 decimals). An issued currency is identified by
``token_address = "<currency>.<issuer>"``; a listed token (``config.tokens`` with that address) gives
symbol and decimals, an unlisted one has no symbol and 15 decimals (XRPL values carry 15 significant
digits): its decimal ``value`` is scaled by 10**15 exactly.

Anything where value may have moved that this adapter does not read goes to ``TraceResult.unread`` with a
note, never to a silent "no deposit": a payment whose delivered amount the ledger does not give (before
2014) or that does not scale to whole units, an amount of a shape it does not know (an MPT amount, say),
and every transaction type other than a payment except those that deliver nothing to another account
(``NO_DELIVERY_TYPES``: settings, trust lines, offers, escrow and check creation...). A transaction type
it does not know at all is not read either.

Finality is ``validated: true`` (1 confirmation of 1 required); before that the result is provisional.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import httpx

from chains.adapter import Findings, PooledAdapter
from chains.endpoints import EndpointFailed, RpcError, send
from recovery.i18n import N_, Message
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer
from recovery.settings import ChainConfig

TX_HASH_RE = re.compile(r"^[0-9a-fA-F]{64}$")
TX_HASH_FORMAT = N_("64 hex digits, no 0x (any case)")
TF_PARTIAL_PAYMENT = 0x00020000
UNLISTED_DECIMALS = 15
RIPPLE_EPOCH = 946_684_800
"""2000-01-01T00:00:00Z in Unix seconds: the XRP Ledger counts time from it."""
NOT_FOUND_ERRORS = frozenset({"txnNotFound"})
ENDPOINT_ERRORS = frozenset(
    {"tooBusy", "noNetwork", "noCurrent", "noClosed", "amendmentBlocked", "slowDown", "failedToForward"}
)
"""rippled errors about the server's own state: another server may answer, so they fail over."""
NO_DELIVERY_TYPES = frozenset(
    {
        "AccountSet",
        "SetRegularKey",
        "SignerListSet",
        "TrustSet",
        "OfferCreate",
        "OfferCancel",
        "TicketCreate",
        "DepositPreauth",
        "EscrowCreate",
        "EscrowCancel",
        "CheckCreate",
        "CheckCancel",
        "PaymentChannelCreate",
        "PaymentChannelFund",
        "NFTokenMint",
        "NFTokenBurn",
        "NFTokenCreateOffer",
        "NFTokenCancelOffer",
        "NFTokenModify",
        "AMMCreate",
        "AMMDeposit",
        "AMMVote",
        "AMMBid",
        "AMMDelete",
        "DIDSet",
        "DIDDelete",
        "OracleSet",
        "OracleDelete",
        "MPTokenIssuanceCreate",
        "MPTokenIssuanceDestroy",
        "MPTokenIssuanceSet",
        "MPTokenAuthorize",
        "CredentialCreate",
        "CredentialAccept",
        "CredentialDelete",
        "XChainCreateBridge",
        "XChainModifyBridge",
        "XChainCreateClaimID",
        "EnableAmendment",
        "SetFee",
        "UNLModify",
    }
)
"""Transaction types that deliver nothing to another account: their sender's own settings, trust lines,
offers (an offer trades with its owner's counterparties, never into a named destination), value locked in
an escrow, check or channel until another transaction releases it, NFT and AMM bookkeeping, pseudo-
transactions. Any other type that is not a payment (``CheckCash``, ``EscrowFinish``, ``PaymentChannelClaim``,
``AccountDelete``, ``NFTokenAcceptOffer``, ``AMMWithdraw``, cross-chain claims...) may deliver value, and one
this adapter does not know may too: neither is read, both are reported as such."""


class XrplError(RpcError):
    """rippled answered a request with an error status (``error`` is its name, e.g. ``invalidParams``)."""

    def __init__(self, error: str, code: int, message: str) -> None:
        super().__init__(code, f"{error}: {message}" if message else error)
        self.error = error


class _Unreadable(Exception):
    """An amount this adapter will not turn into base units (reason in the message)."""


def accepts(tx_hash: str) -> bool:
    return isinstance(tx_hash, str) and bool(TX_HASH_RE.match(tx_hash))


def normalize_tx_hash(tx_hash: str) -> str:
    if not accepts(tx_hash):
        raise ValueError(f"not an XRP Ledger transaction hash ({TX_HASH_FORMAT}): {tx_hash!r}")
    return tx_hash.upper()


def _format_amount(amount: Any) -> str:
    if isinstance(amount, str):
        return f"{amount} drops"
    if isinstance(amount, dict):
        return f"{amount.get('value')} {amount.get('currency')}.{amount.get('issuer')}"
    return repr(amount)


def parse_amount(config: ChainConfig, amount: Any) -> tuple[str | None, str | None, int, int]:
    """``(token_address, asset, decimals, base units)`` of an XRPL amount; ``_Unreadable`` otherwise."""
    if isinstance(amount, str):
        if not amount.isdigit():
            raise _Unreadable(Message("XRP amount {amount} is not a whole number of drops", amount=repr(amount)))
        return None, config.native_symbol, config.native_decimals, int(amount)
    if not isinstance(amount, dict) or not {"currency", "issuer", "value"} <= amount.keys():
        raise _Unreadable(Message("unsupported amount {amount}", amount=repr(amount)))
    token_address = f"{amount['currency']}.{amount['issuer']}"
    token = config.token_by_address(token_address)
    decimals = token.decimals if token else UNLISTED_DECIMALS
    try:
        value = Decimal(str(amount["value"]))
    except InvalidOperation as exc:
        raise _Unreadable(Message("issued amount value {value} is not a number", value=repr(amount["value"]))) from exc
    with localcontext() as ctx:
        ctx.prec = 200
        scaled = value.scaleb(decimals)
        if not scaled.is_finite() or scaled < 0 or scaled != scaled.to_integral_value():
            raise _Unreadable(
                Message(
                    "{amount} is not a whole number of units at {decimals} decimals",
                    amount=_format_amount(amount),
                    decimals=decimals,
                )
            )
        units = int(scaled)
    return token_address, token.symbol if token else None, decimals, units


def payment_transfer(
    config: ChainConfig, tx_hash: str, tx: dict[str, Any], meta: dict[str, Any], found: Findings
) -> None:
    """The delivered amount of a successful ``Payment`` into ``found``; for anything else a note, and for
    what may have delivered value without being read an entry in ``found.unread``."""
    kind = tx.get("TransactionType")
    if kind != "Payment":
        if kind in NO_DELIVERY_TYPES:
            found.notes.append(f"{kind} is not a payment: no transfer")
        else:
            found.not_read(
                Message(
                    "a {kind}, which may deliver value this adapter does not read",
                    kind=kind or Message("transaction without a type"),
                )
            )
        return
    delivered = meta.get("delivered_amount")
    if delivered is None or delivered == "unavailable":
        delivered = meta.get("DeliveredAmount")
    if delivered is None or delivered == "unavailable":
        found.not_read(
            Message(
                "how much the payment delivered: the ledger does not say (delivered_amount unavailable, as for "
                "payments before 2014)"
            )
        )
        return
    declared = tx.get("DeliverMax", tx.get("Amount"))
    flags = tx.get("Flags") or 0
    if isinstance(flags, int) and flags & TF_PARTIAL_PAYMENT:
        found.notes.append(
            f"partial payment: Amount was {_format_amount(declared)} but {_format_amount(delivered)} delivered"
        )
    try:
        token_address, asset, decimals, units = parse_amount(config, delivered)
    except _Unreadable as exc:
        found.not_read(Message("the delivered amount: {problem}", problem=str(exc)))
        return
    sender, recipient = tx.get("Account"), tx.get("Destination")
    if not isinstance(sender, str) or not isinstance(recipient, str):
        found.not_read(
            Message(
                "the payment's Account {sender} or Destination {recipient}",
                sender=repr(sender),
                recipient=repr(recipient),
            )
        )
        return
    tag = tx.get("DestinationTag")
    found.transfers.append(
        Transfer(
            chain=config.name,
            tx_hash=tx_hash,
            log_index=NATIVE_LOG_INDEX,
            token_address=token_address,
            asset=asset,
            decimals=decimals,
            sender=sender,
            recipient=recipient,
            amount=units,
            memo=None if tag is None else str(tag),
        )
    )


def close_time(result: dict[str, Any], tx: dict[str, Any]) -> datetime | None:
    """When the transaction's ledger closed: ``close_time_iso`` (API v2), else ``date`` (seconds since the
    Ripple epoch). Close times are rounded to the ledger's close time resolution (10 s)."""
    iso = result.get("close_time_iso")
    if isinstance(iso, str):
        try:
            return datetime.fromisoformat(iso).astimezone(UTC)
        except ValueError:
            pass
    date = result.get("date", tx.get("date"))
    if isinstance(date, bool) or not isinstance(date, int):
        return None
    return datetime.fromtimestamp(RIPPLE_EPOCH + date, UTC)


def _ledger_index(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


class XrplChain(PooledAdapter):
    """One XRP Ledger network through rippled JSON-RPC endpoints with failover."""

    accepts = staticmethod(accepts)

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One rippled method call; its ``result`` on success."""
        body = {"method": method, "params": [params]}

        async def attempt(http: httpx.AsyncClient, url: str) -> dict[str, Any]:
            resp = await send(http, "POST", url, timeout=self.pool.timeout, body=body)
            try:
                reply = resp.json()
            except ValueError as exc:
                raise EndpointFailed(f"HTTP {resp.status_code}, body is not JSON") from exc
            result = reply.get("result") if isinstance(reply, dict) else None
            if not isinstance(result, dict):
                err = reply.get("error") if isinstance(reply, dict) else None
                if resp.status_code < 400 and isinstance(err, dict):  # a JSON-RPC 2.0 style error (proxies)
                    raise RpcError(int(err.get("code", -32603)), str(err.get("message", "")))
                raise EndpointFailed(f"HTTP {resp.status_code}, no result in the reply")
            if result.get("status") == "error" or "error" in result:
                error = str(result.get("error") or "unknown")
                if error in ENDPOINT_ERRORS:
                    raise EndpointFailed(f"rippled {error}")
                raise XrplError(error, int(result.get("error_code") or -1), str(result.get("error_message") or ""))
            return result

        return await self.pool.request(attempt)

    async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
        """``block_time`` is accepted for the adapter protocol: the block's time comes with the answer here."""
        tx_hash = normalize_tx_hash(tx_hash)
        base = TraceResult(
            chain=self.config.name,
            tx_hash=tx_hash,
            found=False,
            required_confirmations=1,
            block_time_ms=self.config.block_time_ms,
        )
        try:
            result = await self.request("tx", {"transaction": tx_hash, "binary": False})
        except XrplError as exc:
            if exc.error in NOT_FOUND_ERRORS:
                return base
            raise
        # API v2 puts the transaction under tx_json (hash, meta and validated beside it); v1 inlines it.
        tx: dict[str, Any] = result["tx_json"] if isinstance(result.get("tx_json"), dict) else result
        found_hash = str(result.get("hash") or tx.get("hash") or "").upper()
        if found_hash != tx_hash:
            raise RpcError(-32603, f"{self.config.name}: rippled answered transaction {found_hash or '?'}")
        meta = result.get("meta") if isinstance(result.get("meta"), dict) else tx.get("meta")
        meta = meta if isinstance(meta, dict) else {}
        tx_result = meta.get("TransactionResult")
        validated = result.get("validated") is True
        found = Findings()
        if not validated:
            found.notes.append(f"not validated yet: result {tx_result or 'unknown'} is provisional")
        elif tx_result is None:
            raise RpcError(-32603, f"{self.config.name}: validated transaction {tx_hash} without metadata")
        succeeded = tx_result == "tesSUCCESS"
        if succeeded:
            payment_transfer(self.config, tx_hash, tx, meta, found)
        elif validated:
            found.notes.append(f"failed: {tx_result}; nothing was delivered")
        return base.model_copy(
            update={
                "found": True,
                "succeeded": succeeded if validated else None,
                "block_number": _ledger_index(result.get("ledger_index", tx.get("ledger_index"))),
                "confirmations": 1 if validated else 0,
                "block_timestamp": close_time(result, tx) if validated else None,
                "transfers": found.transfers,
                "notes": found.notes,
                "unread": found.unread,
            }
        )
