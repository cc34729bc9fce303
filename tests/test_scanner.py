"""The deposit scanner: finds uncredited deposits and opens their cases before anyone claims them.

End to end on real anvil chains, the real worker and a real Temporal dev server (long-running workflows
with timers want real time), plus unit tests of the log filters and the decoding.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import pytest
from eth_utils import to_checksum_address
from sqlmodel import Session
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.evm_decode import TRANSFER_TOPIC
from chains.evm_scan import EvmScanner, address_topic, transfer_log_filters, uncredited_reason
from chains.signer import deposit_path
from cli.app import app
from devstack import devnet
from recovery.models import NATIVE_LOG_INDEX, Transfer
from recovery.settings import ChainConfig, TokenConfig, get_settings
from services.deposit_finder import SCANNER_EVENT_KEY
from store import cases, scan_cursors, users
from tests.stack_fixtures import Stack, cli_env, open_stack, record_history, run_cli
from worker import build_worker
from workflows.scanner_workflow import ScannerInput, ScannerStatus, ScannerWorkflow, scanner_id
from workflows.starter import start_scanner

WAIT_S = 60


@pytest.fixture
async def scan_stack(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """The stack on the dev server, without a worker: tests run (and restart) their own."""
    async for s in open_stack(dev_server_env, tmp_path, dev_chains, run_worker=False):
        for chain in s.settings.chain_names:
            await _terminate(s.client, scanner_id(chain))  # a scanner left by an earlier test
        try:
            yield s
        finally:
            for chain in s.settings.chain_names:
                await _terminate(s.client, scanner_id(chain))


async def _terminate(client: Client, workflow_id: str) -> None:
    with contextlib.suppress(RPCError):
        await client.get_workflow_handle(workflow_id).terminate("test cleanup")


@contextlib.asynccontextmanager
async def running_worker(stack: Stack) -> AsyncIterator[None]:
    async with build_worker(stack.client, stack.settings, engine=stack.engine, signer=stack.signer):
        yield


async def status(handle: WorkflowHandle[Any, Any]) -> ScannerStatus:
    result: ScannerStatus = await handle.query(ScannerWorkflow.cursor)
    return result


async def wait_cursor(handle: WorkflowHandle[Any, Any], past: int = -1) -> ScannerStatus:
    """Wait until the scanner has scanned block ``past`` (or just has a cursor)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        with contextlib.suppress(RPCError):
            current = await status(handle)
            if current.next_block is not None and current.next_block > past:
                return current
        if time.monotonic() > deadline:
            raise AssertionError(f"scanner {handle.id} did not pass block {past}")
        await asyncio.sleep(0.2)


async def block_of(stack: Stack, chain: str, tx_hash: str) -> int:
    receipt = await EvmChain(stack.chain(chain)).receipt(tx_hash)
    assert receipt is not None
    return int(receipt["blockNumber"], 16)


