"""Endpoint pool: failover, health records, cool-down order, bounded retries, no secrets leaked."""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import pytest

from chains.endpoints import (
    EndpointPool,
    RestClient,
    RestError,
    RpcError,
    RpcUnavailable,
    health_snapshot,
    join_url,
    redact_url,
    scrub,
)
from chains.jsonrpc import JsonRpcClient
from recovery.settings import ChainConfig
from tests.fake_nodes import FakeNode, NodeFactory, dead_url, fake_nodes  # noqa: F401

TIMEOUT = timedelta(milliseconds=300)
BACKOFF = timedelta(milliseconds=10)


def block_number_node(node: FakeNode, head: int = 0x10) -> FakeNode:
    node.route("POST", None, {"jsonrpc": "2.0", "id": 1, "result": hex(head)}, match={"method": "eth_blockNumber"})
    return node


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += int(delta.total_seconds() * 1000) * 1_000_000


async def test_failover_when_an_endpoint_refuses_connections(fake_nodes: NodeFactory) -> None:  # noqa: F811
    good = block_number_node(fake_nodes())
    dead = dead_url()
    rpc = JsonRpcClient([dead, good.url], name="chainx", timeout=TIMEOUT, backoff=BACKOFF)
    assert await rpc.call("eth_blockNumber") == "0x10"
    down, up = rpc.health()
    assert (down.url, down.successes, down.failures, down.consecutive_failures) == (dead, 0, 1, 1)
    assert down.last_error and "Connect" in down.last_error and down.last_failure_at is not None
    assert not down.healthy and down.cooldown_remaining_ms > 0
    assert (up.successes, up.failures, up.healthy, up.last_error) == (1, 0, True, None)
    assert up.last_latency_ms is not None and up.last_success_at is not None
    assert rpc._preferred == 1  # the failed endpoint is tried after the healthy one
    assert await rpc.call("eth_blockNumber") == "0x10"
    assert rpc.health()[0].failures == 1  # cooling down: not tried again while the other answers
    assert {h.url for h in health_snapshot()} >= {dead, good.url}


@pytest.mark.parametrize("status", [500, 502, 503, 408, 425, 429])
async def test_failover_on_server_errors_and_rate_limits(fake_nodes: NodeFactory, status: int) -> None:  # noqa: F811
    bad, good = fake_nodes(), block_number_node(fake_nodes())
    bad.fail(status)
    rpc = JsonRpcClient([bad.url, good.url], name="chainx", timeout=TIMEOUT, backoff=BACKOFF)
    assert await rpc.call("eth_blockNumber") == "0x10"
    assert rpc.health()[0].last_error == f"HTTP {status}"
    assert bad.hits() == 1 and good.hits() == 1


async def test_failover_on_timeout(fake_nodes: NodeFactory) -> None:  # noqa: F811
    slow, good = fake_nodes(), block_number_node(fake_nodes())
    slow.hang(timedelta(seconds=5))
    rpc = JsonRpcClient([slow.url, good.url], name="chainx", timeout=TIMEOUT, backoff=BACKOFF)
    started = time.monotonic()
    assert await rpc.call("eth_blockNumber") == "0x10"
    assert time.monotonic() - started < 2
    slow_health = rpc.health()[0]
    assert slow_health.last_error is not None and "Timeout" in slow_health.last_error
    assert slow_health.last_latency_ms is not None and slow_health.last_latency_ms >= 250


