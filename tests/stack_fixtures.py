"""The engine assembled for end-to-end tests: real anvil chains, a real Temporal server, the worker,
the database and the HTTP API (in process, through ASGI)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from api.main import create_app
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, HDSigner, deposit_path
from devstack import devnet
from recovery.settings import ChainConfig, Settings
from store import db, schema, users
from worker import build_worker

DEV_ACCOUNT_0_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
"""Anvil's first dev account (the public test mnemonic's): the users' wallet in these tests."""


@dataclass
class Stack:
    settings: Settings
    engine: Engine
    signer: HDSigner
    client: Client
    env: WorkflowEnvironment
    http: httpx.AsyncClient

    def chain(self, name: str) -> ChainConfig:
        return self.settings.chain(name)

    def new_user(self, prefix: str = "user") -> tuple[str, str, str]:
        """Create a user; returns (user_id, api_token, deposit_address)."""
        user_id = f"{prefix}-{uuid.uuid4().hex[:8]}"
        with Session(self.engine) as session:
            user, token = users.create_user(session, user_id=user_id, signer=self.signer, path_for=deposit_path)
            return user.user_id, token, user.deposit_address

    async def send(self, chain: str, *, to: str, amount: Decimal, asset: str = "USDT") -> str:
        """Play the user's own wallet: a transfer on ``chain`` from an anvil dev account."""
        config = self.chain(chain)
        token = config.token_by_symbol(asset)
        decimals = token.decimals if token else config.native_decimals
        base_units = int(amount.scaleb(decimals))
        if token is not None:
            await devnet.mint(config, asset=asset, to=devnet.dev_account(0), amount=base_units)
        return await devnet.send_from_dev_account(config, to=to, asset=asset, amount=base_units)

    async def claim(self, token: str, tx_hash: str, chain: str | None = None) -> httpx.Response:
        body: dict[str, Any] = {"tx_hash": tx_hash}
        if chain is not None:
            body["chain"] = chain
        return await self.http.post("/v1/cases", json=body, headers={"Authorization": f"Bearer {token}"})

    async def case(self, token: str, case_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/v1/cases/{case_id}", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def wait_for(self, token: str, case_id: str, *statuses: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            case = await self.case(token, case_id)
            if case["status"] in statuses:
                return case
            if time.monotonic() > deadline:
                raise AssertionError(f"case {case_id} stuck in {case['status']}: {case}")
            await asyncio.sleep(0.2)

    async def prove_ownership(self, token: str, case_id: str, key: str = DEV_ACCOUNT_0_KEY) -> httpx.Response:
        """Play the sender's wallet: sign the case's ownership challenge with ``key`` and post the proof."""
        auth = {"Authorization": f"Bearer {token}"}
        challenge = await self.http.get(f"/v1/cases/{case_id}/ownership-challenge", headers=auth)
        assert challenge.status_code == 200, challenge.text
        signed = Account.sign_message(encode_defunct(text=challenge.json()["message"]), private_key=key)
        body = {"signature": signed.signature.to_0x_hex()}
        return await self.http.post(f"/v1/cases/{case_id}/ownership-proof", json=body, headers=auth)

    def signer_mnemonic_absent_from(self, text: str) -> bool:
        assert self.settings.seed_file is not None
        words = self.settings.seed_file.read_text().strip()
        return bool(words) and words not in text

    @property
    def hot_wallet(self) -> str:
        return self.signer.address(HOT_WALLET_PATH)

    @property
    def gas_wallet(self) -> str:
        return self.signer.address(GAS_WALLET_PATH)


def make_settings(
    data_dir: Path, chains: list[ChainConfig], *, quotes_need_acceptance: bool = False, **overrides: Any
) -> Settings:
    """The dev configuration on ``data_dir`` and ``chains``. Quotes need no user acceptance unless asked
    (``tests/test_e2e_fee_acceptance.py`` runs the dev policies as they are): the other end-to-end tests are
    about other steps, and the dev policies ask for it above 1,000 USD."""
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": f"sqlite:///{data_dir / 'recovery.db'}",
        "chains": chains,
        "task_queue": f"cases-{uuid.uuid4().hex[:8]}",
    }
    settings = Settings(**(values | overrides))
    if quotes_need_acceptance:
        return settings
    policies = {name: p.model_copy(update={"acceptance_above_usd": None}) for name, p in settings.fee_policies.items()}
    default = settings.fee.model_copy(update={"acceptance_above_usd": None})
    return settings.model_copy(update={"fee": default, "fee_policies": policies})


