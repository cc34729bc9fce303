"""Users rate their closed cases once: the store's rules and the database's constraints (SQLite and
PostgreSQL), and the route ``POST /v1/cases/{id}/feedback`` (404 for another user's case as the cases route
answers, 409 before the end and the second time, 422 for a bad rating or comment, nothing changed then)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from api.main import create_app
from recovery.models import CaseStatus, CaseUpdate, TimelineEvent
from recovery.settings import Settings, dev_chains
from store import cases, users
from store.feedback import MAX_COMMENT_CHARS, CaseFeedback, CaseNotClosed, FeedbackExists, add_feedback, get_feedback
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests


def open_case(session: Session, user_id: str, status: CaseStatus | None = CaseStatus.REJECTED) -> str:
    """A case of ``user_id`` through the store's own functions, moved to ``status`` (None: left RECEIVED)."""
    case_id = f"case-{uuid.uuid4().hex[:16]}"
    cases.create_case(session, case_id=case_id, user_id=user_id, chain="bsc", tx_hash="0x" + "ab" * 32, log_index=0)
    if status is not None:
        event = TimelineEvent(key=f"to-{status.value.lower()}", status=status, message=f"now {status}")
        assert cases.apply_case_update(session, update=CaseUpdate(case_id=case_id, event=event))
    return case_id


def feedback_rows(engine: Engine) -> list[tuple[str, str, int, str | None]]:
    with Session(engine) as session:
        rows = session.exec(select(CaseFeedback).order_by(col(CaseFeedback.id))).all()
        return [(r.case_id, r.user_id, r.rating, r.comment) for r in rows]


# --- the store ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [s for s in CaseStatus if s.terminal])
def test_a_closed_case_is_rated_once(db_engine: Engine, db_session: Session, status: CaseStatus) -> None:
    case_id = open_case(db_session, "ana", status)
    row = add_feedback(db_session, case_id=case_id, user_id="ana", rating=4, comment="fine")
    assert (row.case_id, row.user_id, row.rating, row.comment) == (case_id, "ana", 4, "fine")
    assert row.created_at.tzinfo is not None

    with pytest.raises(FeedbackExists, match="rated already") as refused:
        add_feedback(db_session, case_id=case_id, user_id="ana", rating=1, comment="changed my mind")
    assert refused.value.existing.rating == 4
    assert feedback_rows(db_engine) == [(case_id, "ana", 4, "fine")]
    found = get_feedback(db_session, case_id=case_id)
    assert found is not None and found.rating == 4


def test_open_foreign_and_missing_cases_take_no_rating(db_engine: Engine, db_session: Session) -> None:
    open_one = open_case(db_session, "ana", CaseStatus.AWAITING_APPROVAL)
    with pytest.raises(CaseNotClosed, match="AWAITING_APPROVAL") as refused:
        add_feedback(db_session, case_id=open_one, user_id="ana", rating=5)
    assert refused.value.status is CaseStatus.AWAITING_APPROVAL

    bens = open_case(db_session, "ben")
    with pytest.raises(cases.CaseNotFound):
        add_feedback(db_session, case_id=bens, user_id="ana", rating=5)
    with pytest.raises(cases.CaseNotFound):
        add_feedback(db_session, case_id="case-nope", user_id="ana", rating=5)
    assert feedback_rows(db_engine) == []


@pytest.mark.parametrize("rating", [0, 6, -1, True])
def test_the_store_refuses_a_rating_out_of_range(db_engine: Engine, db_session: Session, rating: int) -> None:
    case_id = open_case(db_session, "ana")
    with pytest.raises(ValueError, match="from 1 to 5"):
        add_feedback(db_session, case_id=case_id, user_id="ana", rating=rating)
    with pytest.raises(ValueError, match="at most 2000"):
        add_feedback(db_session, case_id=case_id, user_id="ana", rating=3, comment="x" * (MAX_COMMENT_CHARS + 1))
    assert feedback_rows(db_engine) == []


INSERT = text(
    "INSERT INTO case_feedback (case_id, user_id, rating, comment, created_at) "
    "VALUES (:case_id, 'ana', :rating, :comment, CURRENT_TIMESTAMP)"
)


@pytest.mark.parametrize(
    ("rating", "comment"), [(0, None), (6, None), (5, "x" * (MAX_COMMENT_CHARS + 1))], ids=["0", "6", "long"]
)
def test_the_database_checks_rating_and_comment(db_engine: Engine, rating: int, comment: str | None) -> None:
    """Whatever code writes the table, the database keeps the rating in 1..5 and the comment short."""
    with pytest.raises(IntegrityError, match="ck_case_feedback"), db_engine.begin() as conn:
        conn.execute(INSERT, {"case_id": "case-raw", "rating": rating, "comment": comment})
    with db_engine.begin() as conn:  # the edges are accepted
        conn.execute(INSERT, {"case_id": "case-raw-1", "rating": 1, "comment": "x" * MAX_COMMENT_CHARS})
        conn.execute(INSERT, {"case_id": "case-raw-5", "rating": 5, "comment": None})
    assert sorted(r[0] for r in feedback_rows(db_engine)) == ["case-raw-1", "case-raw-5"]


