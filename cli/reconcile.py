"""``recovery fees reconcile``: what moved on chain against what the fee ledger booked, per completed case.

Registered in ``cli/fees.py`` (``app.command("reconcile")(reconcile)``). Exit status: 0 when nothing disagrees,
1 when a case does not reconcile (or the run could not be done), 2 on bad input.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, time
from typing import TYPE_CHECKING, Annotated

import typer

from cli.common import load_settings, one_line_errors, open_engine
from recovery.units import amount_text

if TYPE_CHECKING:
    from services.reconciliation import RunReport

EXIT_MISMATCH = 1
EXIT_BAD_INPUT = 2


class BadInput(Exception):
    """Input the operator must correct (exit 2)."""


def parse_bound(value: str | None, option: str) -> datetime | None:
    """An ISO date (midnight UTC) or datetime (UTC when it names no zone)."""
    if value is None:
        return None
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        when = datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"{option}: expected a date such as 2026-01-31 or an ISO datetime such as 2026-01-31T12:00:00+00:00, "
            f"got {value!r}"
        ) from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def period(since: str | None, until: str | None) -> tuple[datetime | None, datetime | None]:
    start, end = parse_bound(since, "--from"), parse_bound(until, "--to")
    if start is not None and end is not None and end <= start:
        raise BadInput(
            f"--to ({end:%Y-%m-%d %H:%M %Z}) must come after --from ({start:%Y-%m-%d %H:%M %Z}): --to is exclusive, "
            f"so one day is --from {start:%Y-%m-%d} --to {date.fromordinal(start.date().toordinal() + 1)}"
        )
    return start, end


def report_lines(report: RunReport, *, show_all: bool = False) -> list[str]:
    """One line per mismatch (and per uncheckable case; per case with ``show_all``), then the summary."""
    lines: list[str] = []
    for case in report.cases:
        if case.status.value == "ok" and not show_all:
            continue
        lines.append(f"{case.status.value.upper()} {case.case_id} ({case.chain}): {case.detail}")
    span = ""
    if report.since is not None or report.until is not None:
        since = f"{report.since:%Y-%m-%d %H:%M %Z}" if report.since else "the start"
        until = f"{report.until:%Y-%m-%d %H:%M %Z}" if report.until else "now"
        span = f" charged from {since} until before {until}"
    lines.append(
        f"reconciled {len(report.cases)} completed case(s){span} (run {report.run_id}): {report.ok} ok, "
        f"{len(report.mismatches)} mismatch(es), {len(report.uncheckable)} uncheckable"
    )
    charged: dict[tuple[str, str, int], int] = defaultdict(int)
    spent: dict[tuple[str, str, int], int] = defaultdict(int)
    counted: dict[tuple[str, str, int], int] = defaultdict(int)
    for case in report.cases:
        if case.gas_charged_native is None or case.gas_spent_native is None:
            continue
        key = (case.chain, case.native_symbol, case.native_decimals)
        charged[key] += case.gas_charged_native
        spent[key] += case.gas_spent_native
        counted[key] += 1
    for key in sorted(counted):
        chain, symbol, decimals = key
        lines.append(
            f"network cost on {chain} ({counted[key]} case(s)): charged {amount_text(charged[key], decimals, symbol)}, "
            f"spent {amount_text(spent[key], decimals, symbol)} "
            f"(charged - spent = {charged[key] - spent[key]:+d} base units)"
        )
    return lines


@one_line_errors
def reconcile(
    since: Annotated[
        str | None,
        typer.Option("--from", help="Cases whose fee was charged from this ISO date/datetime (UTC), inclusive."),
    ] = None,
    until: Annotated[str | None, typer.Option("--to", help="Up to this ISO date/datetime (UTC), exclusive.")] = None,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also print the cases that reconcile, with their network cost.")
    ] = False,
) -> None:
    """Check every COMPLETED case's fee and gas against the chain: recovered = credited (or refunded) + fee + gas.

    Prints one line per mismatch and a summary; the findings are kept in case_reconciliation. Exits 1 when a case
    does not reconcile, 0 otherwise, 2 on bad input."""
    import asyncio

    from chains.signer import HDSigner
    from services.reconciliation import Reconciler

    try:
        start, end = period(since, until)
    except BadInput as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    settings = load_settings()
    engine = open_engine(settings)
    try:
        reconciler = Reconciler(settings=settings, engine=engine, signer=HDSigner.from_settings(settings))
        report = asyncio.run(reconciler.run(since=start, until=end, trigger="cli"))
    finally:
        engine.dispose()
    for line in report_lines(report, show_all=show_all):
        typer.echo(line)
    if report.mismatches:
        raise typer.Exit(EXIT_MISMATCH)
