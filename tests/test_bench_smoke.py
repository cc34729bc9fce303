"""Smoke tests of the benchmark harness: argument routing, figures and the bare workflow."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from bench.__main__ import discover, split_args
from bench.__main__ import main as bench_main
from bench.bare_activities import noop
from bench.bare_workflow import BareWorkflow
from bench.bench_e2e import build_parser, case_timing, percentile


def test_discover_and_split_args() -> None:
    available = discover()
    assert "e2e" in available
    names, rest = split_args(["e2e", "--cases", "20", "--timeout", "60"], available)
    assert names == ["e2e"] and rest == ["--cases", "20", "--timeout", "60"]
    names, rest = split_args(["--cases", "5", "bench_e2e"], available)
    assert names == ["e2e"] and rest == ["--cases", "5"]
    names, rest = split_args(["--", "e2e"], available)
    assert names == [] and rest == ["e2e"]


def test_help_exits_zero() -> None:
    assert bench_main(["--help"]) == 0
    assert bench_main(["e2e", "--help"]) == 0


def test_parser_defaults() -> None:
    args = build_parser().parse_args([])
    assert args.cases == 100 and args.claim_retries == 0


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50.0
    assert percentile(values, 99) == 99.0
    assert percentile([3.0], 99) == 3.0


def test_case_timing_from_timeline() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    at = [(t0 + timedelta(seconds=s)).isoformat() for s in (0, 1, 2, 3, 5)]
    case = {
        "case_id": "c",
        "timeline": [
            {"at": at[0], "status": "RECEIVED"},
            {"at": at[1], "status": "TRACING"},
            {"at": at[2], "status": "CLASSIFIED"},
            {"at": at[3], "status": "RECOVERING"},
            {"at": at[4], "status": "COMPLETED"},
        ],
    }
    timing = case_timing(case, t0 - timedelta(seconds=0.5))
    assert timing.to_classified == 2.0 and timing.to_completed == 5.0 and timing.accept == 0.5


async def test_bare_workflow_runs_n_activities(time_skipping_env: WorkflowEnvironment) -> None:
    client = time_skipping_env.client
    task_queue = f"bare-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=task_queue, workflows=[BareWorkflow], activities=[noop]):
        handle = await client.start_workflow(BareWorkflow.run, 5, id=task_queue, task_queue=task_queue)
        assert await handle.result() == 5
        history = await handle.fetch_history()
    scheduled = [e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")]
    assert len(scheduled) == 5
