"""End-to-end throughput of the engine, compared with the bare-workflow ceiling on the same Temporal server.

    python -m bench e2e [--cases N] [--timeout SECONDS]

Starts a complete dev stack (Temporal dev server in WAL mode, anvils, worker, API) on free ports with a
temporary data dir, creates N users, makes one wrong-network USDT deposit per user on ``bsc``, files all
N claims at once through the HTTP API and waits until every case is COMPLETED. Then it runs N
``BareWorkflow`` executions (as many no-op activities as a case workflow scheduled) on the same server
with an in-process worker, and prints how close the engine gets to that ceiling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from bench.args import bench_parser, positive_int
from bench.stack_race import race_with_death
from bench.terminal import BenchError, console, progress
from devstack.stack import DevStack, free_port_settings
from recovery.settings import ChainConfig, Settings

log = logging.getLogger("bench.e2e")

CHAIN = "bsc"
ASSET = "USDT"
RESULTS_DIR = Path(__file__).resolve().parent / "results"
MINT_CONCURRENCY = 1  # the faucet is one impersonated account: concurrent sends race on its nonce
POLL_CONCURRENCY = 8
POLL_INTERVAL_S = 1.0

T = TypeVar("T")


# --------------------------------------------------------------------------------------------
# Figures


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def parse_at(value: str) -> datetime:
    """A timeline timestamp from the API; naive ones are UTC (the store writes UTC)."""
    at = datetime.fromisoformat(value)
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


@dataclass
class CaseTiming:
    case_id: str
    claim_sent: datetime
    """When the bench sent the POST (client clock, the same machine's clock as the API's)."""
    received: datetime
    classified: datetime
    completed: datetime

    @property
    def to_completed(self) -> float:
        return (self.completed - self.received).total_seconds()

    @property
    def to_classified(self) -> float:
        return (self.classified - self.received).total_seconds()

    @property
    def accept(self) -> float:
        return (self.received - self.claim_sent).total_seconds()


def case_timing(case: dict[str, Any], claim_sent: datetime) -> CaseTiming:
    """First RECEIVED, first CLASSIFIED and the COMPLETED event of a case's timeline."""
    firsts: dict[str, datetime] = {}
    for event in case["timeline"]:
        firsts.setdefault(event["status"], parse_at(event["at"]))
    missing = [s for s in ("RECEIVED", "CLASSIFIED", "COMPLETED") if s not in firsts]
    if missing:
        raise BenchError(f"case {case['case_id']} timeline lacks {', '.join(missing)}: {case['timeline']}")
    return CaseTiming(
        case_id=case["case_id"],
        claim_sent=claim_sent,
        received=firsts["RECEIVED"],
        classified=firsts["CLASSIFIED"],
        completed=firsts["COMPLETED"],
    )


