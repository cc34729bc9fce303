"""Local HTTP servers that answer like chain nodes, for adapter tests without a network.

A test registers canned replies (``node.route(...)``) and can make a node fail: ``node.fail(500)``,
``node.hang(timedelta(seconds=5))`` (answers after the client's timeout) or ``node.stop()``
(connection refused). Each node runs ``http.server`` in a daemon thread, so it serves sync and async
tests alike and outlives no test: use the ``fake_nodes`` fixture, which starts nodes on demand and stops
them (and forgets endpoint health records) at teardown::

    from tests.fake_nodes import FakeNode, fake_nodes  # noqa: F401

    async def test_x(fake_nodes: Callable[[], FakeNode]) -> None:  # noqa: F811
        node = fake_nodes()
        node.route("GET", "/blocks/tip/height", 840_000)
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from chains.endpoints import reset_health

_NO_JSON = object()


@dataclass
class Reply:
    status: int = 200
    json: Any = _NO_JSON
    text: str | None = None
    delay: timedelta | None = None


@dataclass
class _Route:
    method: str
    path: str | None
    reply: Reply
    match: Any = None
    times: int | None = None
    """Serve this route this many times, then fall through to the next matching one."""


@dataclass
class Seen:
    method: str
    path: str
    body: Any


@dataclass
class FakeNode:
    routes: list[_Route] = field(default_factory=list)
    requests: list[Seen] = field(default_factory=list)
    failing: Reply | None = None
    _server: ThreadingHTTPServer | None = None
    _release: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None, "node not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def route(
        self,
        method: str,
        path: str | None,
        json: Any = _NO_JSON,
        *,
        status: int = 200,
        text: str | None = None,
        match: Any = None,
        delay: timedelta | None = None,
        times: int | None = None,
    ) -> None:
        """Answer ``method path`` (``path`` matches the end of the request path; None: any path).

        ``match``: only when the JSON request body contains it (dicts by key, lists by position, deep).
        The latest registered matching route wins.
        """
        reply = Reply(status=status, json=json, text=text, delay=delay)
        with self._lock:
            self.routes.insert(0, _Route(method.upper(), path, reply, match, times))

    def fail(self, status: int = 500) -> None:
        """Answer every request with ``status`` until :meth:`recover`."""
        self.failing = Reply(status=status, text="node is failing")

    def hang(self, delay: timedelta) -> None:
        """Answer every request only after ``delay`` (longer than the client's timeout), with a 500."""
        self.failing = Reply(status=500, text="too late", delay=delay)

    def recover(self) -> None:
        self.failing = None

    def hits(self, path: str | None = None) -> int:
        return sum(1 for r in self.requests if path is None or r.path.endswith(path))

    def start(self) -> FakeNode:
        node = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                node._serve(self, "GET")

            def do_POST(self) -> None:
                node._serve(self, "POST")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._server = server
        threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=f"fake-node-{self.url}", daemon=True
        ).start()
        return self

    def stop(self) -> None:
        """Close the listening socket: later requests get "connection refused"."""
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        path = handler.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(Seen(method, handler.path, body))
            reply = self.failing or self._pick(method, path, body)
        if reply.delay is not None:
            self._release.wait(reply.delay.total_seconds())
        if reply.json is not _NO_JSON:
            payload, ctype = json.dumps(reply.json).encode(), "application/json"
        else:
            payload, ctype = (reply.text or "").encode(), "text/plain"
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", ctype)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
        except OSError:
            pass  # the client gave up (timeout): nothing to answer

    def _pick(self, method: str, path: str, body: Any) -> Reply:
        for route in self.routes:
            if route.method != method or (route.path is not None and not path.endswith(route.path)):
                continue
            if route.match is not None and not _contains(body, route.match):
                continue
            if route.times is not None:
                if route.times <= 0:
                    continue
                route.times -= 1
            return route.reply
        return Reply(status=404, text=f"no fake route for {method} {path}")


def _contains(body: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(body, dict) and all(k in body and _contains(body[k], v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return (
            isinstance(body, list)
            and len(body) >= len(wanted)
            and all(_contains(b, w) for b, w in zip(body, wanted, strict=False))
        )
    return bool(body == wanted)


def dead_url() -> str:
    """A local URL where nothing listens (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


NodeFactory = Callable[[], FakeNode]


@pytest.fixture
def fake_nodes() -> Iterator[NodeFactory]:
    """Start fake nodes on demand; all are stopped, and endpoint health forgotten, after the test."""
    nodes: list[FakeNode] = []
    reset_health()

    def start() -> FakeNode:
        node = FakeNode().start()
        nodes.append(node)
        return node

    yield start
    for node in nodes:
        node.stop()
    reset_health()
