"""The endpoints of one chain: a health record per endpoint, failover in health order, bounded retries.

Every adapter (EVM and XRPL JSON-RPC, Esplora and Tron REST) talks to its chain through an
``EndpointPool``. One request is one or more *rounds*; a round tries each endpoint once, healthy ones
first (in configured order), then those cooling down after a recent failure (the soonest to recover
first). An endpoint is never dropped: when every endpoint is cooling down they are all still tried.
Between rounds the pool sleeps with exponential backoff; after ``retries + 1`` rounds it raises
``RpcUnavailable``.

What counts as an *endpoint failure* (fail over): transport errors, timeouts, HTTP 5xx, 408, 425, 429,
3xx, and a 2xx body that is not JSON. Anything else is the endpoint's *answer*, even an error: an HTTP
404 from Esplora means "no such transaction", not "broken endpoint".

Health records are process-wide and keyed by URL, so the cool-down outlives the short-lived adapter
objects built for each activity; :func:`health_snapshot` lists them for an operator endpoint. Only
redacted URLs (scheme, host, port) ever leave this module: endpoint URLs often carry API keys.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Self, TypedDict, TypeVar, Unpack

import httpx
from pydantic import BaseModel

from recovery.settings import ChainConfig

log = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429})
"""HTTP statuses below 500 that mean "this endpoint cannot answer now" (timeout, too early, rate limit)."""

DEFAULT_COOLDOWN = timedelta(seconds=5)
DEFAULT_MAX_COOLDOWN = timedelta(minutes=5)


class RpcError(Exception):
    """An error *answer* from a node: a JSON-RPC error object (``code`` is the JSON-RPC code), an HTTP
    4xx from a REST API (:class:`RestError`, ``code`` is the status) or a rippled error status. Never
    retried: another endpoint would answer the same."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"RPC error {code}: {message}")
        self.code = code
        self.message = message
        self.data = data


class RestError(RpcError):
    """A REST endpoint answered with a client error (4xx other than 408/425/429)."""

    def __init__(self, status_code: int, body: str, url: str) -> None:
        super().__init__(status_code, f"HTTP {status_code} from {url}: {body[:200]}")
        self.status_code = status_code
        self.body = body
        self.url = url


class RpcUnavailable(Exception):
    """Every endpoint of a chain failed at the transport level in every round: the question is
    unanswered (not "no such transaction"). Used by every chain family."""


class EndpointFailed(Exception):
    """One endpoint failed to answer (transport error, timeout, 5xx, rate limit, garbage): try the next."""


class EndpointHealth(BaseModel):
    """What an operator may see about one endpoint: no secrets, the URL is redacted to scheme://host:port."""

    url: str
    successes: int
    failures: int
    consecutive_failures: int
    last_error: str | None
    last_latency_ms: int | None
    last_success_at: datetime | None
    last_failure_at: datetime | None
    cooldown_remaining_ms: int
    """0 when the endpoint is tried in its configured place; else it is tried after healthy ones."""

    @property
    def healthy(self) -> bool:
        return self.cooldown_remaining_ms == 0


@dataclass
class _Record:
    url: str
    redacted: str
    successes: int = 0
    failures: int = 0
    consecutive_failures: int = 0
    last_error: str | None = None
    last_latency_ms: int | None = None
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    cooldown_until_ns: int = 0

    def remaining_ns(self, now_ns: int) -> int:
        return max(0, self.cooldown_until_ns - now_ns)

    def snapshot(self, now_ns: int) -> EndpointHealth:
        return EndpointHealth(
            url=self.redacted,
            successes=self.successes,
            failures=self.failures,
            consecutive_failures=self.consecutive_failures,
            last_error=self.last_error,
            last_latency_ms=self.last_latency_ms,
            last_success_at=self.last_success_at,
            last_failure_at=self.last_failure_at,
            cooldown_remaining_ms=self.remaining_ns(now_ns) // 1_000_000,
        )


_records: dict[str, _Record] = {}


def _record(url: str) -> _Record:
    rec = _records.get(url)
    if rec is None:
        rec = _records.setdefault(url, _Record(url=url, redacted=redact_url(url)))
    return rec


def health_snapshot() -> list[EndpointHealth]:
    """Every endpoint this process has talked to (for an operator endpoint)."""
    now = time.monotonic_ns()
    return [rec.snapshot(now) for rec in list(_records.values())]


def reset_health(urls: Sequence[str] | None = None) -> None:
    """Forget health records (all, or those of ``urls``): for tests and operator resets."""
    if urls is None:
        _records.clear()
        return
    for url in urls:
        _records.pop(url, None)


