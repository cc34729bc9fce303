"""The EVM adapter on real recorded mainnet answers (tests/fixtures/recorded/evm, see its README.md).

Pure: the recorded JSON goes through the adapter's decoders, or through ``EvmChain``/``EvmScanner`` on a
client that answers from the recordings; no node, no network. Expected values come from the recordings'
own sources (ethereum-etl's expected exports), not from this adapter.
"""

from __future__ import annotations

import copy
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from eth_utils import to_checksum_address

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.evm_decode import (
    TRANSFER_TOPIC,
    native_transfer,
    read_internal,
    read_logs,
    read_transfer_log,
    receipt_outcome,
    trace_result,
    with_internal_transfers,
)
from chains.evm_scan import EvmScanner
from chains.jsonrpc import JsonRpcClient
from recovery.models import NATIVE_LOG_INDEX, TraceResult, Transfer, internal_log_index
from recovery.settings import dev_chains

RECORDED = Path(__file__).parent / "fixtures" / "recorded" / "evm"
ETL = RECORDED / "ethereum-etl"
GETH = RECORDED / "go-ethereum" / "call_tracer_results.json"
ETH = next(c for c in dev_chains() if c.name == "ethereum")
HEAD = 20_000_000

# Parity-era receipts with "status": null (block 483920) and geth receipts without a status (block 1755635).
NULL_STATUS_TOKEN = "0x04cbcb236043d8fb7839e07bbc7f5eed692fb2ca55d897f1101eac3e3ad4fab8"
NULL_STATUS_TOKEN_2 = "0xcea6f89720cc1d2f46cc7a935463ae0b99dd5fad9c91bb7357de5421511cee49"
NULL_STATUS_NATIVE = "0x05287a561f218418892ab053adfb3d919860988b19458c570c5c30f51c146f02"
NULL_STATUS_NATIVE_2 = "0x463d53f0ad57677a3b430a007c1c31d15d62c37fab5eee598551697c297c235c"
NO_STATUS_NATIVE = "0x9a5437ec71b74ecf5930b406908ac6999966d38a86d1534b7190ece7599095eb"
NO_STATUS_TOKEN = "0x2e3dcd051a91d3a694f6b8de2ac4b5fe7acdba55f58bcf8471ff00d4a430074d"

BLOCK_FILES = [
    "test_export_blocks_job/block_with_logs/web3_response.eth_getBlockByNumber_0x76250_true.json",
    "test_export_blocks_job/blocks_with_transactions/web3_response.eth_getBlockByNumber_0xb872_true.json",
    "test_export_blocks_job/blocks_with_transactions/web3_response.eth_getBlockByNumber_0xb873_true.json",
    "test_stream/blocks_1755634_1755635/web3_response.eth_getBlockByNumber_0x1ac9f2_true.json",
    "test_stream/blocks_1755634_1755635/web3_response.eth_getBlockByNumber_0x1ac9f3_true.json",
]


def _result(path: Path) -> Any:
    return json.loads(path.read_text())["result"]


def _blocks() -> dict[int, dict[str, Any]]:
    return {int(b["number"], 16): b for b in (_result(ETL / f) for f in BLOCK_FILES)}


def _txs() -> dict[str, dict[str, Any]]:
    return {tx["hash"]: tx for block in _blocks().values() for tx in block["transactions"]}


def _receipts() -> dict[str, dict[str, Any]]:
    return {r["transactionHash"]: r for r in map(_result, ETL.rglob("*eth_getTransactionReceipt_*.json"))}


def _trace(tx_hash: str, **tx_changes: Any) -> TraceResult:
    tx = _txs()[tx_hash] | tx_changes
    return trace_result(ETH, tx_hash, tx, _receipts()[tx_hash], HEAD)


def _key(t: Transfer) -> tuple[str | None, str, str, int, str, int]:
    return ((t.token_address or "").lower(), t.sender.lower(), t.recipient.lower(), t.amount, t.tx_hash, t.log_index)


def _etl_key(row: dict[str, Any]) -> tuple[str | None, str, str, int, str, int]:
    return (
        row["token_address"],
        row["from_address"],
        row["to_address"],
        int(row["value"]),
        row["transaction_hash"],
        int(row["log_index"]),
    )


# --- 1. a receipt with "status": null -----------------------------------------------------------


