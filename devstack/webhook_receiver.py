"""A development receiver of the engine's notifications (``recovery dev webhook-receiver``; ``make run`` starts
one and points the worker at it). It checks each webhook's signature with the ``standardwebhooks`` package, drops
duplicates by ``webhook-id`` (saying so), notes a case's notifications arriving out of order, and prints one
line per notification. Tests use it too: :class:`WebhookReceiver` runs in a thread, and ``outage`` makes it
answer an error status without accepting anything.

Standard library HTTP server: for development and tests only, never a production endpoint.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

DEV_SECRET = "whsec_ZGV2LW9ubHktd2ViaG9vay1zZWNyZXQtZm9yLW1ha2UtcnVu"
"""The signing secret of ``make run`` (base64 of ``dev-only-webhook-secret-for-make-run``): public, like the
anvil mnemonic. Never configure it anywhere else."""
PATH = "/webhooks"


@dataclass(frozen=True)
class Received:
    webhook_id: str
    body: dict[str, Any]
    headers: dict[str, str]
    raw: bytes

    @property
    def case_id(self) -> str:
        return str(self.body["data"]["case_id"])

    @property
    def seq(self) -> int:
        return int(self.body["data"]["seq"])


@dataclass
class WebhookReceiver:
    """Verifies, deduplicates and records webhooks; ``serve()`` in the foreground or ``start()`` in a thread."""

    secret: str
    host: str = "127.0.0.1"
    port: int = 0
    out: Callable[[str], None] = print
    outage: int | None = None
    """While set, every request is answered with this status (503, say) and nothing is accepted."""
    received: list[Received] = field(default_factory=list)
    """Accepted notifications, first copies only, in arrival order."""
    duplicates: list[str] = field(default_factory=list)
    """``webhook-id`` of every duplicate dropped."""
    attempts: list[str] = field(default_factory=list)
    """``webhook-id`` of every request, accepted or not (an outage's too)."""
    rejected: int = 0
    verbose: bool = False
    """Print each accepted notification's whole body too."""
    _seen: set[str] = field(default_factory=set)
    _last_seq: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._verifier = Webhook(self.secret)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                status, text = receiver.handle(body, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                self.send_header("content-type", "text/plain")
                self.send_header("content-length", str(len(text)))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, format: str, *args: Any) -> None:  # the receiver prints its own lines
                pass

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{PATH}"

    def handle(self, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
        """Answer one request: (status, text)."""
        webhook_id = headers.get("webhook-id", "?")
        now = datetime.now(UTC).strftime("%H:%M:%S")
        with self._lock:
            self.attempts.append(webhook_id)
            if self.outage is not None:
                self.out(f"{now} {webhook_id}: answered {self.outage} (simulated outage)")
                return self.outage, "unavailable"
            try:
                payload = self._verifier.verify(body, headers)
            except (WebhookVerificationError, ValueError) as exc:
                self.rejected += 1
                self.out(f"{now} {webhook_id}: REJECTED, signature does not verify ({exc})")
                return 401, "bad signature"
            if webhook_id in self._seen:
                self.duplicates.append(webhook_id)
                self.out(f"{now} {webhook_id}: duplicate, dropped (already received)")
                return 200, "duplicate"
            self._seen.add(webhook_id)
            item = Received(webhook_id=webhook_id, body=payload, headers=dict(headers), raw=body)
            self.received.append(item)
            data = payload.get("data", {})
            case_id, seq = str(data.get("case_id")), int(data.get("seq", 0))
            last = self._last_seq.get(case_id)
            order = "" if last is None or seq == last + 1 else f" [out of order: after #{last}]"
            self._last_seq[case_id] = max(seq, last or 0)
            self.out(
                f"{now} {webhook_id} {payload.get('type')} {case_id} #{seq}{order} "
                f"({data.get('locale')}, {data.get('event', {}).get('status')}): {data.get('message')}"
            )
            if self.verbose:
                self.out(json.dumps(payload, indent=2, ensure_ascii=False))
            return 200, "ok"

    def by_case(self) -> dict[str, list[int]]:
        """Each case's accepted ``seq`` numbers, in arrival order."""
        with self._lock:
            found: dict[str, list[int]] = {}
            for item in self.received:
                found.setdefault(item.case_id, []).append(item.seq)
            return found

    def serve(self) -> None:
        assert self._server is not None
        self.out(f"receiving webhooks on {self.url} (signatures checked, duplicates dropped); Ctrl-C stops")
        try:
            self._server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            self._server.server_close()

    def start(self) -> WebhookReceiver:
        assert self._server is not None
        self._thread = threading.Thread(target=self._server.serve_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
