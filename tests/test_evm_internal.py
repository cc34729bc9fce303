"""Native value forwarded by contracts (internal transfers) and bulk tracing, on real anvil nodes."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from eth_utils import to_checksum_address

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.jsonrpc import JsonRpcClient
from devstack import devnet
from devstack.devtokens import calldata, install_forwarder, install_splitter, send_as
from recovery.models import NATIVE_LOG_INDEX, internal_log_index
from recovery.settings import ChainConfig
from tests.chain_fixtures import dev_chains  # noqa: F401  (fixture)

MISSING = "0x" + "5a" * 32


def fresh_address() -> str:
    return to_checksum_address(os.urandom(20))


@pytest.fixture
def eth(dev_chains: list[ChainConfig]) -> ChainConfig:  # noqa: F811
    return dev_chains[0]


class NoDebugRpc(JsonRpcClient):
    """A node without the debug namespace: every debug_* method answers -32601, and calls are counted."""

    def __init__(self, urls: Sequence[str], *, code: int = -32601, message: str = "Method not found") -> None:
        super().__init__(urls, name="no-debug")
        self.code, self.message = code, message
        self.debug_calls = 0

    async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
        if method.startswith("debug_"):
            self.debug_calls += 1
            raise RpcError(self.code, self.message)
        return await super().call(method, params)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any | RpcError]:
        self.debug_calls += sum(1 for m, _ in calls if m.startswith("debug_"))
        real = [(m, p) for m, p in calls if not m.startswith("debug_")]
        answers = iter(await super().batch(real))
        return [RpcError(self.code, self.message) if m.startswith("debug_") else next(answers) for m, _ in calls]


async def _split(eth: ChainConfig, first: str, second: str, share: int, value: int) -> tuple[str, str]:
    splitter = await install_splitter(eth, fresh_address())
    data = calldata("split(address,address,uint256)", first, second, share)
    return splitter, await send_as(eth, devnet.dev_account(2), splitter, data, value=value)


async def test_forwarder_internal_transfer(eth: ChainConfig) -> None:
    forwarder = await install_forwarder(eth, fresh_address())
    to = fresh_address()
    tx = await send_as(eth, devnet.dev_account(2), forwarder, calldata("forward(address)", to), value=10**18)
    result = await EvmChain(eth).trace(tx)
    assert result.succeeded and result.notes == []
    native, internal = result.transfers
    assert (native.log_index, native.recipient, native.amount) == (NATIVE_LOG_INDEX, forwarder, 10**18)
    assert (internal.log_index, internal.sender, internal.recipient) == (internal_log_index(1), forwarder, to)
    assert internal.amount == 10**18 and internal.native and internal.asset == "ETH"
    assert internal.key == f"ethereum:{tx.lower()}:i1"
    assert await EvmChain(eth).balance(to) == 10**18


def fallback_forwarder_code(to: str) -> str:
    """Runtime code that forwards all value it receives, with any input, to ``to`` (in its fallback):
    ``CALL(gas, to, callvalue, 0, 0, 0, 0)``, as a forwarding deposit contract does."""
    return "0x" + "6000" * 4 + "34" + "73" + to[2:].lower() + "5a" + "f1" + "50" + "00"


async def test_transfer_without_input_forwarded_by_a_fallback(eth: ChainConfig) -> None:
    """A plain value transfer (no input) to a contract whose fallback forwards it: the value that reached ``to``
    is an internal transfer, not lost behind "no code ran"."""
    forwarder, to = fresh_address(), fresh_address()
    await JsonRpcClient(eth.rpc_urls).call("anvil_setCode", [forwarder, fallback_forwarder_code(to)])
    tx = await send_as(eth, devnet.dev_account(2), forwarder, value=3 * 10**17)
    assert await EvmChain(eth).balance(to) == 3 * 10**17
    result = await EvmChain(eth).trace(tx)
    assert result.succeeded and result.notes == [] and result.unread == []
    native, internal = result.transfers
    assert (native.log_index, native.recipient, native.amount) == (NATIVE_LOG_INDEX, forwarder, 3 * 10**17)
    assert (internal.log_index, internal.sender, internal.recipient, internal.amount) == (
        internal_log_index(1),
        forwarder,
        to,
        3 * 10**17,
    )


async def test_splitter_two_deposits(eth: ChainConfig) -> None:
    first, second = fresh_address(), fresh_address()
    splitter, tx = await _split(eth, first, second, 25 * 10**16, 10**18)
    result = await EvmChain(eth).trace(tx)
    by_index = {t.log_index: t for t in result.transfers}
    assert sorted(by_index) == [-3, -2, -1]
    assert (by_index[-2].recipient, by_index[-2].amount) == (first, 25 * 10**16)
    assert (by_index[-3].recipient, by_index[-3].amount) == (second, 75 * 10**16)
    assert by_index[-2].sender == by_index[-3].sender == splitter
    assert {by_index[-2].key[-2:], by_index[-3].key[-2:]} == {"i1", "i2"}


async def test_reverted_subcall_moves_nothing(eth: ChainConfig) -> None:
    forwarder = await install_forwarder(eth, fresh_address())
    to = fresh_address()
    data = calldata("try_forward(address)", to)
    tx = await send_as(eth, devnet.dev_account(2), forwarder, data, value=10**17, gas=300_000)
    result = await EvmChain(eth).trace(tx)
    assert result.succeeded and [t.log_index for t in result.transfers] == [NATIVE_LOG_INDEX]
    assert await EvmChain(eth).balance(to) == 0


async def test_failed_tx_is_not_traced(eth: ChainConfig) -> None:
    forwarder = await install_forwarder(eth, fresh_address())
    data = calldata("forward_then_fail(address)", fresh_address())
    tx = await send_as(eth, devnet.dev_account(2), forwarder, data, value=1, gas=300_000, require_success=False)
    rpc = NoDebugRpc(eth.rpc_urls)
    result = await EvmChain(eth, rpc=rpc).trace(tx)
    assert result.succeeded is False and result.transfers == [] and rpc.debug_calls == 0 and result.notes == []


@pytest.mark.parametrize(
    ("code", "message"),
    [(-32601, "Method not found"), (-32600, "Invalid request"), (-32000, "debug_traceTransaction is not supported")],
)
async def test_node_without_debug_trace(eth: ChainConfig, code: int, message: str) -> None:
    _, tx = await _split(eth, fresh_address(), fresh_address(), 1, 2)
    rpc = NoDebugRpc(eth.rpc_urls, code=code, message=message)
    chain = EvmChain(eth, rpc=rpc)
    for _ in range(3):
        result = await chain.trace(tx)
        assert [t.log_index for t in result.transfers] == [NATIVE_LOG_INDEX]
        assert len(result.notes) == 1 and result.notes[0].startswith("internal transfers not read")
    assert rpc.debug_calls == 1  # remembered: asked once per adapter
    [many] = await chain.trace_many([tx])
    assert many.notes == result.notes and rpc.debug_calls == 1


async def test_other_trace_error_is_a_note_not_remembered(eth: ChainConfig) -> None:
    _, tx = await _split(eth, fresh_address(), fresh_address(), 1, 2)
    rpc = NoDebugRpc(eth.rpc_urls, code=-32000, message="execution timeout")
    chain = EvmChain(eth, rpc=rpc)
    for _ in range(2):
        result = await chain.trace(tx)
        assert "execution timeout" in result.notes[0]
    assert rpc.debug_calls == 2


async def test_trace_internal_off(eth: ChainConfig) -> None:
    _, tx = await _split(eth, fresh_address(), fresh_address(), 1, 2)
    rpc = NoDebugRpc(eth.rpc_urls)
    result = await EvmChain(eth.model_copy(update={"trace_internal": False}), rpc=rpc).trace(tx)
    assert [t.log_index for t in result.transfers] == [NATIVE_LOG_INDEX] and rpc.debug_calls == 0
    assert "internal tracing is off" in result.notes[0]


async def test_trace_many_matches_trace(eth: ChainConfig) -> None:
    user = devnet.dev_account(3)
    await devnet.mint(eth, asset="USDT", to=user, amount=10**9)
    hashes = [
        await devnet.send_from_dev_account(eth, to=fresh_address(), asset="ETH", amount=5, account_index=3),
        await devnet.send_from_dev_account(eth, to=fresh_address(), asset="USDT", amount=7, account_index=3),
        (await _split(eth, fresh_address(), fresh_address(), 3, 10))[1],
        MISSING,
    ]
    hashes += hashes[:2]  # duplicates are traced twice, in place
    chain = EvmChain(eth)
    # chunk_size=3: one transaction per batch, so several batches run concurrently
    many = await chain.trace_many([h.upper().replace("0X", "0x") for h in hashes], chunk_size=3, concurrency=2)
    assert [r.tx_hash for r in many] == [h.lower() for h in hashes]
    assert [r.found for r in many] == [True, True, True, False, True, True]
    one_by_one = [await chain.trace(h) for h in hashes]
    for a, b in zip(many, one_by_one, strict=True):
        assert a.transfers == b.transfers and a.block_number == b.block_number and a.notes == b.notes
        assert abs(a.confirmations - b.confirmations) <= 2
    assert [t.log_index for t in many[2].transfers] == [-1, -2, -3]
    assert await chain.trace_many([]) == []


async def test_trace_many_item_errors_do_not_sink_the_batch(eth: ChainConfig) -> None:
    tx = await devnet.send_from_dev_account(eth, to=fresh_address(), asset="ETH", amount=5, account_index=3)

    class FlakyRpc(JsonRpcClient):
        async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any | RpcError]:
            answers = await super().batch(calls)
            return [
                RpcError(-32005, "limit exceeded") if p and p[0] == MISSING else a
                for (_, p), a in zip(calls, answers, strict=True)
            ]

    ok, bad = await EvmChain(eth, rpc=FlakyRpc(eth.rpc_urls)).trace_many([tx, MISSING])
    assert ok.found and ok.transfers[0].amount == 5
    assert not bad.found and "limit exceeded" in bad.notes[0]
    with pytest.raises(ValueError):
        await EvmChain(eth).trace_many(["0x1234"])
