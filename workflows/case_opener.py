"""Open a case for a deposit the exchange did not credit, found by the scanner before anyone claimed it.

Activity-side code (database and Temporal client): called by the scan activities and the CLI, never
imported by a workflow file.

The case is the one a claim would find (same case id, the recipient's owner as its user), so a later
claim answers 409 with it. Idempotent: a retried scan opens nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
from enum import Enum
from typing import Any

from sqlalchemy import Engine, event
from sqlmodel import Session
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError

from recovery import store
from recovery.models import CaseInput, CaseStatus, Transfer, case_id_for
from recovery.units import format_units
from workflows.starter import start_case

log = logging.getLogger(__name__)

SCANNER_EVENT_KEY = "opened-by-scanner"
"""Timeline key of the scanner's note; also how a case opened by the scanner is told from a claim."""


class _Opened(Enum):
    CREATED = "created"
    RESUME = "resume"  # opened by an earlier attempt that may have stopped before starting the workflow
    SKIP = "skip"


def amount_text(deposit: Transfer) -> str:
    if deposit.decimals is not None:
        return f"{format_units(deposit.amount, deposit.decimals)} {deposit.asset or deposit.token_address}"
    return f"{deposit.amount} base units of token {deposit.token_address}"


def scanner_message(deposit: Transfer, *, reason: str = "", block_number: int | None = None) -> str:
    where = f" in block {block_number}" if block_number is not None else ""
    why = f" ({reason})" if reason else ""
    return (
        f"Opened by the deposit scanner, before any claim: {amount_text(deposit)} sent on {deposit.chain} to "
        f"{deposit.recipient}{where} in transaction {deposit.tx_hash} was not credited{why}."
    )


async def open_case_for_deposit(
    *,
    engine: Engine,
    client: Client,
    task_queue: str,
    deposit: Transfer,
    user_id: str,
    reason: str = "",
    block_number: int | None = None,
) -> str | None:
    """Create the case of ``deposit`` for ``user_id`` and start its workflow; returns the case id, or
    None when the deposit already has a case (claimed, or opened before) or a workflow.

    The case row and the scanner's timeline note are written in one transaction, then the workflow is
    started. A case the scanner opened whose workflow did not start (a crash in between) is started
    by the next attempt; a case a user claimed is left to the claim.
    """
    case_id = case_id_for(deposit.chain, deposit.tx_hash, deposit.log_index)
    message = scanner_message(deposit, reason=reason, block_number=block_number)
    opened = await asyncio.to_thread(
        _create_case, engine, case_id=case_id, user_id=user_id, deposit=deposit, message=message
    )
    if opened is _Opened.SKIP:
        return None
    case = CaseInput(
        case_id=case_id,
        user_id=user_id,
        chain=deposit.chain,
        tx_hash=deposit.tx_hash,
        log_index=deposit.log_index,
        asset=deposit.asset,
        amount_display=format_units(deposit.amount, deposit.decimals) if deposit.decimals is not None else None,
    )
    try:
        await start_case(client, task_queue=task_queue, case=case)
    except WorkflowAlreadyStartedError:
        return None
    log.info("scanner opened %s for %s: %s", case_id, user_id, amount_text(deposit))
    return case_id


def _create_case(engine: Engine, *, case_id: str, user_id: str, deposit: Transfer, message: str) -> _Opened:
    with Session(engine, expire_on_commit=False) as session:

        def add_note(s: Session, *_: Any) -> None:
            # runs inside store.create_case's commit, before the flush: the note joins the case's
            # insert in one transaction (no case opened by the scanner without its note)
            if any(isinstance(o, store.Case) and o.case_id == case_id for o in s.new):
                s.add(
                    store.CaseEvent(case_id=case_id, key=SCANNER_EVENT_KEY, status=CaseStatus.RECEIVED, message=message)
                )

        event.listen(session, "before_commit", add_note)
        try:
            store.create_case(
                session,
                case_id=case_id,
                user_id=user_id,
                chain=deposit.chain,
                tx_hash=deposit.tx_hash,
                log_index=deposit.log_index,
                deposit=deposit,
            )
            return _Opened.CREATED
        except store.CaseExists as exc:
            existing = exc.existing
        finally:
            event.remove(session, "before_commit", add_note)
        if existing.user_id != user_id or existing.status is not CaseStatus.RECEIVED:
            return _Opened.SKIP
        ours = any(e.key == SCANNER_EVENT_KEY for e in store.timeline(session, case_id=case_id))
        return _Opened.RESUME if ours else _Opened.SKIP
