"""``recovery users``: API users and their deposit addresses."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlmodel import Session

from cli.common import CliError, in_session, iso, load_settings, one_line_errors, open_engine, print_json
from recovery.locales import SUPPORTED

app = typer.Typer(help="API users and their deposit addresses.", no_args_is_help=True)

FAMILIES = ("bitcoin", "tron", "xrpl", "evm")


@app.command("create")
@one_line_errors
def users_create(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
    vip: Annotated[bool, typer.Option("--vip", help="A VIP: manual cases start at the VIP desk.")] = False,
    locale: Annotated[str, typer.Option("--locale", help=f"The user's language: {', '.join(SUPPORTED)}.")] = "en",
    token_days: Annotated[
        int | None,
        typer.Option("--token-days", min=1, max=3650, help="Days the API token works (default: tokens.user_days)."),
    ] = None,
) -> None:
    """Create a user: allocates a deposit address and prints a new API token (shown only once)."""
    from chains.signer import HDSigner, deposit_path
    from store.users import UserExists, create_user, set_vip

    settings = load_settings()
    signer = HDSigner.from_settings(settings)
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            user, token = create_user(
                session,
                user_id=user_id,
                signer=signer,
                path_for=deposit_path,
                locale=locale,
                token_days=token_days or settings.tokens.user_days,
            )
            if vip:
                set_vip(session, user_id=user_id, vip=True)
    except UserExists:
        raise CliError(f"user {user_id!r} already exists") from None
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print_json(
        {
            "user_id": user.user_id,
            "api_token": token,
            "token_expires_at": iso(user.token_expires_at),
            "deposit_address": user.deposit_address,
            "deposit_index": user.deposit_index,
            "locale": user.locale,
            "vip": vip,
        }
    )


token_app = typer.Typer(help="A user's API token: rotate or revoke it.", no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("rotate")
@one_line_errors
def users_token_rotate(
    user_id: Annotated[str, typer.Argument(help="The exchange's id of the user.")],
    token_days: Annotated[
        int | None,
        typer.Option("--token-days", min=1, max=3650, help="Days the new token works (default: tokens.user_days)."),
    ] = None,
) -> None:
    """Issue a new API token for a user and print it (shown only once); the old token stops working at once."""
    from store.users import rotate_token

    settings = load_settings()
    days = token_days or settings.tokens.user_days
    user, token = in_session(settings, lambda s: rotate_token(s, user_id=user_id, token_days=days))
    print_json({"user_id": user.user_id, "api_token": token, "token_expires_at": iso(user.token_expires_at)})


@token_app.command("revoke")
@one_line_errors
def users_token_revoke(user_id: Annotated[str, typer.Argument(help="The exchange's id of the user.")]) -> None:
    """Make a user's API token stop working at once (`recovery users token rotate` issues a new one)."""
    from store.users import revoke_token

    user = in_session(load_settings(), lambda s: revoke_token(s, user_id=user_id))
    print_json({"user_id": user.user_id, "revoked": True})


@app.command("set-locale")
@one_line_errors
def users_set_locale(
    user_id: Annotated[str, typer.Argument(help="The exchange's id of the user.")],
    locale: Annotated[str, typer.Argument(help=f"The language: {', '.join(SUPPORTED)}.")],
) -> None:
    """Set the language a user reads texts and notifications in (when a request names none)."""
    from store.users import set_locale

    user = in_session(load_settings(), lambda s: set_locale(s, user_id=user_id, locale=locale))
    print_json({"user_id": user.user_id, "locale": user.locale})


@app.command("set-vip")
@one_line_errors
def users_set_vip(
    user_id: Annotated[str, typer.Argument(help="The exchange's id of the user.")],
    on: Annotated[bool, typer.Option("--on/--off", help="Make the user VIP, or not.")],
) -> None:
    """Make a user VIP (their manual cases start at the VIP desk, skipping first and second line) or not."""
    from store.users import set_vip

    engine = open_engine(load_settings())
    try:
        with Session(engine, expire_on_commit=False) as session:
            vip = set_vip(session, user_id=user_id, vip=on)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print_json({"user_id": user_id, "vip": vip})


@app.command("rotate-address")
@one_line_errors
def users_rotate_address(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
) -> None:
    """Give a user a fresh EVM deposit address. The old one stays theirs (deprecated): deposits that still
    arrive there are recovered as DEPRECATED_ADDRESS cases."""
    from chains.signer import HDSigner, deposit_path
    from store.users import get_user, rotate_deposit_address

    settings = load_settings()
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            old = get_user(session, user_id=user_id)
            if old is None:
                raise CliError(f"no user {user_id!r}; create one with `recovery users create --user-id {user_id}`")
            old_address = old.deposit_address
            user = rotate_deposit_address(
                session, user_id=user_id, signer=HDSigner.from_settings(settings), path_for=deposit_path
            )
    finally:
        engine.dispose()
    print_json({"user_id": user.user_id, "deposit_address": user.deposit_address, "deprecated": [old_address]})


@app.command("add-address")
@one_line_errors
def users_add_address(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
    family: Annotated[str, typer.Option(help="Chain family: bitcoin, tron, xrpl or evm.")],
    address: Annotated[str, typer.Option(help="The deposit address as the chain writes it.")],
    memo: Annotated[str | None, typer.Option(help="Memo / destination tag on a shared address (XRP), if any.")] = None,
) -> None:
    """Record a deposit address the user was given on another chain family (or an EVM contract wallet)."""
    from store.users import add_deposit_address

    if family not in FAMILIES:
        raise CliError(f"unknown family {family!r}: use bitcoin, tron, xrpl or evm")
    settings = load_settings()
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            row = add_deposit_address(session, user_id=user_id, family=family, address=address, memo=memo)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    print_json({"user_id": row.user_id, "family": row.family, "address": row.address, "memo": row.memo})