def test_null_status_receipt_decodes_and_is_judged_by_its_logs() -> None:
    assert _receipts()[NULL_STATUS_TOKEN]["status"] is None  # the recorded Parity answer
    result = _trace(NULL_STATUS_TOKEN)
    assert result.found and result.succeeded is True and result.block_number == 483920
    [t] = result.transfers
    assert _key(t) == (
        "0xf4eced2f682ce333f96f2d8966c613ded8fc95dd",
        "0x1b63142628311395ceafeea5667e7c9026c862ca",
        "0xac4df82fe37ea2187bc8c011a23d743b4f39019a",
        100_000,
        NULL_STATUS_TOKEN,
        0,
    )
    [unread] = result.unread
    assert "no success status" in unread and "emitted events" in unread
    assert any("no status in the receipt" in n and "logs" in n for n in result.notes)


@pytest.mark.parametrize("tx_hash", [NULL_STATUS_NATIVE, NULL_STATUS_NATIVE_2])
def test_null_status_native_transfer_judged_by_gas(tx_hash: str) -> None:
    tx, receipt = _txs()[tx_hash], _receipts()[tx_hash]
    assert receipt["status"] is None and receipt["logs"] == [] and receipt["root"]
    result = _trace(tx_hash)
    assert result.succeeded is True
    [t] = result.transfers
    assert (t.log_index, t.amount, t.sender.lower(), t.recipient.lower()) == (
        NATIVE_LOG_INDEX,
        int(tx["value"], 16),
        tx["from"],
        tx["to"],
    )
    [unread] = result.unread
    assert "less gas than its limit" in unread
    assert any("used 21000 of its 90000 gas" in n for n in result.notes)


# --- 2. a receipt without a status (before Byzantium) -------------------------------------------


def test_pre_byzantium_native_transfer_is_not_reported_reverted() -> None:
    assert "status" not in _receipts()[NO_STATUS_NATIVE]
    result = _trace(NO_STATUS_NATIVE)
    assert result.found and result.succeeded is True and result.block_number == 1_755_635
    [t] = result.transfers
    assert (t.log_index, t.asset, t.decimals, t.amount) == (NATIVE_LOG_INDEX, "ETH", 18, 405_738_107_000_000_000)
    assert t.sender == to_checksum_address("0x3763e6e1228bfeab94191c856412d1bb0a8e6996")
    assert t.recipient == to_checksum_address("0xec1ebac9da3430213281c80fa6d46378341a96ae")
    assert result.unread and "less gas than its limit" in result.unread[0]
    assert result.notes


def test_pre_byzantium_token_transfer_is_not_reported_reverted() -> None:
    result = _trace(NO_STATUS_TOKEN)
    assert result.succeeded is True
    [t] = result.transfers
    expected = [
        json.loads(line) for line in (ETL / "test_stream/blocks_1755634_1755635/expected_token_transfers.json").open()
    ]
    assert [_key(t)] == [_etl_key(row) for row in expected]
    assert t.amount == 5 * 10**18 and t.asset is None  # not a listed token
    assert len(result.unread) == 1 and "emitted events" in result.unread[0]


def test_unjudgeable_success_is_not_called_failed() -> None:
    # The same recorded transfer, had its sender set the exact gas limit: a plain transfer that succeeded
    # and a call that threw look alike (all gas used, no logs), so it is neither failed nor silently fine.
    result = _trace(NO_STATUS_NATIVE, gas="0x5208")
    assert result.succeeded is not False and result.found and result.block_number == 1_755_635
    assert [t.amount for t in result.transfers] == [405_738_107_000_000_000]
    [unread] = result.unread
    assert "cannot be judged" in unread and "used all its gas limit" in unread
    # without the pre-Byzantium state root the gas rule does not hold (REVERT leaves gas): not judged
    receipt = {k: v for k, v in _receipts()[NO_STATUS_NATIVE].items() if k != "root"}
    outcome = receipt_outcome(receipt, _txs()[NO_STATUS_NATIVE])
    assert outcome.succeeded and "cannot be judged" in outcome.unread[0]
    # ... and without the transaction (its gas limit) neither
    assert "cannot be judged" in receipt_outcome(_receipts()[NO_STATUS_NATIVE]).unread[0]


