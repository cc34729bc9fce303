"""The notification outbox on SQLite and (with TEST_POSTGRES_URL) PostgreSQL: every timeline event writes one
notification in its own transaction (none when the change rolls back or repeats a key), numbered in order per
case; only a case's first undelivered notification is due; a dead one holds back the rest of its case; operators
revive them."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from recovery.models import CaseStatus, CaseUpdate, MessageRef, Pattern, Settlement, TimelineEvent
from store import cases, notifications, users
from store.notifications import BURIED_ERROR, Notification, State
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.test_store import run_threads

HUGE = 2**255 + 7


def _user(session: Session, signer: MnemonicSigner, user_id: str = "alice") -> None:
    users.create_user(session, user_id=user_id, signer=signer, path_for=deposit_path_for_tests)


def _case(
    session: Session, case_id: str = "case-1", user_id: str = "alice", note_key: str | None = None, note: str = ""
) -> cases.Case:
    return cases.create_case(
        session,
        case_id=case_id,
        user_id=user_id,
        chain="bsc",
        tx_hash="0x" + "ab" * 32,
        log_index=3,
        note_key=note_key,
        note=note,
    )


def _update(case_id: str, key: str, status: CaseStatus = CaseStatus.TRACING, **fields: object) -> CaseUpdate:
    return CaseUpdate.model_validate(
        {"case_id": case_id, "event": TimelineEvent(key=key, status=status, message=f"msg {key}"), **fields}
    )


def _rows(engine: Engine, case_id: str | None = None) -> list[Notification]:
    with Session(engine) as session:
        statement = select(Notification).order_by(Notification.id)  # type: ignore[arg-type]
        if case_id is not None:
            statement = statement.where(Notification.case_id == case_id)
        return list(session.exec(statement).all())


def _events(engine: Engine, case_id: str) -> list[cases.CaseEvent]:
    with Session(engine) as session:
        return cases.timeline(session, case_id=case_id)


def test_every_timeline_event_is_one_notification_with_the_case_as_it_stands(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session)
        assert cases.apply_case_update(
            session,
            update=_update(
                "case-1", "classified", CaseStatus.CLASSIFIED, pattern=Pattern.WRONG_NETWORK_SAME_KEY, asset="USDT",
                decimals=18, amount=HUGE,
            ),
        )  # fmt: skip
        assert cases.apply_case_update(session, update=_update("case-1", "info-request-2", CaseStatus.AWAITING_USER))

    events = _events(db_engine, "case-1")
    rows = _rows(db_engine)
    assert [(r.seq, r.event_key, r.event_type) for r in rows] == [
        (1, "received", "case.received"),
        (2, "classified", "case.classified"),
        (3, "info-request-2", "case.info_request"),
    ]
    assert [e.key for e in events] == [r.event_key for r in rows]
    assert [r.text for r in rows] == [e.message for e in events]
    assert len({r.webhook_id for r in rows}) == 3 and all(r.webhook_id.startswith("msg_") for r in rows)
    assert [r.state for r in rows] == ["due", "waiting", "waiting"]  # only the first of a case is due

    body = json.loads(rows[1].payload)
    assert body["type"] == "case.classified"
    assert datetime.fromisoformat(body["timestamp"]) == events[1].at
    data = body["data"]
    assert (data["case_id"], data["user_id"], data["seq"], data["locale"]) == ("case-1", "alice", 2, "en")
    assert data["message"] == "msg classified"
    assert data["event"]["key"] == "classified" and data["event"]["status"] == "CLASSIFIED"
    assert data["event"]["due_at"] is None  # asks nothing of the user
    case = data["case"]
    assert case["status"] == "CLASSIFIED" and case["pattern"] == "WRONG_NETWORK_SAME_KEY"
    assert case["amount"] == str(HUGE) and isinstance(case["amount"], str)  # amounts: integers, as strings
    assert case["asset"] == "USDT" and case["decimals"] == 18 and case["credited"] is None
    assert case["tx_hash"] == "0x" + "ab" * 32 and case["log_index"] == 3


def test_no_notification_when_the_change_rolls_back_or_repeats_its_key(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session)
        assert cases.apply_case_update(session, update=_update("case-1", "tracing"))
        assert not cases.apply_case_update(session, update=_update("case-1", "tracing"))  # the same key again

        def fails(_session: Session, _case: cases.Case) -> None:
            raise RuntimeError("the ledger refused it")

        with pytest.raises(RuntimeError):
            cases.apply_case_update(session, update=_update("case-1", "classified", CaseStatus.CLASSIFIED), also=fails)
        session.rollback()
        with pytest.raises(cases.CaseNotFound):
            cases.apply_case_update(session, update=_update("case-nope", "tracing"))

    assert [r.event_key for r in _rows(db_engine)] == ["received", "tracing"]
    assert [e.key for e in _events(db_engine, "case-1")] == ["received", "tracing"]


def test_every_writer_of_the_timeline_notifies(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    """A case opened with a note, a note (an incident's), the credit, and a re-run reported after the close."""
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session, note_key="found-by-scanner", note="Found by the deposit scanner")
        assert cases.add_note(session, case_id="case-1", key="incident-3", message="Your fee is waived")
        session.commit()
        case = cases.get_case(session, case_id="case-1")
        assert case is not None
        settlement = Settlement(recovered=100, credited=90, fee=7, gas=3, gas_native=1)
        cases.add_completion(session, case=case, settlement=settlement, fee_usd=Decimal("7"), message="Credited 90")
        session.commit()
        assert cases.apply_case_update(session, update=_update("case-1", "rejected", CaseStatus.REJECTED))

    rows = _rows(db_engine)
    assert [(r.seq, r.event_key, r.event_type) for r in rows] == [
        (1, "received", "case.received"),
        (2, "found-by-scanner", "case.found_by_scanner"),
        (3, "incident-3", "case.incident"),
        (4, "credited", "case.credited"),
        (5, "rejected", "case.rerun_reported"),
    ]
    assert [r.event_key for r in rows] == [e.key for e in _events(db_engine, "case-1")]
    credited = json.loads(rows[3].payload)["data"]
    assert credited["case"]["status"] == "COMPLETED"
    assert (credited["case"]["credited"], credited["case"]["fee"], credited["case"]["gas"]) == ("90", "7", "3")
    rerun = json.loads(rows[4].payload)["data"]
    assert rerun["case"]["status"] == "COMPLETED" and "The case is unchanged" in rerun["message"]


