"""Reading cases: a list paged by cursor and filtered by status and date, and case reads with ETags."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update
from sqlmodel import Session, select

from recovery.models import CaseHandling, CaseStatus, CaseUpdate, TimelineEvent
from recovery.roster import Tier
from store import cases, ownership
from store.ledger import RefundEntry
from tests.api_fixtures import TX, Api

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


def test_every_change_a_case_read_shows_moves_its_view_version(db_session: Session) -> None:
    """By triggers, on both databases: the case row, its timeline, handling, ownership requirement, refund."""
    cases.create_case(db_session, case_id="case-v", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
    seen = [_version(db_session, "case-v")]
    db_session.commit()
    cases.apply_case_update(  # an event, the case row and its handling in one transaction
        db_session,
        update=CaseUpdate(
            case_id="case-v",
            event=TimelineEvent(key="manual", status=CaseStatus.AWAITING_APPROVAL, message="an engineer decides"),
            handling=CaseHandling(tier=Tier.FIRST_LINE),
        ),
    )
    seen.append(_version(db_session, "case-v"))
    db_session.commit()
    ownership.require(db_session, case_id="case-v", chain="bsc", address="0x" + "11" * 20, recipient="0x" + "22" * 20)
    seen.append(_version(db_session, "case-v"))
    db_session.commit()
    db_session.add(
        RefundEntry(
            idempotency_key="refund-v",
            case_id="case-v",
            user_id="alice",
            chain="bsc",
            asset="USDT",
            amount=5,
            to_address="0x" + "11" * 20,
            tx_hash="0x" + "cd" * 32,
        )
    )
    db_session.commit()
    seen.append(_version(db_session, "case-v"))
    db_session.commit()
    db_session.connection().execute(
        update(cases.CaseHandlingRow).where(cases.CaseHandlingRow.case_id == "case-v").values(assigned_to="bob")  # type: ignore[arg-type]
    )
    db_session.commit()
    seen.append(_version(db_session, "case-v"))
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