async def test_cool_down_order_and_recovery(fake_nodes: NodeFactory) -> None:  # noqa: F811
    a, b = block_number_node(fake_nodes(), 1), block_number_node(fake_nodes(), 2)
    clock = Clock()
    pool = EndpointPool(
        [a.url, b.url], name="chainx", cooldown=timedelta(seconds=5), clock=clock, timeout=TIMEOUT, backoff=BACKOFF
    )
    rpc = JsonRpcClient([a.url, b.url], pool=pool)
    assert pool.order() == [a.url, b.url]
    a.fail(500)
    assert await rpc.call("eth_blockNumber") == "0x2"
    assert pool.order() == [b.url, a.url]  # a cools down for 5 s
    a.recover()
    assert await rpc.call("eth_blockNumber") == "0x2"  # still b first while a cools down
    clock.advance(timedelta(seconds=6))
    assert pool.order() == [a.url, b.url]  # cool-down over: back in its configured place
    a.fail(500)
    assert await rpc.call("eth_blockNumber") == "0x2"
    again = pool.health()[0]
    assert again.consecutive_failures == 2 and again.cooldown_remaining_ms == 10_000  # cool-down doubles
    # Both fail: both cool down, a (failed first) recovers first; neither is ever dropped.
    b.fail(500)
    with pytest.raises(RpcUnavailable):
        await rpc.call("eth_blockNumber")
    assert all(not h.healthy for h in pool.health())
    assert pool.health()[1].consecutive_failures == 3  # retries=2: three rounds
    assert pool.health()[0].consecutive_failures == 5
    b.recover()
    assert await rpc.call("eth_blockNumber") == "0x2"  # every endpoint cooling: still tried
    assert pool.health()[1].healthy and pool.order()[0] == b.url


async def test_cool_down_grows_with_consecutive_failures(fake_nodes: NodeFactory) -> None:  # noqa: F811
    a = fake_nodes()
    a.fail(500)
    clock = Clock()
    pool = EndpointPool(
        [a.url],
        retries=0,
        cooldown=timedelta(seconds=1),
        max_cooldown=timedelta(seconds=3),
        clock=clock,
        timeout=TIMEOUT,
        backoff=BACKOFF,
    )
    rest = RestClient([a.url], pool=pool)
    remaining = []
    for _ in range(4):
        with pytest.raises(RpcUnavailable):
            await rest.get_json("/x")
        remaining.append(pool.health()[0].cooldown_remaining_ms)
    assert remaining == [1000, 2000, 3000, 3000]


async def test_bounded_retries_then_unavailable(fake_nodes: NodeFactory) -> None:  # noqa: F811
    a, b = fake_nodes(), fake_nodes()
    a.fail(500)
    b.fail(503)
    rpc = JsonRpcClient([a.url, b.url], name="nowhere", retries=2, timeout=TIMEOUT, backoff=BACKOFF)
    with pytest.raises(RpcUnavailable, match=r"nowhere: all 2 endpoint\(s\) failed after 3 tries") as info:
        await rpc.call("eth_blockNumber")
    assert "HTTP 500" in str(info.value) and "HTTP 503" in str(info.value)
    assert a.hits() == 3 and b.hits() == 3
    assert [h.failures for h in rpc.health()] == [3, 3]


async def test_node_answers_are_not_endpoint_failures(fake_nodes: NodeFactory) -> None:  # noqa: F811
    first, second = fake_nodes(), fake_nodes()
    for node in (first, second):
        node.route("GET", "/tx/abc", status=404, text="Transaction not found")
        node.route("GET", "/tx/bad", status=400, text="Invalid hex string")
        node.route("GET", "/ok", {"a": 1})
        node.route("POST", "/echo", {"posted": True}, match={"value": "x"})
        node.route(
            "POST",
            "/rpc",
            {"jsonrpc": "2.0", "id": 1, "error": {"code": -32601, "message": "no such method"}},
            status=400,
        )
    rest = RestClient([first.url, second.url], name="esplora", timeout=TIMEOUT, backoff=BACKOFF)
    with pytest.raises(RestError) as info:
        await rest.get_json("/tx/abc")
    assert info.value.status_code == 404 and info.value.body == "Transaction not found"
    with pytest.raises(RestError, match="400"):
        await rest.get_json("/tx/bad")
    assert await rest.get_json("/ok") == {"a": 1}
    assert await rest.post_json("/echo", {"value": "x"}) == {"posted": True}
    rpc = JsonRpcClient([join_url(first.url, "/rpc"), join_url(second.url, "/rpc")], timeout=TIMEOUT, backoff=BACKOFF)
    with pytest.raises(RpcError, match="no such method"):  # a JSON-RPC error, even with HTTP 400
        await rpc.call("eth_nothing")
    assert second.hits() == 0  # an answer is never retried elsewhere
    assert all(h.healthy and h.failures == 0 for h in rest.health() + rpc.health())


