"""The exact path an engineer takes in the real Temporal Web UI: More Actions → Send an Update, driven
in headless Chromium by playwright-core. A validator's refusal is shown in the dialog and nothing reaches
the workflow's history."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devstack.stack import free_port
from recovery.settings import ROOT, ChainConfig
from tests.history_tools import accepted_updates
from tests.stack_fixtures import Stack, open_stack
from tests.temporal_fixtures import temporal_binary
from workflows import search_attributes as sa

CHROMIUM = Path("/usr/bin/chromium")
UI_SCRIPT = Path(__file__).with_name("ui_send_update.mjs")
BROWSER_WAIT_S = 60

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="/usr/bin/chromium is absent: apt-get install -y --no-install-recommends chromium (.ci/run does)",
)


@pytest.fixture
async def ui_env() -> AsyncIterator[tuple[WorkflowEnvironment, str]]:
    """A dev server of our own with its Web UI on a free port (the shared dev-server fixture has none)."""
    ui_port = free_port()
    env = await WorkflowEnvironment.start_local(
        data_converter=pydantic_data_converter,
        dev_server_existing_path=temporal_binary("temporal"),
        search_attributes=sa.ALL,
        ui=True,
        ui_port=ui_port,
    )
    try:
        yield env, f"http://127.0.0.1:{ui_port}"
    finally:
        await env.shutdown()


async def send_from_ui(ui_url: str, stack: Stack, case_id: str, update: str, payload: dict[str, str]) -> str | None:
    plan = {"ui_url": ui_url, "namespace": stack.client.namespace, "case_id": case_id, "update": update}
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(UI_SCRIPT),
        json.dumps(plan | {"payload": payload}),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), BROWSER_WAIT_S)
    assert proc.returncode == 0, err.decode()
    refusal: str | None = json.loads(out.decode().strip().splitlines()[-1])["refusal"]
    return refusal


async def test_ui_update_dialog_shows_the_validators_refusal_and_history_stays_clean(
    ui_env: tuple[WorkflowEnvironment, str], tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    env, ui_url = ui_env
    async for stack in open_stack(env, tmp_path, dev_chains):
        _, token, address = stack.new_user("ui")
        tx_hash = await stack.send("bsc", to=address, amount=Decimal("25000"))  # above the automatic limit
        response = await stack.claim(token, tx_hash, chain="bsc")
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]
        case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
        assert case["status"] == "AWAITING_APPROVAL", case

        refusal = await send_from_ui(ui_url, stack, case_id, "approve", {"engineer": "mallory", "note": "looks fine"})

        assert refusal is not None and "'mallory' is not on the roster of recovery engineers" in refusal, refusal
        history = await stack.client.get_workflow_handle(case_id).fetch_history()
        assert accepted_updates(history) == []
        assert (await stack.case(token, case_id))["status"] == "AWAITING_APPROVAL"
