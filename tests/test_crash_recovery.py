"""The worker process is killed (SIGKILL) in the middle of a recovery and restarted: the case still
finishes with exactly one sweep, one gas top-up, one credit and one fee."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.testing import WorkflowEnvironment

from chains.evm import EvmChain
from recovery.settings import ROOT, ChainConfig
from store import cases, fee_ledger, signed_txs
from store.fee_ledger import FeeKind, FeeLedgerEntry
from store.ledger import LedgerCredit
from tests.stack_fixtures import Stack, open_stack


@pytest.fixture
async def workerless_stack(
    dev_server_env: WorkflowEnvironment, tmp_path: Path, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    """On the real dev server: a dead worker's sticky queue times out there as in production."""
    async for s in open_stack(dev_server_env, tmp_path, dev_chains, run_worker=False):
        yield s


def _start_worker(stack: Stack, log: Path) -> subprocess.Popen[bytes]:
    settings = stack.settings
    env = os.environ | {
        "RECOVERY_TEMPORAL_ADDRESS": stack.client.service_client.config.target_host,
        "RECOVERY_TASK_QUEUE": settings.task_queue,
        "RECOVERY_DATA_DIR": str(settings.data_dir),
        "RECOVERY_DATABASE_URL": settings.database_url or "",
        "RECOVERY_CHAINS": json.dumps([c.model_dump(mode="json") for c in settings.chains]),
        "RECOVERY_CONFIG": str(settings.data_dir / "absent.toml"),
    }
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")], env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT
    )


def _signed(purpose: str) -> Callable[[Session], bool]:
    def check(session: Session) -> bool:
        rows = session.exec(select(signed_txs.SignedTransaction).where(signed_txs.SignedTransaction.purpose == purpose))
        return rows.first() is not None

    return check


def _event(key: str) -> Callable[[Session], bool]:
    def check(session: Session) -> bool:
        return session.exec(select(cases.CaseEvent).where(cases.CaseEvent.key == key)).first() is not None

    return check


@pytest.mark.parametrize(
    "kill_when",
    [
        pytest.param(_signed("sweep"), id="sweep-signed-not-broadcast"),
        pytest.param(_signed("gas_topup"), id="gas-topup-signed"),
        pytest.param(_event("sweep-mined"), id="sweep-mined-before-credit"),
    ],
)
async def test_worker_killed_mid_recovery(
    workerless_stack: Stack, tmp_path: Path, kill_when: Callable[[Session], bool]
) -> None:
    stack = workerless_stack
    user_id, token, deposit_address = stack.new_user("crash")
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("100"))
    log = tmp_path / "worker.log"
    worker = _start_worker(stack, log)
    try:
        response = await stack.claim(token, tx_hash)
        assert response.status_code == 201, response.text
        case_id = response.json()["case_id"]

        deadline = time.monotonic() + 60
        while True:
            with Session(stack.engine) as session:
                if kill_when(session):
                    break
            assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"kill point never reached: {log.read_text()[-3000:]}"
            await asyncio.sleep(0.01)
        worker.send_signal(signal.SIGKILL)
        worker.wait()
        with Session(stack.engine) as session:
            killed_case = cases.get_case(session, case_id=case_id)
            assert killed_case is not None and killed_case.status != "COMPLETED"

        worker = _start_worker(stack, log)
        case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED", timeout=120)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=20)

    assert case["status"] == "COMPLETED", case
    bsc = EvmChain(stack.chain("bsc"))
    assert await bsc.nonce(deposit_address) == 1, "exactly one sweep left the deposit address"
    assert await bsc.nonce(stack.gas_wallet) == 1, "exactly one gas top-up left the gas wallet"
    with Session(stack.engine) as session:
        credits = session.exec(select(LedgerCredit).where(LedgerCredit.user_id == user_id)).all()
        fees = session.exec(
            select(FeeLedgerEntry).where(FeeLedgerEntry.case_id == case_id, FeeLedgerEntry.kind == FeeKind.CHARGED)
        ).all()
        signed = session.exec(select(signed_txs.SignedTransaction)).all()
        [gas] = fee_ledger.entries(session, case_id=case_id, kind=FeeKind.GAS_CHARGED)
        spent = fee_ledger.entries(session, case_id=case_id, kind=FeeKind.GAS_SPENT)
    assert len(credits) == 1 and len(fees) == 1
    assert sorted(s.purpose for s in signed) == ["gas_topup", "sweep"]
    assert credits[0].amount + fees[0].amount + gas.amount == 100 * 10**18
    assert len(spent) == 2 and all(s.amount == s.gas_used * s.gas_price > 0 for s in spent)  # top-up and sweep
    assert "signer-seed" not in log.read_text() and stack.signer_mnemonic_absent_from(log.read_text())
