"""Tracing throughput: the EVM adapter's bulk ``trace_many`` against a naive web3.py loop, on one anvil.

    python -m bench trace [--txs N] [--batch CALLS] [--concurrency K]

Starts its own anvil on a free port, installs the test USDT, and makes N transactions from the anvil dev
accounts (half native transfers, half USDT transfers), sent in raw JSON-RPC batches of
``eth_sendTransaction``. Then it times, on the same node:

- naive: web3.py ``AsyncWeb3(AsyncHTTPProvider)``, ``get_transaction`` then ``get_transaction_receipt``,
  one transaction after another (what a first implementation usually does);
- ``trace_many`` without internal tracing: the same work as the naive loop (transaction and receipt),
  in raw JSON-RPC batches;
- ``trace_many`` with internal tracing (the default configuration): every USDT transfer ran contract
  code, so it is also traced with ``debug_traceTransaction``. That is node-bound: the node re-executes
  the block up to the transaction for each trace (about 12 ms a trace in 150-transaction blocks on
  anvil 1.7.1);
- ``trace`` one by one, 8 K at a time (what the case workflow's activities do), internal tracing on.

Every method must find the same number of transfers. The last line compares like with like:
``trace_many`` (transaction and receipt) against the naive loop; the table has the rest.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.args import bench_parser, positive_int
from bench.terminal import BenchError, console, progress
from chains.endpoints import RpcError, aclose_shared_http_client
from chains.evm import EvmChain, build_erc20_transfer_data
from chains.evm_decode import TRANSFER_TOPIC, hex_to_int
from chains.jsonrpc import JsonRpcClient
from devstack.devnet import DEV_ACCOUNTS, Anvil, install_token, mint
from recovery.settings import USDT_ETHEREUM, ChainConfig, TokenConfig

RECIPIENT = "0x000000000000000000000000000000000000bEEF"


@dataclass
class Timing:
    name: str
    seconds: float
    txs: int
    transfers: int

    @property
    def rate(self) -> int:
        """Transactions per second, rounded to an integer (no binary fractions in the final line)."""
        return round(self.txs / self.seconds) if self.seconds > 0 else 0


def bench_chain(url: str) -> ChainConfig:
    return ChainConfig(
        name="ethereum",
        chain_id=1,
        rpc_urls=[url],
        confirmations=1,
        block_time_ms=1000,
        native_symbol="ETH",
        tokens=[TokenConfig(symbol="USDT", address=USDT_ETHEREUM, decimals=6)],
        credited_assets=["ETH", "USDT"],
    )


async def make_transactions(chain: ChainConfig, n: int, block_txs: int = 150) -> list[str]:
    """N transactions from the dev accounts, half native, half USDT, ``block_txs`` a block (mainnet has
    about 150); returns their hashes once mined."""
    senders = DEV_ACCOUNTS[:8]
    for sender in senders:
        await mint(chain, asset="USDT", to=sender, amount=10**15)
    rpc = JsonRpcClient(chain.rpc_urls, name="bench", timeout=timedelta(seconds=120))
    # Explicit nonces: the node handles a batch's items concurrently and would hand one nonce out twice.
    counts = await rpc.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
    nonces = {s: hex_to_int(c) for s, c in zip(senders, counts, strict=True) if not isinstance(c, RpcError)}
    calls: list[tuple[str, Sequence[Any] | None]] = []
    for i in range(n):
        sender = senders[i % len(senders)]
        if i % 2:
            tx = {"from": sender, "to": RECIPIENT, "value": hex(1_000 + i), "gas": hex(21_000)}
        else:
            data = build_erc20_transfer_data(RECIPIENT, 1_000_000 + i)
            tx = {"from": sender, "to": USDT_ETHEREUM, "data": data, "gas": hex(80_000)}
        tx["nonce"] = hex(nonces[sender])
        nonces[sender] += 1
        calls.append(("eth_sendTransaction", [tx]))
    hashes: list[str] = []
    # Automine off while sending: the node handles a batch's items concurrently, and a nonce arriving
    # before its predecessor would wait forever under automine. Then mine until the pool is empty.
    await rpc.call("evm_setAutomine", [False])
    try:
        with progress(transient=True) as bar:
            task = bar.add_task("sending", total=n)
            for start in range(0, n, block_txs):
                replies = await rpc.batch(calls[start : start + block_txs])
                for reply in replies:
                    if isinstance(reply, RpcError):
                        raise BenchError(f"eth_sendTransaction failed: {reply}")
                    hashes.append(str(reply))
                await rpc.call("evm_mine", [])
                bar.advance(task, len(replies))
        waiting = list(hashes)
        for _ in range(n + 1):
            receipts = await rpc.batch([("eth_getTransactionReceipt", [h]) for h in waiting])
            waiting = [h for h, r in zip(waiting, receipts, strict=True) if r is None or isinstance(r, RpcError)]
            if not waiting:
                break
            await rpc.call("evm_mine", [])
        if waiting:
            raise BenchError(f"{len(waiting)} transactions still not mined")
    finally:
        await rpc.call("evm_setAutomine", [True])
    return hashes


async def naive_web3(url: str, hashes: Sequence[str]) -> int:
    """web3.py, one call after another; returns the number of transfers seen."""
    from web3 import AsyncHTTPProvider, AsyncWeb3

    provider = AsyncHTTPProvider(url)
    w3 = AsyncWeb3(provider)
    transfers = 0
    try:
        with progress(transient=True) as bar:
            task = bar.add_task("naive web3.py", total=len(hashes))
            for tx_hash in hashes:
                tx = await w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
                receipt = await w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
                if receipt["status"] == 1:
                    transfers += 1 if tx["value"] > 0 else 0
                    transfers += sum(
                        1
                        for log in receipt["logs"]
                        if len(log["topics"]) == 3 and log["topics"][0].to_0x_hex() == TRANSFER_TOPIC
                    )
                bar.advance(task)
    finally:
        await provider.disconnect()
    return transfers


async def timed(name: str, n: int, work: Callable[[], Awaitable[int]]) -> Timing:
    started = time.perf_counter()
    transfers = await work()
    took = time.perf_counter() - started
    console.print(f"{name}: {took:.2f} s, {n / took:.0f} tx/s, {transfers} transfers", highlight=False)
    return Timing(name, took, n, transfers)


async def run(args: argparse.Namespace) -> list[Timing]:
    async with await Anvil.start(chain_id=1, block_time_s=None) as anvil:
        chain = bench_chain(anvil.url)
        await install_token(chain, USDT_ETHEREUM, symbol="USDT", decimals=6)
        started = time.perf_counter()
        hashes = await make_transactions(chain, args.txs, args.block_txs)
        console.print(f"{len(hashes)} transactions sent and mined in {time.perf_counter() - started:.2f} s")

        async def ours(internal: bool) -> int:
            adapter = EvmChain(chain.model_copy(update={"trace_internal": internal}))
            results = await adapter.trace_many(hashes, chunk_size=args.batch, concurrency=args.concurrency)
            if not all(r.found and r.succeeded for r in results):
                raise BenchError("trace_many missed transactions")
            if internal and any(r.notes for r in results):
                raise BenchError(f"internal tracing failed: {next(r.notes for r in results if r.notes)}")
            return sum(len(r.transfers) for r in results)

        async def one_by_one() -> int:
            adapter = EvmChain(chain)
            limit = asyncio.Semaphore(args.concurrency * 8)

            async def one(tx_hash: str) -> int:
                async with limit:
                    return len((await adapter.trace(tx_hash)).transfers)

            return sum(await asyncio.gather(*(one(h) for h in hashes)))

        timings = [
            await timed("naive web3.py", len(hashes), lambda: naive_web3(anvil.url, hashes)),
            await timed("trace_many (tx + receipt)", len(hashes), lambda: ours(False)),
            await timed("trace_many + internal traces", len(hashes), lambda: ours(True)),
            await timed(f"trace + internal, {args.concurrency * 8} at a time", len(hashes), one_by_one),
        ]
        await aclose_shared_http_client()
    counts = {t.name: t.transfers for t in timings}
    if len(set(counts.values())) != 1:
        raise BenchError(f"the methods saw different numbers of transfers: {counts}")
    return timings


def table(timings: Sequence[Timing]) -> Table:
    out = Table(title="tracing throughput")
    for column in ("method", "seconds", "tx/s", "transfers"):
        out.add_column(column, justify="left" if column == "method" else "right")
    for t in timings:
        out.add_row(t.name, f"{t.seconds:.2f}", str(t.rate), str(t.transfers))
    return out


def final_line(timings: Sequence[Timing]) -> str:
    naive, ours = timings[0], timings[1]
    ratio = naive.seconds / ours.seconds if ours.seconds > 0 else 0
    return (
        f"bench trace: {ours.rate} tx/s vs {naive.rate} tx/s naive web3.py, ratio {ratio:.1f} vs naive web3.py,"
        f" N={ours.txs}"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser("trace", __doc__)
    parser.add_argument("--txs", type=positive_int, default=1000, metavar="N", help="transactions (default 1000)")
    parser.add_argument(
        "--batch", type=positive_int, default=500, metavar="CALLS", help="JSON-RPC calls per batch (default 500)"
    )
    parser.add_argument(
        "--concurrency", type=positive_int, default=4, metavar="K", help="batches in flight (default 4)"
    )
    parser.add_argument(
        "--block-txs", type=positive_int, default=150, metavar="M", help="transactions per block (default 150)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.batch < 3:
        console.print("[red]bench trace failed:[/red] --batch must be at least 3")
        return 2
    try:
        timings = asyncio.run(run(args))
    except BenchError as exc:
        console.print(f"[red]bench trace failed:[/red] {escape(str(exc))}", highlight=False)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("bench trace interrupted")
        return 130
    Console().print(table(timings))
    print(final_line(timings), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
