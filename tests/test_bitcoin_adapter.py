"""Bitcoin adapter against a fake Esplora API answering the documented JSON shapes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from chains.bitcoin import BitcoinChain, memo_text, op_return_payload
from chains.endpoints import RestError, RpcUnavailable
from recovery.settings import ChainConfig
from tests.fake_nodes import FakeNode, NodeFactory, dead_url, fake_nodes  # noqa: F401

TXID = "a1075db55d416d3ca199f55b6084e2115b9345e16c5cf302fc80e9d5fbf5d48d"
PREV_TXID = "f4184fc596403b9d638783cf57adfe4c75c605f6356fbc91338530e9831e9e16"
SENDER = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh"
RECIPIENT = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
HELLO_SCRIPT = "6a0b" + b"hello world".hex()


def btc_config(*urls: str) -> ChainConfig:
    return ChainConfig(
        name="bitcoin",
        family="bitcoin",
        rpc_urls=list(urls),
        confirmations=3,
        block_time_ms=600_000,
        native_symbol="BTC",
        native_decimals=8,
        rpc_backoff_ms=5,
        rpc_timeout_ms=500,
    )


def p2wpkh(address: str, value: int) -> dict[str, Any]:
    return {
        "scriptpubkey": "0014" + "89abcdefabbaabbaabbaabbaabbaabbaabbaabba",
        "scriptpubkey_asm": "OP_0 OP_PUSHBYTES_20 89abcdefabbaabbaabbaabbaabbaabbaabbaabba",
        "scriptpubkey_type": "v0_p2wpkh",
        "scriptpubkey_address": address,
        "value": value,
    }


def op_return(script: str) -> dict[str, Any]:
    return {
        "scriptpubkey": script,
        "scriptpubkey_asm": "OP_RETURN OP_PUSHBYTES_11 68656c6c6f20776f726c64",
        "scriptpubkey_type": "op_return",
        "value": 0,
    }


def esplora_tx(vout: list[dict[str, Any]], *, height: int | None = 840_000, coinbase: bool = False) -> dict[str, Any]:
    """The shape of Esplora's ``GET /tx/:txid``."""
    vin: dict[str, Any] = {
        "txid": "0" * 64 if coinbase else PREV_TXID,
        "vout": 4294967295 if coinbase else 1,
        "prevout": None if coinbase else p2wpkh(SENDER, 150_000),
        "scriptsig": "",
        "scriptsig_asm": "",
        "witness": ["3044022000", "02aabb"],
        "is_coinbase": coinbase,
        "sequence": 4294967293,
    }
    status: dict[str, Any] = {"confirmed": False}
    if height is not None:
        status = {
            "confirmed": True,
            "block_height": height,
            "block_hash": "00000000000000000002a7c4c1e48d76c5a37902165a270156b7a8d72728a054",
            "block_time": 1713571767,
        }
    return {
        "txid": TXID,
        "version": 2,
        "locktime": 0,
        "vin": [vin],
        "vout": vout,
        "size": 222,
        "weight": 561,
        "fee": 1410,
        "status": status,
    }


def esplora(node: FakeNode, tx: dict[str, Any] | None, tip: int = 840_005) -> FakeNode:
    if tx is None:
        node.route("GET", f"/tx/{TXID}", status=404, text="Transaction not found")
    else:
        node.route("GET", f"/tx/{TXID}", tx)
    node.route("GET", "/blocks/tip/height", tip)
    return node


async def test_confirmed_payment_with_change(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = esplora(fake_nodes(), esplora_tx([p2wpkh(RECIPIENT, 50_000), p2wpkh(SENDER, 98_590)]))
    result = await BitcoinChain(btc_config(node.url)).trace(TXID.upper())
    assert result.found and result.succeeded is True and result.chain == "bitcoin" and result.tx_hash == TXID
    assert (result.block_number, result.confirmations, result.required_confirmations) == (840_000, 6, 3)
    assert result.confirmed and result.block_time_ms == 600_000
    assert result.block_timestamp == datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC)  # status.block_time
    pay, change = result.transfers
    assert (pay.log_index, pay.recipient, pay.amount, pay.sender) == (0, RECIPIENT, 50_000, SENDER)
    assert (pay.asset, pay.decimals, pay.token_address, pay.memo, pay.native) == ("BTC", 8, None, None, True)
    assert (change.log_index, change.recipient, change.amount) == (1, SENDER, 98_590)
    assert pay.key == f"bitcoin:{TXID}:0"


async def test_op_return_memo_on_every_transfer(fake_nodes: NodeFactory) -> None:  # noqa: F811
    tx = esplora_tx([op_return(HELLO_SCRIPT), p2wpkh(RECIPIENT, 7_000), p2wpkh(SENDER, 1_000)])
    node = esplora(fake_nodes(), tx)
    result = await BitcoinChain(btc_config(node.url)).trace(TXID)
    assert [(t.log_index, t.memo) for t in result.transfers] == [(1, "hello world"), (2, "hello world")]


def test_op_return_decoding() -> None:
    assert op_return_payload(HELLO_SCRIPT) == b"hello world"
    assert op_return_payload("6a4c03" + b"123".hex()) == b"123"  # OP_PUSHDATA1
    assert op_return_payload("6a0400112233") == bytes.fromhex("00112233")
    assert op_return_payload("0014" + "ab" * 20) == b""  # not an OP_RETURN
    assert op_return_payload("6a") == b"" and op_return_payload("zz") == b""
    assert memo_text(b"104729") == "104729"
    assert memo_text(bytes.fromhex("00112233")) == "00112233"  # not printable: hex
    assert memo_text(b"\xff\xfe") == "fffe"  # not UTF-8: hex
    assert memo_text(b"") is None


