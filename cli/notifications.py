"""``recovery notifications``: the outbox of webhooks to the exchange's notification service (one per timeline
event of a case): what is pending, what was given up, and sending it again. See docs/notifications.md."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import typer
from sqlmodel import Session

from cli.common import CliError, load_settings, one_line_errors, open_engine, print_json

app = typer.Typer(
    help="Notification webhooks of case changes: list them, send the undelivered ones again.", no_args_is_help=True
)


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat(timespec="seconds")


def _described(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "case_id": row.case_id,
        "seq": row.seq,
        "type": row.event_type,
        "state": row.state,
        "webhook_id": row.webhook_id,
        "attempts": row.attempts,
        "next_attempt_at": _when(row.next_attempt_at),
        "last_error": row.last_error,
        "created_at": _when(row.created_at),
        "delivered_at": _when(row.delivered_at),
        "dead_at": _when(row.dead_at),
    }


def _table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = ["id", "case_id", "seq", "type", "state", "attempts", "next_attempt_at", "last_error", "created_at"]
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    Console(width=200).print(table)


@app.command("list")
@one_line_errors
def notifications_list(
    case_id: Annotated[str | None, typer.Option("--case", help="Only this case's, in order.")] = None,
    pending: Annotated[bool, typer.Option("--pending", help="Only those not delivered yet (due or waiting).")] = False,
    dead: Annotated[bool, typer.Option("--dead", help="Only those given up (see `redeliver --dead`).")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many (newest first).")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="JSON instead of a table.")] = False,
) -> None:
    """List notifications, newest first (a case's in order), with their state: due (sent when its time comes),
    waiting (behind an earlier one of its case), delivered or dead."""
    from store import notifications
    from store.notifications import State

    if pending and dead:
        raise CliError("--pending and --dead exclude each other: give one, or neither for all")
    state = State.PENDING if pending else State.DEAD if dead else None
    settings = load_settings()
    engine = open_engine(settings)
    try:
        with Session(engine) as session:
            rows = [_described(r) for r in notifications.listing(session, case_id=case_id, state=state, limit=limit)]
            counts = notifications.counts(session)
    finally:
        engine.dispose()
    if as_json:
        print_json(rows)
        return
    delivery = "off (notifications.url not set)" if settings.notifications.url is None else "on"
    summary = f"{counts['pending']} pending, {counts['dead']} dead; delivery {delivery}"
    if not rows:
        typer.echo(f"no notification matches ({summary})")
        return
    _table(rows, f"Notifications ({summary})")


@app.command("redeliver")
@one_line_errors
def notifications_redeliver(
    notification_id: Annotated[
        int | None, typer.Argument(help="A notification's id (the undelivered ones of its case before it go too).")
    ] = None,
    case_id: Annotated[str | None, typer.Option("--case", help="Every undelivered notification of this case.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead notification (and their cases' others).")] = False,
) -> None:
    """Send undelivered notifications again: each gets a fresh retry window (and backoff) and keeps its
    webhook-id, so a receiver that already has one drops the copy. The dispatcher sends them in order per case."""
    from store import notifications
    from store.db import utcnow

    if sum((notification_id is not None, case_id is not None, dead)) != 1:
        raise CliError("say what to redeliver: a notification ID, --case CASE_ID or --dead (exactly one)")
    settings = load_settings()
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            if notification_id is not None:
                target = notifications.get(session, notification_id=notification_id)
                if target is None:
                    raise CliError(f"no notification #{notification_id}: see `recovery notifications list`")
                if target.delivered_at is not None:
                    raise CliError(
                        f"notification #{notification_id} was delivered at {_when(target.delivered_at)}: "
                        "a copy would carry the same webhook-id, which the receiver drops"
                    )
                session.rollback()
            revived = notifications.redeliver(
                session, now=utcnow(), notification_id=notification_id, case_id=case_id, dead=dead
            )
    finally:
        engine.dispose()
    if not revived:
        what = f"case {case_id!r} has" if case_id is not None else "there is"
        raise CliError(f"{what} no undelivered notification: see `recovery notifications list`")
    cases = sorted({r.case_id for r in revived})
    print_json(
        {
            "redelivering": len(revived),
            "cases": cases,
            "ids": [r.id for r in revived],
            "delivery": "on" if settings.notifications.url is not None else "off: notifications.url is not set",
        }
    )
