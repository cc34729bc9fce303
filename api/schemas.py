"""Request and response bodies of the HTTP API. Amounts are strings of integers (JSON numbers lose
precision beyond 2**53; 100 USDT at 18 decimals is 1e20)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Row

from recovery.i18n import N_, Message, MessageError, render, render_ref, translate
from recovery.locales import DEFAULT_LOCALE
from recovery.models import CaseHandling, CaseStatus, Pattern, Quote, SlaState
from recovery.units import format_units
from services.claim_preview import (
    ClaimPreview,
    ClaimRoute,
    ConfirmationOutlook,
    FeeOutlook,
    SlaOutlook,
    UserStepKind,
)
from store.case_views import Record
from store.cases import Case, CaseEvent
from store.ledger import RefundEntry
from store.ownership import OwnershipRequirement

CaseRecord = Case | Record
"""A case as the ORM loads it, or its columns as the fast read path reads them (``store.case_views``)."""
EventRecord = CaseEvent | Row[Any] | Record
OwnershipRecord = OwnershipRequirement | Record
RefundRecord = RefundEntry | Record

TX_HASH_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class CaseCreate(BaseModel):
    """A claim: the hash of the transaction that sent the funds, and optionally the chain it is on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tx_hash": "0x" + "ab" * 32, "chain": "bsc"}]},
    )

    tx_hash: str = Field(
        description="The transaction id: 0x and 64 hexadecimal characters on EVM chains, 64 hexadecimal "
        "characters on Bitcoin, Tron and the XRP Ledger",
        json_schema_extra={"pattern": TX_HASH_RE.pattern},
    )
    chain: str | None = Field(
        default=None, description="A configured chain name; omit it to search every configured chain"
    )

    @field_validator("tx_hash", mode="before")
    @classmethod
    def _tx_hash(cls, value: object) -> str:
        value = value.strip() if isinstance(value, str) else value
        if not isinstance(value, str) or not TX_HASH_RE.fullmatch(value):
            raise MessageError(
                Message(
                    "must be a transaction id: 0x and 64 hexadecimal characters on EVM chains, or 64 "
                    "hexadecimal characters on Bitcoin, Tron and the XRP Ledger (copy it from your wallet or a "
                    "block explorer)"
                )
            )
        return value.lower()


class MessageCreate(BaseModel):
    """Your answer to a question a recovery engineer asked on your case."""

    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"text": "I sent it from Trust Wallet."}]}
    )

    text: str = Field(min_length=1, max_length=2000, description="Your answer, in plain text")


class MessageAccepted(BaseModel):
    case_id: str
    status: CaseStatus = Field(description="AWAITING_APPROVAL: the answer is on the case, an engineer continues")


class ConfirmationsOut(BaseModel):
    """How deep the deposit's transaction is, and when it will be deep enough for the engine to act."""

    chain: str = Field(description="The chain the transaction is on")
    have: int = Field(description="Confirmations the transaction has now")
    need: int = Field(description="Confirmations the chain's configuration requires before the engine acts")
    remaining: int = Field(description="Confirmations still to come (0: enough)")
    block_time_ms: int = Field(description="The chain's block time, in milliseconds, the expectation is based on")
    expected_at: datetime | None = Field(
        description="When the last needed confirmation is expected: now + remaining × block time (UTC); null "
        "while the transaction is not in a block"
    )

    @classmethod
    def of(cls, outlook: ConfirmationOutlook | None) -> ConfirmationsOut | None:
        return None if outlook is None else cls.model_validate(outlook.model_dump())


class SlaOutlookOut(BaseModel):
    """When an engineer is expected to have decided (a case for an engineer), in working days from when the case
    is expected to start waiting for one (once the deposit is confirmed)."""

    starts_at: datetime = Field(description="When the case is expected to start waiting for an engineer")
    target_at: datetime = Field(description="The target date of the decision")
    deadline_at: datetime = Field(description="The latest date of the decision")
    target_working_days: int = Field(description="Working days from starts_at to target_at")
    deadline_working_days: int = Field(description="Working days from starts_at to deadline_at")
    tier: str = Field(description="The desk that takes the case first: first_line, or vip for a VIP account")
    approvals_needed: int = Field(description="Engineers who must approve (2 above the four-eyes threshold)")

    @classmethod
    def of(cls, outlook: SlaOutlook | None) -> SlaOutlookOut | None:
        return None if outlook is None else cls.model_validate(outlook.model_dump())


