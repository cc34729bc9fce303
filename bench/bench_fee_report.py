"""Fee report speed: the finance report over a large fee ledger against the bare SQL aggregate of the same rows.

    python -m bench fee_report [--rows N] [--repeat R] [--chains C] [--assets A] [--days D]

Generates N fee_ledger rows (default 1,000,000) across C chains (10), A assets (50, the native coins among
them) and D days (400) into a fresh database (SQLite in a temporary directory; and PostgreSQL in a private
schema, dropped at the end, when TEST_POSTGRES_URL is set), in batches (executemany on SQLite, COPY on
PostgreSQL). The rows are cases' steps as the engine books them: a quote, sometimes an acceptance, for most
cases a charge, the network cost charged and one or two gas receipts in the native coin, now and then a
waiver, a fee refund or a compensation.

Then, in the same database, it times ``services.fee_report.fee_report`` over the whole period grouped by
chain and asset (R runs) and the bare SQL aggregate of the same rows (R runs): on SQLite
``SELECT chain, asset, kind, count(*), total(amount) ... GROUP BY chain, asset, kind`` (``total`` adds the
text amounts as floats: fast and wrong, the floor), on PostgreSQL ``SUM(amount)`` over NUMERIC(78,0). The
report's money is checked against the exact sums the generator kept. Prints one line:

    bench fee-report: <N> rows, ratio <x> vs the bare SQL aggregate (PostgreSQL), ratio <y> (SQLite)

(ratios of the median times; on SQLite the floor is the faster of the aggregate as SQLite plans it, through the
``booked_at`` index, and a plain scan; "PostgreSQL skipped" without TEST_POSTGRES_URL). The open quotes
(``fee_open_quotes``) of the cases left without a charge are loaded as the engine keeps them; the database has no
reconciliation findings, so that join reads an empty table here.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import Engine, text
from sqlmodel import Session

from bench.args import positive_int
from bench.terminal import BenchError, console, progress
from services.fee_report import fee_report
from store import fee_ledger
from store.db import make_engine, private_schema
from store.fee_ledger import AMOUNT_LIMBS, USD_LIMBS, split_limbs
from store.schema import init_db

NAME = "fee_report"
LINE = "bench fee-report"
BATCH = 20_000
START = datetime(2025, 1, 1, tzinfo=UTC)
COLUMNS = (
    "idempotency_key",
    "case_id",
    "user_id",
    "kind",
    "chain",
    "asset",
    "decimals",
    "amount",
    "amount_l0",
    "amount_l1",
    "amount_l2",
    "amount_hi",
    "usd_micros",
    "usd_l0",
    "usd_l1",
    "usd_hi",
    "price_usd",
    "pattern",
    "route",
    "resolution_s",
    "booked_at",
)
PATTERNS = ("WRONG_NETWORK_SAME_KEY", "UNLISTED_TOKEN", "BELOW_MINIMUM", "MISSING_OR_WRONG_MEMO", "DEPRECATED_ADDRESS")

Row = tuple[Any, ...]
Key = tuple[str, str, str]
"""(chain, asset, kind)"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m bench {NAME}", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=positive_int, default=1_000_000, help="fee_ledger rows (default 1000000)")
    parser.add_argument("--repeat", type=positive_int, default=5, help="timed runs of each query (default 5)")
    parser.add_argument("--chains", type=positive_int, default=10, help="chains (default 10)")
    parser.add_argument("--assets", type=positive_int, default=50, help="assets, native coins included (default 50)")
    parser.add_argument("--days", type=positive_int, default=400, help="days the rows spread over (default 400)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    return parser


@dataclass(frozen=True)
class Asset:
    chain: str
    symbol: str
    decimals: int
    price_micros: int
    native: str


@dataclass
class Expected:
    """Exact sums of what was generated, per (chain, asset, kind)."""

    amount: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    rows: dict[Key, int] = field(default_factory=lambda: defaultdict(int))


def make_assets(chains: int, assets: int) -> list[Asset]:
    """``assets`` assets over ``chains`` chains: each chain's native coin, then tokens round-robin."""
    if assets < chains:
        raise BenchError(f"--assets ({assets}) must be at least --chains ({chains}): every chain has a native coin")
    names = [f"chain{i}" for i in range(chains)]
    out = [Asset(c, f"NAT{i}", 18, 500_000_000 + i * 1_000_000, f"NAT{i}") for i, c in enumerate(names)]
    for j in range(assets - chains):
        i = j % chains
        out.append(Asset(names[i], f"TOK{j}", 6 if j % 3 == 0 else 18, 1_000_000 + j, f"NAT{i}"))
    return out


def _usd_micros(amount: int, asset: Asset) -> int:
    """amount × price in micro-dollars, rounded half-even (as the ledger books it)."""
    q, r = divmod(amount * asset.price_micros, 10**asset.decimals)
    twice = 2 * r
    if twice > 10**asset.decimals or (twice == 10**asset.decimals and q % 2):
        q += 1
    return q


def generate(rows: int, chains: int, assets: int, days: int, seed: int) -> Iterator[tuple[Row, ...]]:
    """Batches of rows in COLUMNS order (booked_at an aware datetime), ``rows`` in all; fills EXPECTED."""
    rng = random.Random(seed)
    universe = make_assets(chains, assets)
    tokens = [a for a in universe if not a.symbol.startswith("NAT")] or universe
    natives = {a.symbol: a for a in universe if a.symbol.startswith("NAT")}
    span = days * 86400
    made = 0
    case = 0
    batch: list[Row] = []
    while made < rows:
        case += 1
        asset = rng.choice(tokens)
        case_id = f"c{case}"
        pattern = rng.choice(PATTERNS)
        route = "manual" if rng.random() < 0.2 else "automatic"
        at = START + timedelta(seconds=rng.randrange(span))
        steps: list[tuple[str, Asset]] = [("quoted", asset)]
        if rng.random() < 0.2:
            steps.append(("accepted", asset))
        charged = rng.random() < 0.85
        resolution = rng.randrange(60, 30 * 86400)
        if charged:
            steps += [("charged", asset), ("gas_charged", asset), ("recovered", asset)]
            steps += [("gas_spent", natives[asset.native])] * rng.choice((1, 1, 2))
            for kind, chance in (("waived", 0.03), ("refunded", 0.02), ("compensated", 0.01)):
                if rng.random() < chance:
                    steps.append((kind, asset))
        for n, (kind, of) in enumerate(steps):
            if made >= rows:
                break
            amount = rng.randrange(1, 10 ** (of.decimals + 4))
            limbs, hi = split_limbs(amount, AMOUNT_LIMBS)
            micros = _usd_micros(amount, of)
            usd_limbs, usd_hi = split_limbs(micros, USD_LIMBS)
            batch.append(
                (
                    f"{case_id}:{kind}:{n}",
                    case_id,
                    "bench",
                    kind,
                    of.chain,
                    of.symbol,
                    of.decimals,
                    amount,
                    *limbs,
                    hi,
                    micros,
                    *usd_limbs,
                    usd_hi,
                    str(Decimal(of.price_micros) / 10**6),
                    pattern,
                    route,
                    resolution if kind == "charged" else None,
                    at + timedelta(seconds=n),
                )
            )
            if kind == "quoted" and not charged:
                OPEN_QUOTES.append(batch[-1])
            EXPECTED.amount[(of.chain, of.symbol, kind)] += amount
            EXPECTED.rows[(of.chain, of.symbol, kind)] += 1
            made += 1
            if len(batch) == BATCH:
                yield tuple(batch)
                batch = []
    if batch:
        yield tuple(batch)


EXPECTED = Expected()
OPEN_QUOTES: list[Row] = []
"""The quote rows of the generated cases without a charge: ``fee_open_quotes`` as the engine keeps them
(store.fee_ledger.add)."""
OPEN_QUOTE_COLUMNS = ("entry_key", *fee_ledger.OPEN_QUOTE_COLUMNS)
_FROM_LEDGER = {"entry_key": "idempotency_key"}


def open_quote(r: Row) -> Row:
    """A generated ledger row (COLUMNS order) as its open-quote row (OPEN_QUOTE_COLUMNS order)."""
    return tuple(r[COLUMNS.index(_FROM_LEDGER.get(name, name))] for name in OPEN_QUOTE_COLUMNS)


def sqlite_values(values: Row) -> Row:
    """Amounts as text, datetimes as naive UTC text: as the engine's column types write them on SQLite."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, datetime):
            value = value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        elif isinstance(value, int) and value >= 2**63:
            value = str(value)
        out.append(value)
    return tuple(out)


def load_sqlite(engine: Engine, batches: Iterator[tuple[Row, ...]], advance: Callable[[int], None]) -> None:
    sql = f"INSERT INTO fee_ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("BEGIN")
        for batch in batches:
            cursor.executemany(
                sql,
                [
                    (
                        *r[:7],
                        str(r[7]),
                        *r[8:11],
                        None if r[11] is None else str(r[11]),
                        str(r[12]),
                        r[13],
                        r[14],
                        None if r[15] is None else str(r[15]),
                        *r[16:20],
                        r[20].astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds"),
                    )
                    for r in batch
                ],
            )
            advance(len(batch))
        cursor.executemany(
            f"INSERT INTO fee_open_quotes ({', '.join(OPEN_QUOTE_COLUMNS)}) "
            f"VALUES ({', '.join('?' * len(OPEN_QUOTE_COLUMNS))})",
            [sqlite_values(open_quote(q)) for q in OPEN_QUOTES],
        )
        cursor.execute("COMMIT")
        cursor.execute("ANALYZE")
        cursor.close()
    finally:
        raw.close()


def load_postgres(engine: Engine, batches: Iterator[tuple[Row, ...]], advance: Callable[[int], None]) -> None:
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for batch in batches:
            with cursor.copy(f"COPY fee_ledger ({', '.join(COLUMNS)}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for r in batch:
                    copy.write_row(r)
            advance(len(batch))
        columns = ", ".join(OPEN_QUOTE_COLUMNS)
        with cursor.copy(f"COPY fee_open_quotes ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for q in OPEN_QUOTES:
                copy.write_row(open_quote(q))
        raw.commit()
        cursor.close()
    finally:
        raw.close()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE fee_ledger"))
        conn.execute(text("VACUUM ANALYZE fee_open_quotes"))


BARE = {
    "sqlite": "SELECT chain, asset, kind, count(*), total(amount) FROM fee_ledger "
    "WHERE booked_at >= :start AND booked_at < :end GROUP BY chain, asset, kind",
    "postgresql": "SELECT chain, asset, kind, count(*), SUM(amount) FROM fee_ledger "
    "WHERE booked_at >= :start AND booked_at < :end GROUP BY chain, asset, kind",
}


def timed(repeat: int, run: Callable[[], Any]) -> tuple[list[float], Any]:
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
    return times, result


def measure(engine: Engine, args: argparse.Namespace, label: str) -> Decimal:
    """Load the rows, time both queries, check the report; returns the ratio of the median times."""
    EXPECTED.amount.clear()
    EXPECTED.rows.clear()
    OPEN_QUOTES.clear()
    load = load_postgres if engine.dialect.name == "postgresql" else load_sqlite
    with progress(transient=True) as bar:
        task = bar.add_task(f"{label}: loading fee_ledger", total=args.rows)
        load(
            engine, generate(args.rows, args.chains, args.assets, args.days, args.seed), lambda n: bar.advance(task, n)
        )
    start, end = START, START + timedelta(days=args.days + 1)
    bounds = (
        {"start": start.replace(tzinfo=None).isoformat(" "), "end": end.replace(tzinfo=None).isoformat(" ")}
        if engine.dialect.name == "sqlite"
        else {"start": start, "end": end}
    )

    variants = [BARE[engine.dialect.name]]
    if engine.dialect.name == "sqlite":  # SQLite walks the booked_at index for any range: time a plain scan too
        variants.append(variants[0].replace(" booked_at", " +booked_at"))

    def bare_with(sql: str) -> Callable[[], list[Any]]:
        def bare() -> list[Any]:
            with engine.connect() as conn:
                return list(conn.execute(text(sql), bounds))

        return bare

    def report() -> Any:
        with Session(engine) as session:
            return fee_report(session, start=start, end=end, group_by=("chain", "asset"))

    bare_with(variants[0])()  # warm the cache for both
    report_times: list[float] = []
    bare_times: dict[str, list[float]] = {sql: [] for sql in variants}
    rows: list[Any] = []
    result: Any = None
    for _ in range(2):  # interleaved: the machine's noise hits both
        times, result = timed(args.repeat, report)
        report_times += times
        for sql in variants:
            times, rows = timed(args.repeat, bare_with(sql))
            bare_times[sql] += times
    floor = min(bare_times.values(), key=median)
    check(result, rows)
    ratio = Decimal(str(median(report_times))) / Decimal(str(median(floor)))
    for sql, times in bare_times.items():
        console.print(f"{label}: bare {median(times):.3f} s median ({min(times):.3f} best): {sql}")
    console.print(
        f"{label}: report {median(report_times):.3f} s median ({min(report_times):.3f} best), "
        f"ratio {ratio:.2f} vs the faster bare aggregate"
    )
    return ratio


KIND_FIELD = {
    "charged": "fees_charged",
    "gas_charged": "gas_charged",
    "waived": "waived",
    "refunded": "fees_refunded",
    "compensated": "compensated",
    "gas_spent": "gas_spent",
    "recovered": "recovered",
}


def check(report: Any, bare_rows: list[Any]) -> None:
    """The report's money per line equals the generator's exact sums; both queries saw every row."""
    if sum(r[3] for r in bare_rows) != sum(EXPECTED.rows.values()):
        raise BenchError(f"the bare aggregate counted {sum(r[3] for r in bare_rows)} rows")
    for group in report.groups:
        for line in group.lines:
            for kind, name in KIND_FIELD.items():
                want = EXPECTED.amount.get((line.chain, line.asset, kind), 0)
                if getattr(line, name) != want:
                    raise BenchError(f"{line.chain} {line.asset} {name}: report {getattr(line, name)}, rows {want}")
            if line.cases != EXPECTED.rows.get((line.chain, line.asset, "charged"), 0):
                raise BenchError(f"{line.chain} {line.asset}: {line.cases} cases")
            open_quotes = sum(1 for q in OPEN_QUOTES if (q[4], q[5]) == (line.chain, line.asset))
            if line.quoted_not_charged_cases != open_quotes:
                raise BenchError(f"{line.chain} {line.asset}: {line.quoted_not_charged_cases} quoted, not charged")


def sqlite_ratio(args: argparse.Namespace) -> Decimal:
    with tempfile.TemporaryDirectory(prefix="bench-fee-report-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'fees.db'}")
        try:
            init_db(engine)
            return measure(engine, args, "SQLite")
        finally:
            engine.dispose()


def postgres_ratio(args: argparse.Namespace, url: str) -> Decimal:
    with private_schema(url, prefix="bench_fees") as engine:
        init_db(engine)
        return measure(engine, args, "PostgreSQL")


def run(args: argparse.Namespace) -> str:
    url = os.environ.get("TEST_POSTGRES_URL") or None
    pg = "PostgreSQL skipped (set TEST_POSTGRES_URL)"
    if url is not None:
        pg = f"ratio {postgres_ratio(args, url):.2f} vs the bare SQL aggregate (PostgreSQL)"
    lite = sqlite_ratio(args)
    if url is None:
        return f"{LINE}: {args.rows} rows, {pg}, ratio {lite:.2f} vs the bare SQL aggregate (SQLite)"
    return f"{LINE}: {args.rows} rows, {pg}, ratio {lite:.2f} (SQLite)"


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        line = run(args)
    except BenchError as exc:
        print(f"{LINE}: error: {exc}", file=sys.stderr)
        return 1
    print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
