"""API tokens expire, are rotated (the old one dead at once) and revoked, for users and staff; rate limits per
token, and per client address for requests without a valid token."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, update
from sqlmodel import Session
from typer.testing import CliRunner

from api.deps import get_case_starter, get_tracer
from api.main import create_app
from cli.app import app as cli_app
from recovery.locales import negotiate, normalize_locale
from recovery.settings import RateLimitConfig, Settings, dev_chains, get_settings
from store import api_tokens, users
from store.api_tokens import TokenExpired
from store.db import utcnow
from store.staff import StaffMember, StaffRole, authenticate_staff, create_staff, revoke_staff_token, rotate_staff_token
from store.users import User
from tests.api_fixtures import TX, Fakes
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests

# --- the store: both databases --------------------------------------------------------------------


def test_user_token_expires_rotates_and_revokes(db_session: Session, fake_signer: MnemonicSigner) -> None:
    user, token = users.create_user(
        db_session, user_id="ana", signer=fake_signer, path_for=deposit_path_for_tests, token_days=30
    )
    assert user.token_expires_at is not None
    assert timedelta(days=29) < user.token_expires_at - utcnow() <= timedelta(days=30)
    found = users.authenticate(db_session, token=token)
    assert found is not None and found.user_id == "ana"
    db_session.commit()

    _expire(db_session, User, User.user_id == "ana")
    with pytest.raises(TokenExpired, match="expired at"):
        users.authenticate(db_session, token=token)
    db_session.commit()

    rotated, fresh = users.rotate_token(db_session, user_id="ana", token_days=None)
    assert fresh != token and rotated.token_expires_at is None
    assert users.authenticate(db_session, token=token) is None  # the old one is dead at once
    assert users.authenticate(db_session, token=fresh) is not None
    db_session.commit()

    revoked = users.revoke_token(db_session, user_id="ana")
    assert revoked.token_revoked_at is not None
    assert users.authenticate(db_session, token=fresh) is None
    db_session.commit()

    again, newest = users.rotate_token(db_session, user_id="ana", token_days=7)
    assert again.token_revoked_at is None and users.authenticate(db_session, token=newest) is not None
    db_session.commit()
    with pytest.raises(ValueError, match="no user 'nobody'"):
        users.rotate_token(db_session, user_id="nobody")
    with pytest.raises(ValueError, match="at least one day"):
        users.rotate_token(db_session, user_id="ana", token_days=0)


def test_staff_token_expires_rotates_and_revokes(db_session: Session) -> None:
    member, token = create_staff(db_session, name="fiona", role=StaffRole.FINANCE, token_days=90)
    assert member.token_expires_at is not None and authenticate_staff(db_session, token=token) is not None
    db_session.commit()
    _expire(db_session, StaffMember, StaffMember.name == "fiona")
    with pytest.raises(TokenExpired):
        authenticate_staff(db_session, token=token)
    db_session.commit()
    _member, fresh = rotate_staff_token(db_session, name="fiona")
    assert authenticate_staff(db_session, token=token) is None
    assert authenticate_staff(db_session, token=fresh) is not None
    db_session.commit()
    revoke_staff_token(db_session, name="fiona")
    assert authenticate_staff(db_session, token=fresh) is None
    db_session.commit()
    with pytest.raises(ValueError, match="no staff member 'zed'"):
        revoke_staff_token(db_session, name="zed")


def _expire(session: Session, table: type[User] | type[StaffMember], where: object) -> None:
    session.connection().execute(
        update(table).where(where).values(token_expires_at=utcnow() - timedelta(seconds=1))  # type: ignore[arg-type]
    )
    session.commit()
    session.expire_all()


def test_a_revoked_or_unknown_holder_never_checks() -> None:
    token, token_hash = api_tokens.new_token()
    holder = User(user_id="x", deposit_index=0, deposit_address="0x0", token_hash=token_hash)
    assert api_tokens.check(holder, token=token)
    holder.token_revoked_at = utcnow()
    assert not api_tokens.check(holder, token=token)


def test_locales_are_matched_and_negotiated() -> None:
    assert normalize_locale("zh_TW") == "zh-Hant" and normalize_locale("PT-br") == "pt-BR"
    assert normalize_locale("de-AT") == "de" and normalize_locale("zh") == "zh-Hans"
    with pytest.raises(ValueError, match="unsupported language 'xx'"):
        normalize_locale("xx")
    assert negotiate("fr-CH, fr;q=0.9, en;q=0.8") == "fr"
    assert negotiate("xx, ja;q=0.5, ko;q=0.7") == "ko"
    assert negotiate("*;q=1, tlh") == "en" and negotiate(None) == "en" and negotiate("es;q=abc, de") == "de"


# --- the CLI --------------------------------------------------------------------------------------


def test_cli_rotates_and_revokes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("RECOVERY_DATABASE_URL", "DATABASE_URL", "RECOVERY_SIGNER_MNEMONIC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RECOVERY_CONFIG", str(tmp_path / "absent.toml"))
    monkeypatch.setenv("RECOVERY_DATA_DIR", str(tmp_path))
    get_settings.cache_clear()
    runner = CliRunner()
    try:
        created = runner.invoke(cli_app, ["users", "create", "--user-id", "dana", "--locale", "zh_TW"])
        assert created.exit_code == 0, created.output
        first = json.loads(created.output)
        assert first["locale"] == "zh-Hant" and first["token_expires_at"] is not None  # tokens.user_days = 365

        bad = runner.invoke(cli_app, ["users", "create", "--user-id", "eve", "--locale", "klingon"])
        assert bad.exit_code != 0 and "unsupported language 'klingon'" in bad.output

        rotated = runner.invoke(cli_app, ["users", "token", "rotate", "dana", "--token-days", "10"])
        assert rotated.exit_code == 0, rotated.output
        second = json.loads(rotated.output)
        assert second["api_token"] != first["api_token"]

        revoked = runner.invoke(cli_app, ["users", "token", "revoke", "dana"])
        assert revoked.exit_code == 0 and json.loads(revoked.output) == {"user_id": "dana", "revoked": True}
        missing = runner.invoke(cli_app, ["users", "token", "revoke", "nobody"])
        assert missing.exit_code != 0 and "recovery users create --user-id nobody" in missing.output

        locale = runner.invoke(cli_app, ["users", "set-locale", "dana", "ar"])
        assert locale.exit_code == 0 and json.loads(locale.output)["locale"] == "ar"

        engine = get_settings().database_url
        assert engine is not None
        from store.db import make_engine

        db = make_engine(engine)
        with Session(db) as session:
            assert users.authenticate(session, token=first["api_token"]) is None
            assert users.authenticate(session, token=second["api_token"]) is None
        db.dispose()

        staff = runner.invoke(cli_app, ["staff", "create", "--name", "fiona", "--role", "finance"])
        assert staff.exit_code == 0, staff.output
        assert json.loads(staff.output)["token_expires_at"] is not None  # tokens.staff_days = 90
        staff_rotated = runner.invoke(cli_app, ["staff", "token", "rotate", "fiona"])
        assert staff_rotated.exit_code == 0 and "api_token" in json.loads(staff_rotated.output)
        listed = json.loads(runner.invoke(cli_app, ["staff", "list"]).output)
        assert listed[0]["token_revoked"] is False
        assert runner.invoke(cli_app, ["staff", "token", "revoke", "fiona"]).exit_code == 0
        assert json.loads(runner.invoke(cli_app, ["staff", "list"]).output)[0]["token_revoked"] is True
    finally:
        get_settings.cache_clear()


# --- the API --------------------------------------------------------------------------------------

LIMITS = RateLimitConfig(claims="2/minute", writes="5/minute", reads="4/minute", staff="3/minute", anonymous="3/minute")


class Limited:
    def __init__(
        self, http: httpx.AsyncClient, engine: Engine, fakes: Fakes, tokens: dict[str, str], app: FastAPI
    ) -> None:
        self.http, self.engine, self.fakes, self.tokens, self.app = http, engine, fakes, tokens, app

    def forget_spending(self) -> None:
        self.app.state.rate_limiter = None

    def auth(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"}


@pytest.fixture
async def limited(tmp_path: Path) -> AsyncIterator[Limited]:
    from store import db, schema

    url = f"sqlite:///{tmp_path / 'api.db'}"
    engine = db.make_engine(url)
    schema.init_db(engine)
    settings = Settings(data_dir=tmp_path, database_url=url, chains=dev_chains(), rate_limits=LIMITS)
    fakes = Fakes()
    app = create_app(settings, temporal_client=fakes.connect, engine=engine)
    app.dependency_overrides[get_tracer] = lambda: fakes
    app.dependency_overrides[get_case_starter] = lambda: fakes.start
    tokens: dict[str, str] = {}
    with Session(engine) as session:
        for name in ("alice", "bob"):
            _user, tokens[name] = users.create_user(
                session, user_id=name, signer=MnemonicSigner(), path_for=deposit_path_for_tests
            )
        _member, tokens["fiona"] = create_staff(session, name="fiona", role=StaffRole.FINANCE)
    # every request comes from one address: the exchange's gateway
    transport = httpx.ASGITransport(app=app, client=("10.0.0.1", 4711))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield Limited(http, engine, fakes, tokens, app)
    engine.dispose()


async def test_expired_rotated_and_revoked_tokens_are_refused_with_what_to_do(limited: Limited) -> None:
    ok = await limited.http.get("/v1/cases", headers=limited.auth("alice"))
    assert ok.status_code == 200, ok.text
    with Session(limited.engine) as session:
        _expire(session, User, User.user_id == "alice")
    expired = await limited.http.get("/v1/cases", headers=limited.auth("alice"))
    assert expired.status_code == 401 and expired.headers["www-authenticate"] == "Bearer"
    assert "expired at" in expired.json()["detail"] and "recovery users token rotate" in expired.json()["detail"]

    with Session(limited.engine) as session:
        _user, fresh = users.rotate_token(session, user_id="alice")
    old = await limited.http.get("/v1/cases", headers=limited.auth("alice"))
    assert old.status_code == 401 and "invalid API token" in old.json()["detail"]
    assert (await limited.http.get("/v1/cases", headers={"Authorization": f"Bearer {fresh}"})).status_code == 200

    with Session(limited.engine) as session:
        users.revoke_token(session, user_id="bob")
    revoked = await limited.http.get("/v1/cases", headers=limited.auth("bob"))
    assert revoked.status_code == 401

    limited.forget_spending()  # three refusals spent this address's budget for requests without a valid token
    with Session(limited.engine) as session:
        _expire(session, StaffMember, StaffMember.name == "fiona")
    staff = await limited.http.get("/v1/finance/fees", headers=limited.auth("fiona"))
    assert staff.status_code == 401 and "recovery staff token rotate" in staff.json()["detail"]


async def test_a_burst_spends_only_its_own_tokens_budget(limited: Limited) -> None:
    for n in range(2):
        claim = {"tx_hash": "0x" + f"{n:02x}" * 32}
        response = await limited.http.post("/v1/cases", json=claim, headers=limited.auth("alice"))
        assert response.status_code == 201, response.text
    traced = len(limited.fakes.traces)
    refused = await limited.http.post("/v1/cases", json={"tx_hash": TX}, headers=limited.auth("alice"))
    assert refused.status_code == 429
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= 60
    body = refused.json()
    assert set(body) == {"detail"} and "the limit is 2/minute" in body["detail"] and "try again in" in body["detail"]
    assert len(limited.fakes.traces) == traced  # a refused claim traces nothing

    # bob, behind the same gateway address, still has his whole budget; alice's reads are a separate budget
    assert (await limited.http.post("/v1/cases", json={"tx_hash": TX}, headers=limited.auth("bob"))).status_code == 201
    for _ in range(4):
        assert (await limited.http.get("/v1/cases", headers=limited.auth("alice"))).status_code == 200
    assert (await limited.http.get("/v1/cases", headers=limited.auth("alice"))).status_code == 429
    assert (await limited.http.get("/v1/cases", headers=limited.auth("bob"))).status_code == 200

    # staff tokens have their own budget
    for _ in range(3):
        assert (await limited.http.get("/v1/finance/fees", headers=limited.auth("fiona"))).status_code != 429
    assert (await limited.http.get("/v1/finance/fees", headers=limited.auth("fiona"))).status_code == 429


async def test_requests_without_a_valid_token_are_limited_per_address(limited: Limited) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer wrong-again"}):
        assert (await limited.http.get("/v1/cases", headers=headers)).status_code == 401
    blocked = await limited.http.get("/v1/cases", headers={"Authorization": "Bearer yet-another"})
    assert blocked.status_code == 429 and "without a valid API token" in blocked.json()["detail"]
    # a valid token from the same address is not slowed by them
    assert (await limited.http.get("/v1/cases", headers=limited.auth("alice"))).status_code == 200
