"""``python -m devstack.fee_report_screenshot``: the finance guide's screenshot (docs/img/fee-report.png) of the
HTML fee report, from a demo fee ledger in a temporary SQLite database, opened offline in headless Chromium
(``devstack/fee_report_page.mjs``: npm ``playwright-core`` driving ``/usr/bin/chromium``)."""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from sqlmodel import Session

from recovery.settings import ROOT
from services.fee_report_html import html_report
from store.db import make_engine
from store.fee_ledger import CaseRef, FeeKind, Route, entry
from store.schema import init_db

CHROMIUM = Path("/usr/bin/chromium")
PAGE_SCRIPT = Path(__file__).with_name("fee_report_page.mjs")
DEFAULT_OUT = ROOT / "docs" / "img" / "fee-report.png"
START = datetime(2026, 11, 2, tzinfo=UTC)
DAYS = 14
ASSETS = {"ethereum": ("USDT", 6, "ETH", Decimal("3150")), "bsc": ("USDT", 18, "BNB", Decimal("610"))}
PATTERNS = {
    "WRONG_NETWORK_SAME_KEY": Decimal("0.05"),
    "UNLISTED_TOKEN": Decimal("0.04"),
    "BELOW_MINIMUM": Decimal("0.02"),
    "CONTRACT_RECIPIENT": Decimal("0.10"),
}


def demo_rows(seed: int = 3, cases: int = 160) -> list[object]:
    """Two weeks of plausible cases on ethereum and bsc: quotes, charges, gas, a few waivers and refunds."""
    rng = random.Random(seed)
    rows: list[object] = []
    for i in range(cases):
        chain = rng.choice(list(ASSETS))
        pattern = rng.choice(list(PATTERNS))
        route = Route.MANUAL if pattern == "CONTRACT_RECIPIENT" or rng.random() < 0.15 else Route.AUTOMATIC
        ref = CaseRef(case_id=f"demo-{i}", user_id="demo", chain=chain, pattern=pattern, route=route)
        at = START + timedelta(seconds=rng.randrange(DAYS * 86400))
        deposit = Decimal(rng.randrange(150, 40_000))
        fee = max(Decimal(10), min(Decimal(500), deposit * PATTERNS[pattern])).quantize(Decimal("0.01"))

        def add(
            kind: FeeKind,
            usd: Decimal,
            *,
            when: datetime,
            native_coin: bool = False,
            on: CaseRef = ref,
            coins: tuple[str, int, str, Decimal] = ASSETS[chain],
        ) -> None:
            token, token_decimals, native_symbol, native_usd = coins
            coin, d, price = (native_symbol, 18, native_usd) if native_coin else (token, token_decimals, Decimal(1))
            amount = int(usd / price * 10**d)
            key = f"{on.case_id}:{kind}:{len(rows)}"
            rows.append(
                entry(on, kind=kind, key=key, asset=coin, decimals=d, amount=amount, price_usd=price, booked_at=when)
            )

        add(FeeKind.QUOTED, fee, when=at)
        if rng.random() < 0.12:
            continue  # quoted, never charged (declined or still waiting)
        settled = at + timedelta(minutes=rng.randrange(2, 60 * (48 if route is Route.MANUAL else 1)))
        waived = rng.random() < 0.06
        add(FeeKind.CHARGED, Decimal(0) if waived else fee, when=settled)
        if waived:
            add(FeeKind.WAIVED, fee, when=settled)
        gas_usd = Decimal(rng.randrange(30, 900)) / (10 if chain == "bsc" else 1) / 10
        add(FeeKind.GAS_CHARGED, gas_usd, when=settled)
        add(FeeKind.GAS_SPENT, gas_usd * Decimal(rng.randrange(80, 125)) / 100, when=settled, native_coin=True)
        if rng.random() < 0.03:
            add(FeeKind.REFUNDED, fee, when=settled + timedelta(days=2))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.fee_report_screenshot", description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"the PNG (default {DEFAULT_OUT})")
    parser.add_argument("--html", type=Path, default=None, help="also keep the HTML report here")
    args = parser.parse_args(argv)
    if not CHROMIUM.exists():
        print(
            "error: /usr/bin/chromium is absent: apt-get install -y --no-install-recommends chromium", file=sys.stderr
        )
        return 1
    with tempfile.TemporaryDirectory(prefix="fee-report-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'demo.db'}")
        try:
            init_db(engine)
            with Session(engine) as session:
                for row in demo_rows():
                    session.add(row)
                session.commit()
                html = html_report(
                    session,
                    start=START,
                    end=START + timedelta(days=DAYS),
                    group_by=("chain", "asset"),
                    generated_at=START + timedelta(days=DAYS, hours=8),
                )
        finally:
            engine.dispose()
        page = Path(tmp) / "fee-report.html"
        page.write_text(html, encoding="utf-8")
        if args.html is not None:
            args.html.write_text(html, encoding="utf-8")
        args.out.parent.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            ["node", str(PAGE_SCRIPT), str(page), str(args.out)], cwd=ROOT, capture_output=True, text=True, check=False
        )
    if done.returncode != 0:
        print(f"error: the browser failed: {done.stderr.strip()}", file=sys.stderr)
        return 1
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    if seen["errors"] or seen["requests"] or seen["rendered"] != seen["charts"]:
        print(f"error: the page did not render cleanly: {seen}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({seen['rendered']} charts, {seen['tables']} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
