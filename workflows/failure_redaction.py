"""Activity failures and results reach Temporal's history (and its Web UI) without the configured secrets.

An activity's exception is stored as a failure: its message, its ``__cause__`` (or ``__context__``) chain,
its stack and an ``ApplicationError``'s details. A node that echoes its URL (``invalid key /v3/<key>``) in an
RPC error would put the key there, readable by anyone with UI access. :class:`RedactingInterceptor` catches
what leaves an activity and, when any part of it holds a secret of its :class:`~recovery.redaction.Redactor`,
raises instead the same chain of ``ApplicationError`` with the secrets replaced by ``***`` (and an activity's
*result*, where a node's error text can end up too, is redacted the same way: :func:`redact_result`):

- the type name is kept (``type=`` the original class name; an ``ApplicationError`` keeps its own ``type``),
  so ``RetryPolicy.non_retryable_error_types`` and the workflow's handling by type are unchanged;
- ``non_retryable``, ``next_retry_delay`` and ``category`` of an ``ApplicationError`` are kept; any other
  exception stays retryable, as the SDK would have encoded it;
- details are kept with their strings redacted (:meth:`Redactor.redact_value`);
- the Python stack frames are kept (they hold code, not runtime values).

An exception that holds no secret is re-raised untouched, and so are cancellations
(``temporalio.exceptions.CancelledError``; ``asyncio.CancelledError`` and ``activity.raise_complete_async()``
are ``BaseException`` and pass through), whose meaning to the SDK depends on their class.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError, CancelledError, FailureError
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput, Interceptor

from recovery.redaction import Redactor


def failure_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and the exceptions the SDK encodes as its causes: ``__cause__``, else ``__context__`` unless
    suppressed (``raise ... from None``); the same rule as ``DefaultFailureConverter``."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        if current.__cause__ is not None:
            current = current.__cause__
        elif not current.__suppress_context__:
            current = current.__context__
        else:
            current = None
    return chain


def _texts(exc: BaseException) -> list[str]:
    texts = [str(exc)]
    if isinstance(exc, ApplicationError):
        texts += [repr(d) for d in exc.details]
        texts.append(exc.type or "")
    return texts


def leaks(exc: BaseException, redactor: Redactor) -> bool:
    """Whether the failure Temporal would store for ``exc`` holds one of ``redactor``'s secrets."""
    return any(redactor.leaks(text) for e in failure_chain(exc) for text in _texts(e))


def _redacted_one(exc: BaseException, redactor: Redactor) -> ApplicationError:
    if isinstance(exc, ApplicationError):
        details: list[Any] = [redactor.redact_value(d) for d in exc.details]
        return ApplicationError(
            redactor.redact(exc.message),
            *details,
            type=redactor.redact(exc.type) if exc.type else exc.type,
            non_retryable=exc.non_retryable,
            next_retry_delay=exc.next_retry_delay,
            category=exc.category,
        )
    message = exc.message if isinstance(exc, FailureError) else str(exc)
    return ApplicationError(redactor.redact(message), type=type(exc).__name__)


def redact_failure(exc: BaseException, redactor: Redactor) -> BaseException:
    """``exc`` itself when Temporal would store no secret of ``redactor`` for it; else a chain of
    ``ApplicationError`` (one per exception of :func:`failure_chain`, linked by ``__cause__``) with the
    secrets replaced, the types and retry semantics kept (see the module doc)."""
    if isinstance(exc, CancelledError) or not leaks(exc, redactor):
        return exc
    redacted: ApplicationError | None = None
    for original in reversed(failure_chain(exc)):
        one = _redacted_one(original, redactor)
        one.__cause__ = redacted
        one.__suppress_context__ = True
        one.__traceback__ = original.__traceback__
        redacted = one
    assert redacted is not None
    return redacted


def redact_result(value: Any, redactor: Redactor) -> Any:
    """An activity's result as Temporal will store it, without ``redactor``'s secrets: a pydantic model is
    re-validated from its redacted JSON (same type), lists, tuples, dicts and strings are redacted in place,
    anything else (and anything holding no secret) is returned as is.

    A node's error text can land in a result (a trace's note, a token finding's detail). If a model no longer
    validates once redacted (a secret inside a constrained field), the activity fails, non-retryable, rather
    than store the secret."""
    if not redactor:
        return value
    if isinstance(value, BaseModel):
        text = value.model_dump_json()
        if not redactor.leaks(text):
            return value
        try:
            return type(value).model_validate_json(redactor.redact(text))
        except ValidationError:
            raise ApplicationError(
                f"the result of this activity ({type(value).__name__}) holds a configured secret that cannot be "
                "redacted; nothing was stored. Find where the node's error text enters the result and drop it",
                type="SecretInActivityResult",
                non_retryable=True,
            ) from None
    if type(value) in (list, tuple):  # exact types: a NamedTuple or a dict subclass is rebuilt differently
        return type(value)(redact_result(v, redactor) for v in value)
    if type(value) is dict:
        return {redact_result(k, redactor): redact_result(v, redactor) for k, v in value.items()}
    if isinstance(value, str):
        return redactor.redact(value)
    return value


class _RedactingActivityInbound(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, redactor: Redactor) -> None:
        super().__init__(next)
        self._redactor = redactor

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            result = await self.next.execute_activity(input)
        except Exception as exc:
            redacted = redact_failure(exc, self._redactor)
            if redacted is exc:
                raise
            raise redacted from redacted.__cause__
        return redact_result(result, self._redactor)


class RedactingInterceptor(Interceptor):
    """A worker interceptor: activity failures leave the worker with ``redactor``'s secrets redacted."""

    def __init__(self, redactor: Redactor) -> None:
        self.redactor = redactor

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        if not self.redactor:
            return next
        return _RedactingActivityInbound(next, self.redactor)