class FeeOutlookOut(BaseModel):
    """The fee policy that applies, and an estimate of its fee; the engine's quote (with the network cost) is
    final and shows under the case's ``fees``."""

    policy: str = Field(description="The fee policy: the pattern's own, or default")
    basis: str = Field(description="How the fee is worked out, in words")
    network_cost: str = Field(
        description="passed: the network cost of the recovery is charged to you; absorbed: the exchange pays it"
    )
    value_usd: str | None = Field(description="The deposit's value in USD at the engine's prices; null if unpriced")
    estimated_fee: AmountOut | None = Field(
        description="The policy's fee in the deposit's asset, without the network cost; null if it cannot be estimated"
    )
    estimated_fee_usd: str | None = Field(description="The same in USD; null if it cannot be estimated")
    asset: str | None = Field(description="The asset the fee is taken in (an unlisted token as <chain>:<address>)")
    acceptance_above_usd: str | None = Field(
        description="Above this USD value you must accept the quote before anything is signed; null: never"
    )
    acceptance_required: bool | None = Field(
        description="Whether this deposit's value is above that threshold (expected_steps says whether you will be "
        "asked: a recovery an engineer carries out by hand is not offered for acceptance); null when the value is "
        "unknown"
    )
    eligible_from_usd: str | None = Field(
        description="Work that needs an engineer is done only for deposits worth more than this (USD); null: no floor"
    )
    not_estimated: str | None = Field(description="Why there is no estimate, in plain words; null when there is one")

    @classmethod
    def of(cls, outlook: FeeOutlook | None) -> FeeOutlookOut | None:
        if outlook is None:
            return None
        return cls(
            policy=outlook.policy,
            basis=outlook.basis,
            network_cost=outlook.network_cost,
            value_usd=_text(outlook.value_usd),
            estimated_fee=AmountOut.of(outlook.fee, outlook.decimals),
            estimated_fee_usd=_text(outlook.fee_usd),
            asset=outlook.asset,
            acceptance_above_usd=_text(outlook.acceptance_above_usd),
            acceptance_required=outlook.acceptance_required,
            eligible_from_usd=_text(outlook.eligible_from_usd),
            not_estimated=outlook.not_estimated,
        )


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


class ExpectedStep(BaseModel):
    """Something you will be asked to do before the recovery can finish."""

    action: UserStepKind = Field(
        description="prove_ownership: prove that you control the sending address; accept_fee: accept the quote"
    )
    text: str = Field(description="What it is and how to do it, in plain words")


