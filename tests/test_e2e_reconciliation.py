"""The fee reconciliation end to end on anvil and the Temporal dev server: a real wrong-network case completes and
reconciles; then a ledger row that disagrees with the chain is appended, and it is caught three ways: the command
exits 1 with the line, the case's ``case_reconciliation`` row says mismatch, and the run the daily Schedule starts
carries ``Reconciliation = "mismatch"`` and the case id, found by a list query as an engineer would in the Web UI.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from recovery.settings import ChainConfig
from store import fee_ledger
from store.fee_ledger import CaseRef, FeeKind, Route
from store.reconciliation import CaseReconciliation, ReconciliationRun, ReconStatus
from tests.stack_fixtures import Stack, cli_env, open_stack, run_cli
from workflows import search_attributes as sa
from workflows.starter import RECONCILE_SCHEDULE_ID, ScheduleChange, ensure_reconcile_schedule

STRAY_TX = "0x" + "ee" * 32


@pytest.fixture(scope="module")
async def stack(
    dev_server_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory, dev_chains: list[ChainConfig]
) -> AsyncIterator[Stack]:
    async for s in open_stack(dev_server_env, tmp_path_factory.mktemp("reconcile"), dev_chains):
        yield s


async def fees_reconcile(stack: Stack, *args: str) -> tuple[int, str, str]:
    """``recovery fees reconcile ARGS`` as an operator runs it."""
    return await run_cli(cli_env(stack), "fees", "reconcile", *args)


async def test_a_completed_case_reconciles_and_an_injected_ledger_row_is_caught(stack: Stack) -> None:
    started = time.monotonic()
    user_id, token, deposit_address = stack.new_user("recon")
    tx_hash = await stack.send("bsc", to=deposit_address, amount=Decimal("100"))
    response = await stack.claim(token, tx_hash, chain="bsc")
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    case = await stack.wait_for(token, case_id, "COMPLETED", "REJECTED")
    assert case["status"] == "COMPLETED", case

    # the chain agrees with the books
    code, out, err = await fees_reconcile(stack, "--all")
    assert code == 0, out + err
    assert f"OK {case_id} (bsc): sweep " in out
    assert "reconciled 1 completed case(s)" in out and "1 ok, 0 mismatch(es), 0 uncheckable" in out
    assert "network cost on bsc (1 case(s)): charged " in out
    with Session(stack.engine) as session:
        row = session.get(CaseReconciliation, case_id)
        assert row is not None and row.status is ReconStatus.OK
        assert row.gas_spent_native is not None and row.gas_spent_native > 0
        assert row.gas_charged_native is not None and row.gas_charged_native > 0

    # a gas_spent row for a transaction the case never sent: appended, as the ledger only allows
    with Session(stack.engine) as session:
        ref = CaseRef(case_id=case_id, user_id=user_id, chain="bsc", pattern=None, route=Route.AUTOMATIC)
        assert fee_ledger.add_once(
            session,
            fee_ledger.entry(
                ref,
                kind=FeeKind.GAS_SPENT,
                key=fee_ledger.step_key(case_id, f"gas_spent:{STRAY_TX}"),
                asset="BNB",
                decimals=18,
                amount=21_000 * 10**9,
                price_usd=Decimal("600"),
                tx_hash=STRAY_TX,
                gas_used=21_000,
                gas_price=10**9,
            ),
        )
        session.commit()

    code, out, err = await fees_reconcile(stack)
    assert code == 1, out + err
    mismatch = next(line for line in out.splitlines() if line.startswith("MISMATCH"))
    assert mismatch.startswith(f"MISMATCH {case_id} (bsc): 1 gas_spent row(s) of 21000000000000 base units")
    assert f"for {STRAY_TX}, which is no transaction of this case" in mismatch
    assert "0 ok, 1 mismatch(es), 0 uncheckable" in out
    with Session(stack.engine) as session:
        row = session.get(CaseReconciliation, case_id)
        assert row is not None and row.status is ReconStatus.MISMATCH and STRAY_TX in row.detail

    # the daily Schedule: created once, left alone when already right, its run visible by a list query
    client = stack.client
    assert await ensure_reconcile_schedule(client, stack.settings) in (ScheduleChange.CREATED, ScheduleChange.UPDATED)
    assert await ensure_reconcile_schedule(client, stack.settings) is ScheduleChange.UNCHANGED
    assert await ensure_reconcile_schedule(client, stack.settings, hour=4) is ScheduleChange.UPDATED
    assert await ensure_reconcile_schedule(client, stack.settings) is ScheduleChange.UPDATED
    schedule = client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
    try:
        ids = [s.id async for s in await client.list_schedules()]
        assert ids.count(RECONCILE_SCHEDULE_ID) == 1
        spec = (await schedule.describe()).schedule.spec
        assert spec.time_zone_name == "UTC" and [tuple(c.hour) for c in spec.calendars][0][0].start == 3

        await schedule.trigger()
        query = (
            f'WorkflowType = "ReconcileWorkflow" AND Reconciliation = "mismatch" '
            f'AND ReconciliationMismatches = "{case_id}"'
        )
        found = []
        deadline = time.monotonic() + 30
        while not found and time.monotonic() < deadline:
            found = [w async for w in client.list_workflows(query)]
            if not found:
                await asyncio.sleep(0.5)
        assert len(found) == 1, "the scheduled run did not show the mismatch"
        assert found[0].status is WorkflowExecutionStatus.COMPLETED
        assert found[0].id.startswith(RECONCILE_SCHEDULE_ID)
        assert found[0].typed_search_attributes.get(sa.RECONCILIATION_MISMATCHES) == [case_id]
    finally:
        await schedule.delete()

    with Session(stack.engine) as session:
        runs = session.exec(select(ReconciliationRun).order_by(ReconciliationRun.id)).all()  # type: ignore[arg-type]
    assert [(r.trigger, r.cases_checked, r.mismatches) for r in runs] == [
        ("cli", 1, 0),
        ("cli", 1, 1),
        ("schedule", 1, 1),
    ]
    assert time.monotonic() - started < 60
