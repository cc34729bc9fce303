"""Request and response bodies of the HTTP API. Amounts are strings of integers (JSON numbers lose
precision beyond 2**53; 100 USDT at 18 decimals is 1e20)."""

from __future__ import annotations

import re
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from recovery.models import CaseHandling, CaseStatus, Pattern, Quote, SlaState
from recovery.units import format_units
from store.cases import Case, CaseEvent
from store.ledger import RefundEntry
from store.ownership import OwnershipRequirement

TX_HASH_RE = re.compile(r"^(0x)?[0-9a-fA-F]{64}$")


class CaseCreate(BaseModel):
    """A claim: the hash of the transaction that sent the funds, and optionally the chain it is on."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"tx_hash": "0x" + "ab" * 32, "chain": "bsc"}]},
    )

    tx_hash: str = Field(
        description="The transaction id: 0x and 64 hexadecimal characters on EVM chains, 64 hexadecimal "
        "characters on Bitcoin, Tron and the XRP Ledger"
    )
    chain: str | None = Field(
        default=None, description="A configured chain name; omit it to search every configured chain"
    )

    @field_validator("tx_hash", mode="before")
    @classmethod
    def _tx_hash(cls, value: object) -> str:
        value = value.strip() if isinstance(value, str) else value
        if not isinstance(value, str) or not TX_HASH_RE.fullmatch(value):
            raise ValueError(
                "must be a transaction id: 0x and 64 hexadecimal characters on EVM chains, or 64 "
                "hexadecimal characters on Bitcoin, Tron and the XRP Ledger (copy it from your wallet or a "
                "block explorer)"
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


class CaseCreated(BaseModel):
    case_id: str
    status: CaseStatus


class AmountOut(BaseModel):
    base_units: str = Field(description="Integer amount in the asset's smallest unit, as a string")
    decimal: str | None = Field(description="Human-readable amount; null when the decimals are unknown")

    @classmethod
    def of(cls, amount: int | None, decimals: int | None) -> AmountOut | None:
        if amount is None:
            return None
        return cls(base_units=str(amount), decimal=None if decimals is None else format_units(amount, decimals))


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


class SlaOut(BaseModel):
    """When an engineer will have decided: working days counted from when the case first waited for one."""

    started_at: datetime
    target_at: datetime = Field(description="The target date (15 working days by default)")
    deadline_at: datetime = Field(description="The latest date (30 working days by default)")
    paused: bool = Field(description="True while the case waits for you: the clock stands still")
    breached: bool = Field(description="True once the deadline passed; operations handle the case")

    @classmethod
    def of(cls, handling: CaseHandling | None) -> SlaOut | None:
        if handling is None or handling.sla_started_at is None:
            return None
        assert handling.sla_target_at is not None and handling.sla_deadline_at is not None
        return cls(
            started_at=handling.sla_started_at,
            target_at=handling.sla_target_at,
            deadline_at=handling.sla_deadline_at,
            paused=handling.paused,
            breached=handling.sla_state is SlaState.BREACHED,
        )


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
    def of(cls, case: Case) -> CaseSummary:
        return cls(
            case_id=case.case_id,
            status=case.status,
            pattern=case.pattern,
            chain=case.chain,
            tx_hash=case.tx_hash,
            asset=case.asset,
            amount=AmountOut.of(case.amount, case.decimals),
            created_at=case.created_at,
            updated_at=case.updated_at,
        )


class RefundOut(BaseModel):
    amount: AmountOut
    to: str = Field(description="The deposit's sender, where the refund went")
    tx_hash: str = Field(description="The refund transaction on the deposit's chain")

    @classmethod
    def of(cls, refund: RefundEntry | None, decimals: int | None) -> RefundOut | None:
        amount = None if refund is None else AmountOut.of(refund.amount, decimals)
        if refund is None or amount is None:
            return None
        return cls(amount=amount, to=refund.to_address, tx_hash=refund.tx_hash)


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
    next_action: str | None = Field(description="What the case waits for from you, if anything, and how to give it")
    timeline: list[TimelineEntry]

    @classmethod
    def build(
        cls,
        case: Case,
        events: list[CaseEvent],
        handling: CaseHandling | None = None,
        ownership: OwnershipRequirement | None = None,
        refund: RefundEntry | None = None,
    ) -> CaseDetail:
        quote = Quote.model_validate_json(case.quote_json) if case.quote_json else None
        decimals = case.decimals if case.decimals is not None else (quote.decimals if quote else None)
        settled = case.credited is not None
        gas = case.gas if settled or quote is None else quote.gas_estimate
        summary = CaseSummary.of(case).model_dump()
        summary["amount"] = AmountOut.of(case.amount, decimals)
        return cls(
            **summary,
            reason=case.reason,
            log_index=case.log_index,
            token_address=case.token_address,
            decimals=decimals,
            fees=FeeBreakdown(
                fee=AmountOut.of(case.fee, decimals),
                gas=AmountOut.of(gas, decimals),
                fee_usd=case.fee_usd,
                percent=format_units(quote.percent_bps, 2) if quote else None,
                final=settled,
                policy=quote.policy if quote else None,
                basis=(quote.basis or None) if quote else None,
                network_cost=quote.network_cost if quote else None,
                acceptance=_acceptance(quote, events, case),
            ),
            credited=AmountOut.of(case.credited, decimals),
            refund=RefundOut.of(refund, decimals),
            net_estimate=None if settled or quote is None else AmountOut.of(quote.net_estimate, decimals),
            topup_tx_hash=case.topup_tx_hash,
            sweep_tx_hash=case.sweep_tx_hash,
            sla=SlaOut.of(handling),
            next_action=next_action(case, events, ownership),
            timeline=[TimelineEntry(at=e.at, status=e.status, message=e.message) for e in events],
        )


def _acceptance(quote: Quote | None, events: list[CaseEvent], case: Case) -> str | None:
    keys = {e.key for e in events}
    if "quote-accepted" in keys:
        return "accepted"
    if "quote-offered" in keys:
        return "declined" if case.status is CaseStatus.CANCELLED else "required"
    return "required" if quote is not None and quote.acceptance_required and not case.status.terminal else None


def next_action(case: Case, events: list[CaseEvent], ownership: OwnershipRequirement | None) -> str | None:
    """What the case waits for from its user, said plainly; None when nothing is expected of them."""
    if case.status.terminal:
        return None
    latest = events[-1].key if events else ""
    if case.status is CaseStatus.AWAITING_USER and latest == "quote-offered":
        return (
            "Accept or decline the quote (fees): POST /v1/cases/"
            f'{case.case_id}/fee-acceptance {{"accept": true}} or {{"accept": false}}'
        )
    if case.status is CaseStatus.AWAITING_USER and latest.startswith("info-request"):
        return f'Answer the recovery engineer\'s question: POST /v1/cases/{case.case_id}/messages {{"text": "..."}}'
    if ownership is not None and ownership.proven_at is None:
        proof = f"/v1/cases/{case.case_id}/ownership-proof"
        deposit = (
            f"send a new small transfer of the chain's own coin from {ownership.address} to {ownership.recipient} "
            "(with your own destination tag, on a shared address) "
            f'and, once it is final, POST {{"verification_tx_hash": "..."}} to {proof}'
        )
        start = f"Prove that you control {ownership.address}: GET /v1/cases/{case.case_id}/ownership-challenge, then "
        if not ownership.address.startswith("0x"):  # only EVM wallets sign with personal_sign
            return start + deposit
        return (
            start + "either sign its message with personal_sign from that wallet and POST "
            f'{{"signature": "0x..."}} to {proof}, or {deposit}'
        )
    if case.status is CaseStatus.AWAITING_APPROVAL:
        return "Nothing: a recovery engineer is reviewing your case."
    return None


class CasesPublic(BaseModel):
    data: list[CaseSummary]
    count: int


class ErrorOut(BaseModel):
    detail: str


class ConflictOut(BaseModel):
    detail: str
    case_id: str
