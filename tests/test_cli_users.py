"""Operator commands for deposit addresses: rotate a user's EVM address, record addresses on other chains."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import Session
from typer.testing import CliRunner

from cli.app import app
from recovery.settings import get_settings
from store import db, users


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    for name in ("RECOVERY_DATABASE_URL", "DATABASE_URL", "RECOVERY_SIGNER_MNEMONIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECOVERY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("RECOVERY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def test_rotate_then_add_addresses(cli_env: Path) -> None:
    code, out = _run("users", "create", "--user-id", "dana")
    assert code == 0, out
    first = json.loads(out)["deposit_address"]
    code, out = _run("users", "rotate-address", "--user-id", "dana")
    assert code == 0, out
    rotated = json.loads(out)
    assert rotated["deprecated"] == [first] and rotated["deposit_address"] != first

    code, out = _run(
        "users", "add-address", "--user-id", "dana", "--family", "xrpl", "--address", "rShared", "--memo", "7"
    )
    assert code == 0, out
    engine = db.make_engine(get_settings().database_url or "")
    with Session(engine) as session:
        old = users.address_owner(session, address=first)
        assert old is not None and old.user_id == "dana" and old.deprecated
        tagged = users.address_owner(session, address="rShared", memo="7")
        assert tagged is not None and tagged.user_id == "dana"
    engine.dispose()

    code, out = _run("users", "add-address", "--user-id", "erin", "--family", "xrpl", "--address", "rShared")
    assert code == 1 and "error: no user 'erin'" in out
    code, out = _run(
        "users", "add-address", "--user-id", "dana", "--family", "xrpl", "--address", "rShared", "--memo", "7"
    )
    assert code == 1 and "already assigned" in out
    code, out = _run("users", "add-address", "--user-id", "dana", "--family", "solana", "--address", "x")
    assert code == 1 and "unknown family 'solana'" in out
    code, out = _run("users", "rotate-address", "--user-id", "nobody")
    assert code == 1 and "recovery users create" in out


def test_case_list_filters_become_one_list_query() -> None:
    from datetime import UTC, datetime

    from cli.cases import list_query

    now = datetime(2027, 1, 4, tzinfo=UTC)
    query = list_query(
        status="awaiting_approval", assigned_to="bob", tier="engineering", sla_breached=True, due_within_days=3, now=now
    )
    assert query == (
        "WorkflowType = 'CaseWorkflow' AND CaseStatus = 'AWAITING_APPROVAL' AND AssignedTo = 'bob' AND "
        "Tier = 'engineering' AND SlaBreached = true AND SlaDeadline < '2027-01-07T00:00:00+00:00'"
    )
    result = CliRunner().invoke(app, ["case", "list", "--assigned-to", "bob' OR 'x'='x"])
    assert result.exit_code == 1 and "quotes are not allowed" in result.output


def test_vip_users(cli_env: Path) -> None:
    code, out = _run("users", "create", "--user-id", "vic", "--vip")
    assert code == 0 and json.loads(out)["vip"] is True, out
    code, out = _run("users", "create", "--user-id", "ned")
    assert code == 0 and json.loads(out)["vip"] is False, out
    engine = db.make_engine(get_settings().database_url or "")
    try:
        with Session(engine) as session:
            assert users.is_vip(session, user_id="vic") and not users.is_vip(session, user_id="ned")
        code, out = _run("users", "set-vip", "vic", "--off")
        assert code == 0 and json.loads(out) == {"user_id": "vic", "vip": False}
        code, out = _run("users", "set-vip", "ned", "--on")
        assert code == 0, out
        with Session(engine) as session:
            assert not users.is_vip(session, user_id="vic") and users.is_vip(session, user_id="ned")
    finally:
        engine.dispose()
    code, out = _run("users", "set-vip", "nobody", "--on")
    assert code == 1 and "no user 'nobody'" in out
