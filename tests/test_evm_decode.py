"""Decoding of recorded JSON-RPC replies (tests/fixtures/evm_*.json, see record_evm_fixtures.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from chains.evm_decode import (
    MAX_UINT256,
    TRANSFER_TOPIC,
    decode_transfer_log,
    decode_transfer_logs,
    hex_to_int,
    native_transfer,
    trace_result,
    transfers_of,
)
from recovery.models import NATIVE_LOG_INDEX, TraceResult
from recovery.settings import USDT_BSC, USDT_ETHEREUM, ChainConfig, dev_chains

FIXTURES = Path(__file__).parent / "fixtures"
USER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
EXCHANGE = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
CHAINS = {c.name: c for c in dev_chains()}


def replay(name: str) -> tuple[ChainConfig, dict[str, Any]]:
    fixture = json.loads((FIXTURES / f"evm_{name}.json").read_text())
    by_id = {item["id"]: item["result"] for item in fixture["response"]}
    return CHAINS[fixture["chain"]], {"hash": fixture["tx_hash"], "tx": by_id[1], "receipt": by_id[2], "head": by_id[3]}


def trace(name: str) -> TraceResult:
    chain, r = replay(name)
    return trace_result(chain, r["hash"], r["tx"], r["receipt"], hex_to_int(r["head"]))


def _topic(address: str) -> str:
    return "0x" + address[2:].lower().rjust(64, "0")


def _log(**overrides: Any) -> dict[str, Any]:
    log = {
        "address": USDT_ETHEREUM.lower(),
        "topics": [TRANSFER_TOPIC, _topic(USER), _topic(EXCHANGE)],
        "data": "0x" + format(5_000_000, "064x"),
        "transactionHash": "0x" + "AB" * 32,
        "logIndex": "0x3",
        "removed": False,
    }
    log.update(overrides)
    return log


def test_usdt_6_decimals() -> None:
    result = trace("eth_usdt_6dec")
    assert result.found and result.succeeded and result.chain == "ethereum"
    assert result.confirmations >= 1 and result.required_confirmations == 3 and result.block_time_ms == 1000
    [t] = result.transfers
    assert (t.asset, t.decimals, t.amount, t.log_index) == ("USDT", 6, 123_456_789, 0)
    assert t.token_address == USDT_ETHEREUM
    assert (t.sender, t.recipient) == (USER, EXCHANGE)
    assert t.tx_hash == result.tx_hash and t.key == f"ethereum:{result.tx_hash}:0"


def test_usdt_18_decimals() -> None:
    [t] = trace("bsc_usdt_18dec").transfers
    assert (t.chain, t.asset, t.decimals, t.token_address) == ("bsc", "USDT", 18, USDT_BSC)
    assert t.amount == 250 * 10**18 + 1
    assert isinstance(t.amount, int)


def test_native_value() -> None:
    [t] = trace("eth_native").transfers
    assert t.log_index == NATIVE_LOG_INDEX and t.token_address is None
    assert (t.asset, t.decimals, t.amount) == ("ETH", 18, 15 * 10**17)
    assert (t.sender, t.recipient) == (USER, EXCHANGE)


def test_unlisted_token_max_uint256() -> None:
    [t] = trace("eth_unlisted_max_uint").transfers
    assert t.amount == MAX_UINT256 == 2**256 - 1
    assert t.asset is None and t.decimals is None
    assert t.token_address == to_checksum_address("0x00000000000000000000000000000000000b16b1")
    assert t.sender == "0x" + "0" * 40 and t.recipient == EXCHANGE


def test_reverted_has_no_transfers() -> None:
    result = trace("eth_reverted")
    assert result.found and result.succeeded is False and result.transfers == []
    chain, r = replay("eth_reverted")
    assert transfers_of(chain, r["tx"], r["receipt"]) == []


def test_unknown_tx() -> None:
    result = trace("bsc_unknown")
    assert not result.found and result.transfers == [] and result.chain == "bsc"


def test_pending_tx_found_without_transfers() -> None:
    chain, r = replay("eth_native")
    result = trace_result(chain, r["hash"], r["tx"], None, 100)
    assert result.found and result.succeeded is None and result.confirmations == 0 and result.transfers == []


def test_confirmations() -> None:
    chain, r = replay("eth_usdt_6dec")
    block = hex_to_int(r["receipt"]["blockNumber"])
    assert trace_result(chain, r["hash"], r["tx"], r["receipt"], block + 9).confirmations == 10
    # a lagging endpoint's head never makes a mined tx look unmined
    assert trace_result(chain, r["hash"], r["tx"], r["receipt"], block - 5).confirmations == 1


def test_log_decoding_normalises() -> None:
    t = decode_transfer_log(CHAINS["ethereum"], _log())
    assert t is not None
    assert t.tx_hash == "0x" + "ab" * 32 and t.log_index == 3
    assert t.token_address == USDT_ETHEREUM and t.asset == "USDT"
    # same log on a chain where that address is not configured: unknown token
    u = decode_transfer_log(CHAINS["bsc"], _log())
    assert u is not None and u.asset is None and u.decimals is None and u.chain == "bsc"


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"topics": [TRANSFER_TOPIC, _topic(USER), _topic(EXCHANGE), "0x" + "0" * 63 + "7"]}, id="erc721"),
        pytest.param({"topics": [TRANSFER_TOPIC, _topic(USER)]}, id="two-topics"),
        pytest.param({"topics": []}, id="no-topics"),
        pytest.param({"topics": ["0x" + "11" * 32, _topic(USER), _topic(EXCHANGE)]}, id="other-event"),
        pytest.param({"topics": [TRANSFER_TOPIC, "0x" + "ff" * 32, _topic(EXCHANGE)]}, id="dirty-address-topic"),
        pytest.param({"topics": [TRANSFER_TOPIC, "0x1234", _topic(EXCHANGE)]}, id="short-topic"),
        pytest.param({"data": "0x"}, id="empty-data"),
        pytest.param({"data": "0x" + "00" * 64}, id="long-data"),
        pytest.param({"data": "0xzz" + "00" * 31}, id="non-hex-data"),
        pytest.param({"data": None}, id="null-data"),
        pytest.param({"address": "0x1234"}, id="bad-token-address"),
        pytest.param({"removed": True}, id="removed-by-reorg"),
        pytest.param({"logIndex": None}, id="no-log-index"),
    ],
)
def test_malformed_logs_ignored(overrides: dict[str, Any]) -> None:
    assert decode_transfer_log(CHAINS["ethereum"], _log(**overrides)) is None


def test_malformed_logs_do_not_sink_the_others() -> None:
    logs = [_log(topics=[TRANSFER_TOPIC]), _log(logIndex="0x9"), _log(data="0x")]
    [t] = decode_transfer_logs(CHAINS["ethereum"], logs)
    assert t.log_index == 9


def test_topic0_case_insensitive_and_max_amount() -> None:
    log = _log(topics=[TRANSFER_TOPIC.upper().replace("0X", "0x"), _topic(USER), _topic(EXCHANGE)])
    log["data"] = "0x" + "f" * 64
    t = decode_transfer_log(CHAINS["ethereum"], log)
    assert t is not None and t.amount == 2**256 - 1


def test_native_transfer_edge_cases() -> None:
    chain = CHAINS["bsc"]
    tx = {"hash": "0x" + "cd" * 32, "from": USER.lower(), "to": EXCHANGE.lower(), "value": "0x0"}
    assert native_transfer(chain, tx) is None
    t = native_transfer(chain, tx | {"value": hex(MAX_UINT256)})
    assert t is not None and t.amount == MAX_UINT256 and t.asset == "BNB" and t.recipient == EXCHANGE
    created = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    creation = tx | {"to": None, "value": "0x1"}
    assert native_transfer(chain, creation, {"contractAddress": created.lower()}).recipient == created  # type: ignore[union-attr]
    assert native_transfer(chain, creation) is None


def test_hex_to_int() -> None:
    assert hex_to_int("0x0") == 0 and hex_to_int("0x") == 0 and hex_to_int(17) == 17
    assert hex_to_int("0x" + "f" * 64) == MAX_UINT256
    with pytest.raises(TypeError):
        hex_to_int(True)
