"""Request and response bodies of the staff API. Action bodies name no engineer: the token does."""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import AmountOut, CaseDetail
from recovery.models import RecoveryChoice
from store.audit import AuditEntry
from workflows.case_messages import CaseEvidence
from workflows.case_queries import CaseRow

MAX_FEE_USD = Decimal("1000000")
"""An engineer's fee override above this is a typo (the policies' maximum is hundreds of USD)."""


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ApproveBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"note": "sender verified"}]})

    note: str = Field(default="", max_length=2000, description="A note for the timeline and the audit")
    fee_usd: Decimal | None = Field(
        default=None,
        ge=0,
        le=MAX_FEE_USD,
        description="The fee in USD instead of the policy's percentage, within its minimum and maximum",
    )
    action: RecoveryChoice | None = Field(
        default=None, description="sweep, credit or refund, where the case allows it (default: the classified action)"
    )


class ExecutionBody(_Body):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"chain": "bsc", "tx_hash": "0x…", "note": "issuer rescue"}]}
    )

    chain: str = Field(min_length=1, max_length=64, description="The chain the recovery transaction is on")
    tx_hash: str = Field(min_length=1, max_length=130, description="The recovery transaction, done outside the engine")
    note: str = Field(default="", max_length=2000, description="What was done, for the timeline and the audit")


class RejectBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "not your deposit"}]})

    reason: str = Field(min_length=1, max_length=2000, description="Why; the user reads it as is")


class RequestInfoBody(_Body):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"question": "Which wallet did you send from?"}]}
    )

    question: str = Field(min_length=1, max_length=2000, description="What the user should answer")


class AssignBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"to": "bob"}]})

    to: str = Field(min_length=1, max_length=128, description="The engineer on the roster who will own the case")


class EscalateBody(_Body):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "needs a contract redeploy"}]})

    reason: str = Field(min_length=1, max_length=2000, description="What the next tier should know")


class ActionDone(BaseModel):
    case_id: str
    action: str = Field(description="The case workflow's update: approve, reject, request_info, assign, escalate")
    engineer: str = Field(description="The engineer the token names")
    attested: bool = Field(description="True for decisions: signed by this API, so the workflow can verify it")
    answer: str = Field(description="What the workflow answered")


class StaffCaseList(BaseModel):
    query: str = Field(description="The Temporal list query (the Web UI's saved views take the same)")
    data: list[CaseRow]
    count: int


class AuditOut(BaseModel):
    at: datetime
    engineer: str
    action: str
    attested: bool = Field(description="Whether the sender proved who acted, or only named the engineer")
    input: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]

    @classmethod
    def of(cls, entry: AuditEntry) -> AuditOut:
        return cls(
            at=entry.at,
            engineer=entry.engineer,
            action=entry.action,
            attested=entry.attested,
            input=json.loads(entry.input_json),
            before=json.loads(entry.before_json),
            after=json.loads(entry.after_json),
        )


class WorkflowView(BaseModel):
    """What the case's workflow answers to its ``status`` and ``evidence`` queries."""

    status: dict[str, str] | None = None
    evidence: CaseEvidence | None = None
    error: str | None = Field(default=None, description="Why the workflow could not be queried, if it could not")


class StaffCaseDetail(BaseModel):
    case_id: str
    case: CaseDetail | None = Field(description="The case's row and timeline; null when not in the database")
    workflow: WorkflowView | None = Field(description="The workflow's queries; null when it does not exist")
    audit: list[AuditOut] = Field(description="Every engineer action, oldest first (append-only)")


class FeeTotalOut(BaseModel):
    chain: str
    asset: str
    count: int = Field(description="Settled recoveries")
    fee: AmountOut
    gas: AmountOut
    fee_usd: str = Field(description="USD at the price booked with the charge, as a decimal string (micro-dollars)")


class FeeReportOut(BaseModel):
    since: datetime | None
    until: datetime | None
    totals: list[FeeTotalOut]
