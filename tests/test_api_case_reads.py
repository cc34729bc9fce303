"""Reading cases: a list paged by cursor and filtered by status and date, and case reads with ETags."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic_core import to_json
from sqlalchemy import Engine, text, update
from sqlmodel import Session, select

from api.case_views import CaseReadLane, CaseViews, ReadsBusy, _PostgresReads
from api.main import create_app
from api.schemas import CaseDetail
from bench.bench_api import Dataset, generate, load
from recovery.models import CaseHandling, CaseStatus, CaseUpdate, MessageRef, TimelineEvent
from recovery.roster import Tier
from recovery.settings import RateLimitConfig
from store import cases, ownership, users
from store.case_views import case_view
from store.db import utcnow
from store.ledger import RefundEntry
from tests.api_fixtures import TX, Api
from tests.db_fixtures import POSTGRES_URL, MnemonicSigner, deposit_path_for_tests

START = datetime(2026, 3, 1, tzinfo=UTC)


def _file_cases(api: Api, count: int, user_id: str = "alice") -> list[str]:
    ids = []
    with Session(api.engine) as session:
        for n in range(count):
            case_id = f"case-{user_id}-{n:02d}"
            cases.create_case(session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash=TX, log_index=n)
            session.connection().execute(
                update(cases.Case).where(cases.Case.case_id == case_id).values(created_at=START + timedelta(days=n))  # type: ignore[arg-type]
            )
            session.commit()
            ids.append(case_id)
    return ids


async def test_pages_follow_the_cursor_to_the_end_without_gaps_or_repeats(api: Api) -> None:
    ids = _file_cases(api, 7)
    _file_cases(api, 2, user_id="bob")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": "3"} | ({"cursor": cursor} if cursor else {})
        response = await api.http.get("/v1/cases", params=params, headers=api.auth())
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["count"] == 7
        seen += [c["case_id"] for c in body["data"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == list(reversed(ids))  # newest first, bob's never shown

    # a case filed while paging does not shift later pages (keyset, not offset)
    first = (await api.http.get("/v1/cases", params={"limit": "3"}, headers=api.auth())).json()
    _file_cases(api, 1, user_id="alice-new")  # another user's: alice's list is unchanged
    with Session(api.engine) as session:
        cases.create_case(session, case_id="case-alice-late", user_id="alice", chain="bsc", tx_hash=TX, log_index=99)
    second = (
        await api.http.get("/v1/cases", params={"limit": "3", "cursor": first["next_cursor"]}, headers=api.auth())
    ).json()
    assert [c["case_id"] for c in second["data"]] == list(reversed(ids))[3:6]


async def test_filters_by_status_and_creation_window(api: Api) -> None:
    ids = _file_cases(api, 5)
    with Session(api.engine) as session:
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id=ids[1],
                event=TimelineEvent(key="done", status=CaseStatus.COMPLETED, message="done"),
            ),
        )
    done = (await api.http.get("/v1/cases", params={"status": "COMPLETED"}, headers=api.auth())).json()
    assert [c["case_id"] for c in done["data"]] == [ids[1]] and done["count"] == 1
    both = await api.http.get("/v1/cases", params=[("status", "COMPLETED"), ("status", "RECEIVED")], headers=api.auth())
    assert both.json()["count"] == 5
    window = await api.http.get(
        "/v1/cases",
        params={"created_from": "2026-03-02T00:00:00", "created_to": "2026-03-04T00:00:00Z"},
        headers=api.auth(),
    )
    assert [c["case_id"] for c in window.json()["data"]] == [ids[2], ids[1]]
    backwards = await api.http.get(
        "/v1/cases",
        params={"created_from": "2026-03-04T00:00:00Z", "created_to": "2026-03-02T00:00:00Z"},
        headers=api.auth(),
    )
    assert backwards.status_code == 200 and backwards.json()["data"] == [] and backwards.json()["count"] == 0


async def test_case_reads_carry_an_etag_and_answer_304_until_the_case_changes(api: Api) -> None:
    [case_id] = _file_cases(api, 1)
    first = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert first.json()["case_id"] == case_id

    same = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": etag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == etag
    weak = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": f'"x", W/{etag}'})
    assert weak.status_code == 304
    other = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": '"stale"'})
    assert other.status_code == 200

    with Session(api.engine) as session:
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id=case_id,
                event=TimelineEvent(key="tracing", status=CaseStatus.TRACING, message="Looking the transaction up"),
            ),
        )
    changed = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    assert changed.json()["status"] == "TRACING"

    # the ETag says nothing to another user: their read is a 404 whatever they send
    foreign = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth("bob") | {"If-None-Match": etag})
    assert foreign.status_code == 404


def _version(session: Session, case_id: str) -> int:
    case = session.exec(select(cases.Case).where(cases.Case.case_id == case_id)).one()
    session.refresh(case)
    return case.view_version


def _version_queued(session: Session, case_id: str) -> int:
    """The case's view version, which the triggers also queued its body to be rendered at (store.case_bodies)."""
    version = _version(session, case_id)
    queued = session.connection().execute(
        text("SELECT view_version FROM case_body_queue WHERE case_id = :id"), {"id": case_id}
    )
    assert queued.scalar_one() == version
    return version


