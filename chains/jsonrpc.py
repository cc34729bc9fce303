"""Async JSON-RPC 2.0 client for one chain with several endpoints: failover, bounded retries, raw batches.

Transport failures (connection errors, timeouts, HTTP 5xx/429, unparsable bodies) move on to the next
endpoint; after every endpoint failed, the whole round is retried after a backoff, a bounded number of
times. A JSON-RPC ``error`` object is the node's answer and is never retried: it raises ``RpcError``
(``call``) or is returned in place (``batch``).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import weakref
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx

log = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 425, 429})


class RpcError(Exception):
    """A JSON-RPC error object returned by a node."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RpcUnavailable(Exception):
    """Every endpoint failed (transport level) for every retry."""


class _EndpointFailed(Exception):
    pass


# One pooled client per event loop: adapters stay cheap to construct and do not leak connections.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = weakref.WeakKeyDictionary()


def shared_http_client() -> httpx.AsyncClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None or client.is_closed:
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(10.0, connect=3.0),
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )
        _clients[loop] = client
    return client


async def aclose_shared_http_client() -> None:
    """Close this event loop's pooled client (on shutdown; it is recreated on next use)."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


class JsonRpcClient:
    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "",
        timeout: timedelta = timedelta(seconds=10),
        retries: int = 2,
        backoff: timedelta = timedelta(milliseconds=200),
        http: httpx.AsyncClient | None = None,
    ) -> None:
        if not urls:
            raise ValueError(f"no RPC URL configured for {name or 'chain'}")
        self.urls = list(urls)
        self.name = name or self.urls[0]
        self.timeout_s = timeout.total_seconds()
        self.retries = retries
        self.backoff_s = backoff.total_seconds()
        self._http = http
        self._preferred = 0
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return f"JsonRpcClient(name={self.name!r}, urls={len(self.urls)})"

    async def call(self, method: str, params: Sequence[Any] | None = None) -> Any:
        request_id = next(self._ids)
        body = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": list(params or [])}
        reply = await self._post(body)
        if not isinstance(reply, dict):
            raise RpcError(-32603, f"unexpected reply to {method}: {type(reply).__name__}")
        return _unwrap(reply, method)

    async def batch(self, calls: Sequence[tuple[str, Sequence[Any] | None]]) -> list[Any | RpcError]:
        """One raw JSON-RPC batch. Each item is its result or an ``RpcError``; order follows ``calls``."""
        if not calls:
            return []
        ids = [next(self._ids) for _ in calls]
        body = [
            {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p or [])}
            for i, (m, p) in zip(ids, calls, strict=True)
        ]
        reply = await self._post(body)
        if isinstance(reply, dict):
            # The node rejected the batch as a whole (e.g. batches disabled or too large).
            err = reply.get("error") or {}
            whole = RpcError(int(err.get("code", -32603)), str(err.get("message", "batch rejected")))
            return [whole for _ in calls]
        by_id = {item.get("id"): item for item in reply if isinstance(item, dict)}
        out: list[Any | RpcError] = []
        for i, (method, _) in zip(ids, calls, strict=True):
            item = by_id.get(i)
            if item is None:
                out.append(RpcError(-32603, f"no response for {method} in batch"))
                continue
            try:
                out.append(_unwrap(item, method))
            except RpcError as exc:
                out.append(exc)
        return out

    async def _post(self, body: Any) -> Any:
        http = self._http or shared_http_client()
        failures: list[str] = []
        n = len(self.urls)
        for attempt in range(self.retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff_s * 2 ** (attempt - 1))
            for k in range(n):
                index = (self._preferred + k) % n
                url = self.urls[index]
                try:
                    reply = await self._post_once(http, url, body)
                except _EndpointFailed as exc:
                    failures.append(f"{_redact(url)}: {exc}")
                    log.debug("rpc %s endpoint %s failed: %s", self.name, _redact(url), exc)
                    continue
                self._preferred = index
                return reply
        tail = "; ".join(failures[-n:])
        raise RpcUnavailable(f"{self.name}: all {n} RPC endpoint(s) failed after {self.retries + 1} tries: {tail}")

    async def _post_once(self, http: httpx.AsyncClient, url: str, body: Any) -> Any:
        try:
            resp = await http.post(url, json=body, timeout=self.timeout_s)
        except (httpx.TransportError, httpx.TimeoutException) as exc:
            raise _EndpointFailed(f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code >= 500 or resp.status_code in RETRYABLE_STATUS:
            raise _EndpointFailed(f"HTTP {resp.status_code}")
        try:
            reply = resp.json()
        except ValueError as exc:
            raise _EndpointFailed(f"HTTP {resp.status_code}, body is not JSON") from exc
        if not isinstance(reply, dict | list):
            raise _EndpointFailed(f"HTTP {resp.status_code}, unexpected JSON body")
        if resp.status_code >= 400 and not (isinstance(reply, list) or "error" in reply):
            raise _EndpointFailed(f"HTTP {resp.status_code}")
        return reply


def _unwrap(item: dict[str, Any], method: str) -> Any:
    err = item.get("error")
    if err is not None:
        if isinstance(err, dict):
            raise RpcError(int(err.get("code", -32603)), str(err.get("message", "")), err.get("data"))
        raise RpcError(-32603, str(err))
    if "result" not in item:
        raise RpcError(-32603, f"reply to {method} has neither result nor error")
    return item["result"]


def _redact(url: str) -> str:
    """Endpoint URLs often carry an API key in the path or query: log scheme and host only."""
    try:
        u = httpx.URL(url)
    except Exception:
        return "<bad url>"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}"