def redact_url(url: str) -> str:
    """Endpoint URLs often carry an API key in the path, query or user info: keep scheme, host and port."""
    try:
        u = httpx.URL(url)
    except Exception:
        return "<bad url>"
    port = f":{u.port}" if u.port else ""
    return f"{u.scheme}://{u.host}{port}"


def scrub(text: str, url: str) -> str:
    """Remove ``url`` and its secret-prone parts (path, query, user info) from an error message."""
    out = text.replace(url, redact_url(url))
    try:
        u = httpx.URL(url)
    except Exception:
        return out
    secrets = [u.query.decode(errors="replace"), u.userinfo.decode(errors="replace"), u.path.rstrip("/")]
    # the parts alone too, as a node may echo them: API keys in path segments, query values, the password
    secrets += [part for part in u.path.split("/") if len(part) >= 8]
    secrets += [value for _name, value in u.params.multi_items()]
    secrets += u.userinfo.decode(errors="replace").split(":")
    for secret in sorted(secrets, key=len, reverse=True):
        if len(secret) > 3:
            out = out.replace(secret, "<redacted>")
    return out


class _RedactHttpxUrls(logging.Filter):
    """httpx logs every request's full URL at INFO ("HTTP Request: POST https://host/KEY ..."): redact it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(redact_url(str(a)) if isinstance(a, httpx.URL) else a for a in record.args)
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _RedactHttpxUrls) for f in _httpx_log.filters):
    _httpx_log.addFilter(_RedactHttpxUrls())


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


Attempt = Callable[[httpx.AsyncClient, str], Awaitable[T]]
"""One try against one endpoint URL; raises ``EndpointFailed`` (or an httpx error) to fail over."""


class EndpointPool:
    """The endpoints of one chain, tried in health order with bounded retries (see the module doc)."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        name: str = "",
        timeout: timedelta = timedelta(seconds=10),
        retries: int = 2,
        backoff: timedelta = timedelta(milliseconds=200),
        cooldown: timedelta = DEFAULT_COOLDOWN,
        max_cooldown: timedelta = DEFAULT_MAX_COOLDOWN,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if not urls:
            raise ValueError(f"no endpoint configured for {name or 'chain'}")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.urls = list(dict.fromkeys(urls))
        self.name = name or redact_url(self.urls[0])
        self.timeout = timeout
        self.timeout_s = timeout.total_seconds()
        self.retries = retries
        self.backoff_s = backoff.total_seconds()
        self._cooldown_ns = _ns(cooldown)
        self._max_cooldown_ns = max(_ns(max_cooldown), self._cooldown_ns)
        self._http = http
        self._clock = clock

    @classmethod
    def from_config(cls, chain: ChainConfig, *, http: httpx.AsyncClient | None = None) -> EndpointPool:
        return cls(chain.rpc_urls, name=chain.name, http=http, **retry_settings(chain))

    def __repr__(self) -> str:
        return f"EndpointPool(name={self.name!r}, endpoints={len(self.urls)})"

    @property
    def http(self) -> httpx.AsyncClient:
        return self._http or shared_http_client()

    def order(self) -> list[str]:
        """URLs in the order the next round tries them: healthy first, then by end of cool-down."""
        now = self._clock()
        records = [_record(u) for u in self.urls]
        healthy = [r.url for r in records if r.remaining_ns(now) == 0]
        cooling = sorted((r for r in records if r.remaining_ns(now) > 0), key=lambda r: r.cooldown_until_ns)
        return healthy + [r.url for r in cooling]

    def health(self) -> list[EndpointHealth]:
        """This pool's endpoints in configured order."""
        now = self._clock()
        return [_record(u).snapshot(now) for u in self.urls]

    async def request(self, attempt: Attempt[T]) -> T:
        """Run ``attempt`` against endpoints until one answers; ``RpcUnavailable`` after every round failed.

        An exception other than an endpoint failure (an error *answer*, e.g. ``RestError``) counts as a
        success of the endpoint and propagates at once.
        """
        http = self.http
        failures: list[str] = []
        n = len(self.urls)
        for round_ in range(self.retries + 1):
            if round_:
                await asyncio.sleep(self.backoff_s * 2 ** (round_ - 1))
            for url in self.order():
                started = time.monotonic_ns()
                try:
                    result = await attempt(http, url)
                except (EndpointFailed, httpx.RequestError) as exc:
                    reason = scrub(_describe(exc), url)
                    self._failed(url, reason, time.monotonic_ns() - started)
                    failures.append(f"{redact_url(url)}: {reason}")
                    log.info("%s: endpoint %s failed: %s", self.name, redact_url(url), reason)
                    continue
                except Exception:
                    self._succeeded(url, time.monotonic_ns() - started)
                    raise
                self._succeeded(url, time.monotonic_ns() - started)
                return result
        tail = "; ".join(failures[-n:])
        log.warning("%s: all %d endpoint(s) failed after %d tries", self.name, n, self.retries + 1)
        raise RpcUnavailable(f"{self.name}: all {n} endpoint(s) failed after {self.retries + 1} tries: {tail}")

    def _succeeded(self, url: str, elapsed_ns: int) -> None:
        rec = _record(url)
        rec.successes += 1
        rec.consecutive_failures = 0
        rec.cooldown_until_ns = 0
        rec.last_latency_ms = elapsed_ns // 1_000_000
        rec.last_success_at = datetime.now(UTC)

    def _failed(self, url: str, reason: str, elapsed_ns: int) -> None:
        rec = _record(url)
        rec.failures += 1
        rec.consecutive_failures += 1
        rec.last_error = reason
        rec.last_latency_ms = elapsed_ns // 1_000_000
        rec.last_failure_at = datetime.now(UTC)
        # Exponential cool-down: a flapping endpoint is pushed back longer, up to max_cooldown.
        exponent = min(rec.consecutive_failures - 1, 32)
        rec.cooldown_until_ns = self._clock() + min(self._cooldown_ns * 2**exponent, self._max_cooldown_ns)


