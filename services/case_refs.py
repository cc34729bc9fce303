"""How the fee ledger refers to a case (one rule for the settlement, the case records and incidents)."""

from __future__ import annotations

from sqlmodel import Session

from store import cases
from store.cases import Case
from store.fee_ledger import CaseRef, Route


def case_ref(session: Session, case: Case, *, chain: str | None = None) -> CaseRef:
    """The fee ledger's view of a case: manual when an engineer handles it (it has a handling record)."""
    manual = cases.get_handling(session, case_id=case.case_id) is not None
    return CaseRef(
        case_id=case.case_id,
        user_id=case.user_id,
        chain=chain or case.chain or "",
        pattern=case.pattern.value if case.pattern is not None else None,
        route=Route.MANUAL if manual else Route.AUTOMATIC,
    )
