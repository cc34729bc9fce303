"""``recovery staff``: the recovery team's API tokens for the staff API (``/v1/staff/...``)."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.common import CliError, in_session, iso, load_settings, one_line_errors, open_engine, print_json
from store.staff import StaffRole

app = typer.Typer(help="Staff of the recovery team and their API tokens.", no_args_is_help=True)


@app.command("create")
@one_line_errors
def staff_create(
    name: Annotated[str, typer.Option("--name", help="The staff member's name (an engineer's: as on the roster).")],
    role: Annotated[
        StaffRole,
        typer.Option(
            "--role",
            help="engineer: reads and acts on cases; finance: reads the fee report; admin: both "
            "(acting on cases only if on the roster of engineers).",
            case_sensitive=False,
        ),
    ],
    token_days: Annotated[
        int | None,
        typer.Option("--token-days", min=1, max=3650, help="Days the API token works (default: tokens.staff_days)."),
    ] = None,
) -> None:
    """Create a staff member and print their new API token (shown only once; only its hash is stored)."""
    from store.staff import StaffExists, create_staff

    settings = load_settings()
    roster = [e.name for e in settings.engineers]
    if role is StaffRole.ENGINEER and name.strip() not in roster:
        raise CliError(
            f"{name!r} is not on the roster of engineers ({', '.join(roster) or 'empty'}): add them to "
            "`engineers` in the configuration first, or create them with another role"
        )
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            member, token = create_staff(
                session, name=name, role=role, token_days=token_days or settings.tokens.staff_days
            )
    except (StaffExists, ValueError) as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print_json(
        {
            "name": member.name,
            "role": member.role.value,
            "api_token": token,
            "created_at": member.created_at.isoformat(),
            "token_expires_at": iso(member.token_expires_at),
            "on_roster": member.name in roster,
            "note": "send it as 'Authorization: Bearer <api_token>' to /v1/staff/...; it is not shown again",
        }
    )


@app.command("list")
@one_line_errors
def staff_list() -> None:
    """Print the staff members as JSON (names, roles, whether on the roster; never tokens)."""
    from store.staff import list_staff

    settings = load_settings()
    roster = {e.name for e in settings.engineers}
    engine = open_engine(settings)
    try:
        with Session(engine) as session:
            members = list_staff(session)
    finally:
        engine.dispose()
    print_json(
        [
            {
                "name": m.name,
                "role": m.role.value,
                "created_at": m.created_at.isoformat(),
                "token_expires_at": iso(m.token_expires_at),
                "token_revoked": m.token_revoked_at is not None,
                "on_roster": m.name in roster,
            }
            for m in members
        ]
    )


token_app = typer.Typer(help="A staff member's API token: rotate or revoke it.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("rotate")
@one_line_errors
def staff_token_rotate(
    name: Annotated[str, typer.Argument(help="The staff member's name.")],
    token_days: Annotated[
        int | None,
        typer.Option("--token-days", min=1, max=3650, help="Days the new token works (default: tokens.staff_days)."),
    ] = None,
) -> None:
    """Issue a new API token for a staff member and print it (shown only once); the old one stops at once."""
    from store.staff import rotate_staff_token

    settings = load_settings()
    days = token_days or settings.tokens.staff_days
    member, token = in_session(settings, lambda s: rotate_staff_token(s, name=name, token_days=days))
    print_json({"name": member.name, "api_token": token, "token_expires_at": iso(member.token_expires_at)})


@token_app.command("revoke")
@one_line_errors
def staff_token_revoke(name: Annotated[str, typer.Argument(help="The staff member's name.")]) -> None:
    """Make a staff member's API token stop working at once."""
    from store.staff import revoke_staff_token

    member = in_session(load_settings(), lambda s: revoke_staff_token(s, name=name))
    print_json({"name": member.name, "revoked": True})
