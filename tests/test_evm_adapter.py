"""The EVM adapter and the dev-chain tooling against real anvil nodes."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_utils import to_checksum_address

from chains.endpoints import RpcError, RpcUnavailable
from chains.evm import EvmChain, build_erc20_transfer_data
from chains.jsonrpc import JsonRpcClient
from chains.registry import locate
from chains.signer import HDSigner, deposit_path
from devstack import devnet
from recovery.models import NATIVE_LOG_INDEX
from recovery.settings import ChainConfig, TokenConfig
from tests.chain_fixtures import dev_chains  # noqa: F401  (fixture; harmless once conftest imports it too)

MISSING = "0x" + "5a" * 32
USDT = "0x55d398326f99059fF775485246999027B3197955"


def fresh_address() -> str:
    return to_checksum_address(os.urandom(20))


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def eth(dev_chains: list[ChainConfig]) -> ChainConfig:  # noqa: F811
    return dev_chains[0]


@pytest.fixture
def bsc(dev_chains: list[ChainConfig]) -> ChainConfig:  # noqa: F811
    return dev_chains[1]


async def test_trace_token_transfer(eth: ChainConfig) -> None:
    to = fresh_address()
    await devnet.mint(eth, asset="USDT", to=devnet.dev_account(0), amount=1_000 * 10**6)
    tx_hash = await devnet.send_from_dev_account(eth, to=to, asset="USDT", amount=42_500_000)
    chain = EvmChain(eth)
    result = await chain.trace(tx_hash.upper().replace("0X", "0x"))
    assert result.found and result.succeeded and result.chain == "ethereum" and result.tx_hash == tx_hash.lower()
    [t] = result.transfers
    assert (t.asset, t.decimals, t.amount, t.recipient) == ("USDT", 6, 42_500_000, to)
    assert t.sender == devnet.dev_account(0) and t.token_address == eth.tokens[0].address
    assert result.confirmations >= 1 and result.required_confirmations == eth.confirmations
    await devnet.mine(eth, 5)
    later = await chain.trace(tx_hash)
    assert later.confirmations >= result.confirmations + 5 and later.confirmed
    assert await chain.token_balance(eth.tokens[0].address, to) == 42_500_000


async def test_trace_native_transfer(bsc: ChainConfig) -> None:
    to = fresh_address()
    before = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
    tx_hash = await devnet.send_from_dev_account(bsc, to=to, asset="BNB", amount=3 * 10**18, account_index=1)
    assert (await EvmChain(bsc).trace(tx_hash)).block_timestamp is None  # not read unless asked for
    result = await EvmChain(bsc).trace(tx_hash, block_time=True)
    assert result.block_timestamp is not None and before <= result.block_timestamp <= datetime.now(UTC)
    [t] = result.transfers
    assert (t.log_index, t.asset, t.decimals, t.token_address, t.amount) == (
        NATIVE_LOG_INDEX,
        "BNB",
        18,
        None,
        3 * 10**18,
    )
    assert t.sender == devnet.dev_account(1) and t.recipient == to
    assert await EvmChain(bsc).balance(to) == 3 * 10**18


async def test_trace_unknown_and_bad_hash(eth: ChainConfig) -> None:
    result = await EvmChain(eth).trace(MISSING, block_time=True)
    assert not result.found and result.chain == "ethereum" and result.transfers == []
    assert result.block_timestamp is None
    with pytest.raises(ValueError):
        await EvmChain(eth).trace("0x1234")


async def test_trace_reverted(eth: ChainConfig) -> None:
    poor = 7  # dev account 7 holds no test USDT: the transfer reverts, mined with explicit gas
    tx_hash = await devnet.send_from_dev_account(
        eth, to=fresh_address(), asset="USDT", amount=10**12, account_index=poor, gas=100_000
    )
    result = await EvmChain(eth).trace(tx_hash)
    assert result.found and result.succeeded is False and result.transfers == []
    assert result.block_number is not None and result.confirmations >= 1


async def test_batch_with_missing_item(eth: ChainConfig) -> None:
    tx_hash = await devnet.send_from_dev_account(eth, to=fresh_address(), asset="ETH", amount=1)
    rpc = JsonRpcClient(eth.rpc_urls, name=eth.name)
    found, missing, bad, head = await rpc.batch(
        [
            ("eth_getTransactionByHash", [tx_hash]),
            ("eth_getTransactionByHash", [MISSING]),
            ("eth_noSuchMethod", []),
            ("eth_blockNumber", []),
        ]
    )
    assert isinstance(found, dict) and found["hash"] == tx_hash and missing is None
    assert isinstance(bad, RpcError) and bad.code == -32601
    assert isinstance(head, str)
    assert int(head, 16) >= 1 and found["to"] is not None
    assert await rpc.batch([]) == []
    with pytest.raises(RpcError):
        await rpc.call("eth_noSuchMethod")


async def test_locate_across_chains(dev_chains: list[ChainConfig]) -> None:  # noqa: F811
    eth, bsc = dev_chains[:2]
    tx_hash = await devnet.send_from_dev_account(bsc, to=fresh_address(), asset="BNB", amount=10**15)
    found = await locate(dev_chains, tx_hash)
    assert found.found and found.chain == "bsc" and found.transfers[0].asset == "BNB"
    missing = await locate(dev_chains, MISSING)
    assert missing.chain is None and not missing.found
    # one chain down: still found on the other; not found anywhere -> the dead chain is named
    down = ChainConfig(name="polygon", chain_id=137, rpc_urls=[dead_url()], native_symbol="POL")
    assert (await locate([down, bsc], tx_hash)).chain == "bsc"
    with pytest.raises(RpcUnavailable, match="polygon"):
        await locate([eth, down], MISSING)


async def test_send_raw_is_idempotent(eth: ChainConfig) -> None:
    signer = HDSigner(Account.create_with_mnemonic()[1])
    path = deposit_path(3)
    sender = signer.address(path)
    await devnet.mint(eth, asset="ETH", to=sender, amount=10**18)
    chain = EvmChain(eth)
    max_fee, tip = await chain.fee_params()
    assert max_fee > tip > 0
    tx: dict[str, Any] = {
        "chainId": eth.chain_id,
        "nonce": await chain.nonce(sender),
        "to": fresh_address(),
        "value": 12345,
        "gas": 21_000,
        "maxFeePerGas": max_fee,
        "maxPriorityFeePerGas": tip,
    }
    assert await chain.estimate_gas({"from": sender, "to": tx["to"], "value": 12345}) == 21_000
    raw, tx_hash = signer.sign_evm(path, tx)
    assert await chain.send_raw(raw, tx_hash) == tx_hash
    assert await chain.send_raw(raw, tx_hash) == tx_hash  # again: already known / nonce too low
    receipt = await chain.wait_receipt(tx_hash, timeout=timedelta(seconds=10))
    assert receipt["status"] == "0x1"
    assert await chain.send_raw(raw, tx_hash) == tx_hash  # and after it was mined
    assert await chain.nonce(sender) == tx["nonce"] + 1
    # a different tx reusing the spent nonce is an error, not "already sent"
    other_raw, other_hash = signer.sign_evm(path, tx | {"value": 1})
    with pytest.raises(RpcError):
        await chain.send_raw(other_raw, other_hash)


async def test_failover_to_second_url(eth: ChainConfig) -> None:
    flaky = eth.model_copy(update={"rpc_urls": [dead_url(), *eth.rpc_urls]})
    chain = EvmChain(flaky)
    assert await chain.block_number() >= 0
    tx_hash = await devnet.send_from_dev_account(eth, to=fresh_address(), asset="ETH", amount=5)
    assert (await chain.trace(tx_hash)).found
    assert chain.rpc._preferred == 1  # sticks to the endpoint that works
    dead = JsonRpcClient([dead_url(), dead_url()], name="nowhere", retries=1, backoff=timedelta(milliseconds=10))
    with pytest.raises(RpcUnavailable, match="nowhere"):
        await dead.call("eth_blockNumber")


async def test_chain_queries(eth: ChainConfig) -> None:
    chain = EvmChain(eth)
    usdt = eth.tokens[0].address
    assert await chain.is_contract(usdt)
    decimals = await chain.rpc.call("eth_call", [{"to": usdt, "data": "0x313ce567"}, "latest"])
    assert int(decimals, 16) == 6  # decimals() survives anvil_setCode of the runtime bytecode
    assert not await chain.is_contract(devnet.dev_account(0))
    assert await chain.token_balance(usdt, fresh_address()) == 0
    assert await chain.token_balance(fresh_address(), fresh_address()) == 0  # no code: 0x
    assert await chain.receipt(MISSING) is None
    with pytest.raises(TimeoutError):
        await chain.wait_receipt(MISSING, timeout=timedelta(milliseconds=300), poll=timedelta(milliseconds=100))


def test_build_erc20_transfer_data() -> None:
    to = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    data = build_erc20_transfer_data(to, 2**256 - 1)
    assert data == "0xa9059cbb" + "0" * 24 + to[2:].lower() + "f" * 64
    with pytest.raises(ValueError):
        build_erc20_transfer_data(to, 2**256)
    with pytest.raises(ValueError):
        build_erc20_transfer_data(to, -1)


async def test_anvil_state_persists_and_bootstrap_is_idempotent(tmp_path: Path) -> None:
    state = tmp_path / "chain.json"
    holder = fresh_address()
    anvil = await devnet.Anvil.start(chain_id=56, port=0, block_time_s=None, state_file=state)
    try:
        with pytest.raises(devnet.PortInUse, match=str(anvil.port)):
            await devnet.Anvil.start(chain_id=56, port=anvil.port)
        chain = ChainConfig(
            name="bsc",
            chain_id=56,
            rpc_urls=[anvil.url],
            tokens=[TokenConfig(symbol="USDT", address=USDT, decimals=18)],
        )
        await devnet.bootstrap_chain(chain, fund=[holder], native_amount=10**18)
        await devnet.mint(chain, asset="USDT", to=holder, amount=7 * 10**18)
    finally:
        await anvil.stop()
    assert anvil.proc.returncode is not None and state.exists()

    anvil = await devnet.Anvil.start(chain_id=56, port=0, block_time_s=None, state_file=state)
    try:
        chain = chain.model_copy(update={"rpc_urls": [anvil.url]})
        await devnet.bootstrap_chain(chain, fund=[holder], native_amount=10**17)  # never lowers a balance
        evm = EvmChain(chain)
        assert await evm.balance(holder) == 10**18
        assert await evm.token_balance(USDT, holder) == 7 * 10**18  # token code was kept, not replaced
        decimals = await evm.rpc.call("eth_call", [{"to": USDT, "data": "0x313ce567"}, "latest"])
        assert int(decimals, 16) == 18
    finally:
        await anvil.stop()
