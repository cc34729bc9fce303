"""The operator's view of chain endpoints: health as the API process saw it, with URLs redacted."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx

from api.deps import ChainTracer
from api.main import create_app
from recovery.settings import ChainConfig, Settings
from tests.fake_nodes import NodeFactory, dead_url, fake_nodes  # noqa: F401


async def test_healthz_chains_shows_a_dead_endpoint_without_its_secret(
    tmp_path: Path,
    fake_nodes: NodeFactory,  # noqa: F811
) -> None:
    node = fake_nodes()
    txid = secrets.token_hex(32)
    node.route("GET", f"/tx/{txid}", status=404, text="Transaction not found")
    dead = dead_url() + "/v1/secret-api-key"
    btc = ChainConfig(
        name="bitcoin", family="bitcoin", rpc_urls=[dead, node.url], native_symbol="BTC", native_decimals=8
    )
    settings = Settings(data_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'db.sqlite'}", chains=[btc])
    result = await ChainTracer().trace(btc, txid)
    assert not result.found  # answered by the second endpoint after the first refused the connection

    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        response = await http.get("/healthz/chains")
    assert response.status_code == 200
    assert "secret-api-key" not in response.text
    [chain] = response.json()
    assert chain["name"] == "bitcoin" and chain["family"] == "bitcoin"
    first, second = chain["endpoints"]
    assert first["failures"] == 1 and first["last_error"] and first["cooldown_remaining_ms"] > 0
    assert second["successes"] == 1 and second["failures"] == 0