class ClaimAnswer(BaseModel):
    """What the engine expects to do with the claim, worked out at claim time from the same facts, classifier and
    fee policy the case's workflow uses. Provisional: the workflow decides once the deposit is confirmed."""

    available: bool = Field(
        description="False when the claim-time checks could not be made (a chain did not answer in time); the "
        "claim is filed all the same and GET /v1/cases/{case_id} follows it"
    )
    unavailable_reason: str | None = Field(description="Why there is no answer yet, in plain words; null if there is")
    provisional: bool = Field(
        default=True, description="Always true: the workflow decides once the deposit has its confirmations"
    )
    pattern: Pattern | None = Field(
        description="The pattern the deposit looks like (e.g. WRONG_NETWORK_SAME_KEY); null if not known yet"
    )
    reason: str | None = Field(description="Why, in plain words (the reason the case will show)")
    route: ClaimRoute | None = Field(
        description="automatic: the engine recovers it by itself; engineer: a recovery engineer decides (the "
        "pattern needs one, the value is above the automatic limit, or no fee can be quoted); rejected: the case "
        "will be closed without moving anything, see reason; undecided: the transaction is not in a block yet"
    )
    confirmations: ConfirmationsOut | None = Field(
        description="Confirmations now and needed, and when the last is expected; null if the transaction was not found"
    )
    sla: SlaOutlookOut | None = Field(description="For the engineer route: when the decision is due")
    fee: FeeOutlookOut | None = Field(description="The fee policy and an estimate of its fee; null when rejected")
    expected_steps: list[ExpectedStep] = Field(
        description="What you will be asked to do, in order; empty: nothing, the engine (or an engineer) does it all"
    )
    next: str = Field(description="What happens next and when, in plain words")
    caveats: list[str] = Field(description="What could still change this answer")
    as_of: datetime = Field(description="When this answer was worked out (UTC)")

    @classmethod
    def of(cls, preview: ClaimPreview) -> ClaimAnswer:
        return cls(
            available=preview.available,
            unavailable_reason=preview.unavailable_reason,
            pattern=preview.pattern,
            reason=preview.reason,
            route=preview.route,
            confirmations=ConfirmationsOut.of(preview.confirmations),
            sla=SlaOutlookOut.of(preview.sla),
            fee=FeeOutlookOut.of(preview.fee),
            expected_steps=[ExpectedStep(action=s.kind, text=s.text) for s in preview.user_steps],
            next=preview.next,
            caveats=list(preview.caveats),
            as_of=preview.as_of,
        )


class CaseCreated(BaseModel):
    case_id: str = Field(description="The case's id; follow it at GET /v1/cases/{case_id}")
    status: CaseStatus = Field(description="RECEIVED: the case is filed and its workflow started")
    answer: ClaimAnswer = Field(description="What the engine expects to do with the claim, and what you must do")


class AmountOut(BaseModel):
    base_units: str = Field(description="Integer amount in the asset's smallest unit, as a string")
    decimal: str | None = Field(description="Human-readable amount; null when the decimals are unknown")

    @classmethod
    def of(cls, amount: int | None, decimals: int | None) -> AmountOut | None:
        fields = cls.fields_of(amount, decimals)
        return None if fields is None else cls(**fields)

    @staticmethod
    def fields_of(amount: int | None, decimals: int | None) -> dict[str, Any] | None:
        """The amount's fields as JSON has them (:meth:`CaseDetail.fields_of`)."""
        if amount is None:
            return None
        return {"base_units": str(amount), "decimal": None if decimals is None else format_units(amount, decimals)}


class FeeBreakdown(BaseModel):
    fee: AmountOut | None = Field(description="Recovery fee, in the deposit's asset")
    gas: AmountOut | None = Field(description="Network cost of the recovery, in the deposit's asset")
    fee_usd: str | None
    percent: str | None = Field(description="Fee rate of the recovered value, in percent (before min/max)")
    final: bool = Field(description="True once settled; before that the figures are the quote's estimates")
    policy: str | None = Field(default=None, description="The fee policy applied: the case's pattern, or default")
    basis: str | None = Field(default=None, description="How the fee is worked out, in words")
    network_cost: str | None = Field(
        default=None, description="passed: the network cost is charged to you; absorbed: the exchange pays it"
    )
    acceptance: str | None = Field(
        default=None,
        description="required: accept or decline with POST /v1/cases/{id}/fee-acceptance; accepted; declined; "
        "null when the quote needs no acceptance",
    )


class TimelineEntry(BaseModel):
    at: datetime
    status: CaseStatus
    message: str
    due_at: datetime | None = Field(default=None, description="By when you must act on this entry, if it asks")