def test_every_change_a_case_read_shows_moves_its_view_version(db_session: Session) -> None:
    """By triggers, on both databases: the case row, its timeline, handling, ownership requirement, refund; each
    change queues the case's body at its new version."""
    cases.create_case(db_session, case_id="case-v", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
    seen = [_version_queued(db_session, "case-v")]
    db_session.commit()
    cases.apply_case_update(  # an event, the case row and its handling in one transaction
        db_session,
        update=CaseUpdate(
            case_id="case-v",
            event=TimelineEvent(key="manual", status=CaseStatus.AWAITING_APPROVAL, message="an engineer decides"),
            handling=CaseHandling(tier=Tier.FIRST_LINE),
        ),
    )
    seen.append(_version_queued(db_session, "case-v"))
    db_session.commit()
    ownership.require(db_session, case_id="case-v", chain="bsc", address="0x" + "11" * 20, recipient="0x" + "22" * 20)
    seen.append(_version_queued(db_session, "case-v"))
    db_session.commit()
    db_session.add(_refund("refund-v", "case-v"))
    db_session.commit()
    seen.append(_version_queued(db_session, "case-v"))
    db_session.commit()
    db_session.connection().execute(
        update(cases.CaseHandlingRow).where(cases.CaseHandlingRow.case_id == "case-v").values(assigned_to="bob")  # type: ignore[arg-type]
    )
    db_session.commit()
    seen.append(_version_queued(db_session, "case-v"))
    assert seen == sorted(set(seen)), seen  # strictly moving at every step


async def test_a_cached_read_is_never_served_after_a_change_from_elsewhere(api: Api) -> None:
    [case_id] = _file_cases(api, 1)
    first = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())
    assert first.json()["next_action"]["action"] == "wait"
    again = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304  # from the kept copy

    with Session(api.engine) as session:  # another process's write: the proof becomes due
        ownership.require(session, case_id=case_id, chain="bsc", address="0x" + "11" * 20, recipient="0x" + "22" * 20)
    changed = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"If-None-Match": first.headers["etag"]})
    assert changed.status_code == 200 and changed.json()["next_action"]["action"] == "prove_ownership"


# --- the read path: the lane before the router, the driver's own connections ---------------------------------


def _answer(response: httpx.Response) -> tuple[int, list[tuple[str, str]], bytes]:
    """What a client sees of an answer (its date aside)."""
    headers = sorted((k, v) for k, v in response.headers.multi_items() if k != "date")
    return response.status_code, headers, response.content


