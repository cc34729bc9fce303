"""Every table module of the engine: importing this registers all tables on ``SQLModel.metadata`` (what the
migrations compare against and what tests empty)."""

from __future__ import annotations

from store import (
    audit,
    case_bodies,
    cases,
    fee_ledger,
    feedback,
    incidents,
    ledger,
    manual_executions,
    notifications,
    ownership,
    reconciliation,
    scan_cursors,
    signed_txs,
    staff,
    users,
)

TABLE_MODULES = (
    users,
    cases,
    case_bodies,
    signed_txs,
    scan_cursors,
    ledger,
    fee_ledger,
    audit,
    staff,
    feedback,
    manual_executions,
    ownership,
    incidents,
    reconciliation,
    notifications,
)
