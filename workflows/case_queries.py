"""Temporal list queries over cases: the engineers' filters (``recovery case list``, ``GET /v1/staff/cases``
and the Web UI's saved views take the same query), and a listed execution as a row. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel
from temporalio.client import WorkflowExecution

from workflows import search_attributes as sa


class FilterError(ValueError):
    """A filter value that cannot go into a list query as is."""


def list_query(
    *,
    status: str | None,
    assigned_to: str | None,
    tier: str | None,
    sla_breached: bool,
    due_within_days: int | None,
    now: datetime,
) -> str:
    """The Temporal list query of the engineers' filters. Raises :class:`FilterError` for a value with
    quotes (it would change the query)."""
    terms = ["WorkflowType = 'CaseWorkflow'"]
    if status is not None:
        terms.append(f"CaseStatus = {_quoted(status.upper())}")
    if assigned_to is not None:
        terms.append(f"AssignedTo = {_quoted(assigned_to)}")
    if tier is not None:
        terms.append(f"Tier = {_quoted(tier)}")
    if sla_breached:
        terms.append("SlaBreached = true")
    if due_within_days is not None:
        terms.append(f"SlaDeadline < {_quoted((now + timedelta(days=due_within_days)).isoformat())}")
    return " AND ".join(terms)


def _quoted(value: str) -> str:
    if "'" in value or '"' in value or "\\" in value:
        raise FilterError(f"quotes are not allowed in a filter value: {value!r}")
    return f"'{value}'"


class CaseRow(BaseModel):
    """One case as Temporal's visibility store lists it (its search attributes)."""

    case_id: str
    status: str | None
    pattern: str | None
    chain: str | None
    asset: str | None
    amount_usd: int | None
    """Whole USD, as the search attribute holds it (for sorting and filtering)."""
    tier: str | None
    assigned_to: str | None
    sla_state: str | None
    sla_deadline: datetime | None


def case_row(execution: WorkflowExecution) -> CaseRow:
    found = execution.typed_search_attributes
    return CaseRow(
        case_id=execution.id,
        status=found.get(sa.CASE_STATUS),
        pattern=found.get(sa.PATTERN),
        chain=found.get(sa.CHAIN),
        asset=found.get(sa.ASSET),
        amount_usd=found.get(sa.AMOUNT_USD),
        tier=found.get(sa.TIER),
        assigned_to=found.get(sa.ASSIGNED_TO),
        sla_state=found.get(sa.SLA_STATE),
        sla_deadline=found.get(sa.SLA_DEADLINE),
    )