@dataclass
class Results:
    cases: int
    activities_per_case: int
    cases_per_s: float
    cases_wall_s: float
    p50_completed_s: float
    p99_completed_s: float
    p50_classified_s: float
    p99_classified_s: float
    p50_accept_s: float
    p99_accept_s: float
    bare_workflows: int
    bare_workflows_per_s: float
    bare_activities_per_s: float
    bare_wall_s: float
    ratio: float
    setup_s: dict[str, float] = field(default_factory=dict)
    case_timers: int = 0
    claim_retries: int = 0
    claim_concurrency: int = 0
    """0: all N claims sent at once."""
    started_at: str = ""
    machine: dict[str, Any] = field(default_factory=dict)

    def final_line(self) -> str:
        return (
            f"bench e2e: {self.cases_per_s:.2f} cases/s, ratio {self.ratio:.2f} of the bare-workflow ceiling, "
            f"p50 {self.p50_completed_s:.1f} s, p99 {self.p99_completed_s:.1f} s (claim to COMPLETED), "
            f"p99 {self.p99_classified_s:.1f} s (claim to CLASSIFIED), N={self.cases}{self._caveats()}"
        )

    def _caveats(self) -> str:
        """Departures from "all N claims at once, each accepted first time", shown on the final line."""
        notes = []
        if self.claim_concurrency and self.claim_concurrency < self.cases:
            notes.append(f"claims {self.claim_concurrency} at a time")
        if self.claim_retries:
            notes.append(f"{self.claim_retries} claims resent after 5xx")
        return f" ({', '.join(notes)})" if notes else ""

    def table(self) -> Table:
        table = Table(title=f"bench e2e, N={self.cases}", show_header=True)
        table.add_column("figure")
        table.add_column("value", justify="right")
        rows = [
            ("cases/s (first claim sent to last COMPLETED)", f"{self.cases_per_s:.2f}"),
            ("  wall time of the N cases", f"{self.cases_wall_s:.1f} s"),
            ("claim to COMPLETED p50 / p99", f"{self.p50_completed_s:.1f} / {self.p99_completed_s:.1f} s"),
            ("claim to CLASSIFIED p50 / p99", f"{self.p50_classified_s:.1f} / {self.p99_classified_s:.1f} s"),
            ("POST sent to RECEIVED p50 / p99", f"{self.p50_accept_s:.2f} / {self.p99_accept_s:.2f} s"),
            ("claims in flight at once", str(self.claim_concurrency or self.cases)),
            ("claims sent again after HTTP 5xx", str(self.claim_retries)),
            ("activities (timers) per case workflow", f"{self.activities_per_case} ({self.case_timers})"),
            ("bare workflows/s (same activities, no-op)", f"{self.bare_workflows_per_s:.2f}"),
            ("  bare activities/s", f"{self.bare_activities_per_s:.1f}"),
            ("  wall time of the N bare workflows", f"{self.bare_wall_s:.1f} s"),
            ("ratio cases/s to bare workflows/s", f"{self.ratio:.2f}"),
        ]
        for name, value in rows:
            table.add_row(name, value)
        return table


