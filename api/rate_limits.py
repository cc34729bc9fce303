"""Rate limits per API token, and per client address for requests without a valid token.

Each kind of request has its own budget (``settings.rate_limits``): a user's claims, other writes and reads,
any staff request, and requests whose token is missing or wrong. Budgets are per token, not per address, so
one user's burst spends only that user's budget even when every request arrives through the exchange's one
gateway address. Counted in memory by the ``limits`` package (sliding window counters, constant work per
request), in each API process: with N processes behind a balancer a client gets up to N times the budget.
"""

from __future__ import annotations

import math
import time
from enum import StrEnum

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage
from limits.strategies import SlidingWindowCounterRateLimiter

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


class RateLimiter:
    def __init__(self, config: RateLimitConfig) -> None:
        self._limits: dict[Budget, list[RateLimitItem]] = {
            budget: parse_many(getattr(config, budget.value)) for budget in Budget
        }
        self._text = {budget: getattr(config, budget.value) for budget in Budget}
        self._counter = SlidingWindowCounterRateLimiter(MemoryStorage())

    def spend(self, budget: Budget, key: str) -> None:
        """Count one request of ``key`` against ``budget``; raises a 429 ``HTTPException`` with
        ``Retry-After`` (seconds) once a limit of the budget is reached. A refused request costs nothing."""
        limits = self._limits[budget]
        for item in limits:
            if not self._counter.test(item, budget.value, key):
                raise self._refusal(budget, key, item)
        for item in limits:
            if not self._counter.hit(item, budget.value, key):  # a concurrent request took the last one
                raise self._refusal(budget, key, item)

    def _refusal(self, budget: Budget, key: str, item: RateLimitItem) -> HTTPException:
        stats = self._counter.get_window_stats(item, budget.value, key)
        retry_after = max(1, math.ceil(stats.reset_time - time.time()))
        return HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=Message(WHAT[budget], limit=self._text[budget], seconds=retry_after),
            headers={"Retry-After": str(retry_after)},
        )


def limiter_of(request: Request) -> RateLimiter:
    """The app's limiter, made from its settings on first use."""
    limiter: RateLimiter | None = getattr(request.app.state, "rate_limiter", None)
    if limiter is None:
        limiter = RateLimiter(request.app.state.settings.rate_limits)
        request.app.state.rate_limiter = limiter
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
