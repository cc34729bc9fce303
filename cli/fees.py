"""``recovery fees``: what finance sees."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.common import load_settings, one_line_errors, open_engine, parse_when, print_json
from recovery.units import amount_text

app = typer.Typer(help="Fees collected.", no_args_is_help=True)


@app.command("report")
@one_line_errors
def fees_report(
    since: Annotated[str | None, typer.Option(help="From this ISO date/datetime (UTC), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO date/datetime (UTC), exclusive.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Fees and network costs collected, per chain and asset."""
    from rich.console import Console
    from rich.table import Table

    from store.ledger import fee_report

    settings = load_settings()
    start, end = parse_when(since, "--since"), parse_when(until, "--until")
    engine = open_engine(settings)
    try:
        with Session(engine) as session:
            totals = fee_report(session, since=start, until=end)
    finally:
        engine.dispose()

    if as_json:
        print_json(
            [
                {
                    "chain": t.chain,
                    "asset": t.asset,
                    "count": t.count,
                    "fee": str(t.fee),
                    "gas": str(t.gas),
                    "fee_usd": str(t.fee_usd),
                }
                for t in totals
            ]
        )
        return
    if not totals:
        typer.echo("no fees recorded in this period")
        return
    table = Table(title="Recovery fees")
    for column in ("chain", "asset", "cases", "fee", "network cost", "fee (USD at quote)"):
        table.add_column(column, justify="right" if column not in ("chain", "asset") else "left")
    for t in totals:
        d = settings.asset_decimals(t.chain, t.asset)
        table.add_row(t.chain, t.asset, str(t.count), amount_text(t.fee, d), amount_text(t.gas, d), str(t.fee_usd))
    Console().print(table)
