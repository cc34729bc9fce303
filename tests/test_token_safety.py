"""Risky-token checks (chains/token_safety.py) against real Vyper tokens on anvil (devstack/devtokens.py)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from eth_utils import to_checksum_address

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.jsonrpc import JsonRpcClient
from chains.token_safety import (
    BalanceHistory,
    _pct,
    assess_token,
    decode_symbol,
    dry_run_from_simulation,
    dry_run_transfer,
    rebasing_finding,
    revert_reason,
    token_metadata,
)
from devstack import devnet
from devstack.devtokens import (
    calldata,
    install_blacklist_token,
    install_bytes32_token,
    install_fee_token,
    install_forwarder,
    install_rebasing_token,
    mint_token,
    send_as,
)
from recovery.models import TokenFinding, TokenRisk
from recovery.settings import ChainConfig
from tests.chain_fixtures import dev_chains  # noqa: F401  (fixture)

SENDER = devnet.dev_account(4)


def fresh_address() -> str:
    return to_checksum_address(os.urandom(20))


@pytest.fixture
def eth(dev_chains: list[ChainConfig]) -> ChainConfig:  # noqa: F811
    return dev_chains[0]


async def _deposit(eth: ChainConfig, token: str, holder: str, amount: int) -> int:
    """A user sends ``amount`` of ``token`` to ``holder``: returns the deposit's block."""
    await mint_token(eth, token, SENDER, amount * 2)
    tx = await send_as(eth, SENDER, token, calldata("transfer(address,uint256)", holder, amount))
    receipt = await EvmChain(eth).receipt(tx)
    assert receipt is not None and receipt["status"] == "0x1"
    return int(receipt["blockNumber"], 16)


async def _assess(eth: ChainConfig, token: str, holder: str, amount: int, block: int | None) -> list[TokenFinding]:
    """The findings, without the "rebasing not ruled out" one that a missing deposit block adds."""
    to = fresh_address()
    found = await assess_token(EvmChain(eth), token=token, holder=holder, amount=amount, to=to, deposit_block=block)
    return [f for f in found if block is not None or f.risk is not TokenRisk.UNVERIFIED]


async def test_plain_token_is_safe(eth: ChainConfig) -> None:
    holder, usdt = fresh_address(), eth.tokens[0].address
    await devnet.mint(eth, asset="USDT", to=SENDER, amount=10**9)
    tx = await devnet.send_from_dev_account(eth, to=holder, asset="USDT", amount=123_456_789, account_index=4)
    block = (await EvmChain(eth).trace(tx)).block_number
    await devnet.mine(eth, 3)
    assert await _assess(eth, usdt, holder, 123_456_789, block) == []


async def test_fee_on_transfer(eth: ChainConfig) -> None:
    token = await install_fee_token(eth, fresh_address(), fee_bps=100, decimals=6)
    holder = fresh_address()
    block = await _deposit(eth, token, holder, 2_000_000)
    assert await EvmChain(eth).token_balance(token, holder) == 1_980_000  # the deposit paid the fee too
    [finding] = await _assess(eth, token, holder, 1_980_000, block)
    assert finding.risk is TokenRisk.FEE_ON_TRANSFER
    assert "delivered 1960200 of 1980000" in finding.detail and "19800 (1.00%) kept" in finding.detail
    assert "eth_simulateV1" in finding.detail


async def test_fee_fallback_to_debug_trace_call(eth: ChainConfig) -> None:
    token = await install_fee_token(eth, fresh_address(), fee_bps=250)
    holder, to = fresh_address(), fresh_address()
    await mint_token(eth, token, holder, 10**18)

    class NoSimulate(JsonRpcClient):
        async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
            if method == "eth_simulateV1":
                raise RpcError(-32601, "Method not found")
            return await super().call(method, params)

    chain = EvmChain(eth, rpc=NoSimulate(eth.rpc_urls))
    finding, no_block = await assess_token(chain, token=token, holder=holder, amount=10**18, to=to, deposit_block=None)
    assert no_block.risk is TokenRisk.UNVERIFIED and "rebasing not ruled out" in no_block.detail
    assert finding.risk is TokenRisk.FEE_ON_TRANSFER and "debug_traceCall" in finding.detail
    assert f"delivered {975 * 10**15} of {10**18}" in finding.detail and "(2.50%)" in finding.detail
    run = await dry_run_transfer(chain, token=token, holder=holder, to=to, amount=10**18, method="call")
    assert (run.reverted, run.returned_false, run.delivered) == (False, False, None)


async def test_rebasing(eth: ChainConfig) -> None:
    token = await install_rebasing_token(eth, fresh_address())
    holder = fresh_address()
    block = await _deposit(eth, token, holder, 10**18)
    assert await _assess(eth, token, holder, 10**18, block) == []  # nothing unexplained yet
    await send_as(eth, SENDER, token, calldata("rebase(uint256,uint256)", 11, 10))
    await devnet.mine(eth, 2)
    findings = await _assess(eth, token, holder, 10**18, block)
    rebasing = next(f for f in findings if f.risk is TokenRisk.REBASING)
    assert f"is {11 * 10**17}" in rebasing.detail and f"gives {10**18}" in rebasing.detail
    assert f"(+{10**17} unexplained)" in rebasing.detail and "no Transfer log touched it" in rebasing.detail


