"""A Temporal dev server with a database file is killed while a manual case waits on its SLA timer, and
stays down past the reminder's and the target's due time: restarted on the same file, with a new worker,
the missed timers still fire (reminder, escalation at the target), and then the deadline's breach.

The SLA runs on the drill clock (``sla.drill_day_seconds``): a real dev server cannot skip time, so every
working day lasts a few seconds here."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from devstack.stack import Service, free_port, start_temporal_dev_server, stop_process, wait_for_temporal
from recovery.models import SlaState
from recovery.roster import ESCALATION, Tier
from recovery.settings import ChainConfig, SlaConfig
from tests.stack_fixtures import Stack, open_stack
from tests.test_e2e_manual import _awaiting
from worker import build_worker
from workflows import search_attributes as sa

DAY = timedelta(seconds=4)
"""One drill day: the reminder (and due soon) after one, the target after two, the deadline after four."""
DRILL = SlaConfig(
    drill_day_seconds=int(DAY.total_seconds()),
    reminder_working_days=[1],
    due_soon_working_days=1,
    target_working_days=2,
    deadline_working_days=4,
)
DOWN_PAST_TARGET = timedelta(seconds=1)
"""The server stays down this long after the target's due time, so that timer is overdue too."""
WAIT_S = 30.0

REMINDER = "Still waiting for an engineer after 1 working days"
ESCALATED = "Escalated: SLA target reached (2 working days)"
BREACHED = "We did not finish your case within 4 working days"


class DevServer:
    """``temporal server start-dev`` on one database file, on free ports, started and killed at will."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.service: Service | None = None

    async def start(self) -> Client:
        port = free_port()
        self.service = await start_temporal_dev_server(self.data_dir, port, free_port(), log_dir=self.data_dir / "logs")
        await wait_for_temporal(f"127.0.0.1:{port}", timeout=WAIT_S)
        return await Client.connect(f"127.0.0.1:{port}", data_converter=pydantic_data_converter)

    async def kill(self) -> None:
        """SIGKILL: no clean shutdown, the database file is all that is left."""
        assert self.service is not None and self.service.proc is not None
        os.killpg(self.service.proc.pid, signal.SIGKILL)
        await self.service.proc.wait()
        self.service = None

    async def stop(self) -> None:
        if self.service is not None and self.service.proc is not None:
            await stop_process(self.service.proc, name="temporal")
        self.service = None

    def log(self) -> str:
        return (self.data_dir / "logs" / "temporal.log").read_text(errors="replace")[-3000:]


@contextlib.asynccontextmanager
async def _worker(client: Client, stack: Stack) -> AsyncIterator[None]:
    async with build_worker(client, stack.settings, engine=stack.engine, signer=stack.signer):
        yield


async def _eventually(check: Callable[[], Awaitable[bool]], what: str, server: DevServer) -> None:
    deadline = time.monotonic() + WAIT_S
    while not await check():
        assert time.monotonic() < deadline, f"{what} did not happen within {WAIT_S:.0f} s: {server.log()}"
        await asyncio.sleep(0.2)


async def _search_attribute(handle: WorkflowHandle[Any, Any], key: Any) -> Any:
    return (await handle.describe()).typed_search_attributes.get(key)


async def _timer_events(handle: WorkflowHandle[Any, Any]) -> tuple[int, int]:
    """How many timers the case's history has started and how many have fired."""
    events = (await handle.fetch_history()).events
    started = sum(e.event_type == EventType.EVENT_TYPE_TIMER_STARTED for e in events)
    fired = sum(e.event_type == EventType.EVENT_TYPE_TIMER_FIRED for e in events)
    return started, fired


def _messages(case: dict[str, Any]) -> list[str]:
    return [e["message"] for e in case["timeline"]]


def _at(case: dict[str, Any], text: str) -> datetime:
    return next(datetime.fromisoformat(e["at"]) for e in case["timeline"] if text in e["message"])


