"""The one way to connect to Temporal: the worker, the API and the CLI all use it (same namespace, same
pydantic data converter, so every payload reads back as the model it was written from)."""

from __future__ import annotations

import asyncio

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from recovery.settings import Settings


async def connect(settings: Settings, *, timeout_s: float | None = None) -> Client:
    """Connect to ``settings.temporal_address``; ``TimeoutError`` after ``timeout_s`` if given."""
    connecting = Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )
    return await (asyncio.wait_for(connecting, timeout_s) if timeout_s is not None else connecting)
