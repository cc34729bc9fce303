"""Support metrics over a period: how many cases were opened and closed, how many an engineer handled, how
fast, how often the service levels broke, and how the users rated it.

The cohort is the cases *opened* in ``[start, end)``; every figure is about that cohort as the database holds
it now (a case opened in the period and closed after it counts as closed). What each figure reads:

- manual: the case waited for an engineer at least once (a timeline event with status AWAITING_APPROVAL,
  written by the workflow when it routes a case to engineers); automatic: it closed without ever waiting.
  Open cases that have not waited are in neither (their route is not known yet). Shares are of
  manual + automatic.
- time to first engineer action: from the first AWAITING_APPROVAL event to the case's first audit row at or
  after it (approve, reject, request_info, assign, escalate: every engineer action writes one).
- time to resolution: from the case's opening to its first timeline event in a terminal status.
- SLA breaches: cases whose handling row says ``sla_state = breached`` (the workflow's deadline timer).
- escalations by tier: audit rows with action ``escalate``, by the tier the case had before; escalations the
  SLA target timer made by itself (timeline ``sla-target``) are counted apart, they have no audit row.
- four-eyes: cases that needed two approvals (the handling row's ``approvals_needed``).
- CSAT: mean rating and the share of ratings of 4 or 5; feedback rate: ratings per closed case.

Durations are whole seconds; percentiles are nearest-rank on the sorted durations; ratios are ``Decimal``.
:func:`load_facts` reads the rows, :func:`case_facts` and :func:`compute` are pure.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from pydantic import BaseModel
from sqlmodel import Session, col, select

from recovery.models import CaseStatus
from store.audit import AuditEntry
from store.cases import Case, CaseEvent, CaseHandlingRow
from store.feedback import CaseFeedback

SLA_TARGET_EVENT = "sla-target"
"""Timeline key of the SLA target timer's own escalation (``recovery.working_days.SlaEvent.key``)."""
BREACHED = "breached"
SATISFIED_FROM = 4
"""Ratings from this up count as satisfied (CSAT's usual top-two-box)."""


@dataclass(frozen=True)
class CaseFacts:
    """What one case contributes to the metrics."""

    case_id: str
    opened_at: datetime
    status: CaseStatus
    closed_at: datetime | None = None
    waited_at: datetime | None = None
    """When the case first waited for an engineer (None: it never did)."""
    first_action_at: datetime | None = None
    sla_breached: bool = False
    approvals_needed: int = 1
    escalated_from: tuple[str, ...] = ()
    escalated_at_sla_target: bool = False
    rating: int | None = None

    @property
    def first_action_s(self) -> int | None:
        """Seconds from first waiting for an engineer to the first engineer action."""
        if self.waited_at is None or self.first_action_at is None:
            return None
        return _seconds(self.first_action_at - self.waited_at)

    @property
    def resolution_s(self) -> int | None:
        """Seconds from opening to closing."""
        return None if self.closed_at is None else _seconds(self.closed_at - self.opened_at)


def case_facts(
    case: Case,
    events: Sequence[CaseEvent],
    handling: CaseHandlingRow | None,
    audit_rows: Sequence[AuditEntry],
    feedback: CaseFeedback | None,
) -> CaseFacts:
    """One case's facts from its rows (events and audit rows in any order)."""
    events = sorted(events, key=lambda e: (e.at, e.id or 0))
    audit_rows = sorted(audit_rows, key=lambda a: (a.at, a.id or 0))
    waited_at = next((e.at for e in events if e.status is CaseStatus.AWAITING_APPROVAL), None)
    closed_at: datetime | None = None
    if case.status.terminal:
        closed_at = next((e.at for e in events if e.status.terminal), case.updated_at)
    first_action_at = None
    if waited_at is not None:
        first_action_at = next((a.at for a in audit_rows if a.at >= waited_at), None)
    return CaseFacts(
        case_id=case.case_id,
        opened_at=case.created_at,
        status=case.status,
        closed_at=closed_at,
        waited_at=waited_at,
        first_action_at=first_action_at,
        sla_breached=handling is not None and handling.sla_state == BREACHED,
        approvals_needed=handling.approvals_needed if handling is not None else 1,
        escalated_from=tuple(_tier_before(a) for a in audit_rows if a.action == "escalate"),
        escalated_at_sla_target=any(e.key == SLA_TARGET_EVENT for e in events),
        rating=feedback.rating if feedback is not None else None,
    )


def _tier_before(row: AuditEntry) -> str:
    try:
        tier = json.loads(row.before_json).get("tier")
    except (ValueError, AttributeError):
        tier = None
    return str(tier) if tier else "unknown"


class SupportMetrics(BaseModel):
    """The figures of one period (JSON: ratios as decimal strings, durations as whole seconds)."""

    period_from: datetime
    period_to: datetime
    opened: int
    closed: int
    still_open: int
    closed_by_status: dict[str, int]
    manual: int
    automatic: int
    manual_share_pct: Decimal | None
    automatic_share_pct: Decimal | None
    first_action_count: int
    """Manual cases an engineer acted on."""
    awaiting_first_action: int
    """Manual cases no engineer has acted on yet."""
    time_to_first_action_p50_s: int | None
    time_to_first_action_p90_s: int | None
    time_to_resolution_p50_s: int | None
    time_to_resolution_p90_s: int | None
    sla_breaches: int
    escalations_by_tier: dict[str, int]
    escalations_at_sla_target: int
    four_eyes: int
    feedback_count: int
    csat_mean: Decimal | None
    csat_satisfied_pct: Decimal | None
    feedback_rate_pct: Decimal | None

    def rows(self) -> list[tuple[str, str]]:
        """``(metric, value)`` pairs, dictionaries flattened as ``name.key`` (for tables and CSV)."""
        out: list[tuple[str, str]] = []
        for name, value in self.model_dump(mode="json").items():
            if isinstance(value, dict):
                out += [(f"{name}.{k}", str(v)) for k, v in sorted(value.items())]
            else:
                out.append((name, "" if value is None else str(value)))
        return out


