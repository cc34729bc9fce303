"""Reconciliation results: each run of ``recovery fees reconcile`` (by hand or by the daily Schedule), and the
latest finding per case, where the fee report reads it (a closed case's search attributes cannot change: the
reconcile workflow's run carries the verdict in its own, see ``workflows.reconcile_workflow``)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Text
from sqlmodel import Field, Session, SQLModel, col, select

from recovery.models import CaseStatus
from store.cases import Case
from store.db import Amount, StrEnumType, UTCDateTime, begin_write, utcnow
from store.fee_ledger import FeeKind, FeeLedgerEntry


class ReconStatus(StrEnum):
    OK = "ok"
    MISMATCH = "mismatch"
    UNCHECKABLE = "uncheckable"
    """The chain could not be read (no receipt, node down): checked again on the next run."""


class ReconciliationRun(SQLModel, table=True):
    __tablename__ = "reconciliation_runs"  # type: ignore[assignment]

    id: int | None = Field(default=None, primary_key=True)
    since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cases_checked: int = 0
    mismatches: int = 0
    uncheckable: int = 0
    trigger: str = Field(default="cli", max_length=32)
    """``cli`` or ``schedule``."""


class CaseReconciliation(SQLModel, table=True):
    """The latest finding for a case (one row per case, replaced by each run that checks it)."""

    __tablename__ = "case_reconciliation"  # type: ignore[assignment]

    case_id: str = Field(primary_key=True, max_length=255)
    run_id: int
    status: ReconStatus = Field(sa_type=StrEnumType(ReconStatus))
    detail: str = Field(default="", sa_type=Text)
    gas_charged_native: int | None = Field(default=None, sa_type=Amount)
    """The gas charged to the user, converted to the native coin at the booked prices (None: not known)."""
    gas_spent_native: int | None = Field(default=None, sa_type=Amount)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def start_run(session: Session, *, since: datetime | None, until: datetime | None, trigger: str) -> int:
    begin_write(session)
    run = ReconciliationRun(since=since, until=until, trigger=trigger)
    session.add(run)
    session.commit()
    session.refresh(run)
    assert run.id is not None
    return run.id


def record(session: Session, finding: CaseReconciliation) -> None:
    """Replace the case's finding (committed)."""
    begin_write(session)
    session.merge(finding)
    session.commit()


def finish_run(session: Session, *, run_id: int, cases_checked: int, mismatches: int, uncheckable: int) -> None:
    begin_write(session)
    run = session.get(ReconciliationRun, run_id)
    if run is not None:
        run.finished_at = utcnow()
        run.cases_checked, run.mismatches, run.uncheckable = cases_checked, mismatches, uncheckable
        session.add(run)
    session.commit()


def findings(session: Session, *, case_ids: list[str] | None = None) -> dict[str, CaseReconciliation]:
    statement = select(CaseReconciliation)
    if case_ids is not None:
        statement = statement.where(col(CaseReconciliation.case_id).in_(case_ids))
    return {row.case_id: row for row in session.exec(statement)}


def completed_case_ids(session: Session, *, since: datetime | None, until: datetime | None) -> list[str]:
    """The COMPLETED cases to reconcile, by case id: every one, or those whose ``charged`` row was booked in
    ``[since, until)`` (a completed case without a ``charged`` row is then not found: only an unbounded run
    sees it, and reports it)."""
    if since is None and until is None:
        statement = select(Case.case_id).where(Case.status == CaseStatus.COMPLETED)
    else:
        statement = (
            select(Case.case_id)
            .join(FeeLedgerEntry, col(FeeLedgerEntry.case_id) == col(Case.case_id))
            .where(Case.status == CaseStatus.COMPLETED, FeeLedgerEntry.kind == FeeKind.CHARGED)
        )
        if since is not None:
            statement = statement.where(col(FeeLedgerEntry.booked_at) >= since)
        if until is not None:
            statement = statement.where(col(FeeLedgerEntry.booked_at) < until)
    return sorted(set(session.exec(statement).all()))