async def test_the_lane_answers_every_read_as_the_route_does(api: Api) -> None:
    """Plain reads are answered before the router (api.case_views.CaseReadLane), everything else by the route:
    with the lane off, every answer is the same."""
    [case_id] = _file_cases(api, 1)
    with Session(api.engine) as session:  # bob's token expired yesterday
        session.connection().execute(
            update(users.User).where(users.User.user_id == "bob").values(token_expires_at=utcnow() - timedelta(days=1))  # type: ignore[arg-type]
        )
        session.commit()
    first = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())
    etag = first.headers["etag"]
    requests: list[tuple[str, dict[str, str]]] = [
        (f"/v1/cases/{case_id}", api.auth()),
        (f"/v1/cases/{case_id}", api.auth() | {"If-None-Match": etag}),
        (f"/v1/cases/{case_id}", api.auth() | {"If-None-Match": f'"x", W/{etag}'}),
        (f"/v1/cases/{case_id}", api.auth() | {"If-None-Match": '"stale"'}),
        (f"/v1/cases/{case_id}", api.auth() | {"Accept-Language": "de, en;q=0.5"}),
        (f"/v1/cases/{case_id}", {"Authorization": "bearer " + api.tokens["alice"]}),
        (f"/v1/cases/{case_id}", api.auth("bob")),  # expired
        (f"/v1/cases/{case_id}", {"Authorization": "Bearer nobody-has-this"}),
        (f"/v1/cases/{case_id}", {"Authorization": "Basic " + api.tokens["alice"]}),
        (f"/v1/cases/{case_id}", {}),
        (f"/v1/cases/{case_id}?verbose=1", api.auth()),
        (f"/v1/cases/{case_id}/", api.auth()),
        ("/v1/cases/case-nobody-filed", api.auth()),
        ("/v1/cases/" + "x" * 256, api.auth()),
        (f"/v1/cases/{case_id}", api.auth() | {"If-None-Match": '"' + "x" * 1030 + '"'}),
    ]
    with_lane = [_answer(await api.http.get(path, headers=headers)) for path, headers in requests]
    api.app.state.case_read_lane = False
    without = [_answer(await api.http.get(path, headers=headers)) for path, headers in requests]
    assert [a[0] for a in with_lane] == [200, 304, 304, 200, 200, 200, 401, 401, 401, 401, 422, 404, 404, 422, 422]
    assert with_lane == without
    assert "expired at" in json.loads(with_lane[6][2])["detail"]


async def test_reads_spend_the_reads_budget_and_a_refusal_counts_nothing(api: Api) -> None:
    [case_id] = _file_cases(api, 1)
    settings = api.app.state.settings.model_copy(update={"rate_limits": RateLimitConfig(reads="3/minute")})
    app = create_app(settings, engine=api.engine)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        for _ in range(3):
            assert (await http.get(f"/v1/cases/{case_id}", headers=api.auth())).status_code == 200
        refused = await http.get(f"/v1/cases/{case_id}", headers=api.auth())
        assert refused.status_code == 429 and 1 <= int(refused.headers["retry-after"]) <= 60
        assert "the limit is 3/minute" in refused.json()["detail"]
        assert (await http.get(f"/v1/cases/{case_id}", headers=api.auth("bob"))).status_code == 404  # bob's own


