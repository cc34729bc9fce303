"""Case reads through the status API against a bare FastAPI app, on the same server settings, in the same run.

    python -m bench api [--cases N] [--users U] [--concurrency K] [--duration S] [--rounds R] [--client raw|httpx]

Generates N cases (default 100,000) over U users (1,000) into a fresh SQLite database in a temporary directory
(and, when TEST_POSTGRES_URL is set, into a private PostgreSQL schema dropped at the end), through the engine's
own tables and migrations (``store.schema.init_db``), in batches (executemany on SQLite, COPY on PostgreSQL, each
value converted by its column's type). The cases are what the engine leaves behind: completed, rejected, waiting
for confirmations, for an engineer (with their handling row and SLA), for the user (a quote to accept, an
ownership proof: with its requirement row), a few refunded (with their ledger row), with 2 to 8 timeline events
each (those the engine writes with a message id, such as the claim received, the trace, the confirmations and an
approval, with their id and values: a read renders them in the reader's language) and a quote on most.

Two uvicorn servers, one worker process each, started with the same settings (``--loop``, ``--http``, log level
warning, no access log):

- real: ``api.main.create_app(settings, engine=...)`` on that database, as deployed: token authentication,
  the per-token rate limiter, the security headers, the ETag. The reads budget is raised to
  ``1000000/minute`` per token so that the limiter never refuses a read but still counts every one
  (``settings.rate_limits.reads``; the default of 600/minute would throttle a user's token here);
- bare: a FastAPI app whose ``GET /v1/cases/{case_id}`` (``async def``) answers a constant JSON body of the
  same size as a real case read (a real body of median size, taken from a sample of reads first).

One client drives both: K keep-alive connections (default 32), each sending ``GET /v1/cases/{id}`` for a random
case with its owner's token (``Authorization: Bearer``), the next request when the answer is in (closed loop).
The default client is a minimal asyncio HTTP/1.1 client (``Content-Length`` framing), about 0.04 ms of CPU a
request here. httpx.AsyncClient (``--client httpx``) was the bottleneck: at 32 connections it spent about 3 ms
of CPU a request and held the bare app to about 250 req/s (against 4,400 with the raw client), which made the
ratio look like 0.6. Client and servers share this machine's 2 cores, so a heavy client also slows the server it
measures; both apps get the same client and the same contention, and the table shows the client's CPU share and
each server's CPU time per request (the figure least disturbed by other load). A warm-up, then R rounds (default
2) of S seconds (default 10) per app, interleaved (bare, real, bare, real) so the machine's noise hits both.
Every answer must be a 200 (and a real one must carry its case's id), or the bench fails.

Prints a table and one line (throughput and p99 over all rounds; with PostgreSQL a second part for it):

    bench api: <rps> req/s, ratio <r> vs bare FastAPI, p99 <x> ms vs <y> ms bare (ratio <z>)

Targets: throughput at least 0.5 of the bare app's, p99 at most 2 times the bare app's.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Engine, text
from sqlalchemy import Table as SqlTable

from bench.args import bench_parser, positive_int
from bench.terminal import BenchError, console, progress
from devstack.stack import free_port
from recovery.models import CaseStatus, Pattern, Quote, case_id_for
from recovery.roster import Tier
from store.api_tokens import hash_token
from store.case_bodies import queue_length
from store.cases import Case, CaseEvent, CaseHandlingRow
from store.db import make_engine, private_schema
from store.ledger import RefundEntry
from store.ownership import OwnershipRequirement
from store.schema import init_db
from store.users import User

NAME = "api"
LINE = "bench api"
HOST = "127.0.0.1"
READS_BUDGET = "1000000/minute"
"""The reads budget per user token the bench's real app runs with: the limiter counts every read, refuses none."""
SERVE = "serve"
"""``python -m bench.bench_api serve ...`` runs one of the two servers (the bench starts them so)."""
BATCH_CASES = 2_000
START = datetime(2025, 1, 1, tzinfo=UTC)
SAMPLE_READS = 400
"""Real reads made before the measurement: they warm the server and give the bare app its body size."""

Row = dict[str, Any]


# --- the data -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Asset:
    chain: str
    symbol: str
    decimals: int
    price: Decimal
    token_address: str | None


