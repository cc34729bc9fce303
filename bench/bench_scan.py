"""Deposit scanner throughput: blocks per second over a range of blocks with M watched addresses.

    python -m bench scan [--blocks N] [--addresses M] [--repeat R]

Starts its own anvil (automine, one transaction per block), installs the test USDT, and fills N blocks:
half of them hold a transfer (USDT or native, to a watched address or to an unwatched one), the rest
are empty. Then it scans the range with ``chains.evm_scan.EvmScanner`` (recipient-filtered
``eth_getLogs`` in batches, blocks in ``eth_getBlockByNumber`` batches) and with a naive per-block scan
(one ``eth_getBlockByNumber`` and one unfiltered ``eth_getLogs`` per block, one call at a time, decoded
and matched in Python), checks that both found exactly the deposits that were sent, and prints one line:

    bench scan: <x> blocks/s with M=<m> watched addresses, ratio <r> vs naive per-block scan, <n> deposits found

No database and no Temporal: the scanner is given the address list.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import sys
import time
from collections.abc import Awaitable, Callable, Collection
from decimal import Decimal
from typing import Any

from bench.terminal import BenchError, console
from chains.evm import build_erc20_transfer_data
from chains.evm_decode import TRANSFER_TOPIC, decode_transfer_log, hex_to_int, native_transfer, receipt_succeeded
from chains.evm_scan import ADDRESS_CHUNK, BLOCK_BATCH, WINDOW, EvmScanner
from chains.jsonrpc import JsonRpcClient
from devstack import devnet
from devstack.devnet import Anvil
from recovery.settings import USDT_BSC, ChainConfig, TokenConfig

SEND_BATCH = 200
TOKEN_GAS = 100_000
NATIVE_GAS = 21_000

DepositKey = tuple[str, int]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench scan",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--blocks", type=int, default=1000, help="blocks in the scanned range (default 1000)")
    parser.add_argument("--addresses", type=int, default=10_000, help="watched deposit addresses, M (default 10000)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each scan; the best counts (default 2)")
    parser.add_argument(
        "--address-chunk", type=int, default=ADDRESS_CHUNK, help=f"addresses per log filter ({ADDRESS_CHUNK})"
    )
    parser.add_argument("--block-batch", type=int, default=BLOCK_BATCH, help=f"blocks per batch ({BLOCK_BATCH})")
    parser.add_argument("--window", type=int, default=WINDOW, help=f"blocks per log range ({WINDOW})")
    return parser


def make_addresses(label: str, count: int) -> list[str]:
    return ["0x" + hashlib.sha256(f"{label}-{i}".encode()).hexdigest()[:40] for i in range(count)]


async def fill_blocks(chain: ChainConfig, watched: list[str], blocks: int) -> tuple[int, int, set[DepositKey]]:
    """Mine ``blocks`` blocks after the current head; returns (first, last, deposits to watched addresses)."""
    rpc = JsonRpcClient.from_config(chain)
    sender = devnet.dev_account(0)
    transfers = blocks // 2
    await devnet.mint(chain, asset="USDT", to=sender, amount=10**30)
    first = hex_to_int(await rpc.call("eth_blockNumber")) + 1
    noise = make_addresses("unwatched", max(transfers, 1))
    nonce = hex_to_int(await rpc.call("eth_getTransactionCount", [sender, "pending"]))
    calls: list[tuple[str, list[Any]]] = []
    to_watched: list[bool] = []
    for i in range(transfers):
        watched_one = i % 4 < 2
        to = watched[(i * 7919) % len(watched)] if watched_one else noise[i]
        if i % 2 == 0:
            tx = {"from": sender, "to": USDT_BSC, "data": build_erc20_transfer_data(to, 10**18 + i)}
            tx["gas"] = hex(TOKEN_GAS)
        else:
            tx = {"from": sender, "to": to, "value": hex(10**15 + i), "gas": hex(NATIVE_GAS)}
        tx["nonce"] = hex(nonce + i)
        calls.append(("eth_sendTransaction", [tx]))
        to_watched.append(watched_one)
    hashes: list[Any] = []
    for method, params in calls:  # one at a time: automine puts each in its own block, in order
        hashes.append(await rpc.call(method, params))
    receipts: list[Any] = []
    for i in range(0, len(hashes), SEND_BATCH):
        receipts += await rpc.batch([("eth_getTransactionReceipt", [h]) for h in hashes[i : i + SEND_BATCH]])
    if not all(isinstance(r, dict) and receipt_succeeded(r) for r in receipts):
        raise BenchError("a test transfer was not mined or reverted")
    expected: set[DepositKey] = set()
    for i, (tx_hash, watched_one) in enumerate(zip(hashes, to_watched, strict=True)):
        if watched_one:
            expected.add((str(tx_hash).lower(), 0 if i % 2 == 0 else -1))  # the token's one log, or native
    head = hex_to_int(await rpc.call("eth_blockNumber"))
    if head - first + 1 < blocks:
        await rpc.call("anvil_mine", [hex(blocks - (head - first + 1))])
    last = hex_to_int(await rpc.call("eth_blockNumber"))
    if last - first + 1 != blocks:
        raise BenchError(f"expected {blocks} new blocks, the chain has {last - first + 1}")
    return first, last, expected


async def naive_scan(chain: ChainConfig, first: int, last: int, watched: Collection[str]) -> set[DepositKey]:
    """The baseline: every block and every Transfer log of it, one call at a time, matched in Python."""
    rpc = JsonRpcClient.from_config(chain)
    wanted = {a.lower() for a in watched}
    found: set[DepositKey] = set()
    for n in range(first, last + 1):
        block = await rpc.call("eth_getBlockByNumber", [hex(n), True])
        logs = await rpc.call("eth_getLogs", [{"fromBlock": hex(n), "toBlock": hex(n), "topics": [TRANSFER_TOPIC]}])
        for log in logs:
            transfer = decode_transfer_log(chain, log)
            if transfer is not None and transfer.recipient.lower() in wanted:
                found.add((transfer.tx_hash, transfer.log_index))
        for tx in block["transactions"]:
            if (tx.get("to") or "").lower() in wanted and hex_to_int(tx.get("value") or 0) > 0:
                receipt = await rpc.call("eth_getTransactionReceipt", [tx["hash"]])
                native = native_transfer(chain, tx, receipt)
                if native is not None and receipt_succeeded(receipt):
                    found.add((native.tx_hash, native.log_index))
    return found


async def best_of(repeat: int, run: Callable[[], Awaitable[set[DepositKey]]]) -> tuple[Decimal, set[DepositKey]]:
    best: Decimal | None = None
    found: set[DepositKey] = set()
    for _ in range(max(repeat, 1)):
        started = time.perf_counter_ns()
        found = await run()
        took = Decimal(time.perf_counter_ns() - started) / 10**9
        best = took if best is None else min(best, took)
    assert best is not None
    return best, found


async def run(args: argparse.Namespace) -> str:
    if args.blocks < 1 or args.addresses < 1:
        raise BenchError("--blocks and --addresses must be at least 1")
    anvil = await Anvil.start(chain_id=56, block_time_s=None)
    try:
        chain = ChainConfig(
            name="bsc",
            chain_id=56,
            rpc_urls=[anvil.url],
            confirmations=1,
            block_time_ms=1000,
            native_symbol="BNB",
            tokens=[TokenConfig(symbol="USDT", address=USDT_BSC, decimals=18)],
            credited_assets=[],
        )
        await devnet.install_token(chain, USDT_BSC, symbol="USDT", decimals=18)
        watched = make_addresses("watched", args.addresses)
        console.print(f"filling {args.blocks} blocks on anvil ({anvil.url}), {args.addresses} watched addresses")
        first, last, expected = await fill_blocks(chain, watched, args.blocks)

        scanner = EvmScanner(chain, address_chunk=args.address_chunk, block_batch=args.block_batch, window=args.window)

        async def scanned() -> set[DepositKey]:
            return {(f.transfer.tx_hash, f.transfer.log_index) for f in await scanner.scan_all(first, last, watched)}

        scan_s, found = await best_of(args.repeat, scanned)
        naive_s, naive_found = await best_of(args.repeat, lambda: naive_scan(chain, first, last, watched))
    finally:
        await anvil.stop()
    if found != expected:
        raise BenchError(f"the scanner found {len(found)} deposits, {len(expected)} were sent")
    if naive_found != found:
        raise BenchError(f"the naive scan found {len(naive_found)} deposits, the scanner {len(found)}")
    blocks = last - first + 1
    rate = Decimal(blocks) / scan_s
    naive_rate = Decimal(blocks) / naive_s
    console.print(
        f"scanner: {blocks} blocks in {scan_s:.3f} s ({rate:.0f} blocks/s); "
        f"naive: {naive_s:.3f} s ({naive_rate:.0f} blocks/s)"
    )
    return (
        f"bench scan: {rate:.0f} blocks/s with M={args.addresses} watched addresses, "
        f"ratio {rate / naive_rate:.1f} vs naive per-block scan, {len(found)} deposits found"
    )


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        line = asyncio.run(run(args))
    except BenchError as exc:
        print(f"bench scan: error: {exc}", file=sys.stderr)
        return 1
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
