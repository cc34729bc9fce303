"""``recovery support``: figures for the support team (cases, speed, service levels, satisfaction)."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime, time
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer
from sqlmodel import Session

from cli.common import CliError, load_settings, one_line_errors, open_engine, print_json
from recovery.units import duration_text
from services.support_metrics import SupportMetrics, support_metrics

app = typer.Typer(
    help="Support figures: cases handled, how fast, service levels and users' ratings.", no_args_is_help=True
)


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise CliError(f"{option}: expected a date as YYYY-MM-DD, such as 2026-11-01, got {value!r}") from None


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CliError(
            f"--timezone: unknown time zone {name!r}; use an IANA name such as UTC or Europe/Berlin"
        ) from None


def period(from_day: str, to_day: str, timezone: str) -> tuple[datetime, datetime]:
    """Midnight of ``from_day`` (inclusive) to midnight of ``to_day`` (exclusive) in ``timezone``."""
    zone = _zone(timezone)
    start, end = _day(from_day, "--from"), _day(to_day, "--to")
    if end <= start:
        raise CliError(
            f"--to ({end}) must come after --from ({start}): --to is exclusive, "
            f"so one day is --from {start} --to {date.fromordinal(start.toordinal() + 1)}"
        )
    return datetime.combine(start, time(), zone), datetime.combine(end, time(), zone)


def _table(metrics: SupportMetrics) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"Cases opened from {metrics.period_from:%Y-%m-%d %H:%M %Z} until before {metrics.period_to:%Y-%m-%d}"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.rows():
        if name.startswith("period_"):
            continue
        if name.endswith("_s"):
            table.add_row(name.removesuffix("_s"), duration_text(value))
        else:
            table.add_row(name, value or "-")
    Console().print(table)


def _csv(metrics: SupportMetrics) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["metric", "value"])
    writer.writerows(metrics.rows())
    return out.getvalue()


@app.command("metrics")
@one_line_errors
def metrics(
    from_day: Annotated[
        str,
        typer.Option("--from", help="First day, inclusive (YYYY-MM-DD): cases opened from its midnight on."),
    ],
    to_day: Annotated[
        str, typer.Option("--to", help="Day after the last, exclusive (YYYY-MM-DD): cases opened before its midnight.")
    ],
    output: Annotated[Format, typer.Option("--format", help="table (rich), json or csv (metric,value rows).")] = (
        Format.TABLE
    ),
    timezone: Annotated[str, typer.Option(help="Time zone of the days' midnights (IANA name).")] = "UTC",
) -> None:
    """Figures of the cases opened in [--from, --to): opened and closed, automatic vs manual share, time to
    the first engineer action and to resolution (p50, p90, nearest rank), SLA breaches, escalations by tier,
    four-eyes cases, CSAT (mean rating, share of 4-5) and feedback rate (ratings per closed case). Durations
    are whole seconds in JSON and CSV, percentages have one decimal."""
    start, end = period(from_day, to_day, timezone)
    engine = open_engine(load_settings())
    try:
        with Session(engine) as session:
            figures = support_metrics(session, start=start, end=end)
    finally:
        engine.dispose()
    if output is Format.JSON:
        print_json(figures.model_dump(mode="json"))
    elif output is Format.CSV:
        typer.echo(_csv(figures), nl=False)
    else:
        _table(figures)
