"""How every activity of the engine is run and how its failures reach the workflow.

``RETRY`` and ``LIVENESS`` are the options both workflows give each activity; :func:`fail_fast_on_permanent`
is what each activity wraps its service call in. Workflow-safe.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from recovery.errors import PermanentError

LIVENESS = timedelta(seconds=15)
"""Heartbeat timeout of every activity: a worker that dies mid-activity is noticed within this, not
after the whole start-to-close timeout (long activities heartbeat, short ones finish well inside it)."""
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=1))


@contextmanager
def fail_fast_on_permanent() -> Iterator[None]:
    """A :class:`PermanentError` from a service becomes a non-retryable ``ApplicationError`` with the same
    message (the workflow shows it); anything else is retried by ``RETRY``."""
    try:
        yield
    except PermanentError as exc:
        raise ApplicationError(str(exc), type=type(exc).__name__, non_retryable=True) from exc
