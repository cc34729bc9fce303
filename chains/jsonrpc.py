"""Async JSON-RPC 2.0 client for one chain with several endpoints: failover, bounded retries, raw batches.

Endpoint selection, health records and retries live in :mod:`chains.endpoints`: transport failures
(connection errors, timeouts, HTTP 5xx/408/425/429, unparsable bodies) move on to the next endpoint;
after every endpoint failed, the whole round is retried after a backoff, a bounded number of times. A
JSON-RPC ``error`` object is the node's answer and is never retried: it raises ``RpcError`` (``call``)
or is returned in place (``batch``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any, Unpack

import httpx

from chains.endpoints import EndpointFailed, EndpointPool, PooledClient, PoolOptions, RpcError, scrub, send


class JsonRpcClient(PooledClient):
    def __init__(
        self, urls: Sequence[str], *, pool: EndpointPool | None = None, **options: Unpack[PoolOptions]
    ) -> None:
        if not urls:
            raise ValueError(f"no RPC URL configured for {options.get('name') or 'chain'}")
        super().__init__(urls, pool=pool, **options)
        self.urls = self.pool.urls
        self.timeout_s = self.pool.timeout_s
        self.retries = self.pool.retries
        self.backoff_s = self.pool.backoff_s
        self._ids = itertools.count(1)

    @property
    def _preferred(self) -> int:
        """Index (in ``urls``) of the endpoint the next call tries first."""
        return self.urls.index(self.pool.order()[0])

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
        async def attempt(http: httpx.AsyncClient, url: str) -> Any:
            resp = await send(http, "POST", url, timeout=self.pool.timeout, body=body)
            try:
                reply = resp.json()
            except ValueError as exc:
                raise EndpointFailed(f"HTTP {resp.status_code}, body is not JSON") from exc
            if not isinstance(reply, dict | list):
                raise EndpointFailed(f"HTTP {resp.status_code}, unexpected JSON body")
            if resp.status_code >= 400 and not (isinstance(reply, list) or "error" in reply):
                raise EndpointFailed(f"HTTP {resp.status_code}")
            return _scrubbed(reply, url)

        return await self.pool.request(attempt)


def _scrubbed(reply: Any, url: str) -> Any:
    """The reply with the endpoint's URL and its secret parts taken out of every error a node echoed them into
    (an error's text travels on: into logs, activity failures, a case's timeline)."""
    for item in reply if isinstance(reply, list) else [reply]:
        err = item.get("error") if isinstance(item, dict) else None
        if isinstance(err, dict):
            for field in ("message", "data"):
                if isinstance(err.get(field), str):
                    err[field] = scrub(err[field], url)
        elif isinstance(err, str):
            item["error"] = scrub(err, url)
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
