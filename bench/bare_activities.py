"""The activity of the bare-workflow ceiling benchmark: does nothing, so only the engine's cost remains."""

from __future__ import annotations

from temporalio import activity


@activity.defn
async def noop() -> None:
    """Return at once."""
    return None
