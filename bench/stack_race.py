"""Benchmarks that drive the dev stack fail at once when one of its processes dies, instead of timing out."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from bench.terminal import BenchError
from devstack.stack import DevStack

T = TypeVar("T")


async def race_with_death(stack: DevStack, work: Awaitable[T]) -> T:
    """Run ``work``; fail at once if a process of the stack dies meanwhile."""
    work_task = asyncio.ensure_future(work)
    death = asyncio.ensure_future(stack.wait_for_death())
    try:
        done, _ = await asyncio.wait({work_task, death}, return_when=asyncio.FIRST_COMPLETED)
        if death in done:
            exc = death.result()
            raise BenchError(f"{exc}\n---- last lines of {exc.service.name} ----\n{exc.service.tail()}")
        return work_task.result()
    finally:
        for task in (work_task, death):
            if not task.done():
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