async def test_missed_sla_timers_fire_after_the_dev_server_restarts(
    tmp_path: Path, dev_chains: list[ChainConfig]
) -> None:
    server = DevServer(tmp_path / "temporal")
    chains = [c.model_copy(update={"credited_assets": []}) for c in dev_chains]  # a bsc USDT deposit is manual
    try:
        client = await server.start()
        assert await sa.register_missing(client) == []  # start-dev registered them in the new file
        env = WorkflowEnvironment.from_client(client)
        async for stack in open_stack(env, tmp_path, chains, run_worker=False, sla=DRILL):
            async with _worker(client, stack):
                token, case_id = await _awaiting(stack)
                handle = client.get_workflow_handle(case_id)
                run_id = (await handle.describe()).run_id
                case = await stack.case(token, case_id)
                assert await _search_attribute(handle, sa.SLA_STATE) == SlaState.ON_TRACK
                assert await _search_attribute(handle, sa.TIER) == Tier.FIRST_LINE
                await _eventually(functools.partial(_timer_pending, handle), "the SLA timer's start", server)
                timers = await _timer_events(handle)
            started = datetime.fromisoformat(case["sla"]["started_at"])
            target = datetime.fromisoformat(case["sla"]["target_at"])
            deadline = datetime.fromisoformat(case["sla"]["deadline_at"])
            assert (target - started, deadline - started) == (2 * DAY, 4 * DAY)  # the drill clock
            await server.kill()
            killed_at = datetime.now(UTC)
            assert killed_at < started + DAY, "the case was too slow: the reminder was due before the kill"
            assert REMINDER not in " ".join(_messages(await stack.case(token, case_id)))

            await asyncio.sleep((target + DOWN_PAST_TARGET - datetime.now(UTC)).total_seconds())
            restarted_at = datetime.now(UTC)
            client = await server.start()
            assert await sa.register_missing(client) == []  # the same database file: nothing lost
            handle = client.get_workflow_handle(case_id)
            description = await handle.describe()
            assert (description.run_id, description.status) == (run_id, WorkflowExecutionStatus.RUNNING)
            # the server fires the overdue timer by itself, before any worker is back
            await _eventually(functools.partial(_fired_since, handle, timers), "the overdue timer's firing", server)
            assert await _search_attribute(handle, sa.SLA_STATE) == SlaState.ON_TRACK  # no worker yet

            async with _worker(client, stack):
                await _eventually(functools.partial(_shows, stack, token, case_id, ESCALATED), "the escalation", server)
                case = await stack.case(token, case_id)
                assert REMINDER in " ".join(_messages(case)) and "Due soon" in " ".join(_messages(case))
                assert restarted_at < _at(case, REMINDER) < _at(case, ESCALATED) < deadline
                assert await _search_attribute(handle, sa.SLA_STATE) == SlaState.TARGET_MISSED
                assert await _search_attribute(handle, sa.TIER) == ESCALATION[Tier.FIRST_LINE]
                assert await _search_attribute(handle, sa.SLA_BREACHED) is False

                await _eventually(functools.partial(_shows, stack, token, case_id, BREACHED), "the breach", server)
                case = await stack.case(token, case_id)
                assert _at(case, BREACHED) >= deadline
                assert case["status"] == "AWAITING_APPROVAL" and case["sla"]["breached"] is True
                assert await _search_attribute(handle, sa.SLA_STATE) == SlaState.BREACHED
                assert await _search_attribute(handle, sa.SLA_BREACHED) is True
            for text in (REMINDER, ESCALATED, BREACHED):  # each fired once
                assert sum(text in m for m in _messages(case)) == 1, _messages(case)
    finally:
        await server.stop()


async def _timer_pending(handle: WorkflowHandle[Any, Any]) -> bool:
    started, fired = await _timer_events(handle)
    return started == fired + 1


async def _fired_since(handle: WorkflowHandle[Any, Any], before: tuple[int, int]) -> bool:
    _, fired = await _timer_events(handle)
    return fired == before[1] + 1


async def _shows(stack: Stack, token: str, case_id: str, text: str) -> bool:
    return any(text in m for m in _messages(await stack.case(token, case_id)))