def test_status_answers() -> None:
    receipt = _receipts()[NO_STATUS_TOKEN]
    assert receipt_outcome(receipt | {"status": "0x1"}) == receipt_outcome(receipt | {"status": 1})
    ok = receipt_outcome(receipt | {"status": "0x1"})
    assert ok.succeeded and not ok.unread and not ok.notes
    failed = receipt_outcome(receipt | {"status": "0x0"})
    assert not failed.succeeded and not failed.unread
    reverted = trace_result(ETH, NO_STATUS_TOKEN, _txs()[NO_STATUS_TOKEN], receipt | {"status": "0x0"}, HEAD)
    assert reverted.succeeded is False and reverted.transfers == [] and reverted.unread == []
    for odd in ("0x2", "yes", True):
        outcome = receipt_outcome(receipt | {"status": odd})
        assert outcome.succeeded and "not one the adapter knows" in outcome.unread[0]


# --- 3. every recorded transaction decodes; token transfers equal ethereum-etl's ------------------


def test_every_recorded_transaction_decodes() -> None:
    receipts = _receipts()
    traced = 0
    for number, block in _blocks().items():
        for tx in block["transactions"]:
            receipt = receipts.get(tx["hash"])
            result = trace_result(ETH, tx["hash"], tx, receipt, HEAD)
            assert result.found
            if receipt is not None:
                traced += 1
                assert result.block_number == number and result.succeeded is True
                assert result.unread  # none of these old receipts has a status
    assert traced == len(receipts) == 6


def test_native_values_equal_ethereum_etl_transactions() -> None:
    rows = list(
        csv.DictReader((ETL / "test_export_blocks_job/blocks_with_transactions/expected_transactions.csv").open())
    )
    txs = _txs()
    assert len(rows) == 4
    for row in rows:
        transfer = native_transfer(ETH, txs[row["hash"]])
        assert transfer is not None
        assert (transfer.sender.lower(), transfer.recipient.lower(), transfer.amount) == (
            row["from_address"],
            row["to_address"],
            int(row["value"]),
        )


def test_token_transfers_of_block_483920_equal_ethereum_etl() -> None:
    path = ETL / "test_export_token_transfers_job/block_with_transfers/expected_token_transfers.csv"
    expected = {_etl_key(row) for row in csv.DictReader(path.open())}
    in_block = [h for h, receipt in _receipts().items() if receipt["blockNumber"] == hex(483920)]
    found = {_key(t) for h in in_block for t in _trace(h).transfers if t.token_address}
    assert found == expected and len(expected) == 2


def _rpc_log(row: dict[str, Any]) -> dict[str, Any]:
    """An ethereum-etl log row as the JSON-RPC log it was exported from (same values, RPC field names)."""
    return {
        "address": row["address"],
        "topics": row["topics"],
        "data": row["data"],
        "blockNumber": hex(row["block_number"]),
        "transactionHash": row["transaction_hash"],
        "transactionIndex": hex(row["transaction_index"]),
        "logIndex": hex(row["log_index"]),
        "removed": False,
    }


def _mainnet_2023() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    base = ETL / "test_stream/blocks_17173049_17173050"
    logs = [_rpc_log(json.loads(line)) for line in (base / "transfer_event_logs.jsonl").open()]
    expected = [json.loads(line) for line in (base / "expected_token_transfers.jsonl").open()]
    return logs, expected


def test_token_transfers_of_two_2023_blocks_equal_ethereum_etl() -> None:
    logs, expected = _mainnet_2023()
    reading = read_logs(ETH, logs)
    nft_logs = {(log["transactionHash"], int(log["logIndex"], 16)) for log in logs if len(log["topics"]) == 4}
    fungible = [row for row in expected if (row["transaction_hash"], row["log_index"]) not in nft_logs]
    assert len(logs) == len(expected) == 291 and len(nft_logs) == 9 and len(fungible) == 282
    assert sorted(map(_key, reading.transfers)) == sorted(map(_etl_key, fungible))
    usdt = [t for t in reading.transfers if t.asset == "USDT"]
    assert usdt and all(t.decimals == 6 and t.token_address == ETH.tokens[0].address for t in usdt)
    # ethereum-etl exports an ERC-721 transfer with the token id as its "value"; the adapter names it as
    # an NFT in unread (the engine does not recover NFTs) and never as an amount
    nfts = [row for row in expected if (row["transaction_hash"], row["log_index"]) in nft_logs]
    assert len(reading.unread) == len(nfts) == 9
    for row, unread in zip(nfts, reading.unread, strict=True):
        assert f"NFT (ERC-721) transfer of token #{row['value']} " in unread
        assert f"log #{row['log_index']} " in unread


