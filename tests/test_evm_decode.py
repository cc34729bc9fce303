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
    internal_not_read,
    internal_transfers,
    native_transfer,
    needs_internal_trace,
    trace_result,
    transfers_of,
    with_internal_transfers,
)
from recovery.models import NATIVE_LOG_INDEX, TraceResult, internal_log_index
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


# --- internal (contract-made) native value transfers: tests/fixtures/record_internal_fixtures.py ---

SPLITTER = to_checksum_address("0x00000000000000000000000000000000005911e7")
FORWARDER = to_checksum_address("0x00000000000000000000000000000000000f0a2d")
FIRST = to_checksum_address("0x1111111111111111111111111111111111111111")
SECOND = to_checksum_address("0x2222222222222222222222222222222222222222")


def replay_internal(name: str) -> tuple[ChainConfig, dict[str, Any]]:
    chain, r = replay(name)
    fixture = json.loads((FIXTURES / f"evm_{name}.json").read_text())
    r["frame"] = next(item["result"] for item in fixture["response"] if item["id"] == 4)
    return chain, r


def test_internal_split_two_deposits() -> None:
    chain, r = replay_internal("eth_internal_split")
    assert needs_internal_trace(r["tx"], r["receipt"])
    first, second = internal_transfers(chain, r["hash"], r["frame"])
    assert (first.log_index, first.sender, first.recipient, first.amount) == (-2, SPLITTER, FIRST, 3 * 10**17)
    assert (second.log_index, second.sender, second.recipient, second.amount) == (-3, SPLITTER, SECOND, 7 * 10**17)
    assert first.log_index == internal_log_index(1) and second.log_index == internal_log_index(2)
    assert first.token_address is None and (first.asset, first.decimals) == ("ETH", 18)
    assert first.key.endswith(":i1") and second.key.endswith(":i2") and first.tx_hash == r["hash"].lower()
    base = trace_result(chain, r["hash"], r["tx"], r["receipt"], hex_to_int(r["head"]))
    full = with_internal_transfers(chain, base, r["frame"])
    assert [t.log_index for t in full.transfers] == [NATIVE_LOG_INDEX, -2, -3]
    assert full.transfer_at(-3) == second and full.transfers[0].recipient == SPLITTER


def test_internal_reverted_frame_and_children_skipped() -> None:
    chain, r = replay_internal("eth_internal_reverted_frame")
    assert r["frame"]["calls"][0]["error"] and r["frame"]["calls"][0]["calls"][0]["value"] != "0x0"
    assert internal_transfers(chain, r["hash"], r["frame"]) == []
    base = trace_result(chain, r["hash"], r["tx"], r["receipt"], hex_to_int(r["head"]))
    assert [t.recipient for t in with_internal_transfers(chain, base, r["frame"]).transfers] == [FORWARDER]


def _frame(type_: str = "CALL", value: str = "0x5", **extra: Any) -> dict[str, Any]:
    return {"type": type_, "from": SPLITTER.lower(), "to": FIRST.lower(), "value": value} | extra


def test_internal_frame_kinds_and_order() -> None:
    chain = CHAINS["polygon"]
    top = _frame(
        calls=[
            _frame("DELEGATECALL", calls=[_frame(value="0x1")]),  # a delegatecall's own value is not a transfer
            _frame("STATICCALL"),
            _frame("CALLCODE"),
            _frame(value="0x0"),
            _frame("CALL", value="0x2", calls=[_frame("CREATE", value="0x3")]),
            _frame("CALL", value="0x9", error="execution reverted", calls=[_frame(value="0x7")]),
            _frame("SELFDESTRUCT", value="0x4"),
            {"type": "CALL", "value": "0x8"},  # malformed: no from/to
            "garbage",
        ]
    )
    found = internal_transfers(chain, "0x" + "AA" * 32, top)
    assert [(t.log_index, t.amount) for t in found] == [(-2, 1), (-3, 2), (-4, 3), (-5, 4)]
    assert all(t.asset == "POL" and t.tx_hash == "0x" + "aa" * 32 for t in found)
    assert internal_transfers(chain, "0x" + "aa" * 32, top | {"error": "out of gas"}) == []
    assert internal_transfers(chain, "0x" + "aa" * 32, None) == []


def test_needs_internal_trace() -> None:
    chain, r = replay("eth_native")
    assert not needs_internal_trace(r["tx"], r["receipt"])  # plain value transfer: no code ran
    _, usdt = replay("eth_usdt_6dec")
    assert needs_internal_trace(usdt["tx"], usdt["receipt"])
    _, reverted = replay("eth_reverted")
    assert not needs_internal_trace(reverted["tx"], reverted["receipt"])
    assert not needs_internal_trace(usdt["tx"], None) and not needs_internal_trace(None, usdt["receipt"])
    result = internal_not_read(trace("eth_usdt_6dec"), "no debug_traceTransaction")
    assert result.notes == ["internal transfers not read: no debug_traceTransaction"]


def test_transfer_without_input_that_ran_code_needs_internal_trace() -> None:
    """A transfer without input to a contract runs its receive/fallback (or an EIP-7702 delegate), which may
    forward the value: the receipt's gas shows code ran; only exactly the plain 21,000 gas shows none."""
    _, r = replay("eth_native")
    assert r["tx"]["input"] == "0x" and r["receipt"]["gasUsed"] == hex(21_000)
    assert not needs_internal_trace(r["tx"], r["receipt"])
    assert needs_internal_trace(r["tx"], r["receipt"] | {"gasUsed": hex(23_446)})  # a forwarding fallback ran
    assert needs_internal_trace(r["tx"], {k: v for k, v in r["receipt"].items() if k != "gasUsed"})
    # Arbitrum: the L1 data cost is in gasUsed, and apart in gasUsedForL1
    arbitrum = r["receipt"] | {"gasUsed": hex(21_000 + 1_800), "gasUsedForL1": hex(1_800)}
    assert not needs_internal_trace(r["tx"], arbitrum)
    assert needs_internal_trace(r["tx"], arbitrum | {"gasUsed": hex(21_001 + 1_800)})
