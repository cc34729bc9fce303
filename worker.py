"""The Temporal worker: runs case workflows, the deposit scanners, the fee reconciliation and their activities.

    python worker.py [--help] [--no-scanners]

On boot it starts one deposit scanner workflow per configured EVM chain (``scanner-<chain>``; one that
already runs is kept), unless ``--no-scanners``, the notification dispatcher (``notification-dispatcher``, kept
when it runs), and creates (or updates) the daily reconciliation Schedule (``reconcile-fees``).

Configuration comes from ``recovery.settings`` (environment variables ``RECOVERY_*`` or a TOML file).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from sqlalchemy import Engine
from temporalio.client import Client
from temporalio.worker import Worker

from chains.signer import HDSigner, Signer
from fees.prices import StaticPrices
from recovery.redaction import Redactor, install_excepthook, install_log_redaction
from recovery.settings import Settings, get_settings
from services.case_opening import CaseOpener
from services.case_services import CaseServices
from services.deposit_finder import DepositFinder
from services.notifications import NotificationDispatcher
from services.reconciliation import Reconciler
from store.db import make_engine
from store.schema import init_db
from workflows.case_activities import CaseActivities
from workflows.case_workflow import CaseWorkflow
from workflows.client import connect
from workflows.failure_redaction import RedactingInterceptor
from workflows.notification_workflow import NotificationDispatcherWorkflow
from workflows.notify_activities import NotificationActivities
from workflows.reconcile_activities import ReconcileActivities
from workflows.reconcile_workflow import ReconcileWorkflow
from workflows.scan_activities import ScanActivities
from workflows.scanner_workflow import ScannerWorkflow
from workflows.starter import case_starter, ensure_reconcile_schedule, start_notification_dispatcher, start_scanners

log = logging.getLogger("worker")


def build_worker(
    client: Client,
    settings: Settings,
    *,
    engine: Engine | None = None,
    signer: Signer | None = None,
    max_concurrent_activities: int = 100,
) -> Worker:
    engine = engine or make_engine(settings.database_url or "")
    init_db(engine)
    signer = signer or HDSigner.from_settings(settings)
    services = CaseServices.build(
        settings=settings, engine=engine, signer=signer, prices=StaticPrices(settings.prices_usd)
    )
    opener = CaseOpener(engine=engine, start=case_starter(client, task_queue=settings.task_queue))
    finder = DepositFinder(settings=settings, engine=engine, opener=opener, signer=signer)
    reconciler = Reconciler(settings=settings, engine=engine, signer=signer)
    dispatcher = NotificationDispatcher(config=settings.notifications, engine=engine)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[CaseWorkflow, ScannerWorkflow, ReconcileWorkflow, NotificationDispatcherWorkflow],
        activities=CaseActivities(services).all()
        + ScanActivities(finder).all()
        + ReconcileActivities(reconciler).all()
        + NotificationActivities(dispatcher).all(),
        max_concurrent_activities=max_concurrent_activities,
        interceptors=[RedactingInterceptor(Redactor.from_settings(settings))],  # no secret in activity failures
    )


async def main(*, scanners: bool = True) -> None:
    settings = get_settings()
    redactor = Redactor.from_settings(settings)
    install_log_redaction(redactor)  # configured secrets (RPC keys, passwords, the seed) never reach worker.log
    install_excepthook(redactor)
    client = await connect(settings)
    worker = build_worker(client, settings)
    if scanners:
        started = await start_scanners(client, settings)
        log.info("deposit scanners: %s", ", ".join(h.id for h in started) or "none (no EVM chain)")
    dispatcher = await start_notification_dispatcher(client, settings)
    delivery = "off: notifications.url not set" if settings.notifications.url is None else "on"
    log.info("notification dispatcher: %s (delivery %s)", dispatcher.id, delivery)
    log.info("fee reconciliation schedule: %s", await ensure_reconcile_schedule(client, settings))
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