@pytest.fixture(params=["time-skipping", "dev-server"])
def temporal_env(request: pytest.FixtureRequest) -> WorkflowEnvironment:
    name = "time_skipping_env" if request.param == "time-skipping" else "dev_server_env"
    env: WorkflowEnvironment = request.getfixturevalue(name)
    return env


async def open_stack(
    env: WorkflowEnvironment,
    data_dir: Path,
    chains: list[ChainConfig],
    *,
    run_worker: bool = True,
    **overrides: Any,
) -> AsyncIterator[Stack]:
    settings = make_settings(data_dir, chains, **overrides)
    engine = db.make_engine(settings.database_url or "")
    schema.init_db(engine)
    signer = HDSigner.from_settings(settings)
    for chain in chains:
        if chain.family == "evm":
            await devnet.bootstrap_chain(chain, fund=[signer.address(HOT_WALLET_PATH), signer.address(GAS_WALLET_PATH)])
    app = create_app(settings, temporal_client=_returning(env.client), engine=engine)
    async with contextlib.AsyncExitStack() as running:
        if run_worker:
            await running.enter_async_context(build_worker(env.client, settings, engine=engine, signer=signer))
        http = await running.enter_async_context(
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api")
        )
        yield Stack(settings=settings, engine=engine, signer=signer, client=env.client, env=env, http=http)
    engine.dispose()


def _returning(client: Client) -> Any:
    async def get() -> Client:
        return client

    return get


@pytest.fixture
async def stack(
    temporal_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    async for s in open_stack(temporal_env, tmp_path, dev_chains):
        yield s


@pytest.fixture
async def ts_stack(
    time_skipping_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """The stack on the time-skipping server only, for tests that need not run on both servers."""
    async for s in open_stack(time_skipping_env, tmp_path, dev_chains):
        yield s


HISTORIES = Path(__file__).parent / "histories"


async def record_history(stack: Stack, case_id: str, name: str) -> None:
    """With RECORD_HISTORIES=1, keep this case's history for the replay test (tests/test_replay.py)."""
    if not os.environ.get("RECORD_HISTORIES"):
        return
    history = await stack.client.get_workflow_handle(case_id).fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json())


@pytest.fixture
async def dev_stack(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """The stack on the Temporal dev server only: a real server whose clock is the wall clock (the CLI's
    attestations expire by it; the time-skipping server's runs ahead once a test has skipped time)."""
    async for s in open_stack(dev_server_env, tmp_path, dev_chains):
        yield s


CLI_WAIT_S = 60


def cli_env(stack: Stack) -> dict[str, str]:
    assert stack.settings.seed_file is not None
    return os.environ | {
        "RECOVERY_CONFIG": str(stack.settings.data_dir / "absent.toml"),
        "RECOVERY_DATA_DIR": str(stack.settings.data_dir),
        "RECOVERY_DATABASE_URL": stack.settings.database_url or "",
        "RECOVERY_SEED_FILE": str(stack.settings.seed_file),
        "RECOVERY_CHAINS": json.dumps([c.model_dump(mode="json") for c in stack.settings.chains]),
        "RECOVERY_TASK_QUEUE": stack.settings.task_queue,
        "RECOVERY_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "RECOVERY_TEMPORAL_NAMESPACE": stack.client.namespace,
    }


async def run_cli(env: Mapping[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "cli",
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), CLI_WAIT_S)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()
