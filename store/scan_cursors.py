"""The deposit scanner's durable state: one cursor per chain (the addresses it watches are the users'
deposit addresses, :func:`store.users.watched_addresses`)."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import BigInteger, Column, String
from sqlmodel import Field, Session, SQLModel

from store.db import UTCDateTime, begin_write, utcnow

log = logging.getLogger(__name__)


class ScanCursor(SQLModel, table=True):
    """The next block the scanner of ``chain`` will look at: every block below it was scanned."""

    __tablename__ = "scan_cursors"  # type: ignore[assignment]

    chain: str = Field(sa_column=Column(String(64), primary_key=True))
    next_block: int = Field(sa_column=Column(BigInteger, nullable=False))
    blocks_scanned: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    """Blocks scanned since the cursor was created, counted once per block (a retried range is not
    counted again): with no gap and no overlap, ``next_block - blocks_scanned`` is the first block."""
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def get_cursor(session: Session, *, chain: str) -> ScanCursor | None:
    return session.get(ScanCursor, chain)


def ensure_cursor(session: Session, *, chain: str, next_block: int) -> int:
    """The stored cursor of ``chain``; stores ``next_block`` first when there is none."""
    begin_write(session)
    row = session.get(ScanCursor, chain)
    if row is not None:
        stored = row.next_block
        session.rollback()
        return stored
    session.add(ScanCursor(chain=chain, next_block=next_block, blocks_scanned=0, updated_at=utcnow()))
    session.commit()
    return next_block


def advance_cursor(session: Session, *, chain: str, from_block: int, to_block: int) -> ScanCursor:
    """Record that blocks ``from_block..to_block`` were scanned: the cursor becomes ``to_block + 1``.

    A range recorded before (a retried activity) changes nothing. The scanner workflow owns the cursor
    (it is in its history), so a cursor elsewhere is overwritten, with a warning.
    """
    begin_write(session)
    row = session.get(ScanCursor, chain)
    if row is not None and row.next_block == to_block + 1:
        session.expunge(row)
        session.rollback()
        return row
    if row is None:
        row = ScanCursor(chain=chain, next_block=from_block, blocks_scanned=0)
    elif row.next_block != from_block:
        log.warning(
            "scan cursor of %s was at block %d; the scanner continues from block %d",
            chain,
            row.next_block,
            from_block,
        )
    row.next_block = to_block + 1
    row.blocks_scanned += to_block - from_block + 1
    row.updated_at = utcnow()
    session.add(row)
    session.commit()
    session.refresh(row)
    return row