class RecordedRpc(JsonRpcClient):
    """A JSON-RPC client that answers from recorded responses instead of a node."""

    def __init__(self, answers: dict[tuple[str, str], Any], logs: Sequence[dict[str, Any]] = ()) -> None:
        super().__init__(["http://127.0.0.1:9"], name="recorded")
        self.answers = answers
        self.logs = list(logs)
        self.methods: list[str] = []

    def answer(self, method: str, params: list[Any]) -> Any:
        self.methods.append(method)
        if method == "eth_blockNumber":
            return hex(HEAD)
        if method == "eth_getLogs":
            [flt] = params
            lo, hi, wanted = int(flt["fromBlock"], 16), int(flt["toBlock"], 16), set(flt["topics"][2])
            return [
                log
                for log in self.logs
                if lo <= int(log["blockNumber"], 16) <= hi
                and log["topics"][0] == flt["topics"][0]
                and len(log["topics"]) > 2
                and log["topics"][2] in wanted
            ]
        if method == "eth_getBlockByNumber":
            return copy.deepcopy(self.answers.get((method, params[0])))
        if method.startswith("debug_"):
            return self.answers.get(
                (method, params[0]), RpcError(-32601, "the method debug_traceTransaction does not exist")
            )
        answer = self.answers.get((method, str(params[0]).lower()))
        return answer if isinstance(answer, RpcError) else copy.deepcopy(answer)

    async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
        answer = self.answer(method, list(params or []))
        if isinstance(answer, RpcError):
            raise answer
        return answer

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any]:
        return [self.answer(method, list(params or [])) for method, params in calls]


def _recorded_answers() -> dict[tuple[str, str], Any]:
    answers: dict[tuple[str, str], Any] = {}
    for h, tx in _txs().items():
        answers["eth_getTransactionByHash", h] = tx
    for h, receipt in _receipts().items():
        answers["eth_getTransactionReceipt", h] = receipt
    for number, block in _blocks().items():
        answers["eth_getBlockByNumber", hex(number)] = block
    return answers


async def test_trace_null_status_through_the_adapter() -> None:
    result = await EvmChain(ETH, rpc=RecordedRpc(_recorded_answers())).trace(NULL_STATUS_TOKEN)
    assert result.succeeded is True and [t.amount for t in result.transfers] == [100_000]
    assert result.confirmations == HEAD - 483920 + 1
    assert any("internal transfers not read" in n for n in result.notes)  # the recorded node has no debug_


async def test_trace_many_one_bad_item_never_sinks_the_others() -> None:
    answers = _recorded_answers()
    undecodable = "0x" + "ee" * 32
    error_item = "0x" + "dd" * 32
    missing = "0x" + "cc" * 32
    answers["eth_getTransactionByHash", undecodable] = _txs()[NO_STATUS_NATIVE] | {"hash": undecodable}
    answers["eth_getTransactionReceipt", undecodable] = _receipts()[NO_STATUS_NATIVE] | {"blockNumber": "0xnope"}
    answers["eth_getTransactionReceipt", error_item] = RpcError(-32005, "limit exceeded")
    answers["eth_getTransactionByHash", error_item] = {"hash": error_item}
    good = [
        NULL_STATUS_TOKEN,
        NULL_STATUS_TOKEN_2,
        NULL_STATUS_NATIVE,
        NULL_STATUS_NATIVE_2,
        NO_STATUS_NATIVE,
        NO_STATUS_TOKEN,
    ]
    hashes = [good[0], undecodable, *good[1:3], error_item, missing, *good[3:]]
    one_by_one = {h: await EvmChain(ETH, rpc=RecordedRpc(answers)).trace(h) for h in good}
    many = await EvmChain(ETH, rpc=RecordedRpc(answers)).trace_many(hashes, chunk_size=4, concurrency=2)
    assert [r.tx_hash for r in many] == hashes
    by_hash = dict(zip(hashes, many, strict=True))
    for h in good:
        assert by_hash[h].succeeded is True and by_hash[h].transfers
        assert by_hash[h].transfers == one_by_one[h].transfers and by_hash[h].unread == one_by_one[h].unread
    bad = by_hash[undecodable]
    assert bad.found and bad.transfers == [] and "could not be decoded" in bad.unread[0]
    assert not by_hash[error_item].found and "limit exceeded" in by_hash[error_item].unread[0]
    assert not by_hash[missing].found and by_hash[missing].unread == []
    # 298 good items and one null-status receipt: the batch that used to fail as a whole
    batch = [NULL_STATUS_TOKEN] + [h for _ in range(50) for h in good][:298]
    results = await EvmChain(ETH, rpc=RecordedRpc(answers)).trace_many(batch)
    assert len(results) == 299 and all(r.succeeded for r in results)


