"""``recovery staff create|list``: an engineer must be on the roster, the token is printed once and only its
hash is stored."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from sqlalchemy import text
from typer.testing import CliRunner

from cli.app import app
from recovery.settings import get_settings
from store import db
from tests.test_cli_users import cli_env

__all__ = ["cli_env"]  # the fixture: a fresh data directory and database per test


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_create_prints_the_token_once_and_stores_only_its_hash(cli_env: Path) -> None:
    code, out = _run("staff", "create", "--name", "bob", "--role", "engineer")
    assert code == 0, out
    created = json.loads(out)
    assert created["name"] == "bob" and created["role"] == "engineer" and created["on_roster"] is True
    token = created["api_token"]

    code, out = _run("staff", "create", "--name", "fiona", "--role", "FINANCE")  # any name for finance
    assert code == 0 and json.loads(out)["on_roster"] is False, out

    code, out = _run("staff", "list")
    assert code == 0, out
    assert token not in out and "api_token" not in out
    assert [(m["name"], m["role"]) for m in json.loads(out)] == [("bob", "engineer"), ("fiona", "finance")]

    engine = db.make_engine(get_settings().database_url or "")
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT name, token_hash FROM staff_members ORDER BY name")).all()
            dump = "\n".join(str(r) for r in conn.execute(text("SELECT * FROM staff_members")).all())
    finally:
        engine.dispose()
    assert rows[0] == ("bob", hashlib.sha256(token.encode()).hexdigest())
    assert token not in dump


def test_refusals_say_what_to_do(cli_env: Path) -> None:
    code, out = _run("staff", "create", "--name", "mallory", "--role", "engineer")
    assert code == 1
    assert "'mallory' is not on the roster of engineers (alice, bob, chen, vera)" in out
    assert "add them to `engineers`" in out

    assert _run("staff", "create", "--name", "chen", "--role", "admin")[0] == 0
    code, out = _run("staff", "create", "--name", "chen", "--role", "engineer")
    assert code == 1 and "'chen' already exists" in out

    code, out = _run("staff", "create", "--name", "zoe", "--role", "boss")
    assert code == 2 and "boss" in out
    code, out = _run("staff", "list")
    assert [m["name"] for m in json.loads(out)] == ["chen"]  # the refusals added nobody