def save_results(results: Results, directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"e2e-{time.strftime('%Y%m%d-%H%M%S')}-n{results.cases}.json"
    path.write_text(json.dumps(asdict(results), indent=2) + "\n")
    return path


# --------------------------------------------------------------------------------------------
# Stack


async def gather_limited(limit: int, items: Sequence[T], work: Callable[[T], Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def one(item: T) -> Any:
        async with semaphore:
            return await work(item)

    return await asyncio.gather(*(one(i) for i in items))


# --------------------------------------------------------------------------------------------
# Phases


@dataclass
class BenchUser:
    user_id: str
    token: str
    address: str
    tx_hash: str = ""
    case_id: str = ""
    claim_sent: datetime | None = None


def create_users(settings: Settings, count: int, run_id: str) -> list[BenchUser]:
    """N users in the stack's database, with deposit addresses from the stack's own seed."""
    from sqlmodel import Session

    from chains.signer import HDSigner, deposit_path
    from store import db, schema
    from store.users import create_user

    signer = HDSigner.from_settings(settings)
    engine = db.make_engine(settings.database_url or "")
    schema.init_db(engine)
    created: list[BenchUser] = []
    try:
        with progress(transient=False) as bar:
            task = bar.add_task("creating users", total=count)
            with Session(engine) as session:
                for i in range(count):
                    user, token = create_user(
                        session, user_id=f"bench-{run_id}-{i:05d}", signer=signer, path_for=deposit_path
                    )
                    created.append(BenchUser(user.user_id, token, user.deposit_address))
                    bar.advance(task)
    finally:
        engine.dispose()
    return created


async def make_deposits(chain: ChainConfig, users: list[BenchUser], amount: int) -> None:
    """One USDT transfer to each user's deposit address on ``chain``, then wait for its confirmations."""
    from chains.evm import EvmChain
    from devstack import devnet

    with progress(transient=False) as bar:
        task = bar.add_task(f"{ASSET} deposits on {chain.name}", total=len(users))

        async def deposit(user: BenchUser) -> None:
            user.tx_hash = await devnet.mint(chain, asset=ASSET, to=user.address, amount=amount)
            bar.advance(task)

        await gather_limited(MINT_CONCURRENCY, users, deposit)

    evm = EvmChain(chain)
    target = await evm.block_number() + chain.confirmations
    with console.status(f"waiting for {chain.confirmations} confirmations on {chain.name}"):
        while await evm.block_number() < target:
            await asyncio.sleep(0.25)


def _auth(user: BenchUser) -> dict[str, str]:
    return {"Authorization": f"Bearer {user.token}"}


async def file_claims(
    http: httpx.AsyncClient, chain: ChainConfig, users: list[BenchUser], retries: int, concurrency: int = 0
) -> int:
    """All claims at once (or ``concurrency`` at a time); every one must be accepted (201). A claim
    answered with a 5xx ("try again later") or whose connection dropped is sent again up to ``retries``
    times; returns the retries."""
    retried = 0
    with progress(transient=False) as bar:
        task = bar.add_task("claims accepted", total=len(users))

        async def claim(user: BenchUser) -> None:
            nonlocal retried
            user.claim_sent = datetime.now(UTC)
            for attempt in range(retries + 1):
                try:
                    response = await http.post(
                        "/v1/cases", json={"chain": chain.name, "tx_hash": user.tx_hash}, headers=_auth(user)
                    )
                except httpx.TransportError as exc:  # the API dropped the connection after a 500
                    if attempt == retries:
                        raise BenchError(f"claim of {user.user_id}: {exc!r}") from exc
                else:
                    if response.status_code < 500 or attempt == retries:
                        break
                retried += 1
                await asyncio.sleep(0.2 * (attempt + 1))
            if response.status_code != 201:
                hint = "" if retries else " (--claim-retries N sends a claim answered with 5xx again)"
                raise BenchError(
                    f"claim of {user.user_id} for {user.tx_hash} got HTTP {response.status_code}: {response.text}{hint}"
                )
            user.case_id = response.json()["case_id"]
            bar.advance(task)

        await gather_limited(concurrency or len(users), users, claim)
    return retried


async def wait_completed(http: httpx.AsyncClient, users: list[BenchUser], timeout: float) -> list[dict[str, Any]]:
    """Poll every case until COMPLETED; fail on REJECTED or when ``timeout`` passes."""
    done: dict[str, dict[str, Any]] = {}
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + timeout

    async def poll(user: BenchUser) -> None:
        response = await http.get(f"/v1/cases/{user.case_id}", headers=_auth(user))
        if response.status_code != 200:
            raise BenchError(f"GET /v1/cases/{user.case_id} got HTTP {response.status_code}: {response.text}")
        case: dict[str, Any] = response.json()
        statuses[case["status"]] += 1
        if case["status"] == "REJECTED":
            raise BenchError(
                f"case {user.case_id} was REJECTED ({case.get('pattern')}): {case.get('reason')}\n"
                f"timeline: {json.dumps(case.get('timeline'), indent=1)}"
            )
        if case["status"] == "COMPLETED":
            done[user.case_id] = case

    with progress(transient=False) as bar:
        task = bar.add_task("cases COMPLETED", total=len(users))
        while True:
            pending = [u for u in users if u.case_id not in done]
            if not pending:
                break
            if time.monotonic() > deadline:
                raise BenchError(
                    f"{len(pending)} of {len(users)} cases not COMPLETED after {timeout:.0f} s "
                    f"(last statuses: {dict(statuses)}); first pending: {pending[0].case_id}"
                )
            statuses.clear()
            await gather_limited(POLL_CONCURRENCY, pending, poll)
            bar.update(
                task,
                completed=len(done),
                description="cases COMPLETED  " + " ".join(f"{k}={v}" for k, v in sorted(statuses.items())),
            )
            if len(done) < len(users):
                await asyncio.sleep(POLL_INTERVAL_S)
    return [done[u.case_id] for u in users]


async def count_history(client: Any, workflow_id: str) -> tuple[int, int]:
    """ActivityTaskScheduled and TimerStarted events in a workflow's history."""
    from temporalio.api.enums.v1 import EventType

    history = await client.get_workflow_handle(workflow_id).fetch_history()
    kinds = Counter(e.event_type for e in history.events)
    return kinds[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED], kinds[EventType.EVENT_TYPE_TIMER_STARTED]


async def run_bare(client: Any, count: int, activities: int, timeout: float) -> tuple[float, float]:
    """N BareWorkflows started at once on their own task queue; returns (wall seconds, workflows/s)."""
    from temporalio.worker import Worker

    from bench.bare_activities import noop
    from bench.bare_workflow import BareWorkflow

    task_queue = f"bench-bare-{uuid.uuid4().hex[:8]}"
    # The same concurrency limit as the engine's worker (worker.build_worker).
    worker = Worker(
        client, task_queue=task_queue, workflows=[BareWorkflow], activities=[noop], max_concurrent_activities=100
    )
    async with worker:
        with progress(transient=False) as bar:
            task = bar.add_task(f"bare workflows ({activities} no-op activities each)", total=count)
            started = time.monotonic()

            async def one(i: int) -> float:
                handle = await client.start_workflow(
                    BareWorkflow.run, activities, id=f"{task_queue}-{i:05d}", task_queue=task_queue
                )
                result = await handle.result()
                if result != activities:
                    raise BenchError(f"bare workflow {handle.id} returned {result}, expected {activities}")
                bar.advance(task)
                return time.monotonic()

            try:
                finished = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(count))), timeout)
            except TimeoutError:
                raise BenchError(f"bare workflows not all completed after {timeout:.0f} s") from None
    wall = max(finished) - started
    return wall, count / wall


