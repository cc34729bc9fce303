"""The XRP Ledger adapter over replies recorded in the XRPL Foundation's repositories
(tests/fixtures/recorded/xrpl, sources in its README), served by a local fake rippled."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chains.adapter import Findings
from chains.xrpl import XrplChain, payment_transfer
from recovery.models import NATIVE_LOG_INDEX
from recovery.settings import ChainConfig
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401

RECORDED = Path(__file__).parent / "fixtures" / "recorded" / "xrpl"
TX_REPLIES = (
    "xrpljs_tx_payment.json",
    "xrpljs_tx_offerCreateSell.json",
    "devportal_tx_jsonrpc-response.json",
    "devportal_tx-response-escrowfinish-condition.json",
)
"""Whole replies of rippled's ``tx`` method."""
TX_RESULTS = ("xrpljs_partialPaymentXRP.json", "xrpljs_partialPaymentIOU.json")
"""``tx`` results, which xrpl.js's own tests serve as the ``result`` of a ``tx`` reply (as done here)."""


def load(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def config(url: str = "http://127.0.0.1:9") -> ChainConfig:
    return ChainConfig(
        name="xrpl",
        family="xrpl",
        rpc_urls=[url],
        confirmations=1,
        block_time_ms=4_000,
        native_symbol="XRP",
        native_decimals=6,
        rpc_backoff_ms=5,
        rpc_timeout_ms=2_000,
    )


def reply_hash(reply: dict[str, Any]) -> str:
    result = reply["result"]
    return str(result.get("hash") or result.get("tx_json", {}).get("hash"))


def serve(node: FakeNode, name: str) -> str:
    """Serve the recorded file ``name`` as the answer to ``tx`` for its hash; the hash."""
    reply = load(name) if name in TX_REPLIES else {"result": load(name)}
    tx_hash = reply_hash(reply)
    node.route("POST", None, reply, match={"method": "tx", "params": [{"transaction": tx_hash}]})
    return tx_hash


async def trace(fake_nodes: NodeFactory, name: str) -> Any:  # noqa: F811
    node = fake_nodes()
    tx_hash = serve(node, name)
    return await XrplChain(config(node.url)).trace(tx_hash)


async def test_every_recorded_transaction(fake_nodes: NodeFactory) -> None:  # noqa: F811
    for name in (*TX_REPLIES, *TX_RESULTS):
        result = await trace(fake_nodes, name)
        assert result.found and result.notes, name
        assert all(t.log_index == NATIVE_LOG_INDEX for t in result.transfers), name


async def test_payment_without_delivered_amount(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """A 2013 payment: the metadata does not say what was delivered. No transfer, and not silently: the part
    is unread (value may have moved), so an engineer looks."""
    result = await trace(fake_nodes, "xrpljs_tx_payment.json")
    assert result.succeeded is True and result.confirmed and result.transfers == []
    assert result.block_number == 348_860
    [unread] = result.unread
    assert "delivered_amount unavailable" in unread and any(n.startswith("not read:") for n in result.notes)


async def test_partial_payments_credit_what_was_delivered(fake_nodes: NodeFactory) -> None:  # noqa: F811
    xrp = await trace(fake_nodes, "xrpljs_partialPaymentXRP.json")
    [t] = xrp.transfers
    assert (t.token_address, t.asset, t.decimals, t.amount) == (None, "XRP", 6, 1_000_000)  # of DeliverMax 2 XRP
    assert (t.sender, t.recipient) == ("rGFuMiw48HdbnrUbkRYuitXTmfrDBNTCnX", "rNNuQMuExCiEjeZ4h9JJnj5PSWypdMXDj4")
    assert any("partial payment" in n and "1000000 drops delivered" in n for n in xrp.notes)
    assert xrp.succeeded is None and not xrp.confirmed  # the recorded result carries no "validated"
    iou = await trace(fake_nodes, "xrpljs_partialPaymentIOU.json")
    [u] = iou.transfers
    assert (u.token_address, u.asset, u.decimals, u.amount) == (
        "USD.rvYAfWj5gh67oV6fW32ZzP3Aw4Eubs59B",
        None,
        15,
        9_980_039_920_159_681,
    )
    assert xrp.unread == [] and iou.unread == []


async def test_offers_and_a_failure_deliver_nothing(fake_nodes: NodeFactory) -> None:  # noqa: F811
    failed = await trace(fake_nodes, "xrpljs_tx_offerCreateSell.json")
    assert failed.succeeded is False and failed.transfers == [] and failed.unread == []
    assert any("tecUNFUNDED_OFFER" in n for n in failed.notes)
    offer = await trace(fake_nodes, "devportal_tx_jsonrpc-response.json")
    assert offer.succeeded is True and offer.transfers == [] and offer.unread == []
    assert offer.notes == ["OfferCreate is not a payment: no transfer"]
    assert offer.block_timestamp == datetime(2020, 7, 16, 20, 53, 40, tzinfo=UTC)  # close_time_iso (API v2)


async def test_escrow_finish_is_not_read(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """An EscrowFinish delivers the escrowed XRP to its destination: value moved that this adapter does not
    read, so it says so instead of "no deposit"."""
    result = await trace(fake_nodes, "devportal_tx-response-escrowfinish-condition.json")
    assert result.succeeded is True and result.transfers == []
    [unread] = result.unread
    assert "EscrowFinish" in unread


def test_account_tx_entries() -> None:
    for entry in load("xrpljs_accountTx.json")["result"]["transactions"]:
        found = Findings()
        payment_transfer(config(), entry["tx_json"]["hash"], entry["tx_json"], entry["meta"], found)
        assert found.transfers == [] and found.unread == []
        assert found.notes == [f"{entry['tx_json']['TransactionType']} is not a payment: no transfer"]
