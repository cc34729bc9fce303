"""The engine's search attributes reach a Temporal server that did not have them: ``temporal server
start-dev --search-attribute`` registers them only in a new database file, so ``make run`` on an older
file registers what is missing itself (else every new case's workflow task fails on an unknown attribute)."""

from __future__ import annotations

from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from tests.temporal_fixtures import temporal_binary
from workflows import search_attributes as sa


async def test_missing_search_attributes_are_registered_once() -> None:
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter, dev_server_existing_path=temporal_binary("temporal")
    )
    try:
        client = env.client
        before = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        assert not {k.name for k in sa.ALL} & set(before.custom_attributes)
        assert await sa.register_missing(client) == sorted(k.name for k in sa.ALL)
        assert await sa.register_missing(client) == []
        after = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        assert {k.name for k in sa.ALL} <= set(after.custom_attributes)
    finally:
        await env.shutdown()
