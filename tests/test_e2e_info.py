"""A request for information end to end: an engineer asks through the CLI, the user reads the question on
the case and answers through the HTTP API, the case comes back to the engineers with the answer on its
timeline. Anvil, the Temporal dev server, the real worker, API and CLI."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from recovery.settings import ChainConfig
from tests.stack_fixtures import Stack, open_stack
from tests.test_e2e_four_eyes import recovery_cli


@pytest.fixture
async def manual_stack(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """On the dev server: its clock is the wall clock the CLI's attestations expire by (the time-skipping
    server's runs ahead once a test has skipped time)."""
    chains = [c.model_copy(update={"credited_assets": []}) for c in dev_chains]  # USDT credited nowhere
    async for s in open_stack(dev_server_env, tmp_path, chains):
        yield s


async def test_engineer_asks_and_the_user_answers_through_the_api(manual_stack: Stack) -> None:
    stack = manual_stack
    _, token, address = stack.new_user("asker")
    _, other_token, _ = stack.new_user("nosy")
    tx_hash = await stack.send("bsc", to=address, amount=Decimal("200"))
    case_id = (await stack.claim(token, tx_hash, chain="bsc")).json()["case_id"]
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL", "COMPLETED", "REJECTED")
    assert case["status"] == "AWAITING_APPROVAL", case

    async def answer(text: object, who: str = token) -> httpx.Response:
        return await stack.http.post(
            f"/v1/cases/{case_id}/messages", json={"text": text}, headers={"Authorization": f"Bearer {who}"}
        )

    early = await answer("hello")
    assert early.status_code == 409 and "nobody asked you anything" in early.json()["detail"]

    code, out, err = await recovery_cli(
        stack, "case", "request-info", case_id, "--engineer", "alice", "--question", "Which wallet did you use?"
    )
    assert code == 0 and json.loads(out)["answer"] == "asked the user", err
    case = await stack.wait_for(token, case_id, "AWAITING_USER")
    assert case["sla"]["paused"] is True
    assert "Which wallet did you use?" in case["timeline"][-1]["message"]

    assert (await answer("mine", who=other_token)).status_code == 404  # nobody answers another user's case
    assert (await answer("")).status_code == 422
    assert (await answer("x" * 2001)).status_code == 422
    accepted = await answer("MetaMask, the address I claimed from")
    assert accepted.status_code == 202, accepted.text
    case = await stack.wait_for(token, case_id, "AWAITING_APPROVAL")
    assert case["sla"]["paused"] is False
    assert "You answered: MetaMask, the address I claimed from" in [e["message"] for e in case["timeline"]]
    again = await answer("one more thing")
    assert again.status_code == 409

    code, _, err = await recovery_cli(stack, "case", "reject", case_id, "--engineer", "bob", "--reason", "wrong wallet")
    assert code == 0, err
    case = await stack.wait_for(token, case_id, "REJECTED")
    assert "wrong wallet" in case["reason"]