class SlaOut(BaseModel):
    """When an engineer will have decided: working days counted from when the case first waited for one."""

    started_at: datetime
    target_at: datetime = Field(description="The target date (15 working days by default)")
    deadline_at: datetime = Field(description="The latest date (30 working days by default)")
    paused: bool = Field(description="True while the case waits for you: the clock stands still")
    breached: bool = Field(description="True once the deadline passed; operations handle the case")

    @staticmethod
    def fields_of(handling: CaseHandling | None) -> dict[str, Any] | None:
        """The service levels' fields as JSON has them (:meth:`CaseDetail.fields_of`)."""
        if handling is None or handling.sla_started_at is None:
            return None
        assert handling.sla_target_at is not None and handling.sla_deadline_at is not None
        return {
            "started_at": json_time(handling.sla_started_at),
            "target_at": json_time(handling.sla_target_at),
            "deadline_at": json_time(handling.sla_deadline_at),
            "paused": handling.paused,
            "breached": handling.sla_state is SlaState.BREACHED,
        }


class CaseSummary(BaseModel):
    case_id: str
    status: CaseStatus
    pattern: Pattern | None
    chain: str | None
    tx_hash: str
    asset: str | None
    amount: AmountOut | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, case: CaseRecord) -> CaseSummary:
        return cls.model_validate(cls.summary_fields(case, case.decimals))

    @staticmethod
    def summary_fields(case: CaseRecord, decimals: int | None) -> dict[str, Any]:
        """The summary's fields of ``case`` as JSON has them, its amount in ``decimals``."""
        return {
            "case_id": case.case_id,
            "status": case.status.value,
            "pattern": None if case.pattern is None else case.pattern.value,
            "chain": case.chain,
            "tx_hash": case.tx_hash,
            "asset": case.asset,
            "amount": AmountOut.fields_of(case.amount, decimals),
            "created_at": json_time(case.created_at),
            "updated_at": json_time(case.updated_at),
        }


class RefundOut(BaseModel):
    amount: AmountOut
    to: str = Field(description="The deposit's sender, where the refund went")
    tx_hash: str = Field(description="The refund transaction on the deposit's chain")

    @staticmethod
    def fields_of(refund: RefundRecord | None, decimals: int | None) -> dict[str, Any] | None:
        """The refund's fields as JSON has them (:meth:`CaseDetail.fields_of`)."""
        amount = None if refund is None else AmountOut.fields_of(refund.amount, decimals)
        if refund is None or amount is None:
            return None
        return {"amount": amount, "to": refund.to_address, "tx_hash": refund.tx_hash}


