"""The one way to connect to Temporal: the worker, the API and the CLI all use it (same namespace, same
pydantic data converter, so every payload reads back as the model it was written from)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from recovery.settings import Settings


async def connect(settings: Settings, *, timeout: timedelta | None = None) -> Client:
    """Connect to ``settings.temporal_address``; ``TimeoutError`` after ``timeout`` if given."""
    connecting = Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    if timeout is None:
        return await connecting
    return await asyncio.wait_for(connecting, timeout.total_seconds())
