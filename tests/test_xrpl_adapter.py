"""XRP Ledger adapter against a fake rippled JSON-RPC answering the documented shapes (API v1 and v2)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chains.xrpl import XrplChain, XrplError
from recovery.models import NATIVE_LOG_INDEX
from recovery.settings import ChainConfig, TokenConfig
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401

HASH = "C53ECF838647FA5A4C780377025FEC7999AB4182590510CA461444B207AB74A9"
SENDER = "rf1BiGeXwwQoi8Z2ueFYTEXSwuJYfV2Jpn"
EXCHANGE = "rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe"
GATEHUB = "rhub8VRN55s94qWKDv6jmDy1pUykJzF3wq"
RLUSD_ISSUER = "rMxCKbEDwqr76QuheSUMdEGf4B9xJ8m5De"
RLUSD_CODE = "524C555344000000000000000000000000000000"
LEDGER = 87_654_321
TF_FULLY_CANONICAL_SIG = 0x80000000
TF_PARTIAL_PAYMENT = 0x00020000


def xrp_config(*urls: str) -> ChainConfig:
    return ChainConfig(
        name="xrp",
        family="xrpl",
        rpc_urls=list(urls),
        confirmations=1,
        block_time_ms=4_000,
        native_symbol="XRP",
        native_decimals=6,
        tokens=[TokenConfig(symbol="USD", address=f"USD.{GATEHUB}", decimals=6)],
        shared_deposit_address=EXCHANGE,
        rpc_backoff_ms=5,
        rpc_timeout_ms=500,
    )


def payment(amount: Any, *, tag: int | None = 104729, flags: int = TF_FULLY_CANONICAL_SIG) -> dict[str, Any]:
    tx: dict[str, Any] = {
        "Account": SENDER,
        "Destination": EXCHANGE,
        "Fee": "12",
        "Flags": flags,
        "LastLedgerSequence": LEDGER + 9,
        "Sequence": 391,
        "SigningPubKey": "03AB40A0490F9B7ED8DF29D246BF2D6269820A0EE7742ACDD457BEA7C7D0931EDB",
        "TransactionType": "Payment",
        "TxnSignature": "3045022100D184EB4AE5956FF600E7536EE459345C7BBCF097A84CC61A93B9AF7197EDB98702201",
    }
    if tag is not None:
        tx["DestinationTag"] = tag
    tx["Amount"] = amount
    return tx


def meta(result: str = "tesSUCCESS", delivered: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"AffectedNodes": [], "TransactionIndex": 12, "TransactionResult": result}
    if delivered is not None:
        out["delivered_amount"] = delivered
    return out


def v1(tx: dict[str, Any], tx_meta: dict[str, Any] | None, *, validated: bool = True) -> dict[str, Any]:
    """API v1 ``tx`` result: transaction fields at the top of ``result`` (rippled 2.x adds DeliverMax)."""
    result: dict[str, Any] = tx | {"hash": HASH, "ledger_index": LEDGER, "validated": validated, "status": "success"}
    if "Amount" in tx:
        result["DeliverMax"] = tx["Amount"]
    if tx_meta is not None:
        result |= {"meta": tx_meta, "date": 767225421, "inLedger": LEDGER}
    return {"result": result}


def v2(tx: dict[str, Any], tx_meta: dict[str, Any], *, validated: bool = True) -> dict[str, Any]:
    """API v2 ``tx`` result: the transaction under ``tx_json``, ``Amount`` renamed ``DeliverMax``."""
    tx_json = {k: v for k, v in tx.items() if k != "Amount"} | {"DeliverMax": tx["Amount"]}
    return {
        "result": {
            "close_time_iso": "2024-04-23T10:30:21Z",
            "ctid": "C5397C1B000C0000",
            "hash": HASH,
            "ledger_hash": "BA2F2D8A4D1D5C3F2CE3E3F1B7B2B7B0C6F4B5F41B8E52E0A3C5B7F6F3E2E1D0",
            "ledger_index": LEDGER,
            "meta": tx_meta,
            "tx_json": tx_json,
            "validated": validated,
            "status": "success",
        }
    }


def error(name: str, code: int, message: str) -> dict[str, Any]:
    request = {"binary": False, "command": "tx", "transaction": HASH}
    return {
        "result": {"error": name, "error_code": code, "error_message": message, "request": request, "status": "error"}
    }


def rippled(node: FakeNode, reply: dict[str, Any]) -> FakeNode:
    node.route("POST", None, reply, match={"method": "tx", "params": [{"transaction": HASH, "binary": False}]})
    return node


async def test_validated_payment_with_destination_tag(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = rippled(fake_nodes(), v1(payment("25000000"), meta(delivered="25000000")))
    result = await XrplChain(xrp_config(node.url)).trace(HASH.lower())
    assert result.found and result.succeeded is True and result.tx_hash == HASH and result.chain == "xrp"
    assert result.confirmed and (result.confirmations, result.required_confirmations) == (1, 1)
    assert result.block_number == LEDGER and result.notes == []
    assert result.block_timestamp == datetime(2024, 4, 23, 22, 10, 21, tzinfo=UTC)  # date, Ripple epoch seconds
    [t] = result.transfers
    assert (t.log_index, t.token_address, t.asset, t.decimals, t.amount) == (
        NATIVE_LOG_INDEX,
        None,
        "XRP",
        6,
        25_000_000,
    )
    assert (t.sender, t.recipient, t.memo) == (SENDER, EXCHANGE, "104729")
    assert node.requests[0].body == {"method": "tx", "params": [{"transaction": HASH, "binary": False}]}


async def test_not_validated_is_provisional(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = rippled(fake_nodes(), v1(payment("5000000"), meta(delivered="5000000"), validated=False))
    chain = XrplChain(xrp_config(node.url))
    result = await chain.trace(HASH)
    assert result.found and result.succeeded is None and result.confirmations == 0 and not result.confirmed
    assert "provisional" in result.notes[0] and [t.amount for t in result.transfers] == [5_000_000]
    assert result.block_timestamp is None  # a provisional close time is no block time
    rippled(node, v1(payment("5000000"), None, validated=False))  # still in the open ledger: no metadata
    open_ledger = await chain.trace(HASH)
    assert open_ledger.found and open_ledger.succeeded is None and open_ledger.transfers == []


async def test_txn_not_found(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = rippled(fake_nodes(), error("txnNotFound", 29, "Transaction not found."))
    other = fake_nodes()
    result = await XrplChain(xrp_config(node.url, other.url)).trace(HASH)
    assert not result.found and result.transfers == [] and other.hits() == 0


async def test_partial_payment_uses_delivered_amount(fake_nodes: NodeFactory) -> None:  # noqa: F811
    tx = payment("100000000", flags=TF_FULLY_CANONICAL_SIG | TF_PARTIAL_PAYMENT)
    node = rippled(fake_nodes(), v1(tx, meta(delivered="1000")))
    result = await XrplChain(xrp_config(node.url)).trace(HASH)
    [t] = result.transfers
    assert t.amount == 1000
    assert result.notes == ["partial payment: Amount was 100000000 drops but 1000 drops delivered"]


async def test_issued_currencies(fake_nodes: NodeFactory) -> None:  # noqa: F811
    usd = {"currency": "USD", "issuer": GATEHUB, "value": "12.5"}
    node = rippled(fake_nodes(), v1(payment(usd), meta(delivered=usd)))
    chain = XrplChain(xrp_config(node.url))
    [listed] = (await chain.trace(HASH)).transfers
    assert (listed.token_address, listed.asset, listed.decimals, listed.amount) == (
        f"USD.{GATEHUB}",
        "USD",
        6,
        12_500_000,
    )
    rlusd = {"currency": RLUSD_CODE, "issuer": RLUSD_ISSUER, "value": "1.234567890123456"}
    rippled(node, v1(payment(rlusd), meta(delivered=rlusd)))
    [unlisted] = (await chain.trace(HASH)).transfers
    assert (unlisted.token_address, unlisted.asset, unlisted.decimals, unlisted.amount) == (
        f"{RLUSD_CODE}.{RLUSD_ISSUER}",
        None,
        15,
        1_234_567_890_123_456,
    )
    tiny = {"currency": "EUR", "issuer": GATEHUB, "value": "1e-20"}  # below 10**-15: not a whole unit
    rippled(node, v1(payment(tiny), meta(delivered=tiny)))
    odd = await chain.trace(HASH)
    assert odd.succeeded is True and odd.transfers == [] and "not a whole number" in odd.notes[0]
    assert len(odd.unread) == 1 and "not a whole number" in odd.unread[0]  # value moved: an engineer looks


async def test_api_v2_shape(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = rippled(fake_nodes(), v2(payment("7000000", tag=42), meta(delivered="7000000")))
    result = await XrplChain(xrp_config(node.url)).trace(HASH)
    assert result.confirmed and result.block_number == LEDGER
    assert result.block_timestamp == datetime(2024, 4, 23, 10, 30, 21, tzinfo=UTC)  # close_time_iso
    [t] = result.transfers
    assert (t.amount, t.memo, t.sender, t.recipient) == (7_000_000, "42", SENDER, EXCHANGE)
    partial = payment("9000000", tag=None, flags=TF_PARTIAL_PAYMENT)
    rippled(node, v2(partial, meta(delivered="10")))
    result = await XrplChain(xrp_config(node.url)).trace(HASH)
    assert result.transfers[0].amount == 10 and result.transfers[0].memo is None
    assert "Amount was 9000000 drops but 10 drops delivered" in result.notes[0]


async def test_failed_payment(fake_nodes: NodeFactory) -> None:  # noqa: F811
    usd = {"currency": "USD", "issuer": GATEHUB, "value": "100"}
    node = rippled(fake_nodes(), v1(payment(usd), meta("tecPATH_DRY")))
    result = await XrplChain(xrp_config(node.url)).trace(HASH)
    assert result.found and result.succeeded is False and result.confirmed and result.transfers == []
    assert "tecPATH_DRY" in result.notes[0]


async def test_delivered_amount_fallbacks(fake_nodes: NodeFactory) -> None:  # noqa: F811
    old = meta(delivered="unavailable") | {"DeliveredAmount": "333"}
    node = rippled(fake_nodes(), v1(payment("333"), old))
    chain = XrplChain(xrp_config(node.url))
    assert [t.amount for t in (await chain.trace(HASH)).transfers] == [333]
    rippled(node, v1(payment("333"), meta(delivered="unavailable")))
    refused = await chain.trace(HASH)
    assert refused.succeeded is True and refused.transfers == [] and "unavailable" in refused.notes[0]
    assert len(refused.unread) == 1 and "delivered_amount unavailable" in refused.unread[0]
    offer = {k: v for k, v in payment("1").items() if k not in ("Amount", "Destination")}
    rippled(node, v1(offer | {"TransactionType": "OfferCreate"}, meta()))
    offered = await chain.trace(HASH)
    assert offered.transfers == [] and offered.unread == []  # an offer delivers nothing to a destination


@pytest.mark.parametrize(
    ("tx", "delivered", "unread"),
    [
        # a transaction type this adapter does not know
        (payment("5") | {"TransactionType": "SidechainTeleport"}, "5", "a SidechainTeleport, which may deliver"),
        # a known type that delivers value, not read here
        (payment("5") | {"TransactionType": "CheckCash", "CheckID": "AB" * 32}, "5", "a CheckCash, which may deliver"),
        # an amount of a shape this adapter does not know (an MPT amount)
        (
            payment({"mpt_issuance_id": "00" * 24, "value": "100"}),
            {"mpt_issuance_id": "00" * 24, "value": "100"},
            "the delivered amount: unsupported amount",
        ),
        # a payment whose destination is not given
        ({k: v for k, v in payment("5").items() if k != "Destination"}, "5", "Destination None"),
    ],
)
async def test_what_is_not_read_is_said(
    fake_nodes: NodeFactory,  # noqa: F811
    tx: dict[str, Any],
    delivered: Any,
    unread: str,
) -> None:
    node = rippled(fake_nodes(), v1(tx, meta(delivered=delivered)))
    result = await XrplChain(xrp_config(node.url)).trace(HASH)
    assert result.succeeded is True and result.transfers == []
    [what] = result.unread
    assert unread in what and f"not read: {what}" in result.notes


async def test_too_busy_fails_over(fake_nodes: NodeFactory) -> None:  # noqa: F811
    busy = rippled(fake_nodes(), error("tooBusy", 9, "The server is too busy to help you now."))
    good = rippled(fake_nodes(), v1(payment("1"), meta(delivered="1")))
    chain = XrplChain(xrp_config(busy.url, good.url))
    assert (await chain.trace(HASH)).found
    assert chain.health()[0].last_error == "rippled tooBusy" and chain.health()[1].successes == 1


async def test_other_errors_raise(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = rippled(fake_nodes(), error("invalidParams", 31, "Invalid parameters."))
    other = fake_nodes()
    with pytest.raises(XrplError, match="invalidParams") as info:
        await XrplChain(xrp_config(node.url, other.url)).trace(HASH)
    assert info.value.error == "invalidParams" and info.value.code == 31 and other.hits() == 0
    with pytest.raises(ValueError, match="XRP Ledger"):
        await XrplChain(xrp_config(node.url)).trace("0x" + HASH)
