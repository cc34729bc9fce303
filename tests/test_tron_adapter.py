"""Tron adapter against a fake Tron HTTP API answering the documented JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chains.endpoints import RpcError
from chains.tron import TRANSFER_TOPIC, TronChain, base58_to_hex, hex_to_base58, to_base58
from recovery.models import NATIVE_LOG_INDEX
from recovery.settings import ChainConfig, TokenConfig
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401

USDT_HEX = "41a614f803b6fd780986a42c78ec9c7f77e6ded13c"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
USDC_HEX = "413487b63d30b5b2c87fb7ffa8bcfade38eaac1abe"
USDC = "TEkxiTehnzSmSe2XqrBj4w32RUN966rdz8"
SENDER_HEX = "41" + "3f" * 20
RECIPIENT_HEX = "41" + "b2" * 20
TXID = "c9af231ad59bcd7e8dcf827afd45020a02112704dce74ec5f72cb090aa07eef0"
BLOCK = 61_234_567
APPROVAL_TOPIC = "8c5be1e5ebec7d5bd14f71427d1e84f3dd0314c0f7b2291e5b200ac8c7c3b925"


def tron_config(*urls: str, confirmations: int = 19) -> ChainConfig:
    return ChainConfig(
        name="tron",
        family="tron",
        rpc_urls=list(urls),
        confirmations=confirmations,
        block_time_ms=3_000,
        native_symbol="TRX",
        native_decimals=6,
        tokens=[TokenConfig(symbol="USDT", address=USDT, decimals=6)],
        rpc_backoff_ms=5,
        rpc_timeout_ms=500,
    )


def transaction(contract_type: str, value: dict[str, Any], ret: str | None = "SUCCESS") -> dict[str, Any]:
    """The shape of ``wallet/gettransactionbyid``."""
    tx: dict[str, Any] = {
        "signature": ["f0" * 65],
        "txID": TXID,
        "raw_data": {
            "contract": [
                {
                    "parameter": {"value": value, "type_url": f"type.googleapis.com/protocol.{contract_type}"},
                    "type": contract_type,
                }
            ],
            "ref_block_bytes": "4c5a",
            "ref_block_hash": "5e5f8c4b6a0f5a0d",
            "expiration": 1713571827000,
            "timestamp": 1713571767000,
        },
        "raw_data_hex": "0a024c5a",
    }
    if ret is not None:
        tx["ret"] = [{"contractRet": ret}]
    return tx


def trx_transfer(amount: int) -> dict[str, Any]:
    return transaction("TransferContract", {"amount": amount, "owner_address": SENDER_HEX, "to_address": RECIPIENT_HEX})


def trc20_call(token_hex: str, amount: int, ret: str = "SUCCESS") -> dict[str, Any]:
    data = "a9059cbb" + "0" * 24 + RECIPIENT_HEX[2:] + format(amount, "064x")
    value = {"data": data, "owner_address": SENDER_HEX, "contract_address": token_hex}
    tx = transaction("TriggerSmartContract", value, ret)
    tx["raw_data"]["fee_limit"] = 100_000_000
    return tx


def transfer_log(token_hex: str, amount: int) -> dict[str, Any]:
    return {
        "address": token_hex[2:],
        "topics": [TRANSFER_TOPIC, "0" * 24 + SENDER_HEX[2:], "0" * 24 + RECIPIENT_HEX[2:]],
        "data": format(amount, "064x"),
    }


def info(*, logs: list[dict[str, Any]] | None = None, receipt_result: str | None = None) -> dict[str, Any]:
    """The shape of ``wallet/gettransactioninfobyid`` for a transaction in block ``BLOCK``."""
    receipt: dict[str, Any] = {"net_usage": 268}
    out: dict[str, Any] = {
        "id": TXID,
        "blockNumber": BLOCK,
        "blockTimeStamp": 1713571770000,
        "contractResult": [""],
        "receipt": receipt,
    }
    if receipt_result is not None:
        receipt |= {"energy_usage_total": 31_895, "result": receipt_result}
        out["contract_address"] = USDT_HEX
        out["fee"] = 345_000
    if logs is not None:
        out["log"] = logs
    return out


def now_block(number: int) -> dict[str, Any]:
    return {
        "blockID": format(number, "016x") + "ab" * 24,
        "block_header": {
            "raw_data": {
                "number": number,
                "txTrieRoot": "00" * 32,
                "witness_address": "41" + "11" * 20,
                "parentHash": "00" * 32,
                "version": 30,
                "timestamp": 1713571800000,
            },
            "witness_signature": "aa" * 65,
        },
        "transactions": [],
    }


def tron_node(
    node: FakeNode,
    tx: dict[str, Any],
    tx_info: dict[str, Any],
    *,
    head: int = BLOCK + 33,
    solid: int = BLOCK + 14,
) -> FakeNode:
    node.route("POST", "/wallet/gettransactionbyid", tx, match={"value": TXID})
    node.route("POST", "/wallet/gettransactioninfobyid", tx_info, match={"value": TXID})
    node.route("POST", "/wallet/getnowblock", now_block(head))
    node.route("POST", "/walletsolidity/getnowblock", now_block(solid))
    return node


def test_base58_addresses() -> None:
    for hex_address, b58 in [
        (USDT_HEX, USDT),
        (USDC_HEX, USDC),
        ("41" + "00" * 20, "T9yD14Nj9j7xAB4dbGeiX9h8unkKHxuWwb"),
    ]:
        assert hex_to_base58(hex_address) == b58
        assert hex_to_base58(hex_address[2:]) == b58  # the form of log addresses and topics
        assert base58_to_hex(b58) == hex_address and to_base58(b58) == b58 and to_base58(hex_address) == b58
    with pytest.raises(ValueError):
        base58_to_hex(USDT[:-1] + "u")  # bad checksum
    with pytest.raises(ValueError):
        hex_to_base58("42" + "00" * 20)
    with pytest.raises(ValueError):
        hex_to_base58("41" + "00" * 18)


async def test_trx_transfer(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = tron_node(fake_nodes(), trx_transfer(12_345_678), info(), solid=BLOCK + 20)
    result = await TronChain(tron_config(node.url)).trace(TXID.upper())
    assert result.found and result.succeeded is True and result.tx_hash == TXID and result.block_number == BLOCK
    assert result.confirmed and (result.confirmations, result.required_confirmations) == (1, 1)
    assert result.block_timestamp == datetime(2024, 4, 20, 0, 9, 30, tzinfo=UTC)  # blockTimeStamp, in ms
    [t] = result.transfers
    assert (t.log_index, t.token_address, t.asset, t.decimals, t.amount) == (
        NATIVE_LOG_INDEX,
        None,
        "TRX",
        6,
        12_345_678,
    )
    assert t.sender == hex_to_base58(SENDER_HEX) and t.recipient == hex_to_base58(RECIPIENT_HEX)
    assert t.sender.startswith("T") and t.recipient.startswith("T")
    assert node.hits("/walletsolidity/getnowblock") == 1


async def test_trc20_usdt_transfer(fake_nodes: NodeFactory) -> None:  # noqa: F811
    approval = {"address": USDT_HEX[2:], "topics": [APPROVAL_TOPIC, "0" * 64, "0" * 64], "data": "0" * 64}
    logs = [approval, transfer_log(USDT_HEX, 250_000_000), transfer_log(USDC_HEX, 7)]
    node = tron_node(fake_nodes(), trc20_call(USDT_HEX, 250_000_000), info(logs=logs, receipt_result="SUCCESS"))
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.succeeded is True
    usdt, unlisted = result.transfers
    assert (usdt.log_index, usdt.token_address, usdt.asset, usdt.decimals, usdt.amount) == (
        1,
        USDT,
        "USDT",
        6,
        250_000_000,
    )
    assert usdt.sender == hex_to_base58(SENDER_HEX) and usdt.recipient == hex_to_base58(RECIPIENT_HEX)
    assert (unlisted.log_index, unlisted.token_address, unlisted.asset, unlisted.decimals) == (2, USDC, None, None)


async def test_reverted_trc20(fake_nodes: NodeFactory) -> None:  # noqa: F811
    tx_info = info(logs=[], receipt_result="REVERT") | {
        "result": "FAILED",
        "resMessage": b"REVERT opcode executed".hex(),
    }
    node = tron_node(fake_nodes(), trc20_call(USDT_HEX, 10**12, ret="REVERT"), tx_info)
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.found and result.succeeded is False and result.transfers == []
    assert any("REVERT opcode executed" in n and "contractRet REVERT" in n for n in result.notes)


async def test_unsolidified_then_solidified(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = tron_node(fake_nodes(), trx_transfer(1_000_000), info(), head=BLOCK + 5, solid=BLOCK - 13)
    chain = TronChain(tron_config(node.url))
    pending = await chain.trace(TXID)
    assert pending.found and pending.succeeded is True and not pending.confirmed
    assert (pending.confirmations, pending.required_confirmations) == (0, 1)
    assert "6 block(s) deep" in pending.notes[0] and "not final" in pending.notes[0]
    tron_node(node, trx_transfer(1_000_000), info(), head=BLOCK + 25, solid=BLOCK + 6)
    final = await chain.trace(TXID)
    assert final.confirmed and final.confirmations == 1 and "final" in final.notes[0]
    # config.confirmations is a lower bound on top of solidification
    assert not (await TronChain(tron_config(node.url, confirmations=40)).trace(TXID)).confirmed


async def test_unknown_and_unmined(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    node.route("POST", "/wallet/gettransactionbyid", {})
    chain = TronChain(tron_config(node.url))
    missing = await chain.trace(TXID)
    assert not missing.found and missing.transfers == [] and node.hits("/wallet/gettransactioninfobyid") == 0
    tron_node(node, trx_transfer(5), {})
    unmined = await chain.trace(TXID)
    assert unmined.found and unmined.succeeded is None and unmined.confirmations == 0 and not unmined.confirmed
    assert node.hits("getnowblock") == 0
    with pytest.raises(ValueError, match="tron transaction id"):
        await chain.trace("0x" + TXID)
    node.route("POST", "/wallet/gettransactionbyid", {"Error": "class java.lang.NullPointerException : null"})
    with pytest.raises(RpcError, match="NullPointerException"):
        await chain.trace(TXID)


async def test_failover_between_endpoints(fake_nodes: NodeFactory) -> None:  # noqa: F811
    down = fake_nodes()
    down.fail(503)
    node = tron_node(fake_nodes(), trx_transfer(9), info())
    chain = TronChain(tron_config(down.url, node.url))
    assert [t.amount for t in (await chain.trace(TXID)).transfers] == [9]
    assert down.hits() == 1  # cooling down after its failure: the other calls went to the healthy node
    assert chain.health()[0].failures == 1 and chain.health()[1].successes == 4