async def test_scanner_finds_pre_byzantium_native_deposit_and_reports_nfts() -> None:
    logs, expected = _mainnet_2023()
    nft = next(log for log in logs if len(log["topics"]) == 4)
    token = next(log for log in logs if len(log["topics"]) == 3)
    watched = [
        "0x" + nft["topics"][2][-40:],
        "0x" + token["topics"][2][-40:],
        "0xec1ebac9da3430213281c80fa6d46378341a96ae",
    ]
    scanner = EvmScanner(ETH, rpc=RecordedRpc(_recorded_answers(), logs))
    [old] = [b async for b in scanner.scan(1_755_634, 1_755_635, watched)]
    [deposit] = old.found
    assert deposit.block_number == 1_755_635 and deposit.transfer.amount == 405_738_107_000_000_000
    # no recorded blocks for 2023 (only their logs): the log half of the scan
    found_logs, unread = await scanner.read_transfer_logs(17_173_049, 17_173_050, watched)
    found = [f.transfer for f in found_logs]
    assert found and all(f.block_number in (17_173_049, 17_173_050) for f in found_logs)
    wanted = {w.lower() for w in watched}
    nfts = {(log["transactionHash"], int(log["logIndex"], 16)) for log in logs if len(log["topics"]) == 4}
    to_watched = [row for row in expected if row["to_address"] in wanted]
    fungible = [row for row in to_watched if (row["transaction_hash"], row["log_index"]) not in nfts]
    assert sorted(map(_key, found)) == sorted(map(_etl_key, fungible))
    # every NFT that reached a watched address is reported, with its block and transaction
    nft_rows = [row for row in to_watched if (row["transaction_hash"], row["log_index"]) in nfts]
    assert nft_rows and len(unread) == len(nft_rows)
    for row, u in zip(sorted(nft_rows, key=lambda r: (r["block_number"], r["log_index"])), unread, strict=True):
        assert (u.block_number, u.tx_hash) == (row["block_number"], row["transaction_hash"])
        assert f"NFT (ERC-721) transfer of token #{row['value']} " in u.what


# --- callTracer frames ----------------------------------------------------------------------------


def _geth() -> dict[str, Any]:
    return json.loads(GETH.read_text())


GETH_VALUE_MOVES = {
    "call_tracer/simple.json": [
        ("0x3b873a919aa0512d5a0f09e6dcceaa4a6727fafe", "0x0024f658a46fbb89d8ac105e98d7ac7cbbaf27c5", 0x6F05B59D3B20000)
    ],
    "call_tracer/selfdestruct.json": [
        (
            "0x3b873a919aa0512d5a0f09e6dcceaa4a6727fafe",
            "0x000000000000000000000000000000000000dead",
            0x4D87094125A369D9BD5,
        )
    ],
    "call_tracer_withLog/notopic.json": [
        ("0x50739060a2c32dc076e507ae1a893aab28ecfe68", "0x88e1315687aec48a72786c6b3b3f075208b62713", 0x179D63013C5654)
    ],
}
"""The nested value-moving frames of go-ethereum's callTracer test data that did not revert, read off the
files: inner_instafail's and tx_failed's value calls reverted (an error on them or on the top call);
calldata's value frame is a CALLCODE (the caller's balance stays with the caller)."""


@pytest.mark.parametrize("name", sorted(_geth()))
def test_geth_call_tracer_frames_decode(name: str) -> None:
    frame = _geth()[name]["result"]
    reading = read_internal(ETH, "0x" + "ab" * 32, frame)
    assert reading.unread == [] and reading.notes == []
    moves = [(t.sender.lower(), t.recipient.lower(), t.amount) for t in reading.transfers]
    assert moves == GETH_VALUE_MOVES.get(name, [])
    assert [t.log_index for t in reading.transfers] == [internal_log_index(n + 1) for n in range(len(moves))]
    assert all(t.asset == "ETH" and t.token_address is None for t in reading.transfers)


