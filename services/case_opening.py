"""Opening a case: its row (with the "received" event, and the opener's note), then its workflow. The one
path by which a case comes to exist, for a user's claim and for the deposit scanner alike."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from sqlalchemy import Engine
from sqlmodel import Session

from recovery.models import CaseStatus, NewCase
from store import cases
from store.cases import Case, CaseExists
from store.db import run_in_session

log = logging.getLogger(__name__)

StartCase = Callable[[NewCase], Awaitable[bool]]
"""Starts the case's workflow; False when a workflow of that case exists already (``workflows.starter``)."""


class Outcome(Enum):
    OPENED = "opened"
    EXISTS = "exists"
    """The deposit already has a case (claimed, or opened before): ``existing`` is it."""
    ALREADY_STARTED = "already_started"
    """The row was missing but the workflow runs: it keeps the row up to date."""


@dataclass(frozen=True)
class Opened:
    outcome: Outcome
    case_id: str
    existing: Case | None = None


class CaseOpener:
    def __init__(self, *, engine: Engine, start: StartCase) -> None:
        self._engine = engine
        self._start = start

    async def open(
        self, case: NewCase, *, note_key: str | None = None, note: str = "", undo_on_failure: bool
    ) -> Opened:
        """Create the case and start its workflow; idempotent.

        With ``note_key`` (an opener that retries, such as the scanner) the note joins the case's insert in
        one transaction, and a case this opener created whose workflow did not start (a crash in between)
        is started by the next attempt; a case someone else opened is left to them. ``undo_on_failure``
        deletes the new row when the workflow cannot be started, so that the caller can say that nothing
        was recorded (a claim), instead of leaving it to the next attempt.
        """
        created, existing = await run_in_session(self._engine, _create, case=case, note_key=note_key, note=note)
        if existing is not None and not (note_key is not None and existing.resumable):
            return Opened(Outcome.EXISTS, case.case_id, existing.case)
        try:
            started = await self._start(case)
        except Exception:
            if created and undo_on_failure:
                await run_in_session(self._engine, cases.delete_case, case_id=case.case_id)
            raise
        if not started:
            return Opened(Outcome.ALREADY_STARTED, case.case_id)
        return Opened(Outcome.OPENED, case.case_id)


@dataclass(frozen=True)
class _Existing:
    case: Case
    resumable: bool


def _create(session: Session, *, case: NewCase, note_key: str | None, note: str) -> tuple[bool, _Existing | None]:
    try:
        cases.create_case(
            session,
            case_id=case.case_id,
            user_id=case.user_id,
            chain=case.chain,
            tx_hash=case.tx_hash,
            log_index=case.log_index,
            deposit=case.deposit,
            note_key=note_key,
            note=note,
        )
        return True, None
    except CaseExists as exc:
        existing = exc.existing
    resumable = (
        note_key is not None
        and existing.user_id == case.user_id
        and existing.status is CaseStatus.RECEIVED
        and cases.has_event(session, case_id=case.case_id, key=note_key)
    )
    return False, _Existing(existing, resumable)
