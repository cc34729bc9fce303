"""The case workflow's messages: its input and result, the engineers' decision, and the requests its
activities take. Their results are domain records (``recovery.models``): trace, facts, quote, signed
transaction, receipt, settlement.

Workflow-safe: only pydantic and the domain models.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

from pydantic import BaseModel

from recovery.attestation import Attestation
from recovery.models import (
    CaseStatus,
    Classification,
    DepositFacts,
    NewCase,
    Pattern,
    Quote,
    RecoveryChoice,
    Refund,
    Settlement,
    Text,
    TraceResult,
    Transfer,
    TxReceipt,
)
from recovery.roster import Approval
from recovery.units import format_units


class CaseInput(BaseModel):
    case_id: str
    user_id: str
    chain: str | None
    tx_hash: str
    log_index: int | None
    asset: str | None = None
    amount_display: str | None = None
    """Decimal string of the located amount, for the workflow's summary in the UI."""

    @classmethod
    def of(cls, case: NewCase) -> CaseInput:
        deposit = case.deposit
        return cls(
            case_id=case.case_id,
            user_id=case.user_id,
            chain=case.chain,
            tx_hash=case.tx_hash,
            log_index=case.log_index,
            asset=deposit.asset if deposit else None,
            amount_display=(
                format_units(deposit.amount, deposit.decimals)
                if deposit is not None and deposit.decimals is not None
                else None
            ),
        )


class CaseResult(BaseModel):
    case_id: str
    status: CaseStatus
    pattern: Pattern | None
    reason: str
    settlement: Settlement | None = None


class Decision(BaseModel):
    """An engineer's decision on a case awaiting approval. The UI records no identity: ``engineer`` is a
    claim unless ``attestation`` proves it (the ``recovery`` CLI and the staff API attach one)."""

    engineer: str
    reason: str = ""
    """Why (a rejection's reason is shown to the user; required there)."""
    note: str = ""
    """An approval's note for the timeline and the audit."""
    attestation: Attestation | None = None
    fee_usd: Decimal | None = None
    """An approval's fee in USD instead of the policy's percentage, within the policy's minimum and maximum."""
    action: RecoveryChoice | None = None
    """What the approval carries out, where the case allows it (default: the classified action)."""

    @property
    def text(self) -> str:
        return self.note or self.reason


class CaseEvidence(BaseModel):
    """What the classifier saw and decided, for an engineer reviewing the case (the ``evidence`` query): the
    transaction and its transfers, the recipient's owner, code on each chain, risky-token findings, whether
    a price was known, the verdict and the quote."""

    facts: DepositFacts | None = None
    classification: Classification | None = None
    quote: Quote | None = None
    approvals: list[Approval] = []


class AuditRecord(BaseModel):
    """One engineer action for the audit trail: who, what, the input, the case's state before and after."""

    case_id: str
    key: str
    engineer: str
    action: str
    attested: bool
    request: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]


class ManualExecution(BaseModel):
    """A recovery carried out outside the engine: the engine checks ``tx_hash`` on ``chain`` (the deposit's
    asset and amount, from the address holding it to the exchange's hot wallet, final) before it books it."""

    engineer: str
    chain: str
    tx_hash: str
    note: str = ""
    attestation: Attestation | None = None


class ExecutionRequest(BaseModel):
    case_id: str
    deposit: Transfer
    chain: str
    tx_hash: str
    engineer: str


class ExecutionCheck(BaseModel):
    """The transfer that recovered the deposit, or what is wrong with the transaction."""

    transfer: Transfer | None = None
    problem: str | None = None


class QuoteOutcome(BaseModel):
    """A quote, or why none can be made (no USD price, unknown decimals): an expected outcome, not a failure."""

    quote: Quote | None = None
    reason: Text = ""
    """Why there is no quote, in words the case's timeline quotes (a message, rendered in the reader's language)."""


class OwnershipNeed(BaseModel):
    """Record that the case waits for the claimant's proof of control of ``address`` (the deposit's sender)."""

    case_id: str
    chain: str
    address: str
    recipient: str


class OwnershipProven(BaseModel):
    """The status API checked the claimant's proof (``method``: signature); attested by the API's key, so a
    proof typed into the Temporal UI does not count."""

    address: str
    method: str
    reference: str
    attestation: Attestation | None = None


class QuoteAnswer(BaseModel):
    """The user's answer to a quote that needs accepting; attested by the status API, so an answer typed into
    the Temporal UI does not count."""

    accept: bool
    attestation: Attestation | None = None


class InfoRequest(BaseModel):
    """Ask the user something (their answer comes back through ``POST /v1/cases/{id}/messages``)."""

    engineer: str
    question: str


class UserMessage(BaseModel):
    """The user's answer to an engineer's question."""

    text: str


class Escalation(BaseModel):
    """Send the case to the next tier (first_line → engineering → expert)."""

    engineer: str
    reason: str


class Assignment(BaseModel):
    """Make ``to`` the engineer who owns the case."""

    engineer: str
    to: str


class SlaRequest(BaseModel):
    case_id: str
    start: date
    """The day the case first waits for an engineer (holidays are looked up from its year)."""


class TraceRequest(BaseModel):
    chain: str | None
    tx_hash: str


class FactsRequest(BaseModel):
    case_id: str
    user_id: str
    trace: TraceResult
    log_index: int | None
    vanished_from_block: int | None = None


class QuoteRequest(BaseModel):
    case_id: str
    deposit: Transfer
    on_chain: bool = True
    """False for a credit of funds already held by the exchange: no gas to pay."""
    fee_usd: Decimal | None = None
    """An engineer's fee override."""
    refund: bool = False
    """Quote a refund to the sender (two transfers from the deposit address, not one)."""
    pattern: Pattern | None = None
    """The case's pattern: it picks the fee policy (None: the default policy)."""
    vip: bool = False


class SignRequest(BaseModel):
    """Ask the signer to build and sign a transaction once, keyed by ``idempotency_key``.

    ``purpose`` is ``sweep`` (deposit address to hot wallet), ``refund`` (``amount`` back to the deposit's
    sender), ``refund_fee`` (``amount``, the fee and network cost kept, to the hot wallet) or ``gas_topup``
    (gas wallet to the deposit address, sized from everything already signed from it; ``sweep_key`` names the
    last of those).
    """

    idempotency_key: str
    case_id: str
    purpose: str
    deposit: Transfer
    sweep_key: str | None = None
    amount: int | None = None


class TxStatusRequest(BaseModel):
    chain: str
    tx_hash: str


class SettleRequest(BaseModel):
    case_id: str
    user_id: str
    deposit: Transfer
    quote: Quote
    receipts: list[TxReceipt]
    refund: Refund | None = None