ASSETS = (
    Asset("ethereum", "USDT", 6, Decimal("1"), "0xdac17f958d2ee523a2206206994597c13d831ec7"),
    Asset("ethereum", "ETH", 18, Decimal("3000"), None),
    Asset("bsc", "USDT", 18, Decimal("1"), "0x55d398326f99059ff775485246999027b3197955"),
    Asset("bsc", "BNB", 18, Decimal("600"), None),
    Asset("polygon", "USDT", 6, Decimal("1"), "0xc2132d05d31c914a87c6611c10748aeb04b58e8f"),
    Asset("polygon", "POL", 18, Decimal("0.5"), None),
)
CONFIRMATIONS = "Deposit has {have} of {need} confirmations"
KINDS = (
    ("completed", 45),
    ("rejected", 14),
    ("confirming", 12),
    ("awaiting_approval", 15),
    ("quote_offered", 5),
    ("ownership", 6),
    ("refunded", 3),
)
"""What a case has been through, with weights."""


@dataclass
class Dataset:
    """What the client needs: each case's id and owner, each user's token."""

    case_ids: list[str] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)


def _hex(rng: random.Random, nbytes: int) -> str:
    return "0x" + rng.randbytes(nbytes).hex()


def _quote(rng: random.Random, asset: Asset, amount: int, *, acceptance: bool) -> Quote:
    amount_usd = (Decimal(amount) / 10**asset.decimals * asset.price).quantize(Decimal("0.01"))
    fee_usd = min(max(amount_usd * Decimal("0.05"), Decimal("10")), Decimal("500")).quantize(Decimal("0.01"))
    fee = min(int(fee_usd / asset.price * 10**asset.decimals), amount)
    gas = min(rng.randrange(10**asset.decimals // 10_000, 10**asset.decimals // 100) if asset.decimals else 1, amount)
    return Quote(
        asset=asset.symbol,
        decimals=asset.decimals,
        amount=amount,
        amount_usd=amount_usd,
        percent_bps=500,
        fee_usd=fee_usd,
        fee=fee,
        gas_estimate=gas,
        net_estimate=max(amount - fee - gas, 0),
        min_fee_usd=Decimal("10"),
        max_fee_usd=Decimal("500"),
        basis="5 % of the value, at least 10 USD and at most 500 USD",
        network_cost_estimate=gas,
        acceptance_required=acceptance,
        price_usd=asset.price,
    )


def _case_rows(rng: random.Random, user_id: str, span_s: int) -> tuple[Row, list[Row], dict[str, Row]]:
    """One case: its row, its timeline and its other rows by table (handling, ownership, refund)."""
    asset = rng.choice(ASSETS)
    tx_hash = _hex(rng, 32)
    log_index = -1 if asset.token_address is None else rng.randrange(0, 400)
    case_id = case_id_for(asset.chain, tx_hash, log_index)
    created = START + timedelta(seconds=rng.randrange(span_s))
    amount = rng.randrange(10 ** (asset.decimals + 1), 10 ** (asset.decimals + 4))
    kind = rng.choices([k for k, _ in KINDS], weights=[w for _, w in KINDS])[0]
    at = created
    events: list[Row] = []
    extra: dict[str, Row] = {}

    def event(
        key: str,
        status: CaseStatus,
        message: str,
        *,
        due_at: datetime | None = None,
        ref: tuple[str, dict[str, Any]] | None = None,
    ) -> None:
        """A timeline entry; ``ref``: its message id and values, as the engine stores them beside the English
        (a read renders it in the reader's language)."""
        nonlocal at
        at += timedelta(seconds=rng.randrange(1, 900))
        events.append(
            {
                "case_id": case_id,
                "key": key,
                "status": status,
                "message": message,
                "message_id": None if ref is None else ref[0],
                "message_params": None if ref is None else json.dumps(ref[1], sort_keys=True),
                "at": at,
                "due_at": due_at,
            }
        )

    event("received", CaseStatus.RECEIVED, "Claim received", ref=("Claim received", {}))
    event("tracing", CaseStatus.TRACING, "Tracing the transaction", ref=("Tracing the transaction", {}))
    case: Row = {
        "case_id": case_id,
        "user_id": user_id,
        "chain": asset.chain,
        "tx_hash": tx_hash,
        "log_index": log_index,
        "status": CaseStatus.TRACING,
        "pattern": None,
        "reason": "",
        "asset": asset.symbol,
        "token_address": asset.token_address,
        "decimals": asset.decimals,
        "amount": amount,
        "fee": None,
        "gas": None,
        "credited": None,
        "fee_usd": None,
        "quote_json": None,
        "topup_tx_hash": None,
        "sweep_tx_hash": None,
        "created_at": created,
    }
    if kind == "confirming":
        event(
            "confirmations-1",
            CaseStatus.WAITING_CONFIRMATIONS,
            "Deposit has 1 of 12 confirmations",
            ref=(CONFIRMATIONS, {"have": 1, "need": 12}),
        )
        case["status"] = CaseStatus.WAITING_CONFIRMATIONS
    elif kind == "rejected":
        pattern = rng.choice((Pattern.NOT_OURS, Pattern.FAILED_TX, Pattern.TOO_SMALL, Pattern.NOT_YOUR_DEPOSIT))
        reason = f"{pattern}: nothing of this transaction can be recovered to your account"
        event("classified", CaseStatus.CLASSIFIED, f"Classified as {pattern} (rejected): {reason}")
        event("rejected", CaseStatus.REJECTED, reason)
        case.update(status=CaseStatus.REJECTED, pattern=pattern, reason=reason)
    else:
        manual = kind in ("awaiting_approval", "ownership", "refunded")
        pattern = Pattern.UNLISTED_TOKEN if manual else Pattern.WRONG_NETWORK_SAME_KEY
        quote = _quote(rng, asset, amount, acceptance=kind == "quote_offered")
        case.update(
            pattern=pattern,
            reason=f"sent on {asset.chain} to the deposit address",
            fee=quote.fee,
            fee_usd=str(quote.fee_usd),
            quote_json=quote.model_dump_json(),
        )
        for k in range(1, rng.randrange(2, 4)):
            event(
                f"confirmations-{k}",
                CaseStatus.WAITING_CONFIRMATIONS,
                f"Deposit has {k * 6} of 12 confirmations",
                ref=(CONFIRMATIONS, {"have": k * 6, "need": 12}),
            )
        route = "manual" if manual else "automatic"
        event("classified", CaseStatus.CLASSIFIED, f"Classified as {pattern} ({route}): {case['reason']}")
        if manual:
            event(
                "awaiting-approval",
                CaseStatus.AWAITING_APPROVAL,
                f"Waiting for a recovery engineer to approve or reject ({pattern})",
            )
            extra["case_handling"] = {
                "case_id": case_id,
                "tier": rng.choice((Tier.FIRST_LINE, Tier.ENGINEERING)).value,
                "assigned_to": rng.choice((None, "alice", "bob")),
                "approvals_needed": 1,
                "sla_started_at": at,
                "sla_target_at": at + timedelta(days=21),
                "sla_deadline_at": at + timedelta(days=42),
                "sla_state": "on_track",
                "paused": kind == "ownership",
                "updated_at": at,
            }
            case["status"] = CaseStatus.AWAITING_APPROVAL
        if kind == "quote_offered":
            event(
                "quote-offered",
                CaseStatus.AWAITING_USER,
                f"Your recovery is quoted: fee {quote.fee} {asset.symbol} (${quote.fee_usd}, {quote.basis}); "
                "accept or decline it",
                due_at=at + timedelta(days=14),
            )
            case["status"] = CaseStatus.AWAITING_USER
        elif kind == "ownership":
            sender = _hex(rng, 20)
            event(
                "decision-approved",
                CaseStatus.AWAITING_APPROVAL,
                "Approved by bob",
                ref=("Approved by {engineer}", {"engineer": "bob"}),
            )
            event(
                "ownership-wait",
                CaseStatus.AWAITING_USER,
                f"Approved. Before the funds move, prove that you control {sender}: GET "
                f"/v1/cases/{case_id}/ownership-challenge",
                due_at=at + timedelta(days=14),
            )
            extra["ownership_requirements"] = {
                "case_id": case_id,
                "chain": asset.chain,
                "address": sender,
                "recipient": _hex(rng, 20),
                "required_at": at,
                "proven_at": None,
                "method": None,
                "reference": None,
            }
            case["status"] = CaseStatus.AWAITING_USER
        elif kind in ("completed", "refunded"):
            if kind == "refunded":
                event("decision-approved", CaseStatus.AWAITING_APPROVAL, "Approved by alice: refund to the sender")
            event("recovering", CaseStatus.RECOVERING, "Recovering the funds")
            gas = rng.randrange(1, max(2, quote.gas_estimate + 1))
            credited = 0 if kind == "refunded" else max(amount - quote.fee - gas, 0)
            event(
                "credited",
                CaseStatus.COMPLETED,
                f"Credited {credited} {asset.symbol} base units to your account (fee {quote.fee}, network {gas})",
            )
            case.update(
                status=CaseStatus.COMPLETED,
                gas=gas,
                credited=credited,
                topup_tx_hash=_hex(rng, 32),
                sweep_tx_hash=_hex(rng, 32),
            )
            if kind == "refunded":
                extra["ledger_refunds"] = {
                    "idempotency_key": f"{case_id}:refund",
                    "case_id": case_id,
                    "user_id": user_id,
                    "chain": asset.chain,
                    "asset": asset.symbol,
                    "amount": max(amount - quote.fee - gas, 0),
                    "to_address": _hex(rng, 20),
                    "tx_hash": _hex(rng, 32),
                    "created_at": at,
                }
    case["updated_at"] = at
    return case, events, extra


def generate(cases: int, users: int, seed: int, data: Dataset) -> Iterator[dict[str, list[Row]]]:
    """Batches of rows by table name, the users first; fills ``data`` with the ids, owners and tokens."""
    rng = random.Random(seed)
    user_rows: list[Row] = []
    for i in range(users):
        token = f"bench-{rng.randbytes(24).hex()}"
        data.tokens.append(token)
        user_rows.append(
            {
                "user_id": f"user-{i:05d}",
                "deposit_index": i,
                "deposit_address": _hex(rng, 20),
                "token_hash": hash_token(token),
                "token_expires_at": None,
                "token_revoked_at": None,
                "locale": "en",
                "created_at": START,
            }
        )
    yield {"users": user_rows}
    span_s = 400 * 86_400
    batch: dict[str, list[Row]] = {}
    for _ in range(cases):
        owner = rng.randrange(users)
        case, events, extra = _case_rows(rng, f"user-{owner:05d}", span_s)
        data.case_ids.append(case["case_id"])
        data.owners.append(owner)
        batch.setdefault("cases", []).append(case)
        batch.setdefault("case_events", []).extend(events)
        for table, row in extra.items():
            batch.setdefault(table, []).append(row)
        if len(batch["cases"]) == BATCH_CASES:
            yield batch
            batch = {}
    if batch:
        yield batch


TABLES: dict[str, Any] = {
    "users": User,
    "cases": Case,
    "case_events": CaseEvent,
    "case_handling": CaseHandlingRow,
    "ownership_requirements": OwnershipRequirement,
    "ledger_refunds": RefundEntry,
}


def _converters(table: SqlTable, names: Sequence[str], engine: Engine) -> list[Callable[[Any], Any] | None]:
    """Each column's own bind conversion on this database (what a Core insert would apply)."""
    return [table.c[name].type.dialect_impl(engine.dialect).bind_processor(engine.dialect) for name in names]


def _values(rows: list[Row], names: Sequence[str], convert: list[Callable[[Any], Any] | None]) -> list[tuple[Any, ...]]:
    return [
        tuple(
            value if fn is None or value is None else fn(value) for value, fn in zip(row.values(), convert, strict=True)
        )
        for row in rows
    ]


def load(engine: Engine, batches: Iterator[dict[str, list[Row]]], advance: Callable[[int], None]) -> None:
    """Batches through the driver (executemany on SQLite, COPY on PostgreSQL), each value converted by its column's
    type as the engine writes it; then fresh planner statistics."""
    postgres = engine.dialect.name == "postgresql"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if not postgres:
            cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB while loading: the indexes grow in random order
            cursor.execute("BEGIN")
        for batch in batches:
            for name, rows in batch.items():
                table: SqlTable = TABLES[name].__table__
                names = list(rows[0])
                values = _values(rows, names, _converters(table, names, engine))
                if postgres:
                    with cursor.copy(f"COPY {name} ({', '.join(names)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                        for row in values:
                            copy.write_row(row)
                else:
                    marks = ", ".join("?" * len(names))
                    cursor.executemany(f"INSERT INTO {name} ({', '.join(names)}) VALUES ({marks})", values)
            advance(len(batch.get("cases", ())))
        if postgres:
            raw.commit()
        else:
            cursor.execute("COMMIT")
            cursor.execute("ANALYZE")
        cursor.close()
    finally:
        raw.close()
    if postgres:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for name in TABLES:
                conn.execute(text(f"VACUUM ANALYZE {name}"))


# --- the servers ----------------------------------------------------------------------------------


def real_app(database_url: str, data_dir: Path) -> Any:
    """The status API as deployed, on ``database_url``, with a reads budget that refuses nothing."""
    from api.main import create_app
    from recovery.settings import RateLimitConfig, Settings

    settings = Settings(
        data_dir=data_dir,
        database_url=database_url,
        seed_file=data_dir / "signer-seed",
        rate_limits=RateLimitConfig(reads=READS_BUDGET),
    )
    return create_app(settings, engine=make_engine(database_url))


def bare_app(body: bytes) -> Any:
    """FastAPI with one route, answering ``body`` (JSON) to every ``GET /v1/cases/{case_id}``."""
    from fastapi import FastAPI, Response

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/v1/cases/{case_id}")
    async def read_case(case_id: str) -> Response:
        return Response(content=body, media_type="application/json")

    return app


def serve_main(argv: Sequence[str]) -> int:
    """One server, in this process: ``serve real --database-url URL --data-dir DIR`` or ``serve bare --body FILE``."""
    import uvicorn

    parser = argparse.ArgumentParser(prog=f"python -m bench.bench_api {SERVE}")
    parser.add_argument("app", choices=("real", "bare"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--body", type=Path)
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--http", default="auto")
    args = parser.parse_args(argv)
    app = real_app(args.database_url, args.data_dir) if args.app == "real" else bare_app(args.body.read_bytes())
    config = uvicorn.Config(
        app,
        host=HOST,
        port=args.port,
        loop=args.loop,
        http=args.http,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
    uvicorn.Server(config).run()
    return 0


class Server:
    """A uvicorn subprocess; its output goes to a log file shown if it fails."""

    def __init__(self, label: str, argv: list[str], log: Path) -> None:
        self.label = label
        self.port = free_port(HOST)
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bench.bench_api", SERVE, *argv, "--port", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=Path(__file__).resolve().parent.parent,
            )

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the port accepts connections (uvicorn binds it after the app's start-up: migrations done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"the {self.label} server exited ({self.process.returncode}): {self.tail()}")
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise BenchError(f"the {self.label} server did not start in {timeout:.0f} s: {self.tail()}")

    def tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def cpu_seconds(self) -> float | None:
        """User and system CPU time of the server process so far (Linux), or None."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return None
        fields = stat[stat.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# --- the client -----------------------------------------------------------------------------------


@dataclass
class Round:
    """What one app answered in one timed round (latencies in seconds)."""

    requests: int = 0
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    wrong_bodies: int = 0
    client_cpu: float = 0.0
    server_cpu: float | None = None
    body_bytes: int = 0


class Reads:
    """Random case reads: the request target and its owner's token."""

    def __init__(self, data: Dataset, seed: int) -> None:
        self.data = data
        self.rng = random.Random(seed)

    def next(self) -> tuple[str, str]:
        i = self.rng.randrange(len(self.data.case_ids))
        return self.data.case_ids[i], self.data.tokens[self.data.owners[i]]


async def _raw_worker(
    port: int, reads: Reads, deadline: list[float], ready: list[int], go: asyncio.Event, out: Round, check_body: bool
) -> None:
    """One keep-alive connection: a request, its whole answer, the next request, until ``deadline[0]``."""
    reader, writer = await asyncio.open_connection(HOST, port)
    ready[0] += 1
    head = f"Host: {HOST}:{port}\r\nUser-Agent: bench-api\r\nAccept: application/json\r\nAuthorization: Bearer "
    clock = time.perf_counter
    latencies = out.latencies
    statuses = out.statuses
    try:
        await go.wait()
        end = deadline[0]
        while clock() < end:
            case_id, token = reads.next()
            started = clock()
            writer.write(f"GET /v1/cases/{case_id} HTTP/1.1\r\n{head}{token}\r\n\r\n".encode())
            headers = await reader.readuntil(b"\r\n\r\n")
            at = headers.find(b"content-length:")  # uvicorn writes header names in lower case
            if at < 0:
                at = headers.lower().find(b"content-length:")
                if at < 0:
                    raise BenchError(f"an answer without Content-Length: {headers[:200]!r}")
            body = await reader.readexactly(int(headers[at + 15 : headers.index(b"\r\n", at)]))
            latencies.append(clock() - started)
            statuses[int(headers[9:12])] += 1
            out.body_bytes += len(body)
            if check_body and case_id.encode() not in body:
                out.wrong_bodies += 1
    finally:
        writer.close()


async def _drive_raw(port: int, reads: Reads, seconds: float, concurrency: int, out: Round, check_body: bool) -> None:
    go = asyncio.Event()
    deadline = [0.0]
    ready = [0]
    tasks = [
        asyncio.ensure_future(_raw_worker(port, reads, deadline, ready, go, out, check_body))
        for _ in range(concurrency)
    ]
    while ready[0] < concurrency:  # the clock starts with every connection open
        failed = [t for t in tasks if t.done()]
        if failed:
            await asyncio.gather(*failed)
            raise BenchError("a connection ended before the round started")
        await asyncio.sleep(0.01)
    started = time.perf_counter()
    cpu = time.process_time()
    deadline[0] = started + seconds
    go.set()
    await asyncio.gather(*tasks)
    out.seconds = time.perf_counter() - started
    out.client_cpu = time.process_time() - cpu


async def _drive_httpx(port: int, reads: Reads, seconds: float, concurrency: int, out: Round, check_body: bool) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=f"http://{HOST}:{port}", limits=limits, timeout=60) as client:
        # open the connections before the clock starts, as the raw client does
        warm = [reads.next() for _ in range(concurrency)]
        await asyncio.gather(*(client.get(f"/v1/cases/{c}", headers=_auth(t)) for c, t in warm))
        started = time.perf_counter()
        cpu = time.process_time()
        deadline = started + seconds

        async def worker() -> None:
            clock = time.perf_counter
            while clock() < deadline:
                case_id, token = reads.next()
                begun = clock()
                response = await client.get(f"/v1/cases/{case_id}", headers=_auth(token))
                out.latencies.append(clock() - begun)
                out.statuses[response.status_code] += 1
                out.body_bytes += len(response.content)
                if check_body and case_id.encode() not in response.content:
                    out.wrong_bodies += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        out.seconds = time.perf_counter() - started
        out.client_cpu = time.process_time() - cpu


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _drive(port: int, reads: Reads, seconds: float, args: argparse.Namespace, check_body: bool) -> Round:
    out = Round()
    drive = _drive_httpx if args.client == "httpx" else _drive_raw
    await drive(port, reads, seconds, args.concurrency, out, check_body)
    out.requests = len(out.latencies)
    return out


def measure_round(server: Server, reads: Reads, seconds: float, args: argparse.Namespace, check_body: bool) -> Round:
    before = server.cpu_seconds()
    result = asyncio.run(_drive(server.port, reads, seconds, args, check_body))
    after = server.cpu_seconds()
    result.server_cpu = None if before is None or after is None else after - before
    return result


# --- measuring ------------------------------------------------------------------------------------


@dataclass
class Measurement:
    """One app over every timed round."""

    app: str
    database: str
    rounds: list[Round] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(r.requests for r in self.rounds)

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.rounds)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def statuses(self) -> Counter[int]:
        total: Counter[int] = Counter()
        for r in self.rounds:
            total.update(r.statuses)
        return total

    def latency_ms(self, pct: float) -> float:
        return percentile([x for r in self.rounds for x in r.latencies], pct) * 1000

    @property
    def client_cpu_share(self) -> float:
        """The client's CPU time per second of wall time (1.0: one core busy)."""
        return sum(r.client_cpu for r in self.rounds) / self.seconds if self.seconds else 0.0

    @property
    def server_cpu_ms(self) -> float | None:
        """The server's CPU time per request, in milliseconds."""
        if any(r.server_cpu is None for r in self.rounds) or not self.requests:
            return None
        return sum(r.server_cpu or 0.0 for r in self.rounds) / self.requests * 1000

    @property
    def body_bytes(self) -> int:
        return sum(r.body_bytes for r in self.rounds) // max(1, self.requests)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0..100) of a non-empty sample."""
    if not values:
        raise BenchError("no requests were answered")
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def check_answers(measurement: Measurement) -> None:
    """Every answer was a 200 (and every real answer carried its case)."""
    statuses = measurement.statuses
    if not measurement.requests:
        raise BenchError(f"{measurement.app} ({measurement.database}): no request was answered")
    if set(statuses) != {200}:
        raise BenchError(
            f"{measurement.app} ({measurement.database}) answered {dict(statuses)}; every read must be 200"
        )
    wrong = sum(r.wrong_bodies for r in measurement.rounds)
    if wrong:
        raise BenchError(f"{measurement.app} ({measurement.database}): {wrong} answers did not carry their case")


def sample_body(server: Server, data: Dataset, seed: int) -> bytes:
    """Real reads of random cases: checks them and returns a body of median size."""

    async def reads() -> list[bytes]:
        rng = random.Random(seed + 1)
        bodies: list[bytes] = []
        reader, writer = await asyncio.open_connection(HOST, server.port)
        try:
            for _ in range(min(SAMPLE_READS, max(len(data.case_ids), 1))):
                i = rng.randrange(len(data.case_ids))
                case_id, token = data.case_ids[i], data.tokens[data.owners[i]]
                request = f"GET /v1/cases/{case_id} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n\r\n"
                writer.write(request.encode())
                headers = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
                length = next(
                    int(line.split(":", 1)[1])
                    for line in headers.split("\r\n")
                    if line.lower().startswith("content-length:")
                )
                body = await reader.readexactly(length)
                if not headers.startswith("HTTP/1.1 200"):
                    raise BenchError(f"reading {case_id}: {headers.splitlines()[0]}: {body[:300]!r}")
                if json.loads(body)["case_id"] != case_id:
                    raise BenchError(f"reading {case_id} answered another case")
                bodies.append(body)
        finally:
            writer.close()
        return bodies

    bodies = sorted(asyncio.run(reads()), key=len)
    return bodies[len(bodies) // 2]


def measure(engine: Engine, database_url: str, args: argparse.Namespace, label: str, tmp: Path) -> list[Measurement]:
    """Load the cases, start both servers, time them interleaved; returns (bare, real)."""
    data = Dataset()
    init_db(engine)
    started = time.perf_counter()
    with progress(transient=True) as bar:
        task = bar.add_task(f"{label}: {args.cases} cases", total=args.cases)
        load(engine, generate(args.cases, args.users, args.seed, data), lambda n: bar.advance(task, n))
    with engine.connect() as conn:
        events = conn.execute(text("SELECT count(*) FROM case_events")).scalar_one()
    console.print(
        f"{label}: {args.cases} cases ({events} timeline events) of {args.users} users loaded in "
        f"{time.perf_counter() - started:.1f} s",
        highlight=False,
    )
    engine.dispose()

    common = ["--loop", args.loop, "--http", args.http]
    real = Server("real", ["real", "--database-url", database_url, "--data-dir", str(tmp), *common], tmp / "real.log")
    bare: Server | None = None
    try:
        real.wait_ready()
        wait_for_bodies(database_url, label)
        body = sample_body(real, data, args.seed)
        (tmp / "body.json").write_bytes(body)
        bare = Server("bare", ["bare", "--body", str(tmp / "body.json"), *common], tmp / "bare.log")
        bare.wait_ready()
        console.print(f"{label}: the bare app answers a constant {len(body)}-byte body (a real read of median size)")
        measured = {"bare FastAPI": Measurement("bare FastAPI", label), "real API": Measurement("real API", label)}
        servers = {"bare FastAPI": bare, "real API": real}
        reads = Reads(data, args.seed + 2)
        with progress(transient=True) as bar:
            steps = 2 * (args.rounds + (1 if args.warmup > 0 else 0))
            task = bar.add_task(f"{label}: {args.concurrency} connections", total=steps)
            if args.warmup > 0:
                for name, server in servers.items():
                    bar.update(task, description=f"{label}: warming up {name}")
                    measure_round(server, reads, args.warmup, args, check_body=False)
                    bar.advance(task)
            for n in range(args.rounds):
                for name, server in servers.items():
                    bar.update(task, description=f"{label}: {name}, round {n + 1} of {args.rounds}")
                    result = measure_round(server, reads, args.duration, args, check_body=name == "real API")
                    measured[name].rounds.append(result)
                    bar.advance(task)
                    console.print(
                        f"{label}: {name} round {n + 1}: {result.requests / result.seconds:.0f} req/s, "
                        f"p99 {percentile(result.latencies, 99) * 1000:.1f} ms",
                        highlight=False,
                    )
        for m in measured.values():
            check_answers(m)
        return [measured["bare FastAPI"], measured["real API"]]
    finally:
        if bare is not None:
            bare.stop()
        real.stop()


def wait_for_bodies(database_url: str, label: str, timeout: float = 1800) -> None:
    """Until the real API's refresher has rendered every queued case (``store.case_bodies``): the engine renders a
    case's body when the case changes, so a deployed engine's cases have theirs; loaded in bulk here, they are all
    queued at once."""
    engine = make_engine(database_url)
    started = time.perf_counter()
    try:
        with engine.connect() as conn:
            total = queue_length(conn)
        with progress(transient=True) as bar:
            task = bar.add_task(f"{label}: the API renders the cases' bodies", total=total)
            left = total
            while left:
                if time.perf_counter() - started > timeout:
                    raise BenchError(f"{label}: {left} cases' bodies still unrendered after {timeout:.0f} s")
                time.sleep(0.5)
                with engine.connect() as conn:
                    left = queue_length(conn)
                bar.update(task, completed=total - left)
    finally:
        engine.dispose()
    console.print(
        f"{label}: the API rendered {total} cases' bodies in {time.perf_counter() - started:.1f} s "
        "(store.case_bodies: the engine renders a case's body when the case changes)",
        highlight=False,
    )


def sqlite_run(args: argparse.Namespace) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as name:
        tmp = Path(name)
        url = f"sqlite:///{tmp / 'recovery.db'}"
        engine = make_engine(url)
        try:
            return measure(engine, url, args, "SQLite", tmp)
        finally:
            engine.dispose()


def postgres_run(args: argparse.Namespace, url: str) -> list[Measurement]:
    with tempfile.TemporaryDirectory(prefix="bench-api-") as name, private_schema(url, prefix="bench_api") as engine:
        return measure(engine, engine.url.render_as_string(hide_password=False), args, "PostgreSQL", Path(name))


def resolved_server(args: argparse.Namespace) -> str:
    """What uvicorn's ``auto`` loop and HTTP implementation resolve to here."""
    loop = args.loop if args.loop != "auto" else ("uvloop" if importlib.util.find_spec("uvloop") else "asyncio")
    http = args.http if args.http != "auto" else ("httptools" if importlib.util.find_spec("httptools") else "h11")
    return f"uvicorn, 1 worker process, loop {loop}, http {http}, log level warning, no access log"


def run(args: argparse.Namespace) -> list[Measurement]:
    console.print(f"servers: {resolved_server(args)}; client: {args.client}, {args.concurrency} connections")
    measured = sqlite_run(args)
    url = os.environ.get("TEST_POSTGRES_URL") or None
    if url is not None:
        measured += postgres_run(args, url)
    return measured


def table(measured: Sequence[Measurement]) -> Table:
    out = Table(title="case reads (GET /v1/cases/{id})")
    columns = ("app", "database", "requests", "req/s", "p50 ms", "p99 ms", "body B", "server CPU ms/req", "client CPU")
    for column in columns:
        out.add_column(column, justify="left" if column in ("app", "database") else "right")
    for m in measured:
        server_cpu = m.server_cpu_ms
        out.add_row(
            m.app,
            m.database if m.app != "bare FastAPI" else f"({m.database} run)",
            str(m.requests),
            f"{m.rps:.0f}",
            f"{m.latency_ms(50):.1f}",
            f"{m.latency_ms(99):.1f}",
            str(m.body_bytes),
            "?" if server_cpu is None else f"{server_cpu:.2f}",
            f"{m.client_cpu_share * 100:.0f} %",
        )
    return out


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 10 else f"{value:.0f}"


def final_line(measured: Sequence[Measurement]) -> str:
    bare, real = measured[0], measured[1]
    p99, p99_bare = real.latency_ms(99), bare.latency_ms(99)
    line = (
        f"{LINE}: {real.rps:.0f} req/s, ratio {real.rps / bare.rps:.2f} vs bare FastAPI, "
        f"p99 {_ms(p99)} ms vs {_ms(p99_bare)} ms bare (ratio {p99 / p99_bare:.2f})"
    )
    if len(measured) == 4:
        bare, real = measured[2], measured[3]
        p99, p99_bare = real.latency_ms(99), bare.latency_ms(99)
        line += (
            f"; PostgreSQL: {real.rps:.0f} req/s, ratio {real.rps / bare.rps:.2f}, "
            f"p99 {_ms(p99)} ms vs {_ms(p99_bare)} ms bare (ratio {p99 / p99_bare:.2f})"
        )
    return line


def build_parser() -> argparse.ArgumentParser:
    parser = bench_parser(NAME, __doc__)
    parser.add_argument("--cases", type=positive_int, default=100_000, metavar="N", help="cases (default 100000)")
    parser.add_argument("--users", type=positive_int, default=1_000, metavar="U", help="users (default 1000)")
    parser.add_argument(
        "--concurrency", type=positive_int, default=32, metavar="K", help="connections, one request each (default 32)"
    )
    parser.add_argument(
        "--duration", type=float, default=10.0, metavar="S", help="seconds of each timed round (default 10)"
    )
    parser.add_argument("--warmup", type=float, default=2.0, metavar="S", help="seconds of warm-up per app (default 2)")
    parser.add_argument("--rounds", type=positive_int, default=2, metavar="R", help="timed rounds per app (default 2)")
    parser.add_argument(
        "--client", choices=("raw", "httpx"), default="raw", help="the load client (default raw: minimal asyncio)"
    )
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto", help="uvicorn --loop")
    parser.add_argument("--http", choices=("auto", "h11", "httptools"), default="auto", help="uvicorn --http")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.duration <= 0:
        console.print("[red]bench api failed:[/red] --duration must be positive")
        return 2
    try:
        measured = run(args)
    except BenchError as exc:
        console.print(f"[red]bench api failed:[/red] {escape(str(exc))}", highlight=False)
        return 1
    except KeyboardInterrupt:
        console.print("bench api interrupted")
        return 130
    out = Console()
    if not out.is_terminal:
        out = Console(width=max(out.width, 132))
    out.print(table(measured))
    print(final_line(measured), flush=True)
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == [SERVE]:
        sys.exit(serve_main(sys.argv[2:]))
    sys.exit(main())