def nearest_rank(values: Sequence[int], percent: int, *, presorted: bool = False) -> int | None:
    """The ``percent``-th percentile by nearest rank: the smallest value with at least ``percent``% of the
    values at or below it. None for no values. ``presorted``: ``values`` are in order already (not sorted again)."""
    if not values:
        return None
    ordered = values if presorted else sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil(percent * n / 100), in integers
    return ordered[rank - 1]


def nearest_rank_of_runs(runs: Sequence[Sequence[int]], percent: int) -> int | None:
    """:func:`nearest_rank` of the values of several sorted runs together, without merging them: the smallest
    integer with at least the rank's count of values at or below it (a value of the runs, since the count only
    grows at one), found by halving the range between the runs' smallest and largest values and counting with
    ``bisect`` in each run. None for no values."""
    runs = [run for run in runs if run]
    total = sum(len(run) for run in runs)
    if total == 0:
        return None
    rank = max(1, -(-percent * total // 100))
    low, high = min(run[0] for run in runs), max(run[-1] for run in runs)
    while low < high:  # the answer is in [low, high]
        middle = (low + high) // 2
        if sum(bisect_right(run, middle) for run in runs) >= rank:
            high = middle
        else:
            low = middle + 1
    return low


def _seconds(delta: timedelta) -> int:
    return delta // timedelta(seconds=1)


def _pct(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(100 * part) / Decimal(whole)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


def compute(start: datetime, end: datetime, facts: Iterable[CaseFacts]) -> SupportMetrics:
    cohort = list(facts)
    closed = [f for f in cohort if f.closed_at is not None]
    manual = [f for f in cohort if f.waited_at is not None]
    automatic = [f for f in closed if f.waited_at is None]
    first_action = [s for f in manual if (s := f.first_action_s) is not None]
    resolution = [s for f in closed if (s := f.resolution_s) is not None]
    ratings = [f.rating for f in cohort if f.rating is not None]
    routed = len(manual) + len(automatic)
    return SupportMetrics(
        period_from=start,
        period_to=end,
        opened=len(cohort),
        closed=len(closed),
        still_open=len(cohort) - len(closed),
        closed_by_status=dict(Counter(f.status.value for f in closed)),
        manual=len(manual),
        automatic=len(automatic),
        manual_share_pct=_pct(len(manual), routed),
        automatic_share_pct=_pct(len(automatic), routed),
        first_action_count=len(first_action),
        awaiting_first_action=len(manual) - len(first_action),
        time_to_first_action_p50_s=nearest_rank(first_action, 50),
        time_to_first_action_p90_s=nearest_rank(first_action, 90),
        time_to_resolution_p50_s=nearest_rank(resolution, 50),
        time_to_resolution_p90_s=nearest_rank(resolution, 90),
        sla_breaches=sum(f.sla_breached for f in cohort),
        escalations_by_tier=dict(Counter(tier for f in cohort for tier in f.escalated_from)),
        escalations_at_sla_target=sum(f.escalated_at_sla_target for f in cohort),
        four_eyes=sum(f.approvals_needed >= 2 for f in cohort),
        feedback_count=len(ratings),
        csat_mean=(Decimal(sum(ratings)) / Decimal(len(ratings))).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if ratings
        else None,
        csat_satisfied_pct=_pct(sum(r >= SATISFIED_FROM for r in ratings), len(ratings)),
        feedback_rate_pct=_pct(len(ratings), len(closed)),
    )


@dataclass
class _Rows:
    events: list[CaseEvent] = field(default_factory=list)
    audit: list[AuditEntry] = field(default_factory=list)


def load_facts(session: Session, *, start: datetime, end: datetime) -> list[CaseFacts]:
    """The facts of every case opened in ``[start, end)`` (aware datetimes), read in five queries."""
    opened = (col(Case.created_at) >= start) & (col(Case.created_at) < end)
    found = list(session.exec(select(Case).where(opened).order_by(col(Case.created_at))).all())
    rows = {c.case_id: _Rows() for c in found}
    in_cohort = select(Case.case_id).where(opened)
    for event in session.exec(select(CaseEvent).where(col(CaseEvent.case_id).in_(in_cohort))).all():
        rows[event.case_id].events.append(event)
    for entry in session.exec(select(AuditEntry).where(col(AuditEntry.case_id).in_(in_cohort))).all():
        rows[entry.case_id].audit.append(entry)
    handling = {
        h.case_id: h
        for h in session.exec(select(CaseHandlingRow).where(col(CaseHandlingRow.case_id).in_(in_cohort))).all()
    }
    feedback = {
        f.case_id: f for f in session.exec(select(CaseFeedback).where(col(CaseFeedback.case_id).in_(in_cohort))).all()
    }
    return [
        case_facts(c, rows[c.case_id].events, handling.get(c.case_id), rows[c.case_id].audit, feedback.get(c.case_id))
        for c in found
    ]


def support_metrics(session: Session, *, start: datetime, end: datetime) -> SupportMetrics:
    """The metrics of the cases opened in ``[start, end)``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise ValueError("the period's bounds must be aware datetimes")
    if end <= start:
        raise ValueError(f"the period is empty: it ends ({end.isoformat()}) before it starts ({start.isoformat()})")
    return compute(start, end, load_facts(session, start=start, end=end))
