"""Operator command line: ``recovery --help``.

Errors print one line on stderr and exit with status 1 (no stack traces).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy import Engine

from recovery.settings import ChainConfig, Settings, get_settings

app = typer.Typer(
    name="recovery",
    help="Mis-deposit recovery engine: users, cases, fees and dev tools.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
users_app = typer.Typer(help="API users and their deposit addresses.", no_args_is_help=True)
case_app = typer.Typer(help="Inspect cases.", no_args_is_help=True)
dev_app = typer.Typer(help="Development helpers (local chains only).", no_args_is_help=True)
fees_app = typer.Typer(help="Fees collected.", no_args_is_help=True)
app.add_typer(users_app, name="users")
app.add_typer(case_app, name="case")
app.add_typer(dev_app, name="dev")
app.add_typer(fees_app, name="fees")

F = TypeVar("F", bound=Callable[..., Any])


class CliError(Exception):
    """An error whose message is meant for the operator as is."""


def one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort):
            raise
        except CliError as exc:
            typer.echo(f"error: {exc}", err=True)
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else ""
            typer.echo(f"error: {type(exc).__name__}{': ' + message if message else ''}", err=True)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:
        raise CliError(f"invalid configuration: {str(exc).splitlines()[0]}") from None


def _engine(settings: Settings) -> Engine:
    from recovery.store import init_db, make_engine

    engine = make_engine(settings.database_url or "")
    init_db(engine)
    return engine


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


# --- users ----------------------------------------------------------------------------------------


@users_app.command("create")
@one_line_errors
def users_create(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
) -> None:
    """Create a user: allocates a deposit address and prints a new API token (shown only once)."""
    from sqlmodel import Session

    from chains.signer import HDSigner
    from recovery.store import UserExists, create_user

    settings = _settings()
    signer = HDSigner.from_settings(settings)
    engine = _engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            user, token = create_user(session, user_id=user_id, signer=signer)
    except UserExists:
        raise CliError(f"user {user_id!r} already exists") from None
    finally:
        engine.dispose()
    _print_json(
        {
            "user_id": user.user_id,
            "api_token": token,
            "deposit_address": user.deposit_address,
            "deposit_index": user.deposit_index,
        }
    )


@users_app.command("rotate-address")
@one_line_errors
def users_rotate_address(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
) -> None:
    """Give a user a fresh EVM deposit address. The old one stays theirs (deprecated): deposits that still
    arrive there are recovered as DEPRECATED_ADDRESS cases."""
    from sqlmodel import Session

    from chains.signer import HDSigner
    from recovery.store import User, rotate_deposit_address

    settings = _settings()
    engine = _engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            old = session.get(User, user_id)
            if old is None:
                raise CliError(f"no user {user_id!r}; create one with `recovery users create --user-id {user_id}`")
            old_address = old.deposit_address
            user = rotate_deposit_address(session, user_id=user_id, signer=HDSigner.from_settings(settings))
    finally:
        engine.dispose()
    _print_json({"user_id": user.user_id, "deposit_address": user.deposit_address, "deprecated": [old_address]})


@users_app.command("add-address")
@one_line_errors
def users_add_address(
    user_id: Annotated[str, typer.Option("--user-id", help="The exchange's id of the user.")],
    family: Annotated[str, typer.Option(help="Chain family: bitcoin, tron, xrpl or evm.")],
    address: Annotated[str, typer.Option(help="The deposit address as the chain writes it.")],
    memo: Annotated[str | None, typer.Option(help="Memo / destination tag on a shared address (XRP), if any.")] = None,
) -> None:
    """Record a deposit address the user was given on another chain family (or an EVM contract wallet)."""
    from sqlmodel import Session

    from recovery.store import add_deposit_address

    if family not in ("bitcoin", "tron", "xrpl", "evm"):
        raise CliError(f"unknown family {family!r}: use bitcoin, tron, xrpl or evm")
    settings = _settings()
    engine = _engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            row = add_deposit_address(session, user_id=user_id, family=family, address=address, memo=memo)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    _print_json({"user_id": row.user_id, "family": row.family, "address": row.address, "memo": row.memo})


# --- cases ----------------------------------------------------------------------------------------


def case_record(case: Any, events: list[Any]) -> dict[str, Any]:
    """A case row and its timeline as JSON-safe data (amounts as integer strings)."""
    from recovery.store import format_units

    dumped = case.model_dump(mode="json")
    data = {name: dumped[name] for name in type(case).model_fields if name in dumped}
    for name in ("amount", "fee", "gas", "credited"):
        value = getattr(case, name)
        data[name] = None if value is None else str(value)
        if value is not None and case.decimals is not None:
            data[f"{name}_decimal"] = format_units(value, case.decimals)
    if case.quote_json:
        data["quote"] = json.loads(data.pop("quote_json"))
    data["timeline"] = [
        {"at": e.at.isoformat(), "key": e.key, "status": str(e.status), "message": e.message} for e in events
    ]
    return data


@case_app.command("show")
@one_line_errors
def case_show(case_id: Annotated[str, typer.Argument(help="The case id, e.g. case-bsc-0xabc...-7")]) -> None:
    """Print a case and its timeline as JSON, from the database."""
    from sqlmodel import Session

    from recovery.store import get_case, timeline

    engine = _engine(_settings())
    try:
        with Session(engine) as session:
            case = get_case(session, case_id=case_id)
            if case is None:
                raise CliError(f"no case {case_id!r}")
            _print_json(case_record(case, timeline(session, case_id=case_id)))
    finally:
        engine.dispose()


# --- scan -----------------------------------------------------------------------------------------

TEMPORAL_CONNECT_TIMEOUT_S = 15


@app.command("scan")
@one_line_errors
def scan(
    chain: Annotated[str, typer.Option("--chain", help="Configured EVM chain name, e.g. bsc.")],
    from_block: Annotated[int, typer.Option("--from-block", help="First block to scan.")],
    to_block: Annotated[int, typer.Option("--to-block", help="Last block to scan (inclusive).")],
) -> None:
    """Backfill: scan a block range for deposits to users' addresses that the exchange did not credit,
    and open their cases, as the deposit scanner does (deposits that already have a case are skipped)."""
    settings = _settings()
    try:
        config = settings.chain(chain)
    except KeyError:
        raise CliError(f"unknown chain {chain!r}: use one of {', '.join(settings.chain_names)}") from None
    if config.family != "evm":
        raise CliError(f"chain {chain!r} is a {config.family} chain: only EVM chains can be scanned")
    if from_block < 0:
        raise CliError(f"bad range: --from-block must be 0 or more, got {from_block}")
    if to_block < from_block:
        raise CliError(f"bad range: --to-block {to_block} is before --from-block {from_block}")
    asyncio.run(_scan(settings, config, from_block, to_block))


async def _scan(settings: Settings, config: ChainConfig, from_block: int, to_block: int) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from chains.evm_scan import EvmScanner, ScanBatch
    from chains.jsonrpc import RpcUnavailable
    from chains.signer import HDSigner
    from recovery import scan_store  # noqa: F401  (its table joins init_db's)
    from worker import connect
    from workflows.case_opener import amount_text
    from workflows.scan_activities import DepositFinder

    try:
        head = await EvmScanner(config).head()
    except RpcUnavailable as exc:
        raise CliError(f"chain {config.name} unreachable: {str(exc).splitlines()[0]}") from None
    if to_block > head:
        raise CliError(f"bad range: --to-block {to_block} is beyond the head of {config.name} (block {head})")
    try:
        client = await asyncio.wait_for(connect(settings), TEMPORAL_CONNECT_TIMEOUT_S)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"cannot reach Temporal at {settings.temporal_address}: {detail}") from None
    engine = _engine(settings)
    try:
        finder = DepositFinder(settings=settings, engine=engine, client=client, signer=HDSigner.from_settings(settings))
        total = to_block - from_block + 1
        with Progress(
            TextColumn(f"scanning {config.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("scan", total=total)

            def advance(batch: ScanBatch, _opened: list[str]) -> None:
                progress.advance(task, batch.blocks)

            summary = await finder.scan(config.name, from_block, to_block, on_batch=advance)
    finally:
        engine.dispose()
    for case in summary.cases:
        typer.echo(
            f"opened {case.case_id}: {amount_text(case.found.transfer)} to {case.user_id} "
            f"in block {case.found.block_number} ({case.reason})"
        )
    typer.echo(
        f"scanned {total} block(s) of {config.name} ({from_block}..{to_block}): "
        f"{summary.deposits_found} deposit(s) to watched addresses, {len(summary.cases)} case(s) opened"
    )


# --- dev ------------------------------------------------------------------------------------------


def _asset_decimals(chain: ChainConfig, asset: str) -> tuple[str, int]:
    if asset.upper() == chain.native_symbol.upper():
        return chain.native_symbol, chain.native_decimals
    for token in chain.tokens:
        if token.symbol.upper() == asset.upper():
            return token.symbol, token.decimals
    known = [chain.native_symbol, *(t.symbol for t in chain.tokens)]
    raise CliError(f"unknown asset {asset!r} on {chain.name}: use one of {', '.join(known)}")


@dev_app.command("faucet")
@one_line_errors
def dev_faucet(
    chain: Annotated[str, typer.Option(help="Configured chain name, e.g. bsc.")],
    asset: Annotated[str, typer.Option(help="Native symbol or configured token symbol, e.g. USDT.")],
    to: Annotated[str, typer.Option(help="Recipient 0x address.")],
    amount: Annotated[str, typer.Option(help="Amount in whole units, e.g. 100 or 0.5.")],
) -> None:
    """Mint test funds on a local dev chain (refused unless dev_faucet_enabled)."""
    from recovery.store import parse_units

    settings = _settings()
    if not settings.dev_faucet_enabled:
        raise CliError("the dev faucet is disabled (dev_faucet_enabled = false); it only works on local chains")
    try:
        config = settings.chain(chain)
    except KeyError:
        raise CliError(f"unknown chain {chain!r}: use one of {', '.join(settings.chain_names)}") from None
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

    from chains.devnet import mint

    result: Any = mint(config, asset=symbol, to=to, amount=base_units)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    _print_json(
        {
            "chain": config.name,
            "asset": symbol,
            "to": to,
            "amount": str(Decimal(amount)),
            "base_units": str(base_units),
            "tx_hash": result or None,
        }
    )


async def _await(awaitable: Any) -> Any:
    return await awaitable


# --- fees -----------------------------------------------------------------------------------------


def _parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: expected an ISO date or datetime such as 2025-01-31, got {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


@fees_app.command("report")
@one_line_errors
def fees_report(
    since: Annotated[str | None, typer.Option(help="From this ISO date/datetime (UTC), inclusive.")] = None,
    until: Annotated[str | None, typer.Option(help="Up to this ISO date/datetime (UTC), exclusive.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Fees and network costs collected, per chain and asset."""
    from rich.console import Console
    from rich.table import Table
    from sqlmodel import Session

    from fees.ledger import fee_report
    from recovery.store import format_units

    settings = _settings()
    start, end = _parse_when(since, "--since"), _parse_when(until, "--until")
    engine = _engine(settings)
    try:
        with Session(engine) as session:
            totals = fee_report(session, since=start, until=end)
    finally:
        engine.dispose()

    def decimals_of(chain: str, asset: str) -> int | None:
        try:
            config = settings.chain(chain)
        except KeyError:
            return None
        if asset == config.native_symbol:
            return config.native_decimals
        token = config.token_by_symbol(asset)
        return token.decimals if token else None

    def show(amount: int, decimals: int | None) -> str:
        return format_units(amount, decimals) if decimals is not None else f"{amount} (base units)"

    if as_json:
        _print_json(
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
    table = Table(title="Recovery fees")
    for column in ("chain", "asset", "cases", "fee", "network cost", "fee (USD at quote)"):
        table.add_column(column, justify="right" if column not in ("chain", "asset") else "left")
    for t in totals:
        d = decimals_of(t.chain, t.asset)
        table.add_row(t.chain, t.asset, str(t.count), show(t.fee, d), show(t.gas, d), str(t.fee_usd))
    if not totals:
        typer.echo("no fees recorded in this period")
        return
    Console().print(table)


if __name__ == "__main__":
    app()