class CaseDetail(CaseSummary):
    reason: str
    log_index: int | None
    token_address: str | None
    decimals: int | None
    fees: FeeBreakdown
    credited: AmountOut | None = Field(description="Amount credited to your account, once completed")
    refund: RefundOut | None = Field(
        default=None, description="The deposit sent back to its sender, once refunded (then nothing is credited)"
    )
    net_estimate: AmountOut | None = Field(description="Expected credit from the quote, before completion")
    topup_tx_hash: str | None
    sweep_tx_hash: str | None
    sla: SlaOut | None = Field(description="Service levels, once the case waits for an engineer")
    next_action: NextActionOut = Field(description="What the case waits for from you, if anything, and how to give it")
    timeline: list[TimelineEntry]

    @staticmethod
    def fields_of(
        case: CaseRecord,
        events: Sequence[EventRecord],
        handling: CaseHandling | None = None,
        ownership: OwnershipRecord | None = None,
        refund: RefundRecord | None = None,
        *,
        locale: str = DEFAULT_LOCALE,
    ) -> dict[str, Any]:
        """The case as its reader sees it, as JSON has it (strings, numbers, booleans, nulls, lists and objects, in
        the model's field order): the API's own texts (``next_action``), the timeline and the reason in ``locale``
        (rendered from their message ids; the stored English for texts written without one).

        ``CaseDetail.model_validate`` of them is the model (the staff view's); ``pydantic_core.to_json`` of them is
        the case read's body (:meth:`api.case_views.CaseViews.render`):
        the same bytes as the validated model's ``model_dump_json()`` (a test compares them over every kind of
        case), at a fraction of the cost, since most of a read's rendering was validating values it had just
        made."""
        quote = Quote.model_validate_json(case.quote_json) if case.quote_json else None
        decimals = case.decimals if case.decimals is not None else (quote.decimals if quote else None)
        settled = case.credited is not None
        gas = case.gas if settled or quote is None else quote.gas_estimate
        return {
            **CaseSummary.summary_fields(case, decimals),
            "reason": _localized(
                case.reason, getattr(case, "reason_id", None), getattr(case, "reason_params", None), locale
            ),
            "log_index": case.log_index,
            "token_address": case.token_address,
            "decimals": decimals,
            "fees": {
                "fee": AmountOut.fields_of(case.fee, decimals),
                "gas": AmountOut.fields_of(gas, decimals),
                "fee_usd": case.fee_usd,
                "percent": format_units(quote.percent_bps, 2) if quote else None,
                "final": settled,
                "policy": quote.policy if quote else None,
                "basis": render(quote.basis, locale) if quote and quote.basis else None,
                "network_cost": quote.network_cost if quote else None,
                "acceptance": _acceptance(quote, events, case),
            },
            "credited": AmountOut.fields_of(case.credited, decimals),
            "refund": RefundOut.fields_of(refund, decimals),
            "net_estimate": None if settled or quote is None else AmountOut.fields_of(quote.net_estimate, decimals),
            "topup_tx_hash": case.topup_tx_hash,
            "sweep_tx_hash": case.sweep_tx_hash,
            "sla": SlaOut.fields_of(handling),
            "next_action": next_action(case, events, ownership, handling, locale=locale).model_dump(mode="json"),
            "timeline": [
                {
                    "at": json_time(e.at),
                    "status": e.status.value,
                    "message": _localized(
                        e.message, getattr(e, "message_id", None), getattr(e, "message_params", None), locale
                    ),
                    "due_at": json_time(e.due_at),
                }
                for e in events
            ],
        }


def json_time(value: datetime | None) -> str | None:
    """A timestamp as pydantic writes it in JSON: ISO 8601, microseconds only when there are some, ``Z`` for UTC."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _localized(english: str, msgid: str | None, params: str | None, locale: str) -> str:
    """A stored text in ``locale`` from its message id and JSON values; the stored English without an id (texts
    written before message ids, and those still written in English only)."""
    if not msgid:
        return english
    return render_ref(locale, msgid, json.loads(params) if params else {})


def _acceptance(quote: Quote | None, events: Sequence[EventRecord], case: CaseRecord) -> str | None:
    keys = {e.key for e in events}
    if "quote-accepted" in keys:
        return "accepted"
    if "quote-offered" in keys:
        return "declined" if case.status is CaseStatus.CANCELLED else "required"
    return "required" if quote is not None and quote.acceptance_required and not case.status.terminal else None


class NextAction(StrEnum):
    NONE = "none"
    ACCEPT_FEE = "accept_fee"
    PROVE_OWNERSHIP = "prove_ownership"
    ANSWER_QUESTION = "answer_question"
    WAIT = "wait"


class NextActionOut(BaseModel):
    """What the case waits for from you, in plain words."""

    action: NextAction = Field(
        description="none: the case is closed; wait: nothing to do, the engine or an engineer works on it; "
        "accept_fee, prove_ownership, answer_question: the case waits for you"
    )
    text: str = Field(description="What to do (or why there is nothing to do), in plain words")
    due_at: datetime | None = Field(
        default=None,
        description="By when you must act (after it the case expires); while you wait, when an engineer's "
        "decision is due",
    )
    request: str | None = Field(default=None, description="The API call that does it, if the action is yours")


CLOSED_TEXT = {
    CaseStatus.COMPLETED: N_("Nothing: your case is closed and the funds were credited (or refunded) as shown."),
    CaseStatus.REJECTED: N_("Nothing: your case is closed; the reason is on the timeline."),
    CaseStatus.EXPIRED: N_(
        "Nothing: your case expired without moving any funds; file a new claim to have it looked at again."
    ),
    CaseStatus.CANCELLED: N_("Nothing: you declined the quote, so the case is closed and nothing was moved."),
}
"""Message ids: ``translate`` them into the reader's language."""


