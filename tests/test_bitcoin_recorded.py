"""The Bitcoin adapter over mempool.space (Esplora) replies recorded in a public Go test suite
(tests/fixtures/recorded/bitcoin, sources in its README), served by a local fake Esplora."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chains.bitcoin import BitcoinChain
from recovery.settings import ChainConfig
from tests.fake_nodes import FakeNode, NodeFactory, fake_nodes  # noqa: F401

RECORDED = Path(__file__).parent / "fixtures" / "recorded" / "bitcoin"
NETWORKS = {
    # file: the tip height recorded with it (see the README)
    "mempool_testnet_txs.json": 4_550_094,
    "mempool_mainnet_block696394_txs.json": 904_453,
}


def load(name: str) -> dict[str, Any]:
    return dict(json.loads((RECORDED / name).read_text()))


def config(url: str) -> ChainConfig:
    return ChainConfig(
        name="bitcoin",
        family="bitcoin",
        rpc_urls=[url],
        confirmations=3,
        block_time_ms=600_000,
        native_symbol="BTC",
        native_decimals=8,
        rpc_backoff_ms=5,
        rpc_timeout_ms=2_000,
    )


def esplora(node: FakeNode, name: str) -> dict[str, Any]:
    txs = load(name)
    for txid, tx in txs.items():
        node.route("GET", f"/tx/{txid}", tx)
    node.route("GET", "/blocks/tip/height", NETWORKS[name])
    return txs


async def test_every_recorded_transaction(fake_nodes: NodeFactory) -> None:  # noqa: F811
    """Each output paying an address is a transfer at its index with its value; nothing is left unread."""
    for name, tip in NETWORKS.items():
        node = fake_nodes()
        chain = BitcoinChain(config(node.url))
        for txid, tx in esplora(node, name).items():
            result = await chain.trace(txid)
            assert result.found and result.unread == [], (txid, result.unread)
            paid = [
                (i, o["scriptpubkey_address"], o["value"])
                for i, o in enumerate(tx["vout"])
                if o.get("scriptpubkey_address")
            ]
            assert [(t.log_index, t.recipient, t.amount) for t in result.transfers] == paid, txid
            if tx["status"]["confirmed"]:
                assert result.succeeded is True and result.confirmations == tip - tx["status"]["block_height"] + 1
            else:
                assert result.succeeded is None and any("mempool" in n for n in result.notes)


async def test_op_return_memo(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    esplora(node, "mempool_testnet_txs.json")
    result = await BitcoinChain(config(node.url)).trace(
        "9b0c48b79fe40c67f7a2837e6e59a138a16671caf7685dcd831bd3c51b9f6d21"
    )
    memo = "ef4f66bcf4f55bc72c2c8e01894fe944a5fa3be3a8b2a2a474f0447838ddc1c2"  # 32 bytes, not text: hex
    assert [(t.log_index, t.amount, t.memo) for t in result.transfers] == [(0, 500_000, memo), (2, 1_956_600, memo)]
    assert {t.sender for t in result.transfers} == {"mhho1SuBpFHiWVJB6J7v9FQXjcRLHw6pKD"}


async def test_coinbase_with_three_op_returns(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    esplora(node, "mempool_mainnet_block696394_txs.json")
    result = await BitcoinChain(config(node.url)).trace(
        "07f8b22fa9a3b32e20b59bb90727de05fb634749519ebcb6a887aeaf2c7eb041"
    )
    [reward] = result.transfers
    assert (reward.sender, reward.recipient, reward.amount) == (
        "coinbase",
        "18cBEMRxXHqzWWCxZNtU91F5sbUNKhL5PX",
        634_172_161,
    )
    assert "3 OP_RETURN outputs; the first is used as the memo" in result.notes
    assert result.block_number == 696_394 and result.confirmed
