"""Chain registry: one adapter per family, and ``locate`` across families against fake nodes."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import pytest

from chains.bitcoin import BitcoinChain
from chains.endpoints import RpcUnavailable
from chains.evm import EvmChain
from chains.registry import ChainAdapter, adapter_for, adapters, locate
from chains.tron import TronChain
from chains.xrpl import XrplChain
from recovery.models import TraceResult
from recovery.settings import ChainConfig
from tests.fake_nodes import FakeNode, NodeFactory, dead_url, fake_nodes  # noqa: F401
from tests.test_bitcoin_adapter import btc_config
from tests.test_tron_adapter import TXID as TRON_TXID
from tests.test_tron_adapter import info, tron_config, tron_node, trx_transfer
from tests.test_xrpl_adapter import error, xrp_config

EVM_HASH = "0x" + "5a" * 32


def evm_config(url: str) -> ChainConfig:
    return ChainConfig(name="ethereum", chain_id=1, rpc_urls=[url], rpc_backoff_ms=5, rpc_timeout_ms=500)


def evm_not_found(node: FakeNode) -> FakeNode:
    reply = [{"jsonrpc": "2.0", "id": i, "result": r} for i, r in ((1, None), (2, None), (3, "0x10"))]
    node.route("POST", None, reply, match=[{"method": "eth_getTransactionByHash"}])
    return node


def xrpl_not_found(node: FakeNode, tx_hash: str) -> FakeNode:
    reply = error("txnNotFound", 29, "Transaction not found.")
    node.route("POST", None, reply, match={"method": "tx", "params": [{"transaction": tx_hash.upper()}]})
    return node


def btc_not_found(node: FakeNode) -> FakeNode:
    node.route("GET", "/tx/", status=404, text="Transaction not found")
    return node


def test_adapters_by_family() -> None:
    url = "http://127.0.0.1:9"
    configs = [
        evm_config(url),
        btc_config(url),
        tron_config(url),
        xrp_config(url),
    ]
    made = adapters(configs)
    assert list(made) == ["ethereum", "bitcoin", "tron", "xrp"]
    assert [type(a) for a in made.values()] == [EvmChain, BitcoinChain, TronChain, XrplChain]
    assert all(a.config is c for a, c in zip(made.values(), configs, strict=True))
    evm, btc, trx, xrp = made.values()
    assert evm.accepts(EVM_HASH) and not evm.accepts(TRON_TXID)
    for adapter in (btc, trx, xrp):
        assert adapter.accepts(TRON_TXID) and adapter.accepts(TRON_TXID.upper()) and not adapter.accepts(EVM_HASH)
    evm_adapter = adapter_for(configs[0].model_copy(update={"rpc_retries": 5}))
    assert isinstance(evm_adapter, EvmChain) and evm_adapter.rpc.retries == 5  # from the config


async def test_locate_across_families(fake_nodes: NodeFactory) -> None:  # noqa: F811
    evm = fake_nodes()
    btc = btc_not_found(fake_nodes())
    trx = tron_node(fake_nodes(), trx_transfer(77), info())
    xrp = xrpl_not_found(fake_nodes(), TRON_TXID)
    configs = [evm_config(evm.url), btc_config(btc.url), tron_config(trx.url), xrp_config(xrp.url)]
    found = await locate(configs, TRON_TXID)
    assert found.found and found.chain == "tron" and [t.amount for t in found.transfers] == [77]
    assert evm.hits() == 0  # an EVM chain cannot hold a 64-hex id without 0x: not asked
    assert btc.hits() == 1 and xrp.hits() == 1  # the others were asked at the same time
    # an EVM hash is only searched on EVM chains
    evm_not_found(evm)
    missing = await locate(configs, EVM_HASH)
    assert not missing.found and missing.chain is None and evm.hits() == 1 and trx.hits("gettransactionbyid") == 1


async def test_first_definitive_answer_wins_and_others_are_cancelled(fake_nodes: NodeFactory) -> None:  # noqa: F811
    slow = fake_nodes()
    slow.hang(timedelta(seconds=5))
    trx = tron_node(fake_nodes(), trx_transfer(5), info())
    configs = [
        btc_config(slow.url).model_copy(update={"rpc_timeout_ms": 4_000}),
        tron_config(trx.url),
    ]
    started = time.monotonic()
    found = await locate(configs, TRON_TXID)
    assert found.chain == "tron" and time.monotonic() - started < 2  # did not wait for the slow chain

    cancelled = asyncio.Event()

    class Stuck:
        def __init__(self, config: ChainConfig) -> None:
            self.config = config

        def accepts(self, tx_hash: str) -> bool:
            return True

        async def trace(self, tx_hash: str, *, block_time: bool = False) -> TraceResult:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            raise AssertionError("not cancelled")

    def make(config: ChainConfig) -> ChainAdapter:
        return Stuck(config) if config.family == "bitcoin" else adapter_for(config)

    assert (await locate(configs, TRON_TXID, make_adapter=make)).chain == "tron"
    assert cancelled.is_set()


async def test_not_found_anywhere_and_unreachable_chains(fake_nodes: NodeFactory) -> None:  # noqa: F811
    btc = btc_not_found(fake_nodes())
    trx = fake_nodes()
    trx.route("POST", "/wallet/gettransactionbyid", {})
    xrp = xrpl_not_found(fake_nodes(), TRON_TXID)
    configs = [btc_config(btc.url), tron_config(trx.url), xrp_config(xrp.url)]
    missing = await locate(configs, TRON_TXID)
    assert not missing.found and missing.chain is None and missing.tx_hash == TRON_TXID
    down = xrp_config(dead_url()).model_copy(update={"rpc_retries": 0})
    with pytest.raises(RpcUnavailable, match=r"not found and chain\(s\) unreachable: xrp") as raised:
        await locate([*configs[:2], down], TRON_TXID)
    assert "bitcoin" not in str(raised.value) and "tron" not in str(raised.value)
    # one chain down does not hide a transaction another chain has
    tron_node(trx, trx_transfer(3), info())
    assert (await locate([*configs[:2], down], TRON_TXID)).chain == "tron"


async def test_unknown_format(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    configs = [evm_config(node.url), btc_config(node.url), xrp_config(node.url)]
    with pytest.raises(ValueError) as raised:
        await locate(configs, "0x1234")
    message = str(raised.value)
    assert "'0x1234' is not a transaction id" in message
    assert "evm (ethereum): 0x + 64 hex digits" in message and "bitcoin (bitcoin): 64 hex digits" in message
    assert "xrpl (xrp)" in message
    with pytest.raises(ValueError, match="evm"):
        await locate([evm_config(node.url)], TRON_TXID)  # a valid Tron id, but no Tron chain configured
    assert node.hits() == 0