def test_geth_reverted_value_frames_are_in_the_data() -> None:
    # the "no transfer" answers above are real: the data does carry value in frames that reverted
    data = _geth()
    assert data["call_tracer/inner_instafail.json"]["result"]["calls"][0]["error"]
    assert int(data["call_tracer/inner_instafail.json"]["result"]["calls"][0]["value"], 16) > 0
    assert data["call_tracer_withLog/tx_failed.json"]["result"]["error"]
    assert data["call_tracer_withLog/calldata.json"]["result"]["calls"][0]["type"] == "CALLCODE"


def _etl_block_traces(name: str) -> list[Any]:
    [path] = (ETL / "test_extract_geth_traces_job" / name).glob("*debug_traceBlockByNumber*.json")
    return [item["result"] for item in _result(path)]


def test_mainnet_block_traces_decode() -> None:
    for name in ("block_with_create", "block_with_error", "block_with_subtraces"):
        for frame in _etl_block_traces(name):
            reading = read_internal(ETH, "0x" + "ab" * 32, frame)
            assert reading.transfers == [] and reading.unread == []  # top-level values and a CALLCODE only


def test_selfdestruct_without_value_is_unread() -> None:
    # geth's old JS callTracer recorded this mainnet SELFDESTRUCT (block 1011973) with neither value nor
    # beneficiary: the contract's balance went somewhere the trace does not say
    [frame] = _etl_block_traces("block_with_suicide")
    assert frame["calls"] == [{"type": "SELFDESTRUCT"}]
    reading = read_internal(ETH, "0x" + "ab" * 32, frame)
    assert reading.transfers == []
    [unread] = reading.unread
    assert "SELFDESTRUCT" in unread and "does not say how much ETH" in unread


# --- 4. what the adapter does not understand is unread, never "no transfer" ------------------------


def test_unknown_transaction_type_is_unread() -> None:
    result = _trace(NO_STATUS_TOKEN, type="0x7e")
    assert result.transfers and any("type '0x7e'" in u and "does not know" in u for u in result.unread)
    assert any("unknown transaction type" in n for n in result.notes)
    receipt = _receipts()[NO_STATUS_TOKEN] | {"status": "0x1", "type": "0x64"}
    tx = {k: v for k, v in _txs()[NO_STATUS_TOKEN].items() if k != "type"}
    assert any("'0x64'" in u for u in trace_result(ETH, NO_STATUS_TOKEN, tx, receipt, HEAD).unread)
    for known in ("0x0", "0x1", "0x2", "0x3", "0x4"):
        assert _trace(NO_STATUS_TOKEN, type=known).unread == _trace(NO_STATUS_TOKEN).unread


def _token_log() -> dict[str, Any]:
    return copy.deepcopy(_receipts()[NO_STATUS_TOKEN]["logs"][0])


@pytest.mark.parametrize(
    ("change", "shape"),
    [
        pytest.param(
            lambda log: log.update(topics=log["topics"][:1], data="0x" + "00" * 64 + log["data"][2:]),
            "1 topics, 96 data bytes",
            id="unindexed",
        ),
        pytest.param(lambda log: log.update(topics=log["topics"][:2]), "2 topics, 32 data bytes", id="two-topics"),
        pytest.param(lambda log: log.update(data=log["data"] + "00"), "3 topics, 33 data bytes", id="long-data"),
        pytest.param(lambda log: log.update(data="0x"), "3 topics, 0 data bytes", id="no-data"),
        pytest.param(lambda log: log.update(data="0xzz"), "3 topics, bad data", id="bad-data"),
        pytest.param(
            lambda log: log["topics"].__setitem__(1, "0x" + "ff" * 32), "3 topics, 32 data bytes", id="dirty-topic"
        ),
        pytest.param(lambda log: log.update(address="0x1234"), "3 topics, 32 data bytes", id="bad-token-address"),
        pytest.param(lambda log: log.pop("transactionHash"), "3 topics, 32 data bytes", id="no-tx-hash"),
    ],
)
def test_transfer_event_of_an_unknown_shape_is_unread(change: Any, shape: str) -> None:
    log = _token_log()
    assert read_transfer_log(ETH, log).transfers  # the recorded log itself decodes
    change(log)
    reading = read_transfer_log(ETH, log)
    assert reading.transfers == []
    [unread] = reading.unread
    assert f"({shape})" in unread and "tokens may have moved" in unread and "log #0" in unread
    assert reading.notes == [f"log #0: Transfer event not decoded ({shape})"]
    # inside a receipt: the transaction's other transfers are still listed
    receipt = _receipts()[NO_STATUS_TOKEN] | {"status": "0x1", "logs": [log, _token_log() | {"logIndex": "0x5"}]}
    result = trace_result(ETH, NO_STATUS_TOKEN, _txs()[NO_STATUS_TOKEN], receipt, HEAD)
    assert [t.log_index for t in result.transfers] == [5] and result.unread == [unread]


