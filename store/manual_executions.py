"""Recoveries an engineer carried out outside the engine, each transfer linked to one case only: the
same rescue transaction can never settle two cases (a unique constraint, not only code)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field, Session, SQLModel, select

from store.db import Amount, UTCDateTime, begin_write, utcnow


class ManualExecution(SQLModel, table=True):
    __tablename__ = "manual_executions"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("chain", "tx_hash", "log_index", name="uq_manual_execution_transfer"),)

    case_id: str = Field(primary_key=True, max_length=255)
    chain: str = Field(max_length=64)
    tx_hash: str = Field(max_length=130)
    log_index: int
    amount: int = Field(sa_type=Amount)
    engineer: str = Field(max_length=255)
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def claim_transfer(
    session: Session, *, case_id: str, chain: str, tx_hash: str, log_index: int, amount: int, engineer: str
) -> str:
    """Link the transfer to ``case_id``; returns the case that holds it (``case_id`` itself when this call or
    an earlier attempt for the same case linked it, another case's id when that one did first)."""
    for _ in range(2):
        holder = _holder(session, chain=chain, tx_hash=tx_hash, log_index=log_index)
        if holder is not None:
            return holder
        existing = session.get(ManualExecution, case_id)
        if existing is not None:  # this case was settled by another transfer
            return f"{existing.case_id} (with {existing.tx_hash})"
        begin_write(session)
        session.add(
            ManualExecution(
                case_id=case_id,
                chain=chain,
                tx_hash=tx_hash.lower(),
                log_index=log_index,
                amount=amount,
                engineer=engineer,
            )
        )
        try:
            session.commit()
            return case_id
        except IntegrityError:  # a concurrent claim won: read who holds it
            session.rollback()
    raise RuntimeError("unreachable: a lost claim is read back on the second round")


def _holder(session: Session, *, chain: str, tx_hash: str, log_index: int) -> str | None:
    row = session.exec(
        select(ManualExecution).where(
            ManualExecution.chain == chain,
            ManualExecution.tx_hash == tx_hash.lower(),
            ManualExecution.log_index == log_index,
        )
    ).first()
    session.rollback()
    return None if row is None else row.case_id
