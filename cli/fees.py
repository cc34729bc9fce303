"""``recovery fees``: what finance sees (the fee report over the fee ledger)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlmodel import Session

from cli.common import load_settings, open_engine
from cli.reconcile import reconcile
from recovery.units import duration_text
from services.fee_report import (
    DIMENSIONS,
    FeeReport,
    ReportError,
    fee_report,
    parse_day,
    parse_group_by,
    period,
    to_csv,
)

app = typer.Typer(help="Fees: the finance report over the fee ledger.", no_args_is_help=True)

USD_COLUMNS = ("recovered", "fees_charged", "waived", "fees_refunded", "compensated", "gas_charged", "gas_spent")
USAGE_ERROR = 2
"""Exit status for bad input (as click uses for usage errors); 1 is for failures."""


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"
    HTML = "html"


def _usage_error(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(USAGE_ERROR)


def _print_table(report: FeeReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    title = f"Fees booked from {report.period_from:%Y-%m-%d} until before {report.period_to:%Y-%m-%d} (UTC)"
    if not report.groups:
        console.print(f"{title}: nothing booked in this period")
        return
    groups = Table(title=f"{title}: USD", title_justify="left")
    for name in report.group_by:
        groups.add_column(name)
    for column in ("cases", "recovered", "fees", "waived", "fee refunds", "compensation", "gas charged", "gas spent"):
        groups.add_column(column, justify="right")
    for column in ("quoted, not charged", "auto / manual", "resolution avg / p90", "recon ok/mis/unch/none"):
        groups.add_column(column, justify="right")
    for group in [*report.groups, report.total] if report.group_by else [report.total]:
        is_total = group is report.total
        groups.add_row(
            *(
                ["total"] + [""] * (len(report.group_by) - 1)
                if is_total
                else [group.key[d] or "-" for d in report.group_by]
            ),
            str(group.cases),
            *(
                f"{getattr(group, f'{m}_usd'):,.2f}"
                for m in (
                    "recovered",
                    "fees_charged",
                    "waived",
                    "fees_refunded",
                    "compensated",
                    "gas_charged",
                    "gas_spent",
                )
            ),
            f"{group.quoted_not_charged_cases} ({group.quoted_not_charged_usd:,.2f})",
            f"{group.automatic_share_pct or 0}% / {group.manual_share_pct or 0}%",
            f"{duration_text(group.resolution_avg_s)} / {duration_text(group.resolution_p90_s)}",
            f"{group.recon_ok}/{group.recon_mismatch}/{group.recon_uncheckable}/{group.recon_unchecked}",
            style="bold" if is_total else None,
        )
    console.print(groups)

    lines = Table(title="Per asset, in the asset's units (never added across assets)", title_justify="left")
    keys = [d for d in report.group_by if d not in ("chain", "asset")]
    for name in [*keys, "chain", "asset"]:
        lines.add_column(name)
    for column in ("cases", "recovered", "fees", "waived", "fee refunds", "compensation", "gas charged", "gas spent"):
        lines.add_column(column, justify="right")
    lines.add_column("quoted, not charged", justify="right")
    for group in report.groups:
        for line in group.lines:
            lines.add_row(
                *(group.key[d] or "-" for d in keys),
                line.chain,
                line.asset,
                str(line.cases),
                *(
                    line.display(m)
                    for m in (
                        "recovered",
                        "fees_charged",
                        "waived",
                        "fees_refunded",
                        "compensated",
                        "gas_charged",
                        "gas_spent",
                        "quoted_not_charged",
                    )
                ),
            )
    console.print(lines)
    if report.total.usd_unpriced_rows:
        console.print(
            f"{report.total.usd_unpriced_rows} ledger rows had no price: their USD is missing from the USD totals"
        )


@app.command("report")
def fees_report(
    from_day: Annotated[
        str, typer.Option("--from", help="First day, inclusive (YYYY-MM-DD, UTC): rows booked from its midnight on.")
    ],
    to_day: Annotated[
        str,
        typer.Option("--to", help="Day after the last, exclusive (YYYY-MM-DD, UTC): rows booked before its midnight."),
    ],
    group_by: Annotated[
        str,
        typer.Option(
            "--group-by",
            help=f"Comma-separated, any of: {', '.join(DIMENSIONS)} (weeks are ISO weeks, named by their Monday). "
            "Empty: the whole period in one group.",
        ),
    ] = "",
    output: Annotated[
        Format,
        typer.Option(
            "--format",
            help="table (rich), csv (one row per group and asset), json (groups with their per-asset lines), "
            "or html (one self-contained file with charts; needs --out or a redirect).",
        ),
    ] = Format.TABLE,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the report to this file instead of standard output.")
    ] = None,
) -> None:
    """The fee report of [--from, --to): per group and per asset, settled cases, recovered, fees charged,
    waived and refunded, compensation, gas charged vs gas spent (in the native coin), quoted but never charged,
    the automatic and manual share, time to resolution (average and p90, from the case's creation to its charge)
    and reconciliation status. Amounts are exact base units (csv/json) or the asset's units (table), with USD
    values; docs/finance.md explains every column."""
    try:
        start, end = period(parse_day(from_day, "--from"), parse_day(to_day, "--to"))
        dimensions = parse_group_by(group_by)
    except ReportError as exc:
        raise _usage_error(str(exc).replace("to (", "--to (", 1).replace("from (", "--from (", 1)) from None
    if output is Format.TABLE and out is not None:
        raise _usage_error("--out needs --format csv, json or html (the table is for the terminal)")
    if output is Format.HTML and out is None and sys.stdout.isatty():
        raise _usage_error("--format html writes a file of several MB: add --out report.html")
    try:
        engine = open_engine(load_settings())
        try:
            with Session(engine) as session:
                if output is Format.HTML:
                    from services.fee_report_html import html_report

                    text = html_report(
                        session, start=start, end=end, group_by=dimensions, generated_at=datetime.now(UTC)
                    )
                else:
                    report = fee_report(session, start=start, end=end, group_by=dimensions)
        finally:
            engine.dispose()
    except Exception as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(1) from None

    if output is Format.TABLE:
        _print_table(report)
        return
    if output is Format.CSV:
        text = to_csv(report)
    elif output is Format.JSON:
        text = report.model_dump_json(indent=2) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out} ({len(text.encode()):,} bytes)", err=True)


app.command("reconcile")(reconcile)
