"""A fee ledger for the fee report's tests, and the report's figures worked out from it in plain Python.

Seeded random cases on three chains (6- and 18-decimal assets, native coins for gas), three patterns and days
across weeks and months, with amounts from a few units to 2**256 - 1 (USD values beyond 10**24 micro-dollars
too), missing prices, a row without a route, credits and refunds, reconciliation findings and case handling.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from recovery.models import CaseStatus
from store import fee_ledger
from store.cases import Case, CaseHandlingRow
from store.fee_ledger import CaseRef, FeeKind, FeeLedgerEntry, Route, entry
from store.ledger import LedgerCredit, RefundEntry
from store.reconciliation import CaseReconciliation, ReconStatus

HUGE = 2**256 - 1
START = datetime(2026, 10, 15, tzinfo=UTC)
END = datetime(2026, 12, 1, tzinfo=UTC)

CHAINS: dict[str, tuple[tuple[str, int, Decimal | None], str]] = {
    "ethereum": (("USDT", 6, Decimal("1.0002")), "ETH"),
    "bsc": (("USDT", 18, Decimal("0.9998")), "BNB"),
    "polygon": (("polygon:0xc0ffee", 18, None), "POL"),
}
"""chain: ((deposit asset, decimals, price or None), native coin)"""
NATIVE_PRICE = {"ETH": Decimal("3150.5"), "BNB": Decimal("612.25"), "POL": None}
PATTERNS = ("WRONG_NETWORK_SAME_KEY", "UNLISTED_TOKEN", "BELOW_MINIMUM")
DAYS = [
    datetime(2026, 10, 1, 9, tzinfo=UTC),  # before the period
    datetime(2026, 10, 30, 23, 59, 59, 999999, tzinfo=UTC),  # a Friday
    datetime(2026, 11, 1, 0, 0, tzinfo=UTC),  # a Sunday, first of the month
    datetime(2026, 11, 2, 12, 30, tzinfo=UTC),  # the Monday after
    datetime(2026, 11, 15, 6, tzinfo=UTC),
    datetime(2026, 11, 30, 23, 0, tzinfo=UTC),
    datetime(2026, 12, 1, 0, 0, tzinfo=UTC),  # the end: excluded
]


@dataclass
class Ledger:
    rows: list[FeeLedgerEntry] = field(default_factory=list)
    cases: dict[str, Case] = field(default_factory=dict)
    credits: dict[str, int] = field(default_factory=dict)
    refunds: dict[str, int] = field(default_factory=dict)
    recon: dict[str, ReconStatus] = field(default_factory=dict)
    handled: set[str] = field(default_factory=set)

    def add(self, row: FeeLedgerEntry) -> FeeLedgerEntry:
        row.id = len(self.rows) + 1
        self.rows.append(row)
        return row


def _amount(rng: random.Random, decimals: int) -> int:
    pick = rng.random()
    if pick < 0.15:
        return HUGE - rng.randrange(1000)
    if pick < 0.45:
        return 2**64 + rng.randrange(10**30)
    return rng.randrange(1, 10 ** (decimals + 4))


def build(seed: int = 7, cases: int = 48) -> Ledger:
    rng = random.Random(seed)
    ledger = Ledger()
    for i in range(cases):
        chain = rng.choice(list(CHAINS))
        (asset, decimals, price), native = CHAINS[chain]
        case_id = f"case-{i:03d}"
        route = rng.choice([Route.AUTOMATIC, Route.MANUAL, Route.MANUAL, None])
        ref = CaseRef(case_id=case_id, user_id="u", chain=chain, pattern=rng.choice(PATTERNS), route=route)
        quoted_at = rng.choice(DAYS)
        settled_at = quoted_at + timedelta(seconds=rng.randrange(60, 3 * 86400))
        settled = rng.random() < 0.7
        ledger.cases[case_id] = Case(
            case_id=case_id,
            user_id="u",
            chain=chain,
            tx_hash=f"0x{i:064x}",
            status=CaseStatus.COMPLETED if settled else CaseStatus.AWAITING_USER,
            created_at=quoted_at - timedelta(seconds=rng.randrange(1, 7200)),
            updated_at=settled_at,
        )
        if route is Route.MANUAL or (route is None and rng.random() < 0.5):
            ledger.handled.add(case_id)

        def add(
            kind: FeeKind,
            step: str,
            at: datetime,
            *,
            native_coin: bool = False,
            amount: int | None = None,
            on: tuple[CaseRef, str] = (ref, chain),
        ) -> FeeLedgerEntry:
            ref, chain = on
            (asset, decimals, price), native = CHAINS[chain]
            return ledger.add(
                entry(
                    ref,
                    kind=kind,
                    key=f"{ref.case_id}:{step}",
                    asset=native if native_coin else asset,
                    decimals=18 if native_coin else decimals,
                    amount=_amount(rng, decimals) if amount is None else amount,
                    price_usd=NATIVE_PRICE[native] if native_coin else price,
                    booked_at=at,
                )
            )

        add(FeeKind.QUOTED, "quoted:1", quoted_at)
        if rng.random() < 0.4:  # a re-quote, sometimes after the period
            add(FeeKind.QUOTED, "quoted:2", quoted_at + timedelta(days=rng.choice([0, 1, 20])))
        if rng.random() < 0.3:
            add(FeeKind.ACCEPTED, "accepted", quoted_at)
        if not settled:
            continue
        charged = add(FeeKind.CHARGED, "charged", settled_at)
        charged.resolution_s = (settled_at - ledger.cases[case_id].created_at) // timedelta(seconds=1)
        gas = add(FeeKind.GAS_CHARGED, "gas_charged", settled_at)
        for n in range(rng.randrange(3)):
            add(FeeKind.GAS_SPENT, f"gas_spent:{n}", settled_at, native_coin=True)
        for kind in (FeeKind.WAIVED, FeeKind.REFUNDED, FeeKind.COMPENSATED):
            if rng.random() < 0.2:
                add(kind, kind.value, settled_at + timedelta(days=rng.choice([0, 3])))
        credit = _amount(rng, decimals)
        (ledger.refunds if rng.random() < 0.2 else ledger.credits)[case_id] = credit
        add(FeeKind.RECOVERED, "recovered", settled_at, amount=credit + charged.amount + gas.amount)
        status = rng.choice([*ReconStatus, None])
        if status is not None:
            ledger.recon[case_id] = status
    return ledger


def store(session: Session, ledger: Ledger) -> None:
    session.add_all(ledger.cases.values())
    for case_id in ledger.handled:
        session.add(CaseHandlingRow(case_id=case_id, tier="engineering"))
    for case_id, amount in ledger.credits.items():
        session.add(
            LedgerCredit(idempotency_key=f"credit:{case_id}", case_id=case_id, user_id="u", asset="x", amount=amount)
        )
    for case_id, amount in ledger.refunds.items():
        session.add(
            RefundEntry(
                idempotency_key=f"refund:{case_id}",
                case_id=case_id,
                user_id="u",
                chain="x",
                asset="x",
                amount=amount,
                to_address="0xsender",
                tx_hash="0xrefund",
            )
        )
    for case_id, status in ledger.recon.items():
        session.add(CaseReconciliation(case_id=case_id, run_id=1, status=status))
    session.commit()
    for row in ledger.rows:  # one by one, in id order, as the engine books them (open quotes kept with them)
        fee_ledger.add(session, row)
        session.flush()
    session.commit()


# --- the figures, worked out row by row ------------------------------------------------------------------


def dimension(row: FeeLedgerEntry, dim: str) -> str | None:
    at = row.booked_at.astimezone(UTC)
    if dim == "day":
        return at.date().isoformat()
    if dim == "week":
        return (at.date() - timedelta(days=at.weekday())).isoformat()
    if dim == "month":
        return f"{at:%Y-%m}"
    value: str | None = getattr(row, dim)
    return value


def in_period(row: FeeLedgerEntry) -> bool:
    return START <= row.booked_at < END


MEASURE_OF = {
    FeeKind.CHARGED: "fees_charged",
    FeeKind.GAS_CHARGED: "gas_charged",
    FeeKind.WAIVED: "waived",
    FeeKind.REFUNDED: "fees_refunded",
    FeeKind.COMPENSATED: "compensated",
    FeeKind.GAS_SPENT: "gas_spent",
    FeeKind.RECOVERED: "recovered",
}


def expected_lines(ledger: Ledger, group_by: Sequence[str]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """{(group key..., chain, asset): {figure: value}} for the money and case counts of every line."""
    lines: dict[tuple[Any, ...], dict[str, Any]] = defaultdict(lambda: defaultdict(int))

    def key(row: FeeLedgerEntry) -> tuple[Any, ...]:
        return (*(dimension(row, d) for d in group_by), row.chain, row.asset)

    by_case: dict[str, list[FeeLedgerEntry]] = defaultdict(list)
    for row in ledger.rows:
        by_case[row.case_id].append(row)
    for row in ledger.rows:
        if not in_period(row) or row.kind not in MEASURE_OF:
            continue
        line = lines[key(row)]
        if row.usd_micros is None and row.kind in MEASURE_OF:
            line["usd_unpriced_rows"] += 1
        if row.kind in MEASURE_OF:
            measure = MEASURE_OF[row.kind]
            line[measure] += row.amount
            line[f"{measure}_usd_micros"] += row.usd_micros or 0
        if row.kind is FeeKind.CHARGED:
            line["cases"] += 1
            opened = ledger.cases[row.case_id].created_at
            line.setdefault("durations", []).append((row.booked_at - opened) // timedelta(seconds=1))
            line["manual" if row.route is Route.MANUAL else "automatic"] += 1  # no route: automatic
            status = ledger.recon.get(row.case_id)
            line[f"recon_{status.value if status else 'unchecked'}"] += 1
    for rows in by_case.values():
        quotes = [r for r in rows if r.kind is FeeKind.QUOTED]
        latest = max(quotes, key=lambda r: r.id or 0)
        if in_period(latest) and not any(r.kind is FeeKind.CHARGED for r in rows):
            line = lines[key(latest)]
            line["quoted_not_charged"] += latest.amount
            line["quoted_not_charged_usd_micros"] += latest.usd_micros or 0
            line["quoted_not_charged_cases"] += 1
            if latest.usd_micros is None:
                line["usd_unpriced_rows"] += 1
    return {k: dict(v) for k, v in lines.items()}
