"""What every command shares: one-line errors, configuration, the database, JSON output."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from sqlalchemy import Engine
from sqlmodel import Session

from recovery.redaction import Redactor
from recovery.settings import ChainConfig, Settings, UnknownChain, get_settings

if TYPE_CHECKING:
    from temporalio.client import Client

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")


class CliError(Exception):
    """An error whose message is meant for the operator as is."""


_temporal_used = False
_exit_hard = False


def exit_hard_after_temporal() -> None:
    """Set by the ``recovery`` program itself (not by in-process test runners): see below."""
    global _exit_hard
    _exit_hard = True


def temporal_client_used() -> None:
    """Say that this command talks to Temporal: the process then ends with ``os._exit`` once the command's
    output is flushed. The Temporal client's native threads can outlive the event loop, and CPython's
    finalization then aborts the process (temporalio/sdk-python#300), turning a success into SIGABRT."""
    global _temporal_used
    _temporal_used = True


TEMPORAL_CONNECT_TIMEOUT = timedelta(seconds=15)


async def temporal_client(settings: Settings) -> Client:
    """A connected Temporal client, or a :class:`CliError` that names the address."""
    from workflows.client import connect

    temporal_client_used()
    try:
        return await connect(settings, timeout=TEMPORAL_CONNECT_TIMEOUT)
    except Exception as exc:
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise CliError(f"cannot reach Temporal at {settings.temporal_address}: {detail}") from None


def _redacted(text: str) -> str:
    """``text`` without the configured secrets (a node's error may echo the key in its URL)."""
    try:
        return Redactor.from_settings(get_settings()).redact(text)
    except Exception:  # an invalid configuration has no secrets to know
        return text


def one_line_errors(fn: F) -> F:
    """Errors print one line on stderr and exit with status 1 (no stack traces)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        code = 1
        try:
            result = fn(*args, **kwargs)
            code = 0
            return result
        except typer.Exit as exc:
            code = exc.exit_code
            raise
        except typer.Abort:
            raise
        except CliError as exc:
            typer.echo(_redacted(f"error: {exc}"), err=True)
        except Exception as exc:
            message = str(exc).splitlines()[0] if str(exc) else ""
            typer.echo(_redacted(f"error: {type(exc).__name__}{': ' + message if message else ''}"), err=True)
        finally:
            if _temporal_used and _exit_hard:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def load_settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:
        raise CliError(f"invalid configuration: {str(exc).splitlines()[0]}") from None


def require_chain(settings: Settings, name: str, **kwargs: Any) -> ChainConfig:
    try:
        return settings.require_chain(name, **kwargs)
    except UnknownChain as exc:
        raise CliError(str(exc)) from None


def open_engine(settings: Settings) -> Engine:
    from store.db import make_engine
    from store.schema import init_db

    engine = make_engine(settings.database_url or "")
    init_db(engine)
    return engine


def in_session(settings: Settings, work: Callable[[Session], T]) -> T:
    """``work`` on a fresh session of the configured database; its ``ValueError`` is the command's error."""
    engine = open_engine(settings)
    try:
        with Session(engine, expire_on_commit=False) as session:
            return work(session)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()


def iso(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat(timespec="seconds")


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def parse_when(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise CliError(f"{option}: expected an ISO date or datetime such as 2025-01-31, got {value!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when