async def test_unparsable_success_body_fails_over(fake_nodes: NodeFactory) -> None:  # noqa: F811
    broken, good = fake_nodes(), fake_nodes()
    broken.route("GET", "/blocks/tip/height", text="<html>maintenance</html>")
    good.route("GET", "/blocks/tip/height", 840_000)
    rest = RestClient([broken.url, good.url], timeout=TIMEOUT, backoff=BACKOFF)
    assert await rest.get_json("/blocks/tip/height") == 840_000
    assert rest.health()[0].last_error == "HTTP 200, body is not JSON"


async def test_no_secrets_in_health_errors_or_logs(
    fake_nodes: NodeFactory,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    failing, good = fake_nodes(), block_number_node(fake_nodes())
    failing.fail(500)
    secret_urls = [
        f"{failing.url}/v3/SECRETPATHKEY",
        dead_url().replace("http://", "http://user:SECRETPASSWORD@") + "/rpc?apikey=SECRETQUERY",
    ]
    caplog.set_level(logging.DEBUG)
    dead_pool = JsonRpcClient(secret_urls, name="leaky", retries=1, timeout=TIMEOUT, backoff=BACKOFF)
    with pytest.raises(RpcUnavailable) as info:
        await dead_pool.call("eth_blockNumber")
    ok = JsonRpcClient([f"{good.url}/key/SECRETGOODKEY?token=SECRETTOKEN"], name="ok", timeout=TIMEOUT, backoff=BACKOFF)
    assert await ok.call("eth_blockNumber") == "0x10"
    exposed = [
        str(info.value),
        caplog.text,
        *(h.model_dump_json() for h in dead_pool.health() + ok.health()),
        *(h.model_dump_json() for h in health_snapshot()),
    ]
    assert "HTTP Request" in caplog.text  # httpx logged the requests, redacted
    for text in exposed:
        assert "SECRET" not in text, text
    assert [h.url for h in dead_pool.health()] == [redact_url(u) for u in secret_urls]
    assert scrub(f"error at {secret_urls[0]}/tx", secret_urls[0]) == f"error at {failing.url}/tx"


def test_join_url_keeps_prefix_and_query() -> None:
    assert join_url("https://h.example/api", "/tx/ab") == "https://h.example/api/tx/ab"
    assert join_url("https://h.example/api/", "tx/ab") == "https://h.example/api/tx/ab"
    assert join_url("https://h.example/?key=k", "/wallet/x") == "https://h.example/wallet/x?key=k"
    assert redact_url("https://u:p@h.example:8443/k/KEY?x=1") == "https://h.example:8443"


async def test_from_config_uses_rpc_settings(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    node.fail(500)
    chain = ChainConfig(
        name="tronx",
        family="tron",
        rpc_urls=[node.url],
        rpc_retries=3,
        rpc_backoff_ms=5,
        rpc_timeout_ms=250,
    )
    rpc = JsonRpcClient.from_config(chain)
    assert (rpc.name, rpc.retries, rpc.backoff_s, rpc.timeout_s) == ("tronx", 3, 0.005, 0.25)
    rest = RestClient.from_config(chain)
    with pytest.raises(RpcUnavailable, match="tronx"):
        await rest.get_json("/x")
    assert node.hits() == 4  # 1 + rpc_retries rounds


async def test_a_node_error_that_echoes_the_endpoints_key_loses_it(fake_nodes: NodeFactory) -> None:  # noqa: F811
    node = fake_nodes()
    url = f"{node.url}/v3/SECRETPATHKEY?apikey=SECRETQUERY"
    node.route(
        "POST",
        None,
        {"jsonrpc": "2.0", "id": 1, "error": {"code": -32000, "message": f"rate limited for {url} (SECRETPATHKEY)"}},
    )
    rpc = JsonRpcClient([url], timeout=TIMEOUT, backoff=BACKOFF)
    with pytest.raises(RpcError) as info:
        await rpc.call("eth_blockNumber")
    assert "rate limited for" in str(info.value) and "SECRET" not in str(info.value)
    [item] = await rpc.batch([("eth_blockNumber", None)])
    assert isinstance(item, RpcError) and "SECRET" not in str(item)
