"""``recovery incidents``: platform-fault incidents, whose cases recover without a fee (and with compensation
where declared). See services/incidents.py for how a waiver reaches each case."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.common import CliError, load_settings, one_line_errors, open_engine, parse_when, print_json, require_chain

app = typer.Typer(help="Platform-fault incidents: fees waived, users compensated.", no_args_is_help=True)


def _described(incident: Any) -> dict[str, Any]:
    return {
        "id": incident.id,
        "chain": incident.chain,
        "asset": incident.asset or "(every asset)",
        "from": incident.starts_at.isoformat(),
        "to": incident.ends_at.isoformat(),
        "reason": incident.reason,
        "compensation_usd": incident.compensation_usd,
        "declared_by": incident.declared_by,
        "declared_at": incident.declared_at.isoformat(),
        "closed_at": incident.closed_at.isoformat() if incident.closed_at else None,
        "closed_by": incident.closed_by,
    }


@app.command("declare")
@one_line_errors
def incidents_declare(
    chain: Annotated[str, typer.Option("--chain", help="The deposit chain the incident hit (e.g. bsc).")],
    since: Annotated[str, typer.Option("--from", help="Start of the window, ISO date or datetime (UTC if no zone).")],
    until: Annotated[str, typer.Option("--to", help="End of the window, exclusive, ISO date or datetime.")],
    reason: Annotated[str, typer.Option("--reason", help="What happened, in words the users will read.")],
    declared_by: Annotated[str, typer.Option("--by", help="Who declares it (kept with the incident).")],
    asset: Annotated[str | None, typer.Option("--asset", help="Only deposits of this asset (default: all).")] = None,
    compensation_usd: Annotated[
        str | None, typer.Option("--compensation-usd", help="Compensation per affected case, in USD.")
    ] = None,
) -> None:
    """Declare an incident: every case whose deposit falls in the window has its fee waived (a settled case
    gets its fee paid back), and is compensated when --compensation-usd is given. Prints what it applied."""
    from services.incidents import IncidentRefused, declare

    settings = load_settings()
    require_chain(settings, chain)
    start, end = parse_when(since, "--from"), parse_when(until, "--to")
    assert start is not None and end is not None
    compensation = None
    if compensation_usd is not None:
        try:
            compensation = Decimal(compensation_usd)
        except InvalidOperation:
            example = "expected an amount in USD such as 25.00"
            raise CliError(f"--compensation-usd: {example}, got {compensation_usd!r}") from None
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            incident, applied = declare(
                session,
                chain=chain,
                asset=asset,
                starts_at=start,
                ends_at=end,
                reason=reason,
                compensation_usd=compensation,
                declared_by=declared_by,
            )
    except IncidentRefused as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print_json(
        _described(incident)
        | {
            "cases": applied.cases,
            "fees_paid_back": applied.fees_refunded,
            "compensated_now": applied.compensated,
            "waived_when_they_settle": applied.pending,
        }
    )


@app.command("list")
@one_line_errors
def incidents_list(
    open_only: Annotated[bool, typer.Option("--open", help="Only incidents not closed yet.")] = False,
) -> None:
    """List incidents as JSON, oldest first."""
    from store.incidents import list_incidents

    engine = open_engine(load_settings())
    try:
        with Session(engine) as session:
            print_json([_described(i) for i in list_incidents(session, include_closed=not open_only)])
    finally:
        engine.dispose()


@app.command("close")
@one_line_errors
def incidents_close(
    incident_id: Annotated[int, typer.Argument(help="The incident's id (see `recovery incidents list`).")],
    closed_by: Annotated[str, typer.Option("--by", help="Who closes it.")],
) -> None:
    """Mark an incident handled. Its waivers stand: cases in its window still settle without a fee."""
    from store.incidents import close

    engine = open_engine(load_settings())
    try:
        with Session(engine, expire_on_commit=False) as session:
            incident = close(session, incident_id=incident_id, closed_by=closed_by)
    finally:
        engine.dispose()
    if incident is None:
        raise CliError(f"no incident #{incident_id}: see `recovery incidents list`")
    print_json(_described(incident))
