"""Tron adapter against a fake Tron HTTP API answering the documented JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from chains.endpoints import RpcError
from chains.tron import TRANSFER_TOPIC, TronChain, base58_to_hex, hex_to_base58, to_base58, trc10_asset_id
from recovery.models import NATIVE_LOG_INDEX, internal_log_index
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


def internal(
    caller_hex: str, to_hex: str, note: str, *values: dict[str, Any], rejected: bool = False
) -> dict[str, Any]:
    """An entry of ``internal_transactions`` as java-tron lists it (``note`` hex-encoded)."""
    item: dict[str, Any] = {
        "hash": "ab" * 32,
        "caller_address": caller_hex,
        "transferTo_address": to_hex,
        "callValueInfo": list(values) or [{}],
        "note": note.encode().hex(),
    }
    if rejected:
        item["rejected"] = True
    return item


def test_trc10_asset_id_forms() -> None:
    assert trc10_asset_id("31303032303030") == "1002000"  # hex, the default
    assert trc10_asset_id("1002000") == "1002000"  # visible=true
    assert trc10_asset_id("54726f6e696373") == "Tronics"  # an asset named before proposal 14
    assert trc10_asset_id(1002000) == "1002000"  # TriggerSmartContract.token_id is a number
    assert trc10_asset_id("beef") == "beef"  # hex that is no ASCII text: as given
    with pytest.raises(ValueError):
        trc10_asset_id("")


async def test_trc10_transfer_listed_and_unlisted(fake_nodes: NodeFactory) -> None:  # noqa: F811
    value = {
        "amount": 25,
        "asset_name": b"1002000".hex(),
        "owner_address": SENDER_HEX,
        "to_address": RECIPIENT_HEX,
    }
    node = tron_node(fake_nodes(), transaction("TransferAssetContract", value), info())
    [unlisted] = (await TronChain(tron_config(node.url)).trace(TXID)).transfers
    assert (unlisted.token_address, unlisted.asset, unlisted.decimals, unlisted.amount) == ("1002000", None, None, 25)
    assert unlisted.asset_key == "tron:1002000" and unlisted.log_index == NATIVE_LOG_INDEX
    listed = tron_config(node.url).model_copy(
        update={"tokens": [TokenConfig(symbol="BTT_OLD", address="1002000", decimals=6)]}
    )
    [t] = (await TronChain(listed).trace(TXID)).transfers
    assert (t.asset, t.decimals) == ("BTT_OLD", 6)


async def test_internal_transactions(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """TRX and TRC-10 tokens moved by contracts, numbered in the node's order; reverted ones, value a contract
    keeps in its own staking, and kinds this adapter does not know are each handled on their own."""
    contract = USDC_HEX
    items = [
        internal(contract, RECIPIENT_HEX, "call", {"callValue": 7_000_000}),
        internal(contract, RECIPIENT_HEX, "call", {"callValue": 1}, rejected=True),
        internal(contract, RECIPIENT_HEX, "call", {"callValue": 0}, {"callValue": 40, "tokenId": "1002000"}),
        internal(contract, contract, "freezeBalanceV2ForEnergy", {"callValue": 1_000_000_000}),
        internal(contract, RECIPIENT_HEX, "teleport", {"callValue": 5}),
        internal(contract, RECIPIENT_HEX, "call", {}),
    ]
    tx = trc20_call(USDT_HEX, 0)
    node = tron_node(fake_nodes(), tx, info(logs=[], receipt_result="SUCCESS") | {"internal_transactions": items})
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.succeeded is True
    trx, token = result.transfers
    assert (trx.log_index, trx.token_address, trx.asset, trx.amount) == (internal_log_index(1), None, "TRX", 7_000_000)
    assert (trx.sender, trx.recipient) == (hex_to_base58(contract), hex_to_base58(RECIPIENT_HEX))
    assert (token.log_index, token.token_address, token.asset, token.decimals, token.amount) == (
        internal_log_index(2),
        "1002000",
        None,
        None,
        40,
    )
    [unread] = result.unread
    assert "internal transaction 5 (teleport)" in unread and "5 sun" in unread
    assert any("internal transaction 4" in n and "staking" in n for n in result.notes)
    assert any(n.startswith("not read: internal transaction 5") for n in result.notes)


async def test_unknown_contract_type_is_not_read(fake_nodes: NodeFactory) -> None:  # noqa: F811
    tx = transaction("ShieldedTransferContract", {"transparent_from_address": SENDER_HEX, "from_amount": 10})
    node = tron_node(fake_nodes(), tx, info())
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.succeeded is True and result.transfers == []
    assert result.unread == ["ShieldedTransferContract, a contract type this adapter does not read"]
    assert "not read: ShieldedTransferContract, a contract type this adapter does not read" in result.notes
    known = tron_node(
        node, transaction("FreezeBalanceV2Contract", {"frozen_balance": 10, "owner_address": SENDER_HEX}), info()
    )
    assert (await TronChain(tron_config(known.url)).trace(TXID)).unread == []


async def test_trigger_with_trx_and_a_trc10_token(fake_nodes: NodeFactory) -> None:  # noqa: F811
    value = {
        "data": "d0e30db0",
        "owner_address": SENDER_HEX,
        "contract_address": USDC_HEX,
        "call_token_value": 9,
        "token_id": 1002000,
    }
    node = tron_node(fake_nodes(), transaction("TriggerSmartContract", value), info(logs=[], receipt_result="SUCCESS"))
    [token] = (await TronChain(tron_config(node.url)).trace(TXID)).transfers
    assert (token.log_index, token.token_address, token.amount, token.recipient) == (
        NATIVE_LOG_INDEX,
        "1002000",
        9,
        USDC,
    )
    both = tron_node(
        node, transaction("TriggerSmartContract", value | {"call_value": 3}), info(logs=[], receipt_result="SUCCESS")
    )
    result = await TronChain(tron_config(both.url)).trace(TXID)
    assert [(t.asset, t.amount) for t in result.transfers] == [("TRX", 3)]
    assert result.unread == [
        "TriggerSmartContract also sent 9 units of TRC-10 token 1002000: a second value in one transaction"
    ]


@pytest.mark.parametrize(
    ("log", "why"),
    [
        (transfer_log(USDT_HEX, 5) | {"data": "05"}, "data is 1 bytes"),
        (transfer_log(USDT_HEX, 5) | {"address": "not-an-address"}, "could not be decoded"),
        (
            transfer_log(USDT_HEX, 5) | {"topics": [*transfer_log(USDT_HEX, 5)["topics"], "0" * 63 + "7"], "data": ""},
            "TRC-721",
        ),
        (
            transfer_log(USDT_HEX, 5)
            | {"topics": [TRANSFER_TOPIC, "ff" * 12 + SENDER_HEX[2:], "0" * 24 + RECIPIENT_HEX[2:]]},
            "non-zero upper bytes",
        ),
    ],
)
async def test_undecodable_transfer_event_is_not_read(
    fake_nodes: NodeFactory,  # noqa: F811
    log: dict[str, Any],
    why: str,
) -> None:
    node = tron_node(fake_nodes(), trc20_call(USDT_HEX, 5), info(logs=[log], receipt_result="SUCCESS"))
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.succeeded is True and result.transfers == []
    [unread] = result.unread
    assert "Transfer event (log 0)" in unread and why in unread


async def test_address_forms_in_topics(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """A proxy's base58 topic, and a padded word that kept the 41 byte, read as the same addresses."""
    log = {
        "address": USDT,
        "topics": [TRANSFER_TOPIC, hex_to_base58(SENDER_HEX), "0" * 22 + RECIPIENT_HEX],
        "data": format(12, "064x"),
    }
    node = tron_node(fake_nodes(), trc20_call(USDT_HEX, 12), info(logs=[log], receipt_result="SUCCESS"))
    [t] = (await TronChain(tron_config(node.url)).trace(TXID)).transfers
    assert (t.sender, t.recipient, t.amount, t.asset) == (
        hex_to_base58(SENDER_HEX),
        hex_to_base58(RECIPIENT_HEX),
        12,
        "USDT",
    )


