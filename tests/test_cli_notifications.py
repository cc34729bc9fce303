"""``recovery notifications list|redeliver`` on a fresh database, and ``recovery dev webhook-receiver`` as a real
process: it verifies signatures, drops duplicates by webhook-id and says so."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlmodel import Session
from standardwebhooks import Webhook
from typer.testing import CliRunner

from cli.app import app
from devstack.stack import free_port
from recovery.models import CaseStatus, CaseUpdate, TimelineEvent
from recovery.settings import ROOT, get_settings
from services.notifications import signed_headers
from store import cases, db, notifications, users
from store.schema import init_db
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.test_cli_users import cli_env

__all__ = ["cli_env"]  # the fixture: a fresh data directory and database per test


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


def _seed(signer: MnemonicSigner) -> None:
    """Two cases of two notifications; case-a's first is dead (and its second with it)."""
    engine = db.make_engine(get_settings().database_url or "")
    init_db(engine)
    try:
        with Session(engine, expire_on_commit=False) as session:
            users.create_user(session, user_id="alice", signer=signer, path_for=deposit_path_for_tests)
            for case_id in ("case-a", "case-b"):
                cases.create_case(session, case_id=case_id, user_id="alice", chain="bsc", tx_hash="0x01", log_index=0)
                event = TimelineEvent(key="tracing", status=CaseStatus.TRACING, message="Tracing")
                assert cases.apply_case_update(session, update=CaseUpdate(case_id=case_id, event=event))
            [head] = [r for r in notifications.listing(session, case_id="case-a") if r.seq == 1]
            assert head.id is not None
            now = datetime.now(UTC)
            notifications.mark_failed(
                session, notification_id=head.id, case_id="case-a", at=now, error="HTTP 500", retry_at=None
            )
    finally:
        engine.dispose()


def test_list_shows_states_and_filters(cli_env: Path, fake_signer: MnemonicSigner) -> None:
    _seed(fake_signer)
    code, out = _run("notifications", "list", "--json")
    assert code == 0, out
    rows = json.loads(out)
    assert [(r["case_id"], r["seq"], r["state"]) for r in rows] == [
        ("case-b", 2, "waiting"),
        ("case-b", 1, "due"),
        ("case-a", 2, "dead"),
        ("case-a", 1, "dead"),
    ]
    assert rows[3]["last_error"] == "HTTP 500" and rows[3]["webhook_id"].startswith("msg_")

    code, out = _run("notifications", "list", "--dead", "--json")
    assert [(r["case_id"], r["seq"]) for r in json.loads(out)] == [("case-a", 2), ("case-a", 1)]
    code, out = _run("notifications", "list", "--pending", "--case", "case-b", "--json")
    assert [r["seq"] for r in json.loads(out)] == [1, 2]  # a case's in order

    code, out = _run("notifications", "list")
    assert code == 0 and "2 pending, 2 dead; delivery off (notifications.url not set)" in out, out
    assert "case.tracing" in out and "case-a" in out
    code, out = _run("notifications", "list", "--case", "case-none")
    assert code == 0 and "no notification matches" in out
    code, out = _run("notifications", "list", "--pending", "--dead")
    assert code == 1 and "exclude each other" in out


def test_redeliver_revives_and_refuses_with_what_to_do(cli_env: Path, fake_signer: MnemonicSigner) -> None:
    _seed(fake_signer)
    code, out = _run("notifications", "redeliver")
    assert code == 1 and "a notification ID, --case CASE_ID or --dead" in out
    code, out = _run("notifications", "redeliver", "999")
    assert code == 1 and "no notification #999" in out

    rows = {(r["case_id"], r["seq"]): r for r in json.loads(_run("notifications", "list", "--json")[1])}
    code, out = _run("notifications", "redeliver", str(rows[("case-a", 1)]["id"]))
    assert code == 0, out
    assert json.loads(out)["ids"] == [rows[("case-a", 1)]["id"]]
    code, out = _run("notifications", "redeliver", "--dead")
    assert code == 0 and json.loads(out)["cases"] == ["case-a"], out
    states = {(r["case_id"], r["seq"]): r["state"] for r in json.loads(_run("notifications", "list", "--json")[1])}
    assert states == {("case-a", 1): "due", ("case-a", 2): "waiting", ("case-b", 1): "due", ("case-b", 2): "waiting"}
    code, out = _run("notifications", "redeliver", "--dead")
    assert code == 1 and "no undelivered notification" in out

    engine = db.make_engine(get_settings().database_url or "")
    try:
        with Session(engine) as session:
            head = rows[("case-b", 1)]
            notifications.mark_delivered(session, notification_id=head["id"], case_id="case-b", at=datetime.now(UTC))
    finally:
        engine.dispose()
    code, out = _run("notifications", "redeliver", str(rows[("case-b", 1)]["id"]))
    assert code == 1 and "was delivered at" in out and "same webhook-id" in out
    code, out = _run("notifications", "redeliver", "--case", "case-b")
    assert code == 0 and json.loads(out)["ids"] == [rows[("case-b", 2)]["id"]]


def test_the_dev_receiver_verifies_and_drops_duplicates(tmp_path: Path) -> None:
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
    env |= {
        "RECOVERY_CONFIG": str(tmp_path / "absent.toml"),
        "RECOVERY_DATA_DIR": str(tmp_path),
        "PYTHONUNBUFFERED": "1",
    }
    out = tmp_path / "receiver.out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cli", "dev", "webhook-receiver", "--port", str(port), "--secret", secret],
        cwd=ROOT,
        env=env,
        stdout=out.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/webhooks"
        body = json.dumps(
            {
                "type": "case.classified",
                "timestamp": "2026-12-01T12:00:00Z",
                "data": {"case_id": "case-x", "seq": 1, "locale": "en", "message": "Classified", "event": {}},
            }
        )
        deadline = time.monotonic() + 20
        while "receiving webhooks" not in out.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, out.read_text()
            time.sleep(0.05)
        with httpx.Client() as http:
            signer = Webhook(secret)
            first = http.post(url, content=body, headers=signed_headers(signer, "msg_1", body))
            again = http.post(url, content=body, headers=signed_headers(signer, "msg_1", body))
            forged = signed_headers(signer, "msg_2", body)
            forged["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
            bad = http.post(url, content=body, headers=forged)
        assert (first.status_code, again.status_code, bad.status_code) == (200, 200, 401)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=10)
    text = out.read_text()
    assert "msg_1 case.classified case-x #1 (en, None): Classified" in text, text
    assert "msg_1: duplicate, dropped" in text
    assert "msg_2: REJECTED, signature does not verify" in text
    assert secret not in text
