"""Delivering the outbox over HTTP (``services.notifications``) on SQLite and (with TEST_POSTGRES_URL) PostgreSQL:
the retry schedule (a pure function), signatures that ``standardwebhooks`` verifies, a real receiver that answers
503 and then goes down for an hour before it comes back (nothing lost, in order per case, retries under the same
``webhook-id``), one case stopped at its first failure while the others go on, a crash between the receiver's 2xx
and the mark (sent again with the same id, dropped by the receiver as a duplicate), and the window closing."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session
from standardwebhooks import Webhook

from devstack.webhook_receiver import WebhookReceiver
from recovery.models import CaseStatus, CaseUpdate, TimelineEvent
from recovery.notifications import event_type, next_attempt_at, retry_ceiling, retry_delay
from recovery.settings import NotificationsConfig
from services import notifications as delivery
from services.notifications import NotificationDispatcher, WebhookSender, short_error
from store import cases, notifications, users
from store.notifications import Notification, State
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()
T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)

# --- the retry schedule ----------------------------------------------------------------------------


@given(
    failures=st.integers(min_value=1, max_value=500),
    base=st.floats(min_value=0.1, max_value=600),
    cap=st.floats(min_value=0.1, max_value=86_400),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_each_wait_is_a_jittered_draw_below_the_capped_exponential(
    failures: int, base: float, cap: float, seed: int
) -> None:
    ceiling = retry_ceiling(failures, base_s=base, cap_s=cap)
    assert ceiling == pytest.approx(min(cap, base * 2.0 ** min(failures - 1, 64)))
    assert ceiling <= cap
    if failures > 1:
        assert ceiling >= retry_ceiling(failures - 1, base_s=base, cap_s=cap)
    delay = retry_delay(failures, base_s=base, cap_s=cap, rng=random.Random(seed))
    assert min(1.0, ceiling) <= delay <= ceiling


@settings(max_examples=50, deadline=None)
@given(
    base=st.floats(min_value=1, max_value=120),
    cap=st.floats(min_value=60, max_value=7200),
    window_hours=st.floats(min_value=72, max_value=96),
    seed=st.integers(min_value=0, max_value=2**32),
)
def test_a_receiver_that_never_answers_is_tried_for_the_whole_window(
    base: float, cap: float, window_hours: float, seed: int
) -> None:
    rng = random.Random(seed)
    give_up_at = T0 + timedelta(hours=window_hours)
    attempts, now = [T0], T0
    while retry := next_attempt_at(now, failures=len(attempts), give_up_at=give_up_at, base_s=base, cap_s=cap, rng=rng):
        assert timedelta(0) < retry - now <= timedelta(seconds=cap)
        attempts.append(retry)
        now = retry
    assert attempts[-1] >= give_up_at >= T0 + timedelta(days=3)  # given up only after at least 3 days
    assert attempts[-2] < give_up_at  # and right after the window, not a whole extra wait later
    assert len(attempts) >= window_hours * 3600 / cap  # every cap at least, once the backoff reached it


def test_the_defaults_retry_for_three_days_and_a_receiver_back_is_tried_within_half_an_hour() -> None:
    config = NotificationsConfig()
    assert config.give_up_after_hours == 72
    assert retry_ceiling(1, base_s=config.backoff_base_seconds, cap_s=config.backoff_cap_seconds) == 10
    assert retry_ceiling(30, base_s=config.backoff_base_seconds, cap_s=config.backoff_cap_seconds) == 1800
    with pytest.raises(ValueError):
        next_attempt_at(T0.replace(tzinfo=None), failures=1, give_up_at=T0, base_s=1, cap_s=2, rng=random.Random())
    with pytest.raises(ValueError):
        retry_ceiling(0, base_s=1, cap_s=2)


def test_event_types() -> None:
    assert event_type("classified") == "case.classified"
    assert event_type("info-request-12") == "case.info_request"
    assert event_type("sla-reminder-1") == "case.sla_reminder"
    assert event_type("sla-due_soon") == "case.sla_due_soon"
    assert event_type("quote-accepted") == "case.quote_accepted"
    assert event_type("Weird key!") == "case.weird_key"
    assert event_type("---") == "case.event"


def test_configuration_refuses_a_url_without_a_secret_and_the_worker_a_secret_that_is_not_whsec() -> None:
    with pytest.raises(ValueError, match="set both"):
        NotificationsConfig(url="https://notify.example/hooks")
    wrong = NotificationsConfig(url="https://notify.example/hooks", secret="hunter2-password")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="whsec_") as refused:  # at the worker's start, the value not echoed
        NotificationDispatcher(config=wrong, engine=None)  # type: ignore[arg-type]
    assert "hunter2" not in str(refused.value)
    for short in ("whsec_", "whsec_" + base64.b64encode(b"x" * 15).decode(), "whsec_not base64!"):
        assert NotificationsConfig(secret=short).secret_problem() is not None  # type: ignore[arg-type]
    for n in (16, 31, 32, 33):  # padded or not
        assert NotificationsConfig(secret="whsec_" + base64.b64encode(os.urandom(n)).decode()).secret_problem() is None  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="http"):
        NotificationsConfig(url="ftp://notify.example", secret=SECRET)  # type: ignore[arg-type]
    config = NotificationsConfig(url="https://notify.example/hooks", secret=SECRET)  # type: ignore[arg-type]
    assert SECRET not in repr(config) and SECRET not in str(config.model_dump())


# --- signatures ----------------------------------------------------------------------------------


async def test_headers_verify_with_standardwebhooks_and_only_with_the_right_secret() -> None:
    config = NotificationsConfig(url="http://127.0.0.1:9/webhooks", secret=SECRET)  # type: ignore[arg-type]
    body = json.dumps({"type": "case.classified", "data": {"case_id": "c", "seq": 1, "amount": str(2**255)}})
    async with httpx.AsyncClient() as client:
        headers = WebhookSender(config, client).headers("msg_1", body)
    assert headers["webhook-id"] == "msg_1" and headers["webhook-signature"].startswith("v1,")
    assert Webhook(SECRET).verify(body.encode(), headers) == json.loads(body)
    other = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    with pytest.raises(Exception, match="signature"):
        Webhook(other).verify(body.encode(), headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(SECRET).verify(body.replace('"seq": 1', '"seq": 2').encode(), headers)


def test_errors_are_recorded_without_the_url() -> None:
    url = "https://notify.example/hooks/recovery?token=s3cr3t-t0ken"
    exc = httpx.ConnectError(f"cannot reach {url}")
    text = short_error(exc, url)
    assert text.startswith("ConnectError: cannot reach") and "s3cr3t" not in text and "/hooks/recovery" not in text


# --- delivery -------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _config(url: str, **overrides: object) -> NotificationsConfig:
    values: dict[str, object] = {
        "url": url,
        "secret": SECRET,
        "backoff_base_seconds": 10,
        "backoff_cap_seconds": 600,
        "batch_size": 2,  # fewer than the cases: several passes
        "concurrency": 4,
    }
    return NotificationsConfig.model_validate(values | overrides)


def _open_cases(engine: Engine, signer: MnemonicSigner, case_ids: list[str], keys: list[str]) -> None:
    with Session(engine, expire_on_commit=False) as session:
        if session.get(users.User, "alice") is None:
            users.create_user(session, user_id="alice", signer=signer, path_for=deposit_path_for_tests)
        for case_id in case_ids:
            if cases.get_case(session, case_id=case_id) is None:
                cases.create_case(session, case_id=case_id, user_id="alice", chain="bsc", tx_hash="0x01", log_index=0)
            for key in keys:
                update = CaseUpdate(
                    case_id=case_id,
                    event=TimelineEvent(key=key, status=CaseStatus.TRACING, message=f"{key} of {case_id}"),
                )
                assert cases.apply_case_update(session, update=update)


def _all(engine: Engine) -> list[Notification]:
    with Session(engine) as session:
        return notifications.listing(session, limit=1000)


def _expected(engine: Engine) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    for row in sorted(_all(engine), key=lambda r: (r.case_id, r.seq)):
        found.setdefault(row.case_id, []).append(row.seq)
    return found


async def _drain(dispatcher: NotificationDispatcher, clock: Clock, *, passes: int = 50) -> None:
    """Run passes, moving the clock past every backoff, until nothing is pending."""
    for _ in range(passes):
        report = await dispatcher.run(run_for=0)
        if report.pending == 0:
            return
        clock.advance(seconds=700)
    raise AssertionError(f"still pending after {passes} passes")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    lines: list[str] = []
    r = WebhookReceiver(secret=SECRET, out=lines.append).start()
    yield r
    r.stop()


async def test_a_receiver_down_for_an_hour_loses_nothing_and_gets_each_case_in_order(
    db_engine: Engine, fake_signer: MnemonicSigner, receiver: WebhookReceiver
) -> None:
    case_ids = ["case-a", "case-b", "case-c"]
    _open_cases(db_engine, fake_signer, case_ids, ["tracing", "classified"])
    clock = Clock()
    dispatcher = NotificationDispatcher(config=_config(receiver.url), engine=db_engine, clock=clock)

    receiver.outage = 503  # up, but failing
    report = await dispatcher.run(run_for=0)
    assert (report.delivered, report.failed, report.pending) == (0, 2, 9)  # two heads per pass (batch_size 2)
    report = await dispatcher.run(run_for=0)
    assert (report.delivered, report.failed) == (0, 1)  # the third case's head; the others wait for their backoff
    with Session(db_engine) as session:
        errors = {r.last_error for r in notifications.listing(session, state=State.PENDING) if r.attempts}
    assert errors == {"HTTP 503 Service Unavailable"}

    receiver.stop()  # down: connections refused, for an hour
    port = receiver.port
    for step in range(12):
        clock.advance(minutes=5)
        await dispatcher.run(run_for=0)
        if step in (3, 7):  # the cases go on meanwhile
            _open_cases(db_engine, fake_signer, ["case-d"], [f"step-{step}"])
    with Session(db_engine) as session:
        pending = notifications.listing(session, state=State.PENDING)
        assert {r.last_error.split(":")[0] for r in pending if r.last_error} == {"ConnectError"}
        assert all(receiver.url not in (r.last_error or "") for r in pending)
        assert notifications.counts(session) == {"pending": 12, "dead": 0}

    back = WebhookReceiver(secret=SECRET, port=port, out=lambda _line: None).start()  # back on the same port
    try:
        await _drain(dispatcher, clock)
    finally:
        back.stop()

    assert back.by_case() == _expected(db_engine), "every notification once, each case's in order"
    assert back.duplicates == [] and back.rejected == 0
    for item in back.received:  # the same check any receiver makes
        assert Webhook(SECRET).verify(item.raw, item.headers) == item.body
    rows = _all(db_engine)
    assert all(r.state == "delivered" for r in rows)
    assert sorted(r.case_id for r in rows if r.attempts > 1) == ["case-a", "case-b", "case-c", "case-d"]  # heads
    answered_503 = set(receiver.attempts)
    assert len(answered_503) == 3 and answered_503 <= {item.webhook_id for item in back.received}, "same ids"
    assert {item.webhook_id for item in back.received} == {r.webhook_id for r in rows}


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
    return httpx.MockTransport(handler)


async def test_a_failing_case_stops_at_its_first_failure_while_the_others_go_on(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    _open_cases(db_engine, fake_signer, ["case-a", "case-b", "case-c"], ["tracing", "classified", "recovering"])
    sent: list[tuple[str, int, str]] = []
    refused = {("case-b", 2): 2}  # case-b's second notification fails twice

    def handler(request: httpx.Request) -> httpx.Response:
        data = json.loads(request.content)["data"]
        Webhook(SECRET).verify(request.content, dict(request.headers))
        key = (data["case_id"], data["seq"])
        sent.append((*key, request.headers["webhook-id"]))
        if refused.get(key, 0) > 0:
            refused[key] -= 1
            return httpx.Response(500)
        return httpx.Response(204)

    clock = Clock()
    config = _config("http://receiver.test/webhooks", batch_size=10)
    dispatcher = NotificationDispatcher(config=config, engine=db_engine, clock=clock, transport=_mock(handler))
    report = await dispatcher.run(run_for=0)
    assert (report.delivered, report.failed) == (9, 1)
    assert [s[:2] for s in sent if s[0] == "case-b"] == [("case-b", 1), ("case-b", 2)]  # stopped there
    assert [s[1] for s in sent if s[0] == "case-a"] == [1, 2, 3, 4]

    report = await dispatcher.run(run_for=0)  # not due yet: nothing sent
    assert report.delivered == report.failed == 0
    await _drain(dispatcher, clock)
    b = [s for s in sent if s[0] == "case-b"]
    assert [s[1] for s in b] == [1, 2, 2, 2, 3, 4]
    assert len({s[2] for s in b if s[1] == 2}) == 1, "the retries carry the same webhook-id"
    [row] = [r for r in _all(db_engine) if (r.case_id, r.seq) == ("case-b", 2)]
    assert row.attempts == 3 and row.state == "delivered" and row.last_error is None


async def test_a_crash_after_the_receivers_2xx_sends_it_again_with_the_same_id(
    db_engine: Engine, fake_signer: MnemonicSigner, receiver: WebhookReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The activity dies between the receiver's answer and the mark: the row is the truth, so it goes again."""
    _open_cases(db_engine, fake_signer, ["case-a"], ["tracing", "classified"])
    clock = Clock()
    dispatcher = NotificationDispatcher(config=_config(receiver.url), engine=db_engine, clock=clock)
    real_mark = notifications.mark_delivered
    marks = {"n": 0}

    def dies_on_the_second_mark(session: Session, **kwargs: object) -> bool:
        marks["n"] += 1
        if marks["n"] == 2:
            raise RuntimeError("worker killed")
        return real_mark(session, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(delivery.outbox, "mark_delivered", dies_on_the_second_mark)
    with pytest.raises(ExceptionGroup):
        await dispatcher.run(run_for=0)
    assert [r.state for r in _all(db_engine)] == ["waiting", "due", "delivered"]  # newest first
    assert receiver.by_case() == {"case-a": [1, 2]}  # the receiver has #2, the database does not know

    await _drain(dispatcher, clock)
    second = [r for r in _all(db_engine) if r.seq == 2][0]
    assert receiver.duplicates == [second.webhook_id], "sent again under its id, dropped by the receiver"
    assert receiver.by_case() == {"case-a": [1, 2, 3]}


async def test_a_delivery_cancelled_in_flight_is_sent_again(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    """The worker shuts down (the activity is cancelled) while a request is in flight: nothing is marked."""
    _open_cases(db_engine, fake_signer, ["case-a"], ["tracing"])
    arrived, seen = asyncio.Event(), []

    async def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["webhook-id"])
        if len(seen) == 1:
            arrived.set()
            await asyncio.sleep(3600)  # the answer never comes back
        return httpx.Response(200)

    clock = Clock()
    config = _config("http://receiver.test/webhooks")
    dispatcher = NotificationDispatcher(
        config=config, engine=db_engine, clock=clock, transport=httpx.MockTransport(handler)
    )
    task = asyncio.create_task(dispatcher.run(run_for=60))
    await asyncio.wait_for(arrived.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert {r.seq: r.state for r in _all(db_engine)} == {1: "due", 2: "waiting"}
    await _drain(dispatcher, clock)
    assert seen[0] == seen[1] and len(seen) == 3
    assert all(r.state == "delivered" for r in _all(db_engine))


async def test_given_up_after_the_window_then_redelivered(db_engine: Engine, fake_signer: MnemonicSigner) -> None:
    _open_cases(db_engine, fake_signer, ["case-a", "case-b"], ["tracing"])
    up = {"yes": False}
    delivered: list[tuple[str, int]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if not up["yes"]:
            return httpx.Response(503)
        data = json.loads(request.content)["data"]
        delivered.append((data["case_id"], data["seq"]))
        return httpx.Response(200)

    clock = Clock()
    config = _config("http://receiver.test/webhooks", backoff_cap_seconds=3600, batch_size=10)
    dispatcher = NotificationDispatcher(config=config, engine=db_engine, clock=clock, transport=_mock(handler))
    attempts = 0
    while True:
        report = await dispatcher.run(run_for=0)
        attempts += report.failed + report.dead
        if report.dead_total:
            break
        assert clock.now < datetime.now(UTC) + timedelta(days=3, hours=2), "never given up"
        clock.advance(hours=1)
    assert clock.now >= datetime.now(UTC) + timedelta(days=3) - timedelta(minutes=5)
    assert report.dead == 4 and report.pending == 0  # both heads, and the notifications behind them
    with Session(db_engine) as session:
        dead = notifications.listing(session, state=State.DEAD)
        assert len(dead) == 4 and all(r.dead_at is not None for r in dead)
        up["yes"] = True
        assert len(notifications.redeliver(session, now=clock(), dead=True)) == 4
    await _drain(dispatcher, clock)
    assert sorted(delivered) == [("case-a", 1), ("case-a", 2), ("case-b", 1), ("case-b", 2)]
    assert delivered.index(("case-a", 1)) < delivered.index(("case-a", 2))


async def test_without_a_url_nothing_is_sent_and_the_outbox_is_kept(
    db_engine: Engine, fake_signer: MnemonicSigner
) -> None:
    _open_cases(db_engine, fake_signer, ["case-a"], ["tracing"])
    dispatcher = NotificationDispatcher(config=NotificationsConfig(), engine=db_engine)
    report = await dispatcher.run(run_for=30)  # returns at once
    assert (report.enabled, report.passes, report.pending, report.delivered) == (False, 0, 2, 0)