async def test_unconfirmed(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = esplora(fake_nodes(), esplora_tx([p2wpkh(RECIPIENT, 50_000)], height=None))
    result = await BitcoinChain(btc_config(node.url)).trace(TXID)
    assert result.found and result.succeeded is None and result.confirmations == 0 and not result.confirmed
    assert result.block_number is None and [t.amount for t in result.transfers] == [50_000]
    assert result.block_timestamp is None
    assert node.hits("/blocks/tip/height") == 0


@pytest.mark.parametrize(("status", "text"), [(404, "Transaction not found"), (400, "Invalid hex string")])
async def test_unknown_tx(fake_nodes: NodeFactory, status: int, text: str) -> None:  # noqa: F811
    node = fake_nodes()
    node.route("GET", f"/tx/{TXID}", status=status, text=text)
    other = fake_nodes()
    result = await BitcoinChain(btc_config(node.url, other.url)).trace(TXID)
    assert not result.found and result.transfers == [] and result.chain == "bitcoin"
    assert other.hits() == 0  # "not found" is an answer: no failover


async def test_other_client_errors_raise(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    node.route("GET", f"/tx/{TXID}", status=403, text="forbidden")
    with pytest.raises(RestError, match="403"):
        await BitcoinChain(btc_config(node.url)).trace(TXID)


async def test_endpoint_failover(fake_nodes: NodeFactory) -> None:  # noqa: F811
    broken, slow = fake_nodes(), fake_nodes()
    broken.fail(502)
    slow.hang(timedelta(seconds=5))
    good = esplora(fake_nodes(), esplora_tx([p2wpkh(RECIPIENT, 50_000)]))
    chain = BitcoinChain(btc_config(dead_url(), broken.url, slow.url, good.url))
    assert (await chain.trace(TXID)).confirmations == 6
    health = chain.health()
    assert [h.failures for h in health] == [1, 1, 1, 0] and health[3].successes == 2
    good.stop()
    with pytest.raises(RpcUnavailable, match="bitcoin"):
        await chain.trace(TXID)


async def test_confirmations_follow_the_tip(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = esplora(fake_nodes(), esplora_tx([p2wpkh(RECIPIENT, 1)], height=840_000), tip=840_000)
    chain = BitcoinChain(btc_config(node.url))
    first = await chain.trace(TXID)
    assert first.confirmations == 1 and not first.confirmed
    node.route("GET", "/blocks/tip/height", 840_002)
    assert (await chain.trace(TXID)).confirmed
    node.route("GET", "/blocks/tip/height", 839_990)  # a lagging endpoint: mined means at least 1
    assert (await chain.trace(TXID)).confirmations == 1


async def test_coinbase_sender_and_bad_txid(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = esplora(fake_nodes(), esplora_tx([p2wpkh(RECIPIENT, 312_500_000)], coinbase=True))
    chain = BitcoinChain(btc_config(node.url))
    [t] = (await chain.trace(TXID)).transfers
    assert t.sender == "coinbase"
    for bad in ("0x" + TXID, TXID[:-1], TXID + "0", "z" * 64):
        assert not chain.accepts(bad)
        with pytest.raises(ValueError, match="bitcoin txid"):
            await chain.trace(bad)


async def test_outputs_without_an_address_are_skipped_with_a_note(fake_nodes: NodeFactory) -> None:  # noqa: F811
    p2pk = {
        "scriptpubkey": "4104" + "ae" * 64 + "ac",
        "scriptpubkey_asm": "OP_PUSHBYTES_65 04... OP_CHECKSIG",
        "scriptpubkey_type": "p2pk",
        "value": 1_000_000_000,
    }
    node = esplora(fake_nodes(), esplora_tx([p2pk, p2wpkh(RECIPIENT, 5)]))
    result = await BitcoinChain(btc_config(node.url)).trace(TXID)
    assert [(t.log_index, t.amount) for t in result.transfers] == [(1, 5)] and result.unread == []
    assert "output 0 (p2pk, 1000000000 sat) pays no address: skipped" in result.notes


@pytest.mark.parametrize(
    ("vout", "unread"),
    [
        ([p2wpkh(RECIPIENT, 5) | {"value": 0.5}], "output 0: its value 0.5 is not a whole number of satoshis"),
        (["0014abcd"], "output 0 (not an object)"),
        (
            [p2wpkh(RECIPIENT, 5) | {"scriptpubkey_address": ["bc1q..."]}],
            "output 0: its address ['bc1q...'] is not text",
        ),
        ({"0": p2wpkh(RECIPIENT, 5)}, "the outputs (vout is dict, not a list)"),
    ],
)
async def test_outputs_it_cannot_parse_are_not_read(
    fake_nodes: NodeFactory,  # noqa: F811
    vout: Any,
    unread: str,
) -> None:
    node = esplora(fake_nodes(), esplora_tx(vout))
    result = await BitcoinChain(btc_config(node.url)).trace(TXID)
    assert result.found and result.transfers == [] and result.unread == [unread]
    assert f"not read: {unread}" in result.notes
