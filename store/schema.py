"""Creates every table of the engine (idempotent): importing the table modules registers them."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import SQLModel

from store import audit, cases, feedback, ledger, manual_executions, ownership, scan_cursors, signed_txs, staff, users

TABLE_MODULES = (users, cases, signed_txs, scan_cursors, ledger, audit, staff, feedback, manual_executions, ownership)


def init_db(engine: Engine) -> None:
    SQLModel.metadata.create_all(engine)