def next_action(
    case: CaseRecord,
    events: Sequence[EventRecord],
    ownership: OwnershipRecord | None,
    handling: CaseHandling | None = None,
    *,
    locale: str = DEFAULT_LOCALE,
) -> NextActionOut:
    """What the case waits for from its user, said plainly in ``locale`` (``none`` once it is closed)."""
    if case.status.terminal:
        return NextActionOut(action=NextAction.NONE, text=translate(locale, CLOSED_TEXT[case.status]))
    latest = events[-1] if events else None
    key = latest.key if latest is not None else ""
    due_at = latest.due_at if latest is not None else None
    if case.status is CaseStatus.AWAITING_USER and key == "quote-offered":
        return NextActionOut(
            action=NextAction.ACCEPT_FEE,
            text=translate(locale, "Accept or decline the quote (see fees): nothing is signed before you accept."),
            due_at=due_at,
            request=f'POST /v1/cases/{case.case_id}/fee-acceptance {{"accept": true}} or {{"accept": false}}',
        )
    if case.status is CaseStatus.AWAITING_USER and key.startswith("info-request"):
        return NextActionOut(
            action=NextAction.ANSWER_QUESTION,
            text=translate(locale, "Answer the recovery engineer's question (the last timeline entry)."),
            due_at=due_at,
            request=f'POST /v1/cases/{case.case_id}/messages {{"text": "..."}}',
        )
    if ownership is not None and ownership.proven_at is None:
        return _prove_ownership(case, ownership, due_at=_latest_due(events), locale=locale)
    if case.status is CaseStatus.AWAITING_APPROVAL:
        return NextActionOut(
            action=NextAction.WAIT,
            text=translate(locale, "Nothing: a recovery engineer is reviewing your case."),
            due_at=handling.sla_target_at if handling is not None else None,
        )
    return NextActionOut(
        action=NextAction.WAIT,
        text=translate(locale, "Nothing: the recovery is under way; this page shows each step."),
    )


def _latest_due(events: Sequence[EventRecord]) -> datetime | None:
    return next((e.due_at for e in reversed(events) if e.due_at is not None), None)


def _prove_ownership(
    case: CaseRecord, ownership: OwnershipRecord, *, due_at: datetime | None, locale: str
) -> NextActionOut:
    proof = f"/v1/cases/{case.case_id}/ownership-proof"
    values = {
        "address": ownership.address,
        "recipient": ownership.recipient,
        "challenge": f"/v1/cases/{case.case_id}/ownership-challenge",
        "proof": proof,
        "deposit_body": '{"verification_tx_hash": "..."}',
        "signature_body": '{"signature": "0x..."}',
    }
    if not ownership.address.startswith("0x"):  # only EVM wallets sign with personal_sign
        text = translate(
            locale,
            "Prove that you control {address}: GET {challenge}, then send a new small transfer of the chain's own "
            "coin from {address} to {recipient} (with your own destination tag, on a shared address) and, once it "
            "is final, POST {deposit_body} to {proof}",
            **values,
        )
    else:
        text = translate(
            locale,
            "Prove that you control {address}: GET {challenge}, then either sign its message with personal_sign "
            "from that wallet and POST {signature_body} to {proof}, or send a new small transfer of the chain's own "
            "coin from {address} to {recipient} (with your own destination tag, on a shared address) and, once it "
            "is final, POST {deposit_body} to {proof}",
            **values,
        )
    return NextActionOut(action=NextAction.PROVE_OWNERSHIP, text=text, due_at=due_at, request=f"POST {proof}")


class CasesPublic(BaseModel):
    data: list[CaseSummary]
    count: int = Field(description="How many of your cases match the filters, on every page")
    next_cursor: str | None = Field(
        default=None, description="Pass it as cursor for the next page; null on the last page"
    )


class ErrorOut(BaseModel):
    detail: str


class ConflictOut(BaseModel):
    detail: str
    case_id: str