def retry_settings(chain: ChainConfig) -> dict[str, Any]:
    """Keyword arguments for a pool or client from the chain's ``rpc_*`` settings."""
    return {
        "timeout": timedelta(milliseconds=chain.rpc_timeout_ms),
        "retries": chain.rpc_retries,
        "backoff": timedelta(milliseconds=chain.rpc_backoff_ms),
    }


def _ns(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def _describe(exc: BaseException) -> str:
    if isinstance(exc, EndpointFailed):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


async def send(
    http: httpx.AsyncClient, method: str, url: str, *, timeout: timedelta, body: Any = None
) -> httpx.Response:
    """One HTTP request; transport errors and "cannot answer now" statuses raise ``EndpointFailed``."""
    try:
        resp = await http.request(method, url, json=body, timeout=timeout.total_seconds())
    except httpx.RequestError as exc:
        raise EndpointFailed(_describe(exc)) from exc
    status = resp.status_code
    if status >= 500 or status in RETRYABLE_STATUS or 300 <= status < 400:
        raise EndpointFailed(f"HTTP {status}")
    return resp


def join_url(base: str, path: str) -> str:
    """``base`` (which may carry a path prefix and an API key in its query) plus ``path``."""
    if not path:
        return base
    u = httpx.URL(base)
    return str(u.copy_with(path=u.path.rstrip("/") + "/" + path.lstrip("/")))


class PoolOptions(TypedDict, total=False):
    """How a client builds its :class:`EndpointPool` (the pool's keyword arguments and defaults)."""

    name: str
    timeout: timedelta
    retries: int
    backoff: timedelta
    http: httpx.AsyncClient | None


class PooledClient:
    """A client that talks to a chain's endpoints through one :class:`EndpointPool`: built from URLs and
    :class:`PoolOptions`, or around a given ``pool`` (then ``urls`` and the options are not used)."""

    def __init__(
        self, urls: Sequence[str], *, pool: EndpointPool | None = None, **options: Unpack[PoolOptions]
    ) -> None:
        self.pool = pool or EndpointPool(urls, **options)
        self.name = self.pool.name

    @classmethod
    def from_config(cls, chain: ChainConfig, *, http: httpx.AsyncClient | None = None) -> Self:
        """A client for ``chain`` with its ``rpc_retries``, ``rpc_backoff_ms`` and ``rpc_timeout_ms``."""
        return cls(chain.rpc_urls, name=chain.name, http=http, **retry_settings(chain))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, endpoints={len(self.pool.urls)})"

    def health(self) -> list[EndpointHealth]:
        return self.pool.health()


class RestClient(PooledClient):
    """JSON over HTTP (Esplora, Tron) with the pool's failover. A 4xx answer raises ``RestError``."""

    async def get_json(self, path: str) -> Any:
        return await self._json("GET", path, None)

    async def post_json(self, path: str, body: Any) -> Any:
        return await self._json("POST", path, body)

    async def _json(self, method: str, path: str, body: Any) -> Any:
        async def attempt(http: httpx.AsyncClient, base: str) -> Any:
            resp = await send(http, method, join_url(base, path), timeout=self.pool.timeout, body=body)
            if resp.status_code >= 400:
                raise RestError(resp.status_code, scrub(resp.text, base), redact_url(base))
            try:
                return resp.json()
            except ValueError as exc:
                raise EndpointFailed(f"HTTP {resp.status_code}, body is not JSON") from exc

        return await self.pool.request(attempt)