async def test_a_read_that_fails_in_the_lane_is_answered_by_the_route(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The lane runs in front of the app's error handling: a read that fails there (a broken connection) goes on
    to the route, which reads again; the answer is the route's."""
    [case_id] = _file_cases(api, 1)
    expected = _answer(await api.http.get(f"/v1/cases/{case_id}", headers=api.auth()))
    calls: list[str] = []

    async def failing(self: CaseReadLane, scope: Any) -> None:
        calls.append(scope["path"])
        raise RuntimeError("the database went away")

    monkeypatch.setattr(CaseReadLane, "_answer", failing)
    again = _answer(await api.http.get(f"/v1/cases/{case_id}", headers=api.auth()))
    assert calls == [f"/v1/cases/{case_id}"] and again == expected


async def test_a_read_that_waits_too_long_for_the_database_answers_503(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No connection for the read came free in time (in the lane, then in the route): a 503 in the reader's
    language that says to try again, with Retry-After."""
    [case_id] = _file_cases(api, 1)

    async def busy(self: CaseViews, **_: Any) -> None:
        raise ReadsBusy(5.0)

    monkeypatch.setattr(CaseViews, "read", busy)
    refused = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth() | {"Accept-Language": "de"})
    assert refused.status_code == 503 and refused.headers["retry-after"] == "5"
    assert (
        refused.json()["detail"]
        == "die Datenbank ist ausgelastet; nichts wurde gelesen: versuchen Sie es in einigen Sekunden erneut"
    )


@pytest.mark.skipif(POSTGRES_URL is None, reason="runs when TEST_POSTGRES_URL is set (always in CI)")
async def test_postgresql_reads_wait_a_bounded_time_for_a_connection(
    postgres_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    """The PostgreSQL reads' own connections (SQLite reads on one, with no slots): with every one of them held, a
    read gives up after the wait, and reads again once one is free."""
    db_engine = postgres_engine
    user_id, case_id = f"slots-{uuid.uuid4().hex[:8]}", f"case-{uuid.uuid4().hex[:8]}"
    with Session(db_engine) as session:
        _user, token = users.create_user(session, user_id=user_id, signer=fake_signer, path_for=deposit_path_for_tests)
        cases.create_case(session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash=TX, log_index=0)
    views = CaseViews(db_engine)
    assert views._postgres is not None
    views._postgres = _PostgresReads(db_engine, size=1, slot_wait_s=0.2)
    try:
        found, rendered = await views.read(token=token, case_id=case_id)
        assert found is not None and rendered is not None
        slots = views._postgres._slots
        assert slots is not None
        await slots.acquire()  # someone holds the only connection
        started = asyncio.get_running_loop().time()
        with pytest.raises(ReadsBusy):
            await views.read(token=token, case_id=case_id)
        assert 0.2 <= asyncio.get_running_loop().time() - started < 2
        slots.release()
        assert (await views.read(token=token, case_id=case_id))[1] == rendered
    finally:
        await views.close()


async def test_a_rotated_token_reads_nothing_at_once(api: Api) -> None:
    [case_id] = _file_cases(api, 1)
    assert (await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())).status_code == 200
    with Session(api.engine) as session:
        _user, fresh = users.rotate_token(session, user_id="alice")
    old = await api.http.get(f"/v1/cases/{case_id}", headers=api.auth())
    assert old.status_code == 401 and "invalid API token" in old.json()["detail"]
    new = await api.http.get(f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {fresh}"})
    assert new.status_code == 200 and new.json()["case_id"] == case_id


async def test_the_driver_reads_are_the_engine_reads(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    """On each database (PostgreSQL when TEST_POSTGRES_URL is set): who asks, and the rendered case, read on the
    driver's own connections as through the engine; a change renders anew."""
    with Session(db_engine) as session:
        _alice, token = users.create_user(session, user_id="alice", signer=fake_signer, path_for=deposit_path_for_tests)
        _bob, bobs = users.create_user(
            session, user_id="bob", signer=fake_signer, path_for=deposit_path_for_tests, locale="de"
        )
        cases.create_case(session, case_id="case-a", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
        cases.apply_case_update(
            session,
            update=CaseUpdate(
                case_id="case-a",
                event=TimelineEvent(key="manual", status=CaseStatus.AWAITING_APPROVAL, message="an engineer decides"),
                handling=CaseHandling(tier=Tier.FIRST_LINE),
            ),
        )
        confirmations = MessageRef(msgid="Deposit has {have} of {need} confirmations", params={"have": 1, "need": 15})
        cases.apply_case_update(  # a message with values and a deadline: the timeline's every kind of column
            session,
            update=CaseUpdate(
                case_id="case-a",
                event=TimelineEvent(
                    key="waiting",
                    status=CaseStatus.AWAITING_APPROVAL,
                    message="Deposit has 1 of 15 confirmations",
                    text=confirmations,
                    due_at=datetime(2027, 1, 13, 10, 0, 0, 123456, tzinfo=UTC),
                ),
            ),
        )
        ownership.require(session, case_id="case-a", chain="bsc", address="0x" + "11" * 20, recipient="0x" + "22" * 20)
        for key in ("refund-1", "refund-2"):  # two refunds of one case: the timeline is still read once
            session.add(_refund(key, "case-a"))
        session.commit()
    views, by_engine = CaseViews(db_engine), CaseViews(db_engine)
    try:
        for who, case_id, locale in [
            (token, "case-a", None),
            (token, "case-a", "ja"),
            (bobs, "case-a", None),
            (token, "case-none", None),
            ("nobody-has-this", "case-a", None),
        ]:
            found, rendered = await views.read(token=who, case_id=case_id, locale=locale)
            expected = by_engine._read_by_engine(token=who, case_id=case_id, locale=locale)
            assert (found, rendered) == expected
        found, rendered = await views.read(token=token, case_id="case-a")
        assert found is not None and rendered is not None and found.user_id == "alice"
        assert [e["message"] for e in json.loads(rendered.body)["timeline"]] == [
            "Claim received",
            "an engineer decides",
            "Deposit has 1 of 15 confirmations",
        ]
        assert json.loads(rendered.body)["timeline"][-1]["due_at"] == "2027-01-13T10:00:00.123456Z"

        with Session(db_engine) as session:
            cases.apply_case_update(
                session,
                update=CaseUpdate(
                    case_id="case-a",
                    event=TimelineEvent(key="approved", status=CaseStatus.AWAITING_APPROVAL, message="approved by bob"),
                ),
            )
        _again, changed = await views.read(token=token, case_id="case-a")
        assert changed is not None and changed.version > rendered.version and changed.etag != rendered.etag
        assert changed == by_engine._read_by_engine(token=token, case_id="case-a", locale=None)[1]

        with Session(db_engine) as session:
            users.revoke_token(session, user_id="alice")
        assert await views.read(token=token, case_id="case-a") == (None, None)  # its hash is no one's any more
    finally:
        await views.close()


def _refund(key: str, case_id: str) -> RefundEntry:
    """A refund ledger row of 5 USDT of alice's ``case_id`` (a row whose change a case read shows)."""
    return RefundEntry(
        idempotency_key=key,
        case_id=case_id,
        user_id="alice",
        chain="bsc",
        asset="USDT",
        amount=5,
        to_address="0x" + "11" * 20,
        tx_hash="0x" + "cd" * 32,
    )


async def test_reads_survive_odd_ids_dropped_connections_and_keep_a_bounded_cache(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    """Found in review: a NUL in the id (PostgreSQL text cannot hold one) is no case, not a 500 that also threw a
    connection away; connections the server dropped (a restart) are replaced on the next read, not answered with
    500s; the cache bounds the bodies it keeps, whatever the number of languages."""
    with Session(db_engine) as session:
        _alice, token = users.create_user(session, user_id="alice", signer=fake_signer, path_for=deposit_path_for_tests)
        for n in range(3):
            cases.create_case(session, case_id=f"case-{n}", user_id="alice", chain="bsc", tx_hash=TX, log_index=n)
    views = CaseViews(db_engine, max_cases=4)
    try:
        assert await views.read(token=token, case_id="case-\x00") == (None, None)
        for n in range(3):
            for locale in ("en", "de", "ja"):
                _found, rendered = await views.read(token=token, case_id=f"case-{n}", locale=locale)
                assert rendered is not None
        assert sum(len(c.by_locale) for c in views._copies.values()) <= 4
        if db_engine.dialect.name == "postgresql":
            reads = [views.read(token=token, case_id=f"case-{n % 3}", locale="en") for n in range(6)]
            assert all(r is not None for _f, r in await asyncio.gather(*reads))  # several connections, idle now
            with db_engine.connect() as connection:  # what a server restart does to the idle connections
                killed = connection.exec_driver_sql(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle'"
                    " AND query LIKE '%%view_version%%'"
                ).all()
            assert len(killed) >= 2, "the reads' own connections, more than one"
            for n in range(3):
                _found, rendered = await views.read(token=token, case_id=f"case-{n}", locale="fr")
                assert rendered is not None
    finally:
        await views.close()


async def test_a_rendered_read_is_the_validated_models_json(db_engine: Engine) -> None:
    """A read's body is rendered from the case's fields with ``pydantic_core.to_json``, without the model: byte for
    byte what the validated ``CaseDetail`` writes, for every kind of case the engine leaves (the API bench's
    cases: each status, handling with SLA dates, ownership to prove, quotes to accept, refunds, timelines with
    deadlines) and in languages of every script, on each database; the fields from the case as the engine reads
    it, the body from the driver's read."""
    data = Dataset()
    load(db_engine, generate(240, 6, 11, data), lambda _: None)
    views = CaseViews(db_engine)
    kinds: set[tuple[str, bool, bool, bool]] = set()
    try:
        for n, case_id in enumerate(data.case_ids):
            with db_engine.connect() as connection:
                view = case_view(connection, case_id=case_id)
            assert view is not None
            shown = (view.handling, view.ownership, view.refund)
            kinds.add((view.case.status, *(part is not None for part in shown)))
            locale = ("en", "de", "ja", "ar", "zh-Hant")[n % 5]
            parts = (view.case, view.events, view.handling, view.ownership, view.refund)
            fields = CaseDetail.fields_of(*parts, locale=locale)
            assert to_json(fields) == CaseDetail.model_validate(fields).model_dump_json().encode()
            _, rendered = await views.read(token=data.tokens[data.owners[n]], case_id=case_id, locale=locale)
            assert rendered is not None and rendered.body == to_json(fields)
    finally:
        await views.close()
    assert len({status for status, *_ in kinds}) >= 5 and all(any(kind[i] for kind in kinds) for i in (1, 2, 3))