async def test_a_failed_transaction_reads_nothing(fake_nodes: NodeFactory) -> None:  # noqa: F811
    tx = transaction("MarketSellAssetContract", {"owner_address": SENDER_HEX}, ret="REVERT")
    node = tron_node(fake_nodes(), tx, info(receipt_result="REVERT"))
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.succeeded is False and result.transfers == [] and result.unread == []


@pytest.mark.parametrize(
    ("tx", "unread"),
    [
        # a transfer always names its amount (java-tron refuses 0): one without it is not read as 0
        (
            transaction("TransferContract", {"owner_address": SENDER_HEX, "to_address": RECIPIENT_HEX}),
            "TransferContract: TransferContract amount is missing",
        ),
        (
            transaction(
                "TransferAssetContract",
                {"asset_name": b"1002000".hex(), "owner_address": SENDER_HEX, "to_address": RECIPIENT_HEX},
            ),
            "TransferAssetContract: TransferAssetContract amount is missing",
        ),
        (
            transaction("TransferContract", {})
            | {"raw_data": {"contract": [{"type": "TransferContract", "parameter": {"value": "0a15"}}]}},
            "TransferContract: its parameter value '0a15' is not an object",
        ),
    ],
)
async def test_contract_that_cannot_be_read_is_not_read(
    fake_nodes: NodeFactory,  # noqa: F811
    tx: dict[str, Any],
    unread: str,
) -> None:
    node = tron_node(fake_nodes(), tx, info())
    result = await TronChain(tron_config(node.url)).trace(TXID)
    assert result.found and result.transfers == [] and result.unread == [unread]


async def test_internal_transaction_without_a_value_list(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """An internal transaction whose ``callValueInfo`` is not a list is not read, and does not hide the rest."""
    broken = internal(USDC_HEX, RECIPIENT_HEX, "call") | {"callValueInfo": 5}
    items = [broken, internal(USDC_HEX, RECIPIENT_HEX, "call", {"callValue": 8})]
    node = tron_node(
        fake_nodes(),
        trc20_call(USDT_HEX, 0),
        info(logs=[], receipt_result="SUCCESS") | {"internal_transactions": items},
    )
    result = await TronChain(tron_config(node.url)).trace(TXID)
    [t] = result.transfers
    assert (t.log_index, t.amount) == (internal_log_index(1), 8)
    [unread] = result.unread
    assert unread == "internal transaction 1: callValueInfo 5 is not a list"