# --------------------------------------------------------------------------------------------
# Run


async def run(args: argparse.Namespace) -> Results:
    data_dir = Path(tempfile.mkdtemp(prefix="bench-e2e-"))
    settings = free_port_settings(data_dir)
    # the claim path is measured: no scanner opens the cases first
    stack = DevStack(settings, startup_timeout=args.startup_timeout, with_scanners=False)
    run_id = uuid.uuid4().hex[:6]
    setup: dict[str, float] = {}
    ok = interrupted = False

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    if main_task is not None:
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    try:
        began = time.monotonic()
        with console.status(
            f"starting the dev stack (Temporal {settings.temporal_address}, API {stack.api_url}, data {data_dir})"
        ):
            await stack.start()
        setup["stack_start"] = time.monotonic() - began
        console.print(f"stack up in {setup['stack_start']:.1f} s (logs in {stack.log_dir})")
        assert stack.client is not None

        chain = settings.chain(CHAIN)
        token = chain.token_by_symbol(ASSET)
        if token is None:
            raise BenchError(f"no {ASSET} token configured on {CHAIN}")
        amount = int(args.amount.scaleb(token.decimals))

        began = time.monotonic()
        users = await race_with_death(stack, asyncio.to_thread(create_users, settings, args.cases, run_id))
        setup["users"] = time.monotonic() - began

        began = time.monotonic()
        await race_with_death(stack, make_deposits(chain, users, amount))
        setup["deposits"] = time.monotonic() - began

        limits = httpx.Limits(max_connections=args.cases + 10, max_keepalive_connections=args.cases + 10)
        async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as http:
            filing = file_claims(http, chain, users, args.claim_retries, args.claim_concurrency)
            claim_retries = await race_with_death(stack, filing)
            if claim_retries:
                console.print(f"[yellow]{claim_retries} claim(s) answered with HTTP 5xx were sent again[/yellow]")
            cases = await race_with_death(stack, wait_completed(http, users, args.timeout))

        timings = [case_timing(c, u.claim_sent or datetime.now(UTC)) for c, u in zip(cases, users, strict=True)]
        first_claim = min(t.claim_sent for t in timings)
        last_completed = max(t.completed for t in timings)
        wall = (last_completed - first_claim).total_seconds()
        activities, timers = await count_history(stack.client, timings[0].case_id)
        console.print(
            f"{len(cases)} cases COMPLETED in {wall:.1f} s; a case workflow scheduled {activities} activities "
            f"and {timers} timers"
        )

        bare_wall, bare_wps = await race_with_death(stack, run_bare(stack.client, args.cases, activities, args.timeout))
        cases_per_s = len(cases) / wall
        to_completed = [t.to_completed for t in timings]
        to_classified = [t.to_classified for t in timings]
        accept = [t.accept for t in timings]
        results = Results(
            cases=len(cases),
            activities_per_case=activities,
            case_timers=timers,
            claim_retries=claim_retries,
            claim_concurrency=args.claim_concurrency,
            cases_per_s=cases_per_s,
            cases_wall_s=wall,
            p50_completed_s=percentile(to_completed, 50),
            p99_completed_s=percentile(to_completed, 99),
            p50_classified_s=percentile(to_classified, 50),
            p99_classified_s=percentile(to_classified, 99),
            p50_accept_s=percentile(accept, 50),
            p99_accept_s=percentile(accept, 99),
            bare_workflows=args.cases,
            bare_workflows_per_s=bare_wps,
            bare_activities_per_s=bare_wps * activities,
            bare_wall_s=bare_wall,
            ratio=cases_per_s / bare_wps,
            setup_s=setup,
            started_at=first_claim.isoformat(),
            machine={"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        )
        ok = True
        return results
    except asyncio.CancelledError:
        interrupted = True
        raise
    finally:
        if main_task is not None:
            loop.remove_signal_handler(signal.SIGTERM)
        with console.status("stopping the dev stack"):
            await asyncio.shield(stack.stop())
        if (ok or interrupted) and not args.keep_data:
            shutil.rmtree(data_dir, ignore_errors=True)
        else:
            console.print(f"data and logs kept in {data_dir}")


def _decimal(value: str) -> Decimal:
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not a decimal amount: {value!r}") from None
    if amount <= 0:
        raise argparse.ArgumentTypeError("the amount must be positive")
    return amount


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser("e2e", __doc__)
    parser.add_argument("--cases", type=positive_int, default=100, metavar="N", help="cases (default 100)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=900.0,
        metavar="SECONDS",
        help="fail if the cases (or the bare workflows) are not all completed after this long (default 900)",
    )
    parser.add_argument(
        "--amount", type=_decimal, default=Decimal("100"), metavar="USDT", help="each deposit (default 100)"
    )
    parser.add_argument(
        "--startup-timeout", type=float, default=120.0, metavar="SECONDS", help="stack startup (default 120)"
    )
    parser.add_argument(
        "--claim-retries",
        type=int,
        default=0,
        metavar="N",
        help="send a claim answered with HTTP 5xx (or a dropped connection) again, up to N times (default 0: fail)",
    )
    parser.add_argument(
        "--claim-concurrency",
        type=int,
        default=0,
        metavar="K",
        help="send at most K claims at a time (default 0: all N at once)",
    )
    parser.add_argument("--keep-data", action="store_true", help="keep the temporary data dir and logs")
    parser.add_argument("--no-save", action="store_true", help=f"do not write the figures to {RESULTS_DIR}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log the stack's startup")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    for noisy in ("temporalio", "httpx", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        results = asyncio.run(run(args))
    except BenchError as exc:
        console.print(f"[red]bench e2e failed:[/red] {escape(str(exc))}", highlight=False)
        return 1
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("bench e2e interrupted")
        return 130
    Console().print(results.table())
    if not args.no_save:
        path = save_results(results)
        console.print(f"figures saved to {path}")
    print(results.final_line(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