def test_the_database_takes_one_rating_per_case(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(INSERT, {"case_id": "case-raw", "rating": 3, "comment": None})
    with pytest.raises(IntegrityError, match="uq_case_feedback_case|UNIQUE"), db_engine.begin() as conn:
        conn.execute(INSERT, {"case_id": "case-raw", "rating": 4, "comment": None})
    assert feedback_rows(db_engine) == [("case-raw", "ana", 3, None)]


# --- the route ------------------------------------------------------------------------------------


@dataclass
class Api:
    http: httpx.AsyncClient
    engine: Engine
    tokens: dict[str, str]
    temporal_calls: list[str]

    def auth(self, user: str = "ana") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}

    def case(self, user_id: str, status: CaseStatus | None = CaseStatus.COMPLETED) -> str:
        with Session(self.engine, expire_on_commit=False) as session:
            return open_case(session, user_id, status)

    async def rate(self, case_id: str, body: Any, user: str = "ana") -> httpx.Response:
        return await self.http.post(f"/v1/cases/{case_id}/feedback", json=body, headers=self.auth(user))


@pytest.fixture
async def api(db_engine: Engine, tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(data_dir=tmp_path, database_url=str(db_engine.url), chains=dev_chains())
    calls: list[str] = []

    async def no_temporal() -> Any:
        calls.append("connect")
        raise AssertionError("rating a case needs no Temporal")

    app = create_app(settings, temporal_client=no_temporal, engine=db_engine)
    tokens: dict[str, str] = {}
    with Session(db_engine) as session:
        for name in ("ana", "ben"):
            _user, tokens[name] = users.create_user(
                session, user_id=name, signer=MnemonicSigner(), path_for=deposit_path_for_tests
            )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        yield Api(http=http, engine=db_engine, tokens=tokens, temporal_calls=calls)
    assert calls == []


async def test_rate_a_closed_case_then_read_it(api: Api) -> None:
    case_id = api.case("ana")
    response = await api.rate(case_id, {"rating": 5, "comment": "  Quick and clear.  "})
    assert response.status_code == 201, response.text
    body = response.json()
    assert {k: body[k] for k in ("case_id", "rating", "comment")} == {
        "case_id": case_id,
        "rating": 5,
        "comment": "Quick and clear.",
    }
    assert feedback_rows(api.engine) == [(case_id, "ana", 5, "Quick and clear.")]

    read = await api.http.get(f"/v1/cases/{case_id}/feedback", headers=api.auth())
    assert read.status_code == 200 and read.json() == body

    unrated = api.case("ana")
    read = await api.http.get(f"/v1/cases/{unrated}/feedback", headers=api.auth())
    assert read.status_code == 404 and "POST /v1/cases/" in read.json()["detail"]


async def test_a_second_rating_is_refused(api: Api) -> None:
    case_id = api.case("ana")
    assert (await api.rate(case_id, {"rating": 2})).status_code == 201
    again = await api.rate(case_id, {"rating": 5, "comment": "better now"})
    assert again.status_code == 409
    assert "rated this case already (2 of 5" in again.json()["detail"]
    assert feedback_rows(api.engine) == [(case_id, "ana", 2, None)]


async def test_an_open_case_cannot_be_rated_yet(api: Api) -> None:
    case_id = api.case("ana", CaseStatus.AWAITING_APPROVAL)
    response = await api.rate(case_id, {"rating": 5})
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "AWAITING_APPROVAL" in detail and "once it is COMPLETED, REJECTED" in detail, detail
    assert "nothing was recorded" in detail
    assert feedback_rows(api.engine) == []


async def test_another_users_case_answers_as_the_cases_route(api: Api) -> None:
    bens = api.case("ben")
    as_the_cases_route = await api.http.get(f"/v1/cases/{bens}", headers=api.auth("ana"))
    missing_there = await api.http.get("/v1/cases/case-nope", headers=api.auth("ana"))
    assert as_the_cases_route.status_code == 404

    response = await api.rate(bens, {"rating": 1})
    assert (response.status_code, response.json()) == (404, as_the_cases_route.json())
    missing = await api.rate("case-nope", {"rating": 1})
    assert (missing.status_code, missing.json()) == (404, missing_there.json())
    read = await api.http.get(f"/v1/cases/{bens}/feedback", headers=api.auth("ana"))
    assert (read.status_code, read.json()) == (404, as_the_cases_route.json())
    assert feedback_rows(api.engine) == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"rating": 0}, "rating: must be a whole number from 1"),
        ({"rating": 6}, "rating: must be a whole number from 1"),
        ({"rating": 4.5}, "rating: must be a whole number from 1"),
        ({"rating": "5"}, "rating: must be a whole number from 1"),
        ({"rating": True}, "rating: must be a whole number from 1"),
        ({}, "rating is required"),
        ({"rating": 3, "comment": "x" * (MAX_COMMENT_CHARS + 1)}, "shorten it to at most 2000"),
        ({"rating": 3, "stars": 3}, "unknown field 'stars'"),
    ],
)
async def test_bad_bodies_are_refused_and_change_nothing(api: Api, body: dict[str, Any], needle: str) -> None:
    case_id = api.case("ana")
    response = await api.rate(case_id, body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"], response.json()
    assert feedback_rows(api.engine) == []
    assert (await api.rate(case_id, {"rating": 3})).status_code == 201  # the case can still be rated


async def test_without_a_token_nothing_is_recorded(api: Api) -> None:
    case_id = api.case("ana")
    response = await api.http.post(f"/v1/cases/{case_id}/feedback", json={"rating": 5})
    assert response.status_code == 401
    assert feedback_rows(api.engine) == []


async def test_the_route_is_documented(api: Api) -> None:
    schema = (await api.http.get("/openapi.json")).json()
    post = schema["paths"]["/v1/cases/{case_id}/feedback"]["post"]
    assert {"201", "404", "409", "422"} <= set(post["responses"])
    assert "get" in schema["paths"]["/v1/cases/{case_id}/feedback"]
