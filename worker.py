"""The Temporal worker: runs case workflows and their activities.

    python worker.py [--help]

Configuration comes from ``recovery.settings`` (environment variables ``RECOVERY_*`` or a TOML file).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from chains.signer import HDSigner, Signer
from fees.prices import StaticPrices
from recovery import store
from recovery.settings import Settings, get_settings
from workflows.activities import CaseActivities
from workflows.case_workflow import CaseWorkflow

log = logging.getLogger("worker")


async def connect(settings: Settings) -> Client:
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


def build_worker(
    client: Client,
    settings: Settings,
    *,
    engine: Engine | None = None,
    signer: Signer | None = None,
    max_concurrent_activities: int = 100,
) -> Worker:
    engine = engine or store.make_engine(settings.database_url or "")
    store.init_db(engine)
    activities = CaseActivities(
        settings=settings,
        engine=engine,
        signer=signer or HDSigner.from_settings(settings),
        prices=StaticPrices(settings.prices_usd),
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CaseWorkflow],
        activities=activities.all(),
        max_concurrent_activities=max_concurrent_activities,
    )


async def main() -> None:
    settings = get_settings()
    client = await connect(settings)
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker polling task queue %r on %s (chains: %s)",
        settings.task_queue,
        settings.temporal_address,
        ", ".join(settings.chain_names),
    )
    async with worker:
        await stop.wait()
    log.info("worker stopped")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per RPC call drowns the case log
    asyncio.run(main())
