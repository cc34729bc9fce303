"""Delivering the notification outbox (``store.notifications``) to the exchange's notification service: signed
webhooks (Standard Webhooks: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``), in order per case,
retried with exponential backoff and full jitter until the retry window closes.

At least once: a notification is marked delivered only after a 2xx answer, so a crash between the answer and
the mark sends it again, with the same ``webhook-id`` and body (receivers drop duplicates by the id). In order
per case: only a case's first undelivered notification is ever sent, and the next one only after it succeeded.
Run by the ``deliver_due`` activity of the notification dispatcher workflow (``workflows.notify_activities``).

The signing secret is read from the settings here and nowhere else; it never reaches a log, the database or a
workflow's payloads, and errors are recorded without the URL.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import Engine
from standardwebhooks import Webhook

from recovery.notifications import next_attempt_at
from recovery.settings import NotificationsConfig
from store import notifications as outbox
from store.db import run_in_session, utcnow
from store.notifications import Notification

log = logging.getLogger(__name__)

USER_AGENT = "misdeposit-recovery-notifications/1"
PER_CASE = 50
"""Notifications of one case sent in one pass (then the next pass goes on with it)."""
TIDY_EVERY_S = 60.0
PASS_SECONDS = 60.0
"""A pass goes on along its cases' queues for at least this long, even at the end of a run."""


@dataclass(frozen=True)
class Attempt:
    ok: bool
    error: str | None = None
    status: int | None = None


class WebhookSender:
    """POSTs a stored body to the configured URL, signed for this attempt (a fresh timestamp, the same id)."""

    def __init__(self, config: NotificationsConfig, client: httpx.AsyncClient) -> None:
        if config.url is None or config.secret is None:
            raise ValueError("notifications.url and notifications.secret are needed to send")
        self._url = config.url
        self._signer = Webhook(config.secret.get_secret_value())
        self._client = client

    def headers(self, webhook_id: str, body: str, *, at: datetime | None = None) -> dict[str, str]:
        return signed_headers(self._signer, webhook_id, body, at=at)

    async def send(self, webhook_id: str, body: str) -> Attempt:
        try:
            response = await self._client.post(
                self._url, content=body.encode("utf-8"), headers=self.headers(webhook_id, body)
            )
        except httpx.HTTPError as exc:
            return Attempt(ok=False, error=short_error(exc, self._url))
        if 200 <= response.status_code < 300:
            return Attempt(ok=True, status=response.status_code)
        reason = response.reason_phrase or ""
        return Attempt(ok=False, status=response.status_code, error=f"HTTP {response.status_code} {reason}".strip())


def signed_headers(signer: Webhook, webhook_id: str, body: str, *, at: datetime | None = None) -> dict[str, str]:
    """The request's headers: Standard Webhooks' three, signed over ``{id}.{timestamp}.{body}`` at ``at`` (now)."""
    at = at or datetime.now(UTC)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": signer.sign(webhook_id, at, body),
    }


def short_error(exc: BaseException, url: str) -> str:
    """``ConnectError: [Errno 111] Connection refused``: the error's type and first line, without the URL (its
    path or query may hold a token), at most 200 characters."""
    detail = (str(exc).splitlines() or [""])[0]
    parts = urlsplit(url)
    for secretish in (url, parts.path, parts.query):
        if secretish and secretish != "/":
            detail = detail.replace(secretish, "…")
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return text[:200]


@dataclass
class PassReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    more_due: bool = False
    """The pass stopped at its batch size (or a case at ``PER_CASE``): more is due now."""

    def add(self, other: PassReport) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.dead += other.dead


@dataclass
class DispatchReport(PassReport):
    enabled: bool = True
    passes: int = 0
    pending: int = 0
    """Not delivered and not dead, when the run ended (due or waiting behind an earlier one of their case)."""
    dead_total: int = 0
    errors: list[str] = field(default_factory=list)
    """The last few distinct failure reasons of the run (no secrets: see :func:`short_error`)."""


