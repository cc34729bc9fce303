"""The case record as the workflow reports it: each change with the timeline event that explains it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from sqlalchemy import Engine
from sqlmodel import Session

from recovery.models import CaseUpdate, Quote
from services.case_refs import case_ref
from store import cases, fee_ledger, ownership
from store.cases import Case
from store.db import run_in_session
from store.fee_ledger import FeeKind

ACCEPTED_EVENT = "quote-accepted"
"""The workflow's timeline key for the user's acceptance of the quote (workflows/case_workflow.py)."""


def _fee_steps(update: CaseUpdate) -> Callable[[Session, Case], None] | None:
    if update.quote is None and update.event.key != ACCEPTED_EVENT:
        return None

    def book(session: Session, case: Case) -> None:
        quote = update.quote or (Quote.model_validate_json(case.quote_json) if case.quote_json else None)
        if quote is None:
            return
        ref = case_ref(session, case, chain=update.chain)
        if update.pattern is not None:
            ref = replace(ref, pattern=update.pattern.value)
        kind = FeeKind.QUOTED if update.quote is not None else FeeKind.ACCEPTED
        step = f"{kind}:{update.event.key}" if kind is FeeKind.QUOTED else kind
        fee_ledger.add_once(
            session,
            fee_ledger.entry(
                ref,
                kind=kind,
                key=fee_ledger.step_key(case.case_id, step),
                asset=quote.asset,
                decimals=quote.decimals,
                amount=quote.fee,
                price_usd=quote.unit_price_usd(),
                incident_id=quote.waived_by,
                note=quote.basis or None,
            ),
        )

    return book


class CaseRecords:
    def __init__(self, *, engine: Engine) -> None:
        self._engine = engine

    async def save(self, update: CaseUpdate) -> bool:
        """Apply ``update`` once per event key; False when the key was already recorded. A quote, and the
        user's acceptance of one, go into the fee ledger in the same transaction."""
        return await run_in_session(self._engine, cases.apply_case_update, update=update, also=_fee_steps(update))

    async def require_ownership(self, *, case_id: str, chain: str, address: str, recipient: str) -> None:
        """The case waits for the claimant's proof of control of ``address`` (idempotent)."""
        await run_in_session(
            self._engine, ownership.require, case_id=case_id, chain=chain, address=address, recipient=recipient
        )
