"""Failures that retrying cannot fix. Services raise them; the activities turn them into non-retryable
Temporal errors (with the same message), the API and the CLI into answers that say what to do."""

from __future__ import annotations


class PermanentError(Exception):
    """The same request would fail again the same way: do not retry it."""