async def test_blacklisted_holder(eth: ChainConfig) -> None:
    token = await install_blacklist_token(eth, fresh_address())
    holder = fresh_address()
    block = await _deposit(eth, token, holder, 5_000_000)
    assert await _assess(eth, token, holder, 5_000_000, block) == []
    await send_as(eth, SENDER, token, calldata("addBlackList(address)", holder))
    [finding] = await _assess(eth, token, holder, 5_000_000, block)
    assert finding.risk is TokenRisk.TRANSFER_REVERTS and "reverted: sender is blacklisted" in finding.detail


async def test_transfer_returns_false(eth: ChainConfig) -> None:
    token = await install_blacklist_token(eth, fresh_address())
    holder = fresh_address()
    await mint_token(eth, token, holder, 10)
    await send_as(eth, SENDER, token, calldata("freeze(address)", holder))
    [finding] = await _assess(eth, token, holder, 10, None)
    assert finding.risk is TokenRisk.TRANSFER_REVERTS and finding.detail.endswith("returned false")
    chain = EvmChain(eth)
    run = await dry_run_transfer(chain, token=token, holder=holder, to=fresh_address(), amount=10, method="trace_call")
    assert run.returned_false and not run.reverted


async def test_transfer_above_balance_reverts(eth: ChainConfig) -> None:
    holder = fresh_address()
    [finding] = await _assess(eth, eth.tokens[0].address, holder, 1, None)
    assert finding.risk is TokenRisk.TRANSFER_REVERTS
    assert "insufficient balance" in finding.detail and "balance is 0, below 1" in finding.detail
    run = await dry_run_transfer(
        EvmChain(eth), token=eth.tokens[0].address, holder=holder, to=fresh_address(), amount=1, method="call"
    )
    assert run.reverted and run.reason == "insufficient balance"


async def test_not_a_token(eth: ChainConfig) -> None:
    eoa = devnet.dev_account(5)
    [finding] = await _assess(eth, eoa, fresh_address(), 1, None)
    assert finding.risk is TokenRisk.NOT_A_TOKEN and finding.detail == f"no contract code at {eoa} on ethereum"
    forwarder = await install_forwarder(eth, fresh_address())  # a contract, but no balanceOf/decimals
    [finding] = await _assess(eth, forwarder, fresh_address(), 1, None)
    assert finding.risk is TokenRisk.NOT_A_TOKEN and "balanceOf" in finding.detail and "decimals()" in finding.detail


async def test_token_metadata(eth: ChainConfig) -> None:
    chain = EvmChain(eth)
    assert await token_metadata(chain, eth.tokens[0].address) == ("USDT", 6)
    old = await install_bytes32_token(eth, fresh_address(), symbol="MKR", decimals=18)
    assert await token_metadata(chain, old) == ("MKR", 18)
    assert await token_metadata(chain, devnet.dev_account(5)) == (None, None)


def test_pure_helpers() -> None:
    assert decode_symbol("0x" + b"DAI".ljust(32, b"\0").hex()) == "DAI"
    assert decode_symbol("0x" + b"\xff\xfe".ljust(32, b"\0").hex()) is None
    assert decode_symbol("0x") is None and decode_symbol(None) is None
    assert revert_reason("0x") == "no reason given" and revert_reason("0xdeadbeef") == "0xdeadbeef"
    assert _pct(1, 3) == "33.33%" and _pct(19_800, 1_980_000) == "1.00%" and _pct(1, 0) == "?"

    def word(v: int) -> dict[str, str]:
        return {"status": "0x1", "returnData": "0x" + format(v, "064x")}

    # [balanceOf(to), balanceOf(holder), transfer -> true, balanceOf(to), balanceOf(holder)]
    calls = [word(0), word(100), word(1), word(97), word(0)]
    run = dry_run_from_simulation([{"calls": calls}])
    assert (run.delivered, run.debited, run.returned_false) == (97, 100, False)
    with pytest.raises(ValueError):
        dry_run_from_simulation([{"calls": calls[:2]}])
    history = BalanceHistory(before=5, at_deposit=15, now=15, head=9, logged_in=10, logged_out=0, logs_after_deposit=0)
    assert rebasing_finding(history, holder="0xH", deposit_block=4) is None


async def test_a_node_that_cannot_measure_delivery_leaves_the_token_unverified(eth: ChainConfig) -> None:
    """Only eth_call: a fee-on-transfer token cannot be told from a clean one, so it is never automatic."""
    token = await install_fee_token(eth, fresh_address(), fee_bps=250)
    holder = fresh_address()
    block = await _deposit(eth, token, holder, 10**18)

    class CallOnly(JsonRpcClient):
        async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
            if method in ("eth_simulateV1", "debug_traceCall"):
                raise RpcError(-32601, "Method not found")
            return await super().call(method, params)

    chain = EvmChain(eth, rpc=CallOnly(eth.rpc_urls))
    received = 975 * 10**15  # what the deposit's Transfer log says arrived, after the token's own fee
    findings = await assess_token(
        chain, token=token, holder=holder, amount=received, to=fresh_address(), deposit_block=block
    )
    assert [f.risk for f in findings] == [TokenRisk.UNVERIFIED], findings
    assert "fee on transfer not ruled out" in findings[0].detail
