"""Temporal servers for tests: the time-skipping test server and a real dev server, both from PyPI."""

from __future__ import annotations

import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from workflows import search_attributes as sa


def temporal_binary(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(found).exists():
        raise RuntimeError(f"{name} not found: run `make install` (it comes from PyPI)")
    return found


@pytest.fixture
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A fresh time-skipping server for each test (it starts in about 0.1 s).

    One server shared by the session let a test's leftover workflow stop time for every later test: when a
    leftover's timer fires, the server schedules a workflow task that no worker will ever take, and a
    scheduled task locks time skipping for good (terminating the workflow does not release the lock). Every
    later ``env.sleep`` then ran in real time until the test service's 30-second call deadline
    ("Timeout expired", or "h2 protocol error" under load)."""
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
