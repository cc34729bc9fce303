"""The fee reconciliation's messages: the workflow's input (what the Schedule starts it with), the activity's
request and its outcome. Workflow-safe."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

MAX_CASE_IDS = 200
"""Mismatched case ids carried in the outcome (every finding is in ``case_reconciliation``)."""


class ReconcileInput(BaseModel):
    """One reconciliation run. No bounds: every COMPLETED case. ``lookback_days``: the cases charged in the
    last N days before the run started (a Schedule's input is fixed, so a moving window is given this way)."""

    since: datetime | None = None
    until: datetime | None = None
    lookback_days: int | None = Field(default=None, ge=1)
    trigger: str = "schedule"


class ReconcileRequest(BaseModel):
    since: datetime | None = None
    until: datetime | None = None
    trigger: str = "schedule"


class ReconcileOutcome(BaseModel):
    run_id: int
    cases_checked: int
    ok: int
    mismatches: int
    uncheckable: int
    mismatched_case_ids: list[str] = Field(default_factory=list)
    """The first :data:`MAX_CASE_IDS` of them, in case id order."""
    uncheckable_case_ids: list[str] = Field(default_factory=list)

    @property
    def verdict(self) -> str:
        """``mismatch`` when any case disagrees, else ``uncheckable`` when a case could not be read, else ``ok``."""
        return "mismatch" if self.mismatches else "uncheckable" if self.uncheckable else "ok"
