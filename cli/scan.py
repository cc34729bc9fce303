"""``recovery scan``: a backfill of the deposit scanner over a block range."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from cli.common import CliError, load_settings, one_line_errors, open_engine, require_chain, temporal_client
from recovery.settings import ChainConfig, Settings


@one_line_errors
def scan(
    chain: Annotated[str, typer.Option("--chain", help="Configured EVM chain name, e.g. bsc.")],
    from_block: Annotated[int, typer.Option("--from-block", help="First block to scan.")],
    to_block: Annotated[int, typer.Option("--to-block", help="Last block to scan (inclusive).")],
) -> None:
    """Backfill: scan a block range for deposits to users' addresses that the exchange did not credit,
    and open their cases, as the deposit scanner does (deposits that already have a case are skipped)."""
    settings = load_settings()
    config = require_chain(settings, chain, family="evm", doing="scanned")
    if from_block < 0:
        raise CliError(f"bad range: --from-block must be 0 or more, got {from_block}")
    if to_block < from_block:
        raise CliError(f"bad range: --to-block {to_block} is before --from-block {from_block}")
    asyncio.run(_scan(settings, config, from_block, to_block))


async def _scan(settings: Settings, config: ChainConfig, from_block: int, to_block: int) -> None:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from chains.endpoints import RpcUnavailable
    from chains.evm_scan import EvmScanner, ScanBatch
    from chains.signer import HDSigner
    from services.case_opening import CaseOpener
    from services.deposit_finder import DepositFinder
    from workflows.starter import case_starter

    try:
        head = await EvmScanner(config).head()
    except RpcUnavailable as exc:
        raise CliError(f"chain {config.name} unreachable: {str(exc).splitlines()[0]}") from None
    if to_block > head:
        raise CliError(f"bad range: --to-block {to_block} is beyond the head of {config.name} (block {head})")
    client = await temporal_client(settings)
    engine = open_engine(settings)
    try:
        opener = CaseOpener(engine=engine, start=case_starter(client, task_queue=settings.task_queue))
        finder = DepositFinder(settings=settings, engine=engine, opener=opener, signer=HDSigner.from_settings(settings))
        total = to_block - from_block + 1
        with Progress(
            TextColumn(f"scanning {config.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("blocks"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        ) as progress:
            task = progress.add_task("scan", total=total)

            def advance(batch: ScanBatch, _opened: list[str]) -> None:
                progress.advance(task, batch.blocks)

            summary = await finder.scan(config.name, from_block, to_block, on_batch=advance)
    finally:
        engine.dispose()
    for case in summary.cases:
        typer.echo(
            f"opened {case.case_id}: {case.found.transfer.amount_text()} to {case.user_id} "
            f"in block {case.found.block_number} ({case.reason})"
        )
    for unread in summary.unread:
        typer.echo(f"not read in block {unread.block_number}, tx {unread.tx_hash}: {unread.what} (no case opened)")
    typer.echo(
        f"scanned {total} block(s) of {config.name} ({from_block}..{to_block}): "
        f"{summary.deposits_found} deposit(s) to watched addresses, {len(summary.cases)} case(s) opened"
    )