async def list_cases(stack: Stack, token: str) -> list[dict[str, Any]]:
    response = await stack.http.get("/v1/cases", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def scanned_ranges(client: Client, workflow_id: str, run_id: str | None) -> list[tuple[int, int]]:
    """``[from_block, next_block)`` of every completed ``scan_blocks`` activity of one run, in order."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    ranges = []
    for event in history.events:
        if event.event_type != EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
            continue
        payloads = event.activity_task_completed_event_attributes.result.payloads
        result = json.loads(payloads[0].data)
        if isinstance(result, dict) and "next_block" in result:
            ranges.append((int(result["from_block"]), int(result["next_block"])))
    return ranges


def assert_contiguous(ranges: Sequence[tuple[int, int]], start: int, end: int) -> None:
    cursor = start
    for lo, hi in ranges:
        assert lo == cursor, f"range {lo}..{hi - 1} after cursor {cursor}: {ranges}"
        assert hi >= lo
        cursor = hi
    assert cursor == end, ranges


# --- end to end -----------------------------------------------------------------------------------


async def test_scanner_opens_a_case_for_an_unclaimed_wrong_network_deposit(scan_stack: Stack) -> None:
    stack = scan_stack
    _, token, address = stack.new_user("dora")
    async with running_worker(stack):
        handle = await start_scanner(stack.client, stack.settings, "bsc")
        assert handle.id == "scanner-bsc"
        await wait_cursor(handle)

        tx_hash = await stack.send("bsc", to=address, amount=Decimal("100"))  # USDT: bsc credits nothing
        block = await block_of(stack, "bsc", tx_hash)
        scanned = await wait_cursor(handle, block)
        assert scanned.cases_opened == 1 and scanned.deposits_found >= 1

        listed = await list_cases(stack, token)
        assert len(listed) == 1, listed
        case_id = listed[0]["case_id"]
        assert case_id.startswith(f"case-bsc-{tx_hash.lower()}-")
        assert listed[0]["chain"] == "bsc" and listed[0]["asset"] == "USDT"
        detail = await stack.case(token, case_id)
        note = detail["timeline"][1]  # after "received", before the workflow's first step
        assert note["status"] == "RECEIVED" and note["message"].startswith("Opened by the deposit scanner")
        assert f"block {block}" in note["message"] and "(USDT is not credited on bsc)" in note["message"], note
        with Session(stack.engine) as session:
            keys = [e.key for e in cases.timeline(session, case_id=case_id)]
        assert keys[:2] == ["received", SCANNER_EVENT_KEY]

        # the user claims it later: the same case
        again = await stack.claim(token, tx_hash)
        assert again.status_code == 409, again.text
        assert again.json()["case_id"] == case_id

        # the scanner's case is a real case: it is recovered like a claim
        done = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", timeout=WAIT_S)
        assert done["status"] == "COMPLETED" and done["pattern"] == "WRONG_NETWORK_SAME_KEY", done
        assert (await stack.client.get_workflow_handle(case_id).describe()).id == case_id

        # the recovery's gas top-up (BNB from the exchange's gas wallet, not credited on bsc) is no deposit
        assert done["topup_tx_hash"] is not None
        topup_block = await block_of(stack, "bsc", done["topup_tx_hash"])
        await wait_cursor(handle, topup_block)
        assert [c["case_id"] for c in await list_cases(stack, token)] == [case_id]

        description = await handle.describe()
        assert description.status is not None and description.status.name == "RUNNING"
        await record_history(stack, handle.id, "scanner_running")


async def test_credited_deposit_opens_no_case(scan_stack: Stack) -> None:
    stack = scan_stack
    _, token, address = stack.new_user("erin")
    async with running_worker(stack):
        handle = await start_scanner(stack.client, stack.settings, "ethereum")
        before = await wait_cursor(handle)
        tx_hash = await stack.send("ethereum", to=address, amount=Decimal("50"))  # USDT is credited on ethereum
        block = await block_of(stack, "ethereum", tx_hash)
        after = await wait_cursor(handle, block)
    assert after.deposits_found - before.deposits_found == 1  # seen, and left alone
    assert after.cases_opened == 0
    assert await list_cases(stack, token) == []


async def test_deprecated_address_gets_a_case_and_unpriced_spam_does_not(scan_stack: Stack) -> None:
    stack = scan_stack
    user_id, token, old_address = stack.new_user("gus")
    with Session(stack.engine) as session:
        users.rotate_deposit_address(session, user_id=user_id, signer=stack.signer, path_for=deposit_path)
    eth = stack.chain("ethereum")
    spam = to_checksum_address("0x" + os.urandom(20).hex())
    await devnet.install_token(eth, spam, symbol="CLAIM-REWARD", decimals=18)
    async with running_worker(stack):
        handle = await start_scanner(stack.client, stack.settings, "ethereum")
        await wait_cursor(handle)
        await devnet.mint(eth, asset=spam, to=devnet.dev_account(0), amount=10**20)
        spam_tx = await devnet.send_from_dev_account(eth, to=old_address, asset=spam, amount=10**20)
        tx_hash = await stack.send("ethereum", to=old_address, amount=Decimal("50"))  # credited asset, old address
        last = max([await block_of(stack, "ethereum", spam_tx), await block_of(stack, "ethereum", tx_hash)])
        await wait_cursor(handle, last)
    listed = await list_cases(stack, token)
    assert [c["tx_hash"] for c in listed] == [tx_hash.lower()], listed


async def test_cursor_survives_worker_restart_and_fresh_start(scan_stack: Stack) -> None:
    stack = scan_stack
    _, token, address = stack.new_user("fay")
    async with running_worker(stack):
        handle = await start_scanner(stack.client, stack.settings, "bsc")
        first = await wait_cursor(handle)
        first_run_id = (await handle.describe()).run_id
        assert first.next_block is not None
        start_block = first.next_block
        await asyncio.sleep(2)  # a few scans

    # the worker is down: a deposit meanwhile
    tx1 = await stack.send("bsc", to=address, amount=Decimal("20"))
    block1 = await block_of(stack, "bsc", tx1)
    await asyncio.sleep(1)

    async with running_worker(stack):  # a new worker: the workflow continues from its history
        resumed = await wait_cursor(handle, block1)
        assert resumed.cases_opened == 1
        listed = await list_cases(stack, token)
        assert [c["tx_hash"] for c in listed] == [tx1]

        # terminated, then started fresh: it resumes from the stored cursor
        await handle.terminate("test: fresh start")
        with Session(stack.engine) as session:
            stored = scan_cursors.get_cursor(session, chain="bsc")
        assert stored is not None
        stopped_at = stored.next_block
        tx2 = await stack.send("bsc", to=address, amount=Decimal("30"))
        block2 = await block_of(stack, "bsc", tx2)
        assert block2 >= stopped_at

        fresh = await start_scanner(stack.client, stack.settings, "bsc")
        fresh_run_id = (await fresh.describe()).run_id
        assert fresh_run_id != first_run_id
        done = await wait_cursor(fresh, block2)
        assert done.cases_opened == 1
        assert sorted(c["tx_hash"] for c in await list_cases(stack, token)) == sorted([tx1, tx2])
        await fresh.terminate("test: check")

    # every block scanned exactly once: the ranges of both runs follow each other without gap or overlap
    first_run = await scanned_ranges(stack.client, handle.id, first_run_id)
    second_run = await scanned_ranges(stack.client, fresh.id, fresh_run_id)
    assert first_run and second_run
    assert_contiguous(first_run, start_block, stopped_at)
    with Session(stack.engine) as session:
        final = scan_cursors.get_cursor(session, chain="bsc")
    assert final is not None
    assert_contiguous(second_run, stopped_at, final.next_block)
    assert final.blocks_scanned == final.next_block - start_block


async def test_continue_as_new_carries_the_cursor(scan_stack: Stack) -> None:
    stack = scan_stack
    async with running_worker(stack):
        handle = await stack.client.start_workflow(
            ScannerWorkflow.run,
            ScannerInput(chain="ethereum", iterations_per_run=2, idle_ms=100),
            id=scanner_id("ethereum"),
            task_queue=stack.settings.task_queue,
        )
        first_run_id = (await handle.describe()).run_id
        first = await wait_cursor(handle)  # it may have scanned already when first seen: count from here
        start, scanned_before = first.next_block, first.blocks_scanned
        assert start is not None
        deadline = time.monotonic() + WAIT_S
        while (await handle.describe()).run_id == first_run_id or (await status(handle)).blocks_scanned < 3:
            assert time.monotonic() < deadline, "no continue-as-new"
            await asyncio.sleep(0.2)
        later = await status(handle)
        history = await stack.client.get_workflow_handle(handle.id, run_id=first_run_id).fetch_history()
    assert history.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    assert later.next_block is not None and later.blocks_scanned - scanned_before == later.next_block - start
    with Session(stack.engine) as session:
        stored = scan_cursors.get_cursor(session, chain="ethereum")
    assert stored is not None and stored.next_block >= later.next_block


async def test_cli_backfill_opens_the_case_of_a_deposit_no_scanner_saw(scan_stack: Stack) -> None:
    stack = scan_stack
    _, token, address = stack.new_user("gus")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal("42"))  # no scanner runs in this test
    block = await block_of(stack, "bsc", tx_hash)
    env = cli_env(stack)
    async with running_worker(stack):
        code, out, err = await run_cli(
            env, "scan", "--chain", "bsc", "--from-block", str(block - 2), "--to-block", str(block)
        )
        assert code == 0, err
        lines = out.strip().splitlines()
        assert (
            lines[-1]
            == f"scanned 3 block(s) of bsc ({block - 2}..{block}): 1 deposit(s) to watched addresses, 1 case(s) opened"
        )
        assert lines[0].startswith(f"opened case-bsc-{tx_hash.lower()}-") and "42 USDT" in lines[0], out
        listed = await list_cases(stack, token)
        assert [c["tx_hash"] for c in listed] == [tx_hash]
        detail = await stack.case(token, listed[0]["case_id"])
        assert any("Opened by the deposit scanner" in e["message"] for e in detail["timeline"])

        # again: nothing new (the case exists), and a claim finds it
        code, out, err = await run_cli(
            env, "scan", "--chain", "bsc", "--from-block", str(block), "--to-block", str(block)
        )
        assert code == 0, err
        assert out.strip().endswith("1 deposit(s) to watched addresses, 0 case(s) opened")
        claim = await stack.claim(token, tx_hash)
        assert claim.status_code == 409 and claim.json()["case_id"] == listed[0]["case_id"]

        # beyond the head: a one-line error
        code, out, err = await run_cli(env, "scan", "--chain", "bsc", "--from-block", "0", "--to-block", str(10**9))
        assert code == 1 and err.strip().startswith("error: bad range: --to-block 1000000000 is beyond the head of bsc")


def test_cli_scan_refuses_unknown_chain_and_bad_range(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECOVERY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("RECOVERY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(app, ["scan", "--chain", "dogecoin", "--from-block", "1", "--to-block", "2"])
        assert result.exit_code == 1
        assert "error: unknown chain 'dogecoin': use one of ethereum, bsc" in result.output
        result = runner.invoke(app, ["scan", "--chain", "bsc", "--from-block", "9", "--to-block", "3"])
        assert result.exit_code == 1 and "error: bad range: --to-block 3 is before --from-block 9" in result.output
        result = runner.invoke(app, ["scan", "--chain", "bsc", "--from-block", "-1", "--to-block", "3"])
        assert result.exit_code == 1 and "bad range" in result.output
        result = runner.invoke(app, ["scan", "--help"])
        assert result.exit_code == 0 and "--from-block" in result.output
    finally:
        get_settings.cache_clear()


# --- units: filters, decoding, what needs a case ----------------------------------------------------

CHAIN = ChainConfig(
    name="testnet",
    chain_id=1337,
    rpc_urls=["http://unused"],
    confirmations=3,
    native_symbol="ETH",
    tokens=[TokenConfig(symbol="USDT", address="0x" + "11" * 20, decimals=6)],
    credited_assets=["ETH", "USDT"],
    deposit_minimums={"USDT": 1_000_000},
)


def test_address_topic_pads_and_lowercases() -> None:
    topic = address_topic("0xAbCdEf0123456789abcdef0123456789ABCDEF01")
    assert topic == "0x" + "0" * 24 + "abcdef0123456789abcdef0123456789abcdef01"
    with pytest.raises(ValueError):
        address_topic("0x1234")
    with pytest.raises(ValueError):
        address_topic("0x" + "zz" * 20)


def test_log_filters_chunk_the_recipient_topics() -> None:
    addresses = [f"0x{i:040x}" for i in range(1, 1235)]
    addresses += [a.upper().replace("0X", "0x") for a in addresses[:10]]  # the same, in upper case
    filters = transfer_log_filters(addresses, 100, 299, chunk=500)
    assert [len(f["topics"][2]) for f in filters] == [500, 500, 234]
    for f in filters:
        assert f["fromBlock"] == hex(100) and f["toBlock"] == hex(299)
        assert f["topics"][0] == TRANSFER_TOPIC and f["topics"][1] is None
    every = [t for f in filters for t in f["topics"][2]]
    assert len(set(every)) == len(every) == 1234
    assert transfer_log_filters([], 1, 1) == []
    with pytest.raises(ValueError):
        transfer_log_filters(addresses, 5, 4)


def _transfer(asset: str | None, amount: int, sender: str = "0x" + "aa" * 20) -> Transfer:
    return Transfer(
        chain="testnet",
        tx_hash="0x" + "ff" * 32,
        log_index=0,
        token_address="0x" + "11" * 20 if asset != "ETH" else None,
        asset=asset,
        decimals=6 if asset else None,
        sender=sender,
        recipient="0x" + "bb" * 20,
        amount=amount,
    )


def test_uncredited_reason() -> None:
    assert uncredited_reason(CHAIN, _transfer("USDT", 5_000_000)) is None
    assert uncredited_reason(CHAIN, _transfer("USDT", 999_999)) == (
        "below the USDT deposit minimum on testnet (1000000 base units)"
    )
    assert "is not listed" in (uncredited_reason(CHAIN, _transfer(None, 5)) or "")
    other = CHAIN.model_copy(update={"credited_assets": ["ETH"]})
    assert uncredited_reason(other, _transfer("USDT", 5_000_000)) == "USDT is not credited on testnet"
    hot = "0x" + "cc" * 20
    assert uncredited_reason(other, _transfer("USDT", 5_000_000, sender=hot), internal_senders={hot}) is None
    # a deprecated address is credited by nobody: even a supported deposit there needs a case
    assert uncredited_reason(CHAIN, _transfer("USDT", 5_000_000), deprecated_recipient=True) == (
        "sent to a deprecated deposit address on testnet"
    )


class FakeRpc:
    """Canned answers: logs by block, blocks with transactions; ``eth_getLogs`` over more than
    ``max_log_range`` blocks fails as real providers do."""

    def __init__(self, logs: list[dict[str, Any]], blocks: dict[int, list[dict[str, Any]]], max_log_range: int) -> None:
        self.logs, self.blocks, self.max_log_range = logs, blocks, max_log_range
        self.calls: list[str] = []

    def _answer(self, method: str, params: Sequence[Any]) -> Any:
        self.calls.append(method)
        if method == "eth_getLogs":
            flt = params[0]
            lo, hi = int(flt["fromBlock"], 16), int(flt["toBlock"], 16)
            if hi - lo + 1 > self.max_log_range:
                raise RpcError(-32005, "query exceeds max block range")
            wanted = set(flt["topics"][2])
            return [log for log in self.logs if lo <= int(log["blockNumber"], 16) <= hi and log["topics"][2] in wanted]
        if method == "eth_getBlockByNumber":
            n = int(params[0], 16)
            return {"number": hex(n), "transactions": self.blocks.get(n, [])}
        if method == "eth_getTransactionReceipt":
            return {"status": "0x0" if params[0] == "0x" + "0e" * 32 else "0x1", "logs": []}
        if method == "eth_blockNumber":
            return hex(max(self.blocks, default=0))
        raise AssertionError(method)

    async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
        return self._answer(method, params or [])

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any]:
        out: list[Any] = []
        for method, params in calls:
            try:
                out.append(self._answer(method, params or []))
            except RpcError as exc:
                out.append(exc)
        return out


async def test_scanner_decodes_logs_and_native_value_with_range_splitting() -> None:
    watched = "0x" + "bb" * 20
    other = "0x" + "dd" * 20
    token = "0x" + "11" * 20
    unlisted = "0x" + "22" * 20
    sender_topic = address_topic("0x" + "aa" * 20)

    def log(block: int, index: int, to: str, amount: int, address: str = token) -> dict[str, Any]:
        return {
            "address": address,
            "topics": [TRANSFER_TOPIC, sender_topic, address_topic(to)],
            "data": "0x" + format(amount, "064x"),
            "blockNumber": hex(block),
            "transactionHash": "0x" + format(block * 100 + index, "064x"),
            "logIndex": hex(index),
        }

    logs = [log(3, 0, watched, 7), log(3, 1, other, 8), log(9, 4, watched, 9, unlisted)]
    blocks = {
        5: [
            {"hash": "0x" + "0a" * 32, "from": "0x" + "aa" * 20, "to": watched, "value": hex(10**18)},
            {"hash": "0x" + "0b" * 32, "from": "0x" + "aa" * 20, "to": other, "value": hex(10**18)},
            {"hash": "0x" + "0c" * 32, "from": "0x" + "aa" * 20, "to": watched, "value": "0x0"},
            {"hash": "0x" + "0e" * 32, "from": "0x" + "aa" * 20, "to": watched, "value": hex(5)},  # reverted
        ],
        12: [],
    }
    fake = FakeRpc(logs, blocks, max_log_range=4)
    scanner = EvmScanner(CHAIN, rpc=cast(Any, fake), address_chunk=1, block_batch=3, window=10)
    batches = [b async for b in scanner.scan(0, 12, [watched.upper().replace("0X", "0x")])]
    assert [(b.from_block, b.to_block) for b in batches] == [(0, 9), (10, 12)]
    found = [f for b in batches for f in b.found]
    assert [(f.block_number, f.transfer.log_index, f.transfer.asset, f.transfer.amount) for f in found] == [
        (3, 0, "USDT", 7),
        (5, NATIVE_LOG_INDEX, "ETH", 10**18),
        (9, 4, None, 9),
    ]
    assert all(f.transfer.recipient.lower() == watched for f in found)
    assert fake.calls.count("eth_getTransactionReceipt") == 2  # only the candidates' receipts
    assert await scanner.head() == 12 and scanner.safe_head(12) == 10
