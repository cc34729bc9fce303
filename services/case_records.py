"""The case record as the workflow reports it: each change with the timeline event that explains it."""

from __future__ import annotations

from sqlalchemy import Engine

from recovery.models import CaseUpdate
from store import cases, ownership
from store.db import run_in_session


class CaseRecords:
    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    async def save(self, update: CaseUpdate) -> bool:
        """Apply ``update`` once per event key; False when the key was already recorded."""
        return await run_in_session(self._engine, cases.apply_case_update, update=update)

    async def require_ownership(self, *, case_id: str, chain: str, address: str, recipient: str) -> None:
        """The case waits for the claimant's proof of control of ``address`` (idempotent)."""
        await run_in_session(
            self._engine, ownership.require, case_id=case_id, chain=chain, address=address, recipient=recipient
        )
