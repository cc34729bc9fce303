"""Platform-fault incidents: declaring one waives the fee of every case whose deposit falls in its window, and
books compensation where the incident declares it.

Where the waiver lands depends on where the case is:
- not yet quoted, or quoted and not charged: the quote shows no fee (``Quoter``), and the settlement charges
  none and books a ``waived`` entry (``services.settlement.settle_case`` looks the incident up in its own
  transaction, so a case settling while the incident is declared cannot slip through);
- already settled: a ``refunded`` entry pays the charged fee back (the exchange pays it out with its ledger).
Compensation is a separate ``compensated`` entry in USD, never netted against the fee. Each entry has its
idempotency key, so declaring, applying again or settling later books each fact once. The window is matched
against the time the case was opened (the claim, or the scanner's discovery of the deposit).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session

from recovery.i18n import SPACED, Message
from recovery.models import CaseStatus
from services.case_refs import case_ref
from store import cases, fee_ledger, incidents
from store.cases import Case
from store.db import begin_write
from store.fee_ledger import CaseRef, FeeKind, FeeLedgerEntry
from store.incidents import Incident

COMPENSATION_ASSET = "USD"
COMPENSATION_DECIMALS = 6


class IncidentRefused(ValueError):
    """A declaration that cannot be accepted; the message says what to change."""


@dataclass
class Applied:
    cases: int = 0
    fees_refunded: int = 0
    compensated: int = 0
    pending: int = 0
    """Cases not settled yet: their fee is waived when they settle."""


def incident_key(incident_id: int) -> str:
    return f"incident-{incident_id}"


def waived_message(incident: Incident, *, paid_back: bool = False) -> str:
    """What a case's timeline says of the incident that waives its fee (the incident's reason as declared)."""
    values = {"incident": incident.id, "chain": incident.chain, "reason": incident.reason}
    if paid_back:
        return Message(
            "Your recovery fee is waived and paid back: incident #{incident} on {chain} ({reason}).", **values
        )
    return Message("Your recovery fee is waived: incident #{incident} on {chain} ({reason}).", **values)


def compensation_entry(ref: CaseRef, incident: Incident) -> FeeLedgerEntry | None:
    if incident.compensation is None or incident.compensation <= 0:
        return None
    assert incident.id is not None
    return fee_ledger.entry(
        ref,
        kind=FeeKind.COMPENSATED,
        key=fee_ledger.step_key(ref.case_id, f"compensated:{incident.id}"),
        asset=COMPENSATION_ASSET,
        decimals=COMPENSATION_DECIMALS,
        amount=fee_ledger.to_micros(incident.compensation),
        price_usd=Decimal(1),
        incident_id=incident.id,
        note=f"incident #{incident.id}: {incident.reason}",
    )


def declare(
    session: Session,
    *,
    chain: str,
    asset: str | None,
    starts_at: datetime,
    ends_at: datetime,
    reason: str,
    compensation_usd: Decimal | None,
    declared_by: str,
) -> tuple[Incident, Applied]:
    """Record the incident and apply it to the cases already in its window (see the module's docstring)."""
    if starts_at >= ends_at:
        raise IncidentRefused(f"the window is empty: --from {starts_at:%Y-%m-%dT%H:%M:%SZ} must be before --to")
    if not reason.strip():
        raise IncidentRefused("give a --reason: the users see it on their cases' timelines")
    if compensation_usd is not None and (compensation_usd < 0 or not compensation_usd.is_finite()):
        raise IncidentRefused(f"--compensation-usd must be a positive amount in USD, not {compensation_usd}")
    incident = incidents.declare(
        session,
        chain=chain,
        asset=asset,
        starts_at=starts_at,
        ends_at=ends_at,
        reason=reason.strip(),
        compensation_usd=compensation_usd,
        declared_by=declared_by,
    )
    applied = apply(session, incident=incident)
    session.refresh(incident)  # loaded again after apply's commit: readable once the session is closed
    return incident, applied


def apply(session: Session, *, incident: Incident) -> Applied:
    """Apply ``incident`` to every case in its window (idempotent): refund settled fees, note pending ones,
    book compensation for settled cases (pending ones get theirs when they settle). One transaction."""
    assert incident.id is not None
    applied = Applied()
    begin_write(session)
    found = cases.cases_in_window(
        session, chain=incident.chain, asset=incident.asset, since=incident.starts_at, until=incident.ends_at
    )
    refs = {case.case_id: case_ref(session, case) for case in found}
    for case in found:
        if case.status in (CaseStatus.REJECTED, CaseStatus.CANCELLED, CaseStatus.EXPIRED):
            continue
        applied.cases += 1
        ref = refs[case.case_id]
        if case.status is CaseStatus.COMPLETED:
            _settled(session, case, ref, incident, applied)
        else:
            applied.pending += 1
            cases.add_note(
                session,
                case_id=case.case_id,
                key=incident_key(incident.id),
                message=Message(
                    SPACED,
                    first=waived_message(incident),
                    second=Message(
                        "You will also be compensated {usd} USD when your case completes.",
                        usd=incident.compensation,
                    ),
                )
                if incident.compensation
                else waived_message(incident),
            )
    session.commit()
    return applied


def _settled(session: Session, case: Case, ref: CaseRef, incident: Incident, applied: Applied) -> None:
    assert incident.id is not None
    charged = fee_ledger.one(session, case_id=case.case_id, kind=FeeKind.CHARGED)
    message = waived_message(incident, paid_back=True)
    if charged is not None and charged.amount > 0:
        refund = fee_ledger.entry(
            ref,
            kind=FeeKind.REFUNDED,
            key=fee_ledger.step_key(case.case_id, FeeKind.REFUNDED),
            asset=charged.asset,
            decimals=charged.decimals,
            amount=charged.amount,
            price_usd=None if charged.price_usd is None else Decimal(charged.price_usd),
            usd_micros=charged.usd_micros,
            incident_id=incident.id,
            note=f"incident #{incident.id}: {incident.reason}",
        )
        if fee_ledger.add_once(session, refund):
            applied.fees_refunded += 1
    compensation = compensation_entry(ref, incident)
    if compensation is not None:
        if fee_ledger.add_once(session, compensation):
            applied.compensated += 1
        compensated = Message("You are compensated {usd} USD.", usd=incident.compensation)
        message = Message(SPACED, first=message, second=compensated)
    cases.add_note(session, case_id=case.case_id, key=incident_key(incident.id), message=message)


def covering(session: Session, *, case_id: str) -> Incident | None:
    """The incident whose window holds this case, if any."""
    case = cases.get_case(session, case_id=case_id)
    if case is None or case.chain is None:
        return None
    return incidents.covering(session, chain=case.chain, asset=case.asset, at=case.created_at)