def test_the_users_locale(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session, case_id="case-nobody", user_id="nobody")  # no user row: English
        users.set_locale(session, user_id="alice", locale="fr")
        _case(session, case_id="case-alice")
    locales = {r.case_id: r.locale for r in _rows(db_engine)}
    assert locales["case-nobody"] == "en" and locales["case-alice"] == "fr"
    assert all(json.loads(r.payload)["data"]["locale"] == r.locale for r in _rows(db_engine))


def test_a_notification_carries_its_message_id_and_values_for_a_receiver_that_renders_it(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    ref = MessageRef(msgid="Tracing the transaction")
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        users.set_locale(session, user_id="alice", locale="de")
        _case(session)
        event = TimelineEvent(key="tracing", status=CaseStatus.TRACING, message="Tracing the transaction", text=ref)
        assert cases.apply_case_update(session, update=CaseUpdate(case_id="case-1", event=event))
    data = {json.loads(r.payload)["data"]["event"]["key"]: json.loads(r.payload)["data"] for r in _rows(db_engine)}
    assert data["tracing"]["text"] == {"msgid": "Tracing the transaction", "params": {}}
    assert data["tracing"]["locale"] == "de" and data["tracing"]["message"] != "Tracing the transaction"


def test_a_case_undone_before_its_workflow_started_takes_its_undelivered_notifications(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session)
        [first] = _rows(db_engine)
        assert first.id is not None
        notifications.mark_delivered(session, notification_id=first.id, case_id="case-1", at=_now())
        assert cases.apply_case_update(session, update=_update("case-1", "tracing"))
        assert cases.delete_case(session, case_id="case-1")
        assert [r.event_key for r in _rows(db_engine)] == ["received"]  # delivered: the receiver has it
        _case(session)  # opened again: numbering goes on
    assert [(r.seq, r.event_key, r.state) for r in _rows(db_engine)] == [
        (1, "received", "delivered"),
        (2, "received", "due"),
    ]


def test_concurrent_writers_of_one_case_number_its_notifications_without_gaps_or_losses(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, fake_signer)
        _case(session)

    def write(i: int) -> bool:
        with Session(db_engine, expire_on_commit=False) as session:
            return cases.apply_case_update(session, update=_update("case-1", f"step-{i}"))

    results = run_threads(12, write)
    assert results == [True] * 12, results
    rows = _rows(db_engine, "case-1")
    assert sorted(r.seq for r in rows) == list(range(1, 14))
    # numbered in commit order: the events' ids and the notifications' numbers agree
    by_key = {r.event_key: r.seq for r in rows}
    assert [by_key[e.key] for e in _events(db_engine, "case-1")] == list(range(1, 14))


# --- the dispatcher's bookkeeping -------------------------------------------------------------------


def _now() -> datetime:
    return datetime.now(UTC)


def _ids(rows: list[Notification]) -> list[int]:
    return [r.id for r in rows if r.id is not None]


def _three_cases(db_engine: Engine, signer: MnemonicSigner) -> None:
    with Session(db_engine, expire_on_commit=False) as session:
        _user(session, signer)
        for case_id in ("case-a", "case-b", "case-c"):
            _case(session, case_id=case_id)
            for key in ("tracing", "classified"):
                assert cases.apply_case_update(session, update=_update(case_id, key))


def test_only_each_cases_first_undelivered_is_due_and_delivering_it_makes_the_next_due(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    _three_cases(db_engine, fake_signer)
    with Session(db_engine, expire_on_commit=False) as session:
        due = notifications.due(session, now=_now(), limit=10)
        assert [(r.case_id, r.seq) for r in due] == [("case-a", 1), ("case-b", 1), ("case-c", 1)]
        queued = notifications.queued_after(session, heads=due, per_case=10)
        assert {c: [r.seq for r in q] for c, q in queued.items()} == {c: [2, 3] for c in ("case-a", "case-b", "case-c")}
        assert [r.seq for r in notifications.due(session, now=_now() - timedelta(hours=1), limit=10)] == []

        a1 = due[0]
        assert a1.id is not None
        assert notifications.mark_delivered(session, notification_id=a1.id, case_id="case-a", at=_now())
        assert not notifications.mark_delivered(session, notification_id=a1.id, case_id="case-a", at=_now())
        assert [(r.case_id, r.seq) for r in notifications.due(session, now=_now(), limit=10)] == [
            ("case-b", 1),
            ("case-c", 1),
            ("case-a", 2),
        ]
        # a failure moves the case's head later; the rest of the case waits behind it
        b1 = due[1]
        assert b1.id is not None
        later = _now() + timedelta(minutes=5)
        assert (
            notifications.mark_failed(
                session, notification_id=b1.id, case_id="case-b", at=_now(), error="HTTP 503", retry_at=later
            )
            == 0
        )
        assert [(r.case_id, r.seq) for r in notifications.due(session, now=_now(), limit=10)] == [
            ("case-c", 1),
            ("case-a", 2),
        ]
        assert [(r.case_id, r.seq) for r in notifications.due(session, now=later, limit=10)][-1] == ("case-b", 1)
        failed = notifications.get(session, notification_id=b1.id)
        assert failed is not None and (failed.attempts, failed.last_error) == (1, "HTTP 503")
        assert notifications.counts(session) == {"pending": 8, "dead": 0}


def test_a_dead_notification_holds_back_its_case_until_redelivered(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    _three_cases(db_engine, fake_signer)
    with Session(db_engine, expire_on_commit=False) as session:
        head = notifications.due(session, now=_now(), limit=1)[0]
        assert head.id is not None and head.case_id == "case-a"
        died = notifications.mark_failed(
            session, notification_id=head.id, case_id="case-a", at=_now(), error="HTTP 500", retry_at=None
        )
        assert died == 3
        dead = notifications.listing(session, state=State.DEAD)
        assert sorted((r.case_id, r.seq, r.last_error) for r in dead) == [
            ("case-a", 1, "HTTP 500"),
            ("case-a", 2, BURIED_ERROR),
            ("case-a", 3, BURIED_ERROR),
        ]
        assert "case-a" not in {r.case_id for r in notifications.due(session, now=_now(), limit=10)}

        # a change of the case after its notifications died waits, then is buried by the dispatcher's tidy
        assert cases.apply_case_update(session, update=_update("case-a", "expired", CaseStatus.EXPIRED))
        [late] = [r for r in _rows(db_engine, "case-a") if r.seq == 4]
        assert late.state == "waiting"
        assert notifications.tidy(session, now=_now()) == (1, 0)
        assert notifications.counts(session) == {"pending": 6, "dead": 4}

        # one notification: it and the undelivered ones before it come back, the first due at once
        revived = notifications.redeliver(session, now=_now(), notification_id=_ids(dead)[1])
        assert [(r.seq, r.state, r.attempts) for r in revived] == [(1, "due", 0), (2, "waiting", 0)]
        assert [r.seq for r in notifications.listing(session, case_id="case-a", state=State.DEAD)] == [3, 4]
        # the whole case, by --dead: the rest come back behind it
        revived = notifications.redeliver(session, now=_now(), dead=True)
        assert [(r.case_id, r.seq, r.state) for r in revived] == [
            ("case-a", 1, "due"),
            ("case-a", 2, "waiting"),
            ("case-a", 3, "waiting"),
            ("case-a", 4, "waiting"),
        ]
        assert notifications.counts(session) == {"pending": 10, "dead": 0}
        assert [r.webhook_id for r in revived] == [r.webhook_id for r in _rows(db_engine, "case-a")]
        assert notifications.redeliver(session, now=_now(), case_id="case-none") == []
        with pytest.raises(ValueError, match="exactly one"):
            notifications.redeliver(session, now=_now(), case_id="case-a", dead=True)


def test_tidy_makes_due_a_waiting_notification_with_nothing_before_it(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    """A waiting notification whose predecessor vanished (deleted by hand, say) is not stuck forever."""
    _three_cases(db_engine, fake_signer)
    with Session(db_engine, expire_on_commit=False) as session:
        session.execute(text("DELETE FROM notifications WHERE case_id = 'case-c' AND seq = 1"))
        session.commit()
        assert "case-c" not in {r.case_id for r in notifications.due(session, now=_now(), limit=10)}
        assert notifications.tidy(session, now=_now()) == (0, 1)
        assert ("case-c", 2) in {(r.case_id, r.seq) for r in notifications.due(session, now=_now(), limit=10)}
        assert notifications.tidy(session, now=_now()) == (0, 0)