def test_other_logs_and_odd_containers() -> None:
    [log_1] = [log for log in _receipts()[NO_STATUS_TOKEN]["logs"] if log["topics"][0] != TRANSFER_TOPIC]
    assert read_transfer_log(ETH, log_1) == read_transfer_log(ETH, log_1 | {"topics": []})  # other/anonymous events
    assert read_transfer_log(ETH, log_1).unread == []
    assert read_transfer_log(ETH, _token_log() | {"removed": True}).unread == []  # reorganised away
    erc1155 = _token_log() | {"topics": ["0xc3d58168c5ae7397731d063d5bbf3d657854427343f4c083240f7aacaa2d0f62"]}
    assert "ERC-1155" in read_transfer_log(ETH, erc1155).unread[0]
    assert "topics" in read_transfer_log(ETH, _token_log() | {"topics": "0xddf2"}).unread[0]
    assert read_logs(ETH, "garbage").unread and read_logs(ETH, ["garbage"]).unread
    assert read_logs(ETH, None).unread == []


def test_unknown_frame_type_and_malformed_frames_are_unread() -> None:
    frame = copy.deepcopy(_geth()["call_tracer/simple.json"]["result"])
    child = frame["calls"][0]
    base = read_internal(ETH, "0x" + "ab" * 32, frame)
    assert len(base.transfers) == 1 and base.unread == []
    for change, words in [
        ({"type": "SUICIDE"}, "kind the adapter does not know ('SUICIDE')"),
        ({"type": None}, "kind the adapter does not know (None)"),
        ({"value": "0xnothex"}, "value of inner call 0 could not be read"),
        ({"to": None}, "its sender or recipient could not be read"),
        ({"value": None}, "does not say how much ETH"),
    ]:
        reading = read_internal(ETH, "0x" + "ab" * 32, frame | {"calls": [child | change]})
        assert reading.transfers == [] and len(reading.unread) == 1 and words in reading.unread[0], change
    # an unreadable frame does not hide a readable sibling, nor its own readable children
    odd = child | {"type": "SUICIDE", "calls": [child]}
    reading = read_internal(ETH, "0x" + "ab" * 32, frame | {"calls": ["garbage", odd, child]})
    assert [t.log_index for t in reading.transfers] == [-2, -3] and len(reading.unread) == 2
    assert "could not be read" in read_internal(ETH, "0x" + "ab" * 32, frame | {"calls": 7}).unread[0]
    assert "could not be read" in read_internal(ETH, "0x" + "ab" * 32, None).unread[0]


def test_unread_internal_frames_reach_the_trace() -> None:
    result = _trace(NO_STATUS_TOKEN)
    frame = _geth()["call_tracer/simple.json"]["result"]
    odd = frame | {"calls": [frame["calls"][0] | {"type": "SUICIDE"}]}
    full = with_internal_transfers(ETH, result, odd)
    assert full.transfers == result.transfers and len(full.unread) == len(result.unread) + 1
    assert full.notes[-1] == "call 0: unknown frame type 'SUICIDE'"


def test_contract_creation_value_without_an_address_is_unread() -> None:
    tx = _txs()[NO_STATUS_NATIVE] | {"to": None}
    receipt = _receipts()[NO_STATUS_NATIVE] | {"status": "0x1", "contractAddress": None}
    result = trace_result(ETH, NO_STATUS_NATIVE, tx, receipt, HEAD)
    assert result.transfers == [] and "neither a recipient nor a created contract" in result.unread[0]
    bad_value = trace_result(ETH, NO_STATUS_NATIVE, _txs()[NO_STATUS_NATIVE] | {"value": "0xzz"}, receipt, HEAD)
    assert bad_value.transfers == [] and "own value" in bad_value.unread[0]