class NotificationDispatcher:
    """Sends what is due, one pass at a time (:meth:`deliver_pass`), or keeps polling for a while (:meth:`run`)."""

    def __init__(
        self,
        *,
        config: NotificationsConfig,
        engine: Engine,
        rng: random.Random | None = None,
        clock: Callable[[], datetime] = utcnow,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        problem = config.secret_problem()
        if problem is not None:
            raise ValueError(problem)  # the worker does not start with a secret receivers could not check
        self._config = config
        self._engine = engine
        self._rng = rng or random.Random()
        self._clock = clock
        self._transport = transport
        self._window = timedelta(hours=config.give_up_after_hours)

    @property
    def enabled(self) -> bool:
        return self._config.url is not None

    def client(self) -> httpx.AsyncClient:
        """One client for a whole run: its connections are reused across notifications and cases."""
        return httpx.AsyncClient(
            timeout=self._config.request_timeout_seconds,
            follow_redirects=False,
            limits=httpx.Limits(max_connections=self._config.concurrency),
            transport=self._transport,
        )

    async def run(self, *, run_for: float) -> DispatchReport:
        """Deliver what is due, then keep looking every ``poll_interval_seconds`` until ``run_for`` seconds have
        passed (0: one pass). With delivery off (no URL), return at once."""
        report = DispatchReport(enabled=self.enabled)
        if not self.enabled:
            return await self._with_counts(report)
        deadline = time.monotonic() + run_for
        next_tidy = 0.0
        async with self.client() as client:
            sender = WebhookSender(self._config, client)
            while True:
                if time.monotonic() >= next_tidy:
                    buried, _ = await run_in_session(self._engine, outbox.tidy, now=self._clock())
                    report.dead += buried
                    next_tidy = time.monotonic() + TIDY_EVERY_S
                step = await self.deliver_pass(sender, deadline=deadline, errors=report.errors)
                report.add(step)
                report.passes += 1
                report.more_due = step.more_due
                if time.monotonic() >= deadline:
                    break
                if not step.more_due:
                    await asyncio.sleep(min(self._config.poll_interval_seconds, max(deadline - time.monotonic(), 0)))
        return await self._with_counts(report)

    async def _with_counts(self, report: DispatchReport) -> DispatchReport:
        counts = await run_in_session(self._engine, outbox.counts)
        report.pending, report.dead_total = counts["pending"], counts["dead"]
        return report

    async def deliver_pass(
        self, sender: WebhookSender, *, deadline: float | None = None, errors: list[str] | None = None
    ) -> PassReport:
        """Send every due notification (up to ``batch_size`` cases), each case's in order and stopping at its
        first failure; cases at once, up to ``concurrency``. After ``deadline`` (``time.monotonic()``), and at
        least :data:`PASS_SECONDS` in, no case starts its next notification."""
        stop_at = max(deadline or 0.0, time.monotonic() + PASS_SECONDS)
        heads = await run_in_session(self._engine, outbox.due, now=self._clock(), limit=self._config.batch_size)
        report = PassReport(more_due=len(heads) >= self._config.batch_size)
        if not heads:
            return report
        queues = await run_in_session(self._engine, outbox.queued_after, heads=heads, per_case=PER_CASE)
        gate = asyncio.Semaphore(self._config.concurrency)

        async def one_case(head: Notification) -> None:
            async with gate:
                chain = [head, *queues[head.case_id]]
                for row in chain:
                    if row is not head and time.monotonic() >= stop_at:
                        report.more_due = True
                        return
                    if not await self._attempt(sender, row, report, errors):
                        return
                if len(queues[head.case_id]) >= PER_CASE:
                    report.more_due = True

        async with asyncio.TaskGroup() as group:
            for head in heads:
                group.create_task(one_case(head))
        return report

    async def _attempt(
        self, sender: WebhookSender, row: Notification, report: PassReport, errors: list[str] | None
    ) -> bool:
        assert row.id is not None
        attempt = await sender.send(row.webhook_id, row.payload)
        now = self._clock()
        if attempt.ok:
            await run_in_session(
                self._engine, outbox.mark_delivered, notification_id=row.id, case_id=row.case_id, at=now
            )
            report.delivered += 1
            return True
        error = attempt.error or "failed"
        retry_at = next_attempt_at(
            now,
            failures=row.attempts + 1,
            give_up_at=row.retry_since + self._window,
            base_s=self._config.backoff_base_seconds,
            cap_s=self._config.backoff_cap_seconds,
            rng=self._rng,
        )
        died = await run_in_session(
            self._engine,
            outbox.mark_failed,
            notification_id=row.id,
            case_id=row.case_id,
            at=now,
            error=error,
            retry_at=retry_at,
        )
        if died:
            report.dead += died
            log.warning(
                "notification %s of %s is dead after %d attempts: %s", row.id, row.case_id, row.attempts + 1, error
            )
        elif died == 0:
            report.failed += 1
        if errors is not None and error not in errors:
            errors.append(error)
            del errors[:-5]
        return False
