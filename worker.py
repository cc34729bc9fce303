"""The Temporal worker: runs case workflows, the deposit scanners and their activities.

    python worker.py [--help] [--no-scanners]

On boot it starts one deposit scanner workflow per configured EVM chain (``scanner-<chain>``; one that
already runs is kept), unless ``--no-scanners``.

Configuration comes from ``recovery.settings`` (environment variables ``RECOVERY_*`` or a TOML file).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from sqlalchemy import Engine
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from chains.signer import HDSigner, Signer
from fees.prices import StaticPrices
from recovery import scan_store, store
from recovery.settings import Settings, get_settings
from workflows.activities import CaseActivities
from workflows.case_workflow import CaseWorkflow
from workflows.scan_activities import DepositFinder, ScanActivities
from workflows.scanner_workflow import ScannerInput, ScannerWorkflow, scanner_id

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
    scan_store.init(engine)
    signer = signer or HDSigner.from_settings(settings)
    activities = CaseActivities(
        settings=settings,
        engine=engine,
        signer=signer,
        prices=StaticPrices(settings.prices_usd),
    )
    scanning = ScanActivities(DepositFinder(settings=settings, engine=engine, client=client, signer=signer))
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CaseWorkflow, ScannerWorkflow],
        activities=activities.all() + scanning.all(),
        max_concurrent_activities=max_concurrent_activities,
    )


async def start_scanner(
    client: Client, settings: Settings, chain: str, *, next_block: int | None = None
) -> WorkflowHandle:
    """Start the deposit scanner of ``chain`` unless it runs (then that one is returned, untouched).

    ``next_block`` starts a new scanner from that block; by default it resumes from its stored cursor,
    or from the chain's safe head the very first time.
    """
    config = settings.chain(chain)
    if config.family != "evm":
        raise ValueError(f"chain {chain!r} is a {config.family} chain: only EVM chains are scanned")
    return await client.start_workflow(
        ScannerWorkflow.run,
        ScannerInput(chain=chain, next_block=next_block),
        id=scanner_id(chain),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        static_summary=f"Deposit scanner of {chain}",
        static_details=(
            f"Scans every confirmed block of {chain} for deposits to watched addresses that the exchange did "
            "not credit, and opens their cases. Query `cursor` for its position."
        ),
    )


async def start_scanners(client: Client, settings: Settings) -> list[WorkflowHandle]:
    """One scanner per configured EVM chain (idempotent)."""
    return [await start_scanner(client, settings, c.name) for c in settings.chains if c.family == "evm"]


async def main(*, scanners: bool = True) -> None:
    settings = get_settings()
    client = await connect(settings)
    worker = build_worker(client, settings)
    if scanners:
        started = await start_scanners(client, settings)
        log.info("deposit scanners: %s", ", ".join(h.id for h in started) or "none (no EVM chain)")
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
    parser.add_argument(
        "--no-scanners",
        dest="scanners",
        action="store_false",
        help="do not start the deposit scanners on boot (they start by default; running ones are kept)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per RPC call drowns the case log
    asyncio.run(main(scanners=args.scanners))
