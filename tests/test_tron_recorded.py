"""The Tron adapter over real recorded mainnet replies (tests/fixtures/recorded/tron, sources in its README).

The transactions with a recorded ``gettransactionbyid`` and ``gettransactioninfobyid`` go through the whole
adapter against a local fake node; the transactions of the two recorded blocks (which come without their
info) through the part that reads a transaction's own contract.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from chains.tron import TronChain, contract_transfers, decode_trc20_log, failure_reason, hex_to_base58
from recovery.models import NATIVE_LOG_INDEX, internal_log_index
from recovery.settings import ChainConfig, TokenConfig
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401

RECORDED = Path(__file__).parent / "fixtures" / "recorded" / "tron"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
PAIRS = ("661f1df8", "9af66ca3", "d0807adb")
"""Transactions recorded with both their ``gettransactionbyid`` and ``gettransactioninfobyid`` replies."""


def load(name: str) -> Any:
    return json.loads((RECORDED / name).read_text())


def config(*urls: str) -> ChainConfig:
    return ChainConfig(
        name="tron",
        family="tron",
        rpc_urls=list(urls) or ["http://127.0.0.1:9"],
        confirmations=19,
        block_time_ms=3_000,
        native_symbol="TRX",
        native_decimals=6,
        tokens=[TokenConfig(symbol="USDT", address=USDT, decimals=6)],
        rpc_backoff_ms=5,
        rpc_timeout_ms=2_000,
    )


def recorded_node(node: FakeNode) -> FakeNode:
    """A node answering every recorded pair; its head and solidified head are the two recorded blocks."""
    for short in PAIRS:
        tx, info = load(f"tx_{short}.json"), load(f"info_{short}.json")
        node.route("POST", "/wallet/gettransactionbyid", tx, match={"value": tx["txID"]})
        node.route("POST", "/wallet/gettransactioninfobyid", info, match={"value": info["id"]})
    node.route("POST", "/wallet/getnowblock", load("block_61132092.json"))
    node.route("POST", "/walletsolidity/getnowblock", load("block_60836289.json"))
    return node


async def test_every_recorded_pair_traces(fake_nodes: NodeFactory) -> None:  # noqa: F811
    chain = TronChain(config(recorded_node(fake_nodes()).url))
    for short in PAIRS:
        tx = load(f"tx_{short}.json")
        result = await chain.trace(tx["txID"])
        assert result.found and result.succeeded is True and result.confirmed, short
        assert result.unread == [], (short, result.unread)
        assert result.transfers, short
        assert all(t.sender.startswith("T") and t.recipient.startswith("T") for t in result.transfers), short


async def test_trc20_log_with_a_base58_address(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """661f1df8 as tronpy recorded it (``visible=true``): the log's address is base58, its topics hex. It was
    swallowed into "success, no transfer"; it is 2,384.9501 USDT."""
    chain = TronChain(config(recorded_node(fake_nodes()).url))
    result = await chain.trace(load("tx_661f1df8.json")["txID"])
    [usdt] = result.transfers
    assert (usdt.log_index, usdt.token_address, usdt.asset, usdt.decimals, usdt.amount) == (
        0,
        USDT,
        "USDT",
        6,
        2_384_950_100,
    )
    assert usdt.sender == "TP4MZM8iDVEfRbtbvcidqVQBt4SQ9Pfi8R"  # the transaction's owner_address
    assert usdt.recipient == hex_to_base58("41dc2c107c0f8633d8236daa46d0e640e2c375f6ac")  # as in its call data
    assert result.block_number == 60_836_289 and result.unread == []
    assert any("vm.saveInternalTx" in n for n in result.notes)  # no internal_transactions in the reply


@pytest.mark.parametrize(
    "form",
    [
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",
        "a614f803b6fd780986a42c78ec9c7f77e6ded13c",
        "41a614f803b6fd780986a42c78ec9c7f77e6ded13c",
    ],
)
def test_log_address_in_every_form(form: str) -> None:
    """The recorded log with its address in each form a node or proxy may give: the same transfer."""
    log = load("info_661f1df8.json")["log"][0] | {"address": form}
    transfer = decode_trc20_log(config(), "661f1df8", 0, log)
    assert transfer is not None and transfer.token_address == USDT and transfer.amount == 2_384_950_100


async def test_trx_forwarded_by_a_contract(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """9af66ca3: 50 TRX sent along a call to a dice contract, which pays 98.5 TRX back to the caller in an
    internal transaction (``callValueInfo``); four other internal calls carry no value."""
    chain = TronChain(config(recorded_node(fake_nodes()).url))
    result = await chain.trace(load("tx_9af66ca3.json")["txID"])
    player, dice = (
        hex_to_base58("41a12ae80eeb9d006a64e95dd13df1dff76f7f4fc9"),
        hex_to_base58("414d45db4d4e8e04f61cc73c2d3f41a1a7c9f50eae"),
    )
    bet, payout = result.transfers
    assert (bet.log_index, bet.asset, bet.amount, bet.sender, bet.recipient) == (
        NATIVE_LOG_INDEX,
        "TRX",
        50_000_000,
        player,
        dice,
    )
    assert (payout.log_index, payout.token_address, payout.asset, payout.decimals, payout.amount) == (
        internal_log_index(1),
        None,
        "TRX",
        6,
        98_500_000,
    )
    assert (payout.sender, payout.recipient) == (dice, player)
    assert payout.key.endswith(":i1") and result.unread == []


async def test_trc10_transfer(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """d0807adb: 16 units of a TRC-10 asset created before proposal 14 (keyed by its name, ``Tronics``)."""
    chain = TronChain(config(recorded_node(fake_nodes()).url))
    result = await chain.trace(load("tx_d0807adb.json")["txID"])
    [t] = result.transfers
    assert (t.log_index, t.token_address, t.asset, t.decimals, t.amount, t.native) == (
        NATIVE_LOG_INDEX,
        "Tronics",
        None,
        None,
        16,
        False,
    )
    assert t.sender == hex_to_base58("414a5fe0179f2dd9c900194e63d661863cd0ade7b0")
    assert t.recipient == hex_to_base58("41718de6b323652d1257437ace160c4f4198aae4e1")
    assert t.asset_key == "tron:tronics" and result.block_number == 5_467_102


def test_every_transaction_of_the_recorded_blocks() -> None:
    """34 TRC-10 transfers in the two blocks (one hex-encoded, one ``visible=true``), each a transfer keyed by
    its asset id; the other types move TRX or nothing, and none is left unread."""
    trc10: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    for name in ("block_61132092.json", "block_60836289.json"):
        for tx in load(name)["transactions"]:
            kind = tx["raw_data"]["contract"][0]["type"]
            kinds[kind] += 1
            found = contract_transfers(config(), tx["txID"], tx, None)
            assert found.unread == [], (tx["txID"], found.unread)
            value = tx["raw_data"]["contract"][0]["parameter"]["value"]
            if kind == "TransferAssetContract":
                [t] = found.transfers
                trc10[str(t.token_address)] += 1
                assert (t.asset, t.decimals, t.amount) == (None, None, value["amount"])
                assert t.recipient.startswith("T") and t.sender.startswith("T")
            elif kind == "TransferContract":
                [t] = found.transfers
                assert (t.asset, t.amount) == ("TRX", value["amount"])
            elif kind == "TriggerSmartContract":
                assert [t.amount for t in found.transfers] == ([value["call_value"]] if value.get("call_value") else [])
            else:
                assert found.transfers == []
    assert kinds["TransferAssetContract"] == 34
    assert trc10 == {"1004937": 16, "1005026": 6, "1005027": 5, "1005023": 4, "1004978": 3}


def test_recorded_infos_without_their_transaction() -> None:
    """Two more recorded infos: a USDT transfer in the node's default form (hex address without ``41``),
    and a transfer that ran out of energy (failed: its log, if any, moved nothing)."""
    ok = load("info_b69c51db.json")
    transfer = decode_trc20_log(config(), ok["id"], 0, ok["log"][0])
    assert transfer is not None and (transfer.token_address, transfer.asset, transfer.amount) == (
        USDT,
        "USDT",
        0x3567E0,
    )
    assert failure_reason({"ret": [{"contractRet": "SUCCESS"}]}, ok) is None
    failed = load("info_e63a324a.json")
    reason = failure_reason({"ret": [{"contractRet": "OUT_OF_ENERGY"}]}, failed)
    assert reason is not None and "receipt OUT_OF_ENERGY" in reason and "Not enough energy" in reason
