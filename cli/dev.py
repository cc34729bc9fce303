"""``recovery dev``: helpers for the local dev chains, and a receiver of the notification webhooks."""

from __future__ import annotations

import asyncio
from decimal import Decimal, InvalidOperation
from typing import Annotated

import typer

from cli.common import CliError, load_settings, one_line_errors, print_json, require_chain
from recovery.settings import ChainConfig
from recovery.units import parse_units

app = typer.Typer(help="Development helpers (local chains, a webhook receiver).", no_args_is_help=True)


def _asset_decimals(chain: ChainConfig, asset: str) -> tuple[str, int]:
    if asset.upper() == chain.native_symbol.upper():
        return chain.native_symbol, chain.native_decimals
    for token in chain.tokens:
        if token.symbol.upper() == asset.upper():
            return token.symbol, token.decimals
    known = [chain.native_symbol, *(t.symbol for t in chain.tokens)]
    raise CliError(f"unknown asset {asset!r} on {chain.name}: use one of {', '.join(known)}")


@app.command("faucet")
@one_line_errors
def dev_faucet(
    chain: Annotated[str, typer.Option(help="Configured chain name, e.g. bsc.")],
    asset: Annotated[str, typer.Option(help="Native symbol or configured token symbol, e.g. USDT.")],
    to: Annotated[str, typer.Option(help="Recipient 0x address.")],
    amount: Annotated[str, typer.Option(help="Amount in whole units, e.g. 100 or 0.5.")],
) -> None:
    """Mint test funds on a local dev chain (refused unless dev_faucet_enabled)."""
    settings = load_settings()
    if not settings.dev_faucet_enabled:
        raise CliError("the dev faucet is disabled (dev_faucet_enabled = false); it only works on local chains")
    config = require_chain(settings, chain)
    symbol, decimals = _asset_decimals(config, asset)
    try:
        base_units = parse_units(amount, decimals)
    except (InvalidOperation, ValueError) as exc:
        detail = str(exc) if isinstance(exc, ValueError) else "not a number"
        raise CliError(f"invalid amount {amount!r}: {detail}") from None
    if base_units <= 0:
        raise CliError(f"invalid amount {amount!r}: must be positive")
    from eth_utils import is_address

    if not is_address(to):
        raise CliError(f"invalid address {to!r}: expected 0x followed by 40 hexadecimal characters")

    from devstack.devnet import mint

    tx_hash = asyncio.run(mint(config, asset=symbol, to=to, amount=base_units))
    print_json(
        {
            "chain": config.name,
            "asset": symbol,
            "to": to,
            "amount": str(Decimal(amount)),
            "base_units": str(base_units),
            "tx_hash": tx_hash or None,
        }
    )


@app.command("webhook-receiver")
@one_line_errors
def dev_webhook_receiver(
    port: Annotated[int, typer.Option("--port", help="Port to listen on (make run uses 8099).")] = 8099,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            help="The whsec_... signing secret to verify with (default: notifications.secret of the settings, "
            "else make run's dev secret).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Print each notification's whole body.")] = False,
) -> None:
    """Receive the engine's notification webhooks: check each signature (Standard Webhooks), drop duplicates
    by webhook-id (saying so) and print one line per notification. For development only; Ctrl-C stops it.
    Point the worker at it with RECOVERY_NOTIFICATIONS__URL=http://HOST:PORT/webhooks and the same secret."""
    from standardwebhooks import Webhook

    from devstack.webhook_receiver import DEV_SECRET, WebhookReceiver

    configured = load_settings().notifications.secret
    key = secret or (configured.get_secret_value() if configured is not None else DEV_SECRET)
    try:
        Webhook(key)
    except Exception:
        raise CliError("--secret: expected whsec_ followed by base64, e.g. the notifications.secret setting") from None
    try:
        receiver = WebhookReceiver(secret=key, host=host, port=port, out=lambda line: typer.echo(line), verbose=verbose)
    except OSError as exc:
        raise CliError(f"cannot listen on {host}:{port} ({exc.strerror or exc}): choose another --port") from None
    receiver.serve()
