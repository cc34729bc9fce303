"""Reusable chain fixtures: ``from tests.chain_fixtures import dev_chains`` in a conftest or test module."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from devstack.devnet import dev_network
from recovery.settings import ChainConfig
from recovery.settings import dev_chains as default_dev_chains


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_chains() -> AsyncIterator[list[ChainConfig]]:
    """Two anvils (ethereum chain id 1, bsc chain id 56) on free ports, 1 s blocks, test USDT installed.

    Yields ``recovery.settings.dev_chains()`` with ``rpc_urls`` pointed at them.
    """
    async with dev_network(default_dev_chains(), block_time_s=1) as chains:
        yield chains
