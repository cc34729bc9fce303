"""The claim-time answer under load: N claims at once through the status API, against the same chain lookups
made directly, without the API (the floor), in the same run.

    python -m bench claim [--claims N] [--rounds R] [--startup-timeout SECONDS] [--keep-data]

Starts a dev stack on free ports with a temporary data dir and no worker: the Temporal dev server, one anvil per
dev chain, and the API as ``make run`` runs it (``uvicorn api.main:app``, a real HTTP server in its own
process, its own settings). It creates N users (N × R), one claim each (as real claims come from many users: the
per-token claim limit, 10 a minute by default, is never reached and the settings are not changed), and one
wrong-network USDT deposit on ``bsc`` per user, and waits for their confirmations. Then:

- floor: for every deposit, the lookups the answer needs, made directly in this process, N at once: the tracer's
  trace of the transaction on its chain, then the fact gatherer's lookups as the answer makes them (owner, VIP and
  ledger in one database session; the code at the address and at the sender in one JSON-RPC batch on the deposit
  chain; other chains only where the key is not held), with the chain clients the API's answer uses;
- claims: N ``POST /v1/cases {"tx_hash", "chain"}`` at once, each timed from send to its ``201`` with the answer.
  The API starts each case's workflow on the real Temporal server; no worker runs them (the bench measures the
  claim's answer, not the recovery), so nothing else loads the machine meanwhile;
- floor again: every round's samples count, so that the machine's drift weighs on both sides.

Each claim is sent on an HTTP client of its own (:func:`file_claims` says why). ``--rounds R`` repeats the floor
and the claims R times (default 2), each round's claims on new deposits: p99 over R times N claims, less at the
mercy of one noisy burst on a shared machine.

A warm-up comes first, unmeasured: 40 claims at once (40 more users), then their lookups at once, so that both
API processes have made their chain clients and filled their database pools, as a running API has (a single
warm-up claim reached one process, and the other made its clients and connections during the burst). Every
answer must be available, ``automatic`` and ``WRONG_NETWORK_SAME_KEY``, or the bench fails. Prints a table and
ends with one line:

    bench claim: p99 X s, ratio R vs direct lookups (p50 Y s, ratio S)

Target: the answer's p99 within 2 times the floor's p99.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.args import bench_parser, positive_int
from bench.bench_e2e import ASSET, CHAIN, BenchUser, create_users, make_deposits, percentile
from bench.stack_race import race_with_death
from bench.terminal import BenchError, console
from devstack.stack import DevStack, free_port_settings
from recovery.settings import ChainConfig, Settings

EXPECTED = ("automatic", "WRONG_NETWORK_SAME_KEY")
WARM_UP = 40
"""Claims (and lookups) made at once before the measured rounds, unmeasured: enough for each of the API's
processes to make its chain clients and fill its database pool (20 connections kept), as a running API has."""
AMOUNT = Decimal("100")


@dataclass
class Results:
    claims: int
    rounds: int
    claim_seconds: list[float]
    floor_seconds: list[float]
    routes: Counter[str] = field(default_factory=Counter)
    setup_s: dict[str, float] = field(default_factory=dict)

    @property
    def claim_p50(self) -> float:
        return percentile(self.claim_seconds, 50)

    @property
    def claim_p99(self) -> float:
        return percentile(self.claim_seconds, 99)

    @property
    def floor_p50(self) -> float:
        return percentile(self.floor_seconds, 50)

    @property
    def floor_p99(self) -> float:
        return percentile(self.floor_seconds, 99)

    @property
    def ratio_p50(self) -> float:
        return self.claim_p50 / self.floor_p50 if self.floor_p50 > 0 else 0.0

    @property
    def ratio_p99(self) -> float:
        return self.claim_p99 / self.floor_p99 if self.floor_p99 > 0 else 0.0

    def final_line(self) -> str:
        return (
            f"bench claim: p99 {self.claim_p99:.2f} s, ratio {self.ratio_p99:.2f} vs direct lookups "
            f"(p50 {self.claim_p50:.2f} s, ratio {self.ratio_p50:.2f})"
        )

    def table(self) -> Table:
        table = Table(title=f"bench claim, N={self.claims} at once, {self.rounds} rounds")
        for column in ("figure", "claim answer (API)", "direct lookups (floor)", "ratio"):
            table.add_column(column, justify="left" if column == "figure" else "right")
        for name, claim, floor in (
            ("p50", self.claim_p50, self.floor_p50),
            ("p99", self.claim_p99, self.floor_p99),
            ("max", max(self.claim_seconds), max(self.floor_seconds)),
        ):
            table.add_row(name, f"{claim:.3f} s", f"{floor:.3f} s", f"{claim / floor:.2f}" if floor > 0 else "-")
        table.add_row(
            "samples",
            f"{len(self.claim_seconds)} ({self.rounds} rounds)",
            f"{len(self.floor_seconds)} ({self.rounds + 1} rounds)",
            "",
        )
        table.add_row("answers", ", ".join(f"{k}: {v}" for k, v in sorted(self.routes.items())), "", "")
        for step, seconds in self.setup_s.items():
            table.add_row(f"setup: {step}", f"{seconds:.1f} s", "", "")
        return table


async def _timed_claim(http: httpx.AsyncClient, chain: ChainConfig, user: BenchUser) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    response = await http.post(
        "/v1/cases",
        json={"tx_hash": user.tx_hash, "chain": chain.name},
        headers={"Authorization": f"Bearer {user.token}"},
    )
    took = time.perf_counter() - started
    if response.status_code != 201:
        raise BenchError(f"claim of {user.user_id} for {user.tx_hash} got HTTP {response.status_code}: {response.text}")
    body: dict[str, Any] = response.json()
    answer = body.get("answer") or {}
    if not answer.get("available") or (answer.get("route"), answer.get("pattern")) != EXPECTED:
        raise BenchError(f"claim of {user.user_id}: unexpected answer {answer}")
    user.case_id = body["case_id"]
    return took, answer


async def file_claims(base_url: str, chain: ChainConfig, users: Sequence[BenchUser]) -> list[float]:
    """All claims at once, each user's on a client of its own (made before the burst), as claims come from many
    users; each one's seconds from send to its answer.

    Not one shared client: httpx's connection pool looks at every connection it holds for each request it
    places (a socket check and a peer-name lookup each), so 100 requests over the 100 connections a burst
    before left open cost the bench's own process most of a core for the whole burst, and that client-side
    work showed as the API's latency (a second burst's p99 was 3 to 3.6 s against 2.2 to 2.4 s for the
    first)."""
    clients = [httpx.AsyncClient(base_url=base_url, timeout=120) for _ in users]
    try:
        results = await asyncio.gather(*(_timed_claim(c, chain, u) for c, u in zip(clients, users, strict=True)))
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return [took for took, _ in results]


class DirectLookups:
    """What the API's answer looks up, made directly: the tracer's trace, then the fact gatherer's lookups, with
    the preview's own clients and keys view, on the stack's database."""

    def __init__(self, settings: Settings) -> None:
        from chains.registry import adapter_for
        from fees.prices import StaticPrices
        from services.claim_preview import StoredCustody, preview_approval_policy, quick_chains
        from services.facts import FactGatherer
        from store import db

        self._settings = settings
        self.engine = db.make_engine(settings.database_url or "")
        self._adapter = adapter_for(settings.chain(CHAIN))
        self._facts = FactGatherer(
            settings=settings,
            engine=self.engine,
            prices=StaticPrices(settings.prices_usd),
            chains=quick_chains(settings),
            policy=preview_approval_policy(settings),
            keys=StoredCustody(),
            code_elsewhere=False,
        )

    async def one(self, user: BenchUser) -> float:
        started = time.perf_counter()
        trace = await self._adapter.trace(user.tx_hash)
        mine = [t for t in trace.transfers if t.recipient.lower() == user.address.lower()]
        if not trace.found or not mine:
            raise BenchError(f"direct trace of {user.tx_hash} found no transfer to {user.address}")
        facts = await self._facts.gather(
            user_id=user.user_id, trace=trace, log_index=mine[0].log_index, vanished_from_block=None
        )
        took = time.perf_counter() - started
        if facts.owner_user_id != user.user_id or not facts.signer_holds_key:
            raise BenchError(f"direct lookups of {user.user_id}: unexpected facts {facts}")
        return took

    async def round(self, users: Sequence[BenchUser]) -> list[float]:
        return list(await asyncio.gather(*(self.one(u) for u in users)))


async def run(args: argparse.Namespace) -> Results:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-claim-"))
    settings = free_port_settings(data_dir)
    stack = DevStack(settings, startup_timeout=args.startup_timeout, with_worker=False, with_scanners=False)
    setup: dict[str, float] = {}
    ok = interrupted = False
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    if main_task is not None:
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    direct: DirectLookups | None = None
    try:
        began = time.monotonic()
        with console.status(f"starting Temporal, the chains and the API (no worker; data {data_dir})"):
            await stack.start()
        setup["stack"] = time.monotonic() - began
        chain = settings.chain(CHAIN)
        token = chain.token_by_symbol(ASSET)
        if token is None:
            raise BenchError(f"no {ASSET} token configured on {CHAIN}")

        began = time.monotonic()
        run_id = uuid.uuid4().hex[:6]
        count = args.claims * args.rounds + WARM_UP
        everyone = await race_with_death(stack, asyncio.to_thread(create_users, settings, count, run_id))
        setup["users"] = time.monotonic() - began
        began = time.monotonic()
        await race_with_death(stack, make_deposits(chain, everyone, int(AMOUNT.scaleb(token.decimals))))
        setup["deposits"] = time.monotonic() - began
        warm, measured = everyone[:WARM_UP], everyone[WARM_UP:]
        groups = [measured[n * args.claims : (n + 1) * args.claims] for n in range(args.rounds)]

        direct = DirectLookups(settings)
        with console.status(f"warming up: {WARM_UP} claims and lookups at once"):
            await race_with_death(stack, file_claims(stack.api_url, chain, warm))
            await race_with_death(stack, direct.round(warm))
        floor: list[float] = []
        claims: list[float] = []
        for n, users in enumerate(groups, start=1):  # each round's claims are new deposits' (one claim each)
            with console.status(f"round {n}: the direct lookups of {len(users)} deposits at once (floor)"):
                floor += await race_with_death(stack, direct.round(users))
            with console.status(f"round {n}: {len(users)} claims at once through the API"):
                claims += await race_with_death(stack, file_claims(stack.api_url, chain, users))
        with console.status("floor again"):
            floor += await race_with_death(stack, direct.round(groups[-1]))
        ok = True
        return Results(
            claims=args.claims,
            rounds=args.rounds,
            claim_seconds=claims,
            floor_seconds=floor,
            routes=Counter({f"{EXPECTED[0]} {EXPECTED[1]}": len(claims)}),
            setup_s=setup,
        )
    except asyncio.CancelledError:
        interrupted = True
        raise
    finally:
        if main_task is not None:
            loop.remove_signal_handler(signal.SIGTERM)
        if direct is not None:
            direct.engine.dispose()
        with console.status("stopping the stack"):
            await asyncio.shield(stack.stop())
        if (ok or interrupted) and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            console.print(f"data and logs kept in {data_dir}")


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser("claim", __doc__)
    parser.add_argument(
        "--claims", type=positive_int, default=100, metavar="N", help="claims sent at once (default 100)"
    )
    parser.add_argument(
        "--rounds",
        type=positive_int,
        default=2,
        metavar="R",
        help="rounds of N claims, each on new deposits, each after a floor round (default 2)",
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="stack startup (default 120)"
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir and the stack's logs")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        results = asyncio.run(run(args))
    except BenchError as exc:
        console.print(f"[red]bench claim failed:[/red] {escape(str(exc))}", highlight=False)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("bench claim interrupted")
        return 130
    Console().print(results.table())
    print(results.final_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
