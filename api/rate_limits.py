"""Rate limits per API token, and per client address for requests without a valid token.

Each kind of request has its own budget (``settings.rate_limits``): a user's claims, other writes and reads,
any staff request, and requests whose token is missing or wrong. Budgets are per token, not per address, so
one user's burst spends only that user's budget even when every request arrives through the exchange's one
gateway address. Counted in memory as the ``limits`` package's sliding window counters count (:class:`SlidingWindows`;
constant work per request), in each API process: with N processes behind a balancer a client gets up to N times
the budget.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Sequence
from enum import StrEnum
from math import floor, inf
from typing import Any

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse_many

from recovery.i18n import N_, Message
from recovery.settings import RateLimitConfig


class Budget(StrEnum):
    CLAIMS = "claims"
    WRITES = "writes"
    READS = "reads"
    STAFF = "staff"
    ANONYMOUS = "anonymous"


WHAT = {
    Budget.CLAIMS: N_(
        "too many claims from this token (the limit is {limit}); nothing was done: try again in {seconds} s"
    ),
    Budget.WRITES: N_(
        "too many changes from this token (the limit is {limit}); nothing was done: try again in {seconds} s"
    ),
    Budget.READS: N_(
        "too many reads from this token (the limit is {limit}); nothing was done: try again in {seconds} s"
    ),
    Budget.STAFF: N_(
        "too many requests from this staff token (the limit is {limit}); nothing was done: try again in {seconds} s"
    ),
    Budget.ANONYMOUS: N_(
        "too many requests without a valid API token from your address (the limit is {limit}); nothing was done: "
        "try again in {seconds} s"
    ),
}
"""Each budget's refusal: whole sentences, so that each language words them its own way."""


class SlidingWindows:
    """Sliding window counters in memory, counted and weighed as the ``limits`` package's
    ``SlidingWindowCounterRateLimiter`` on its ``MemoryStorage`` does (the same windows, weights, refusals and reset
    times), without that storage's per-request work: it starts a timer thread every 10 ms of traffic to expire
    its keys, which cost more than the rest of a cached case read. Idle keys are dropped here, inline, once their
    windows are over. Thread-safe; each check and count is atomic."""

    SWEEP_SECONDS = 60.0

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, int, str], tuple[int, int, int, int]] = {}
        """By (budget, limit's index, key): the latest window's number, its count, the count of the window before
        it, and the windows' length in seconds."""
        self._lock = threading.Lock()
        self._next_sweep = 0.0

    def _counts(self, name: tuple[str, int, str], expiry: int, now: float) -> tuple[int, int, int]:
        """The current window's number, its count and the previous window's count."""
        current = int(now / expiry)
        found = self._windows.get(name)
        if found is None or found[0] < current - 1:
            return current, 0, 0
        if found[0] == current - 1:
            return current, 0, found[1]
        return current, found[1], found[2]

    @staticmethod
    def _weighted(previous: int, current: int, expiry: int, now: float) -> float:
        previous_ttl = 0.0 if previous == 0 else (1 - (((now - expiry) / expiry) % 1)) * expiry
        return previous * previous_ttl / expiry + current

    def spend(self, budget: str, key: str, limits: Sequence[RateLimitItem]) -> RateLimitItem | None:
        """Count one request of ``key`` against each of ``limits`` if none of them is reached; else count nothing
        and return the first reached."""
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            counts = []
            for index, item in enumerate(limits):
                expiry = item.get_expiry()
                window, current, previous = self._counts((budget, index, key), expiry, now)
                if floor(self._weighted(previous, current, expiry, now)) + 1 > item.amount:
                    return item
                counts.append((window, current, previous))
            for index, (window, current, previous) in enumerate(counts):
                self._windows[(budget, index, key)] = (window, current + 1, previous, limits[index].get_expiry())
            return None

    def reset_time(self, budget: str, key: str, index: int, item: RateLimitItem) -> float:
        """When ``item`` (the ``index``-th limit of the budget) next lets ``key`` through, as ``limits``'
        ``get_window_stats`` tells it (its ``reset_time``)."""
        with self._lock:
            now = self._clock()
            expiry = item.get_expiry()
            _, current, previous = self._counts((budget, index, key), expiry, now)
        if not (previous or current):
            return now
        previous_reset_in, current_reset_in = inf, inf
        if previous:
            previous_ttl = (1 - (((now - expiry) / expiry) % 1)) * expiry
            previous_reset_in = previous_ttl % (expiry / previous)
        if current:
            current_ttl = (1 - ((now / expiry) % 1)) * expiry + expiry
            current_reset_in = current_ttl % expiry
        return now + min(previous_reset_in, current_reset_in)

    def _sweep(self, now: float) -> None:
        """Drop the keys whose windows are both over (under the lock)."""
        self._next_sweep = now + self.SWEEP_SECONDS
        stale = [name for name, (window, _, _, expiry) in self._windows.items() if window < int(now / expiry) - 1]
        for name in stale:
            del self._windows[name]


class RateLimiter:
    def __init__(self, config: RateLimitConfig) -> None:
        self._limits: dict[Budget, list[RateLimitItem]] = {
            budget: parse_many(getattr(config, budget.value)) for budget in Budget
        }
        self._text = {budget: getattr(config, budget.value) for budget in Budget}
        self._counter = SlidingWindows()

    def spend(self, budget: Budget, key: str) -> None:
        """Count one request of ``key`` against ``budget``; raises a 429 ``HTTPException`` with
        ``Retry-After`` (seconds) once a limit of the budget is reached. A refused request costs nothing."""
        limits = self._limits[budget]
        reached = self._counter.spend(budget.value, key, limits)
        if reached is not None:
            raise self._refusal(budget, key, limits.index(reached), reached)

    def _refusal(self, budget: Budget, key: str, index: int, item: RateLimitItem) -> HTTPException:
        reset_time = self._counter.reset_time(budget.value, key, index, item)
        retry_after = max(1, math.ceil(reset_time - time.time()))
        return HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=Message(WHAT[budget], limit=self._text[budget], seconds=retry_after),
            headers={"Retry-After": str(retry_after)},
        )


def limiter_of(request: Request) -> RateLimiter:
    """The app's limiter, made from its settings on first use."""
    return limiter_of_app(request.app)


def limiter_of_app(app: Any) -> RateLimiter:
    limiter: RateLimiter | None = getattr(app.state, "rate_limiter", None)
    if limiter is None:
        limiter = RateLimiter(app.state.settings.rate_limits)
        app.state.rate_limiter = limiter
    return limiter


def user_budget(request: Request) -> Budget:
    """Which of a user's budgets a request spends: filing a claim, another write, or a read."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return Budget.READS
    if request.method == "POST" and request.url.path.rstrip("/") == "/v1/cases":
        return Budget.CLAIMS
    return Budget.WRITES


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"
