"""Activities of the case workflow: each adapts one service call to Temporal, nothing more.

The work (tracing, fact gathering, quoting, signing, broadcasting, settling, the case record) lives in
``services``; every service call is idempotent, so a retry after a crash at any line finds what the
first attempt stored (signed transactions, ledger rows, timeline events by key) instead of doing it
again. A :class:`~recovery.errors.PermanentError` fails the activity without retries.

Imported by the workflow (activities are called by reference), so it imports only workflow-safe
modules at run time; the services it is given are named for type checking only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from temporalio import activity

from recovery.errors import PermanentError
from recovery.models import CaseUpdate, DepositFacts, Quote, Settlement, SignedTx, TraceResult, TxReceipt
from recovery.working_days import SlaTerms
from workflows.activity_policy import fail_fast_on_permanent
from workflows.case_messages import (
    AuditRecord,
    ExecutionCheck,
    ExecutionRequest,
    FactsRequest,
    OwnershipNeed,
    QuoteOutcome,
    QuoteRequest,
    SettleRequest,
    SignRequest,
    SlaRequest,
    TraceRequest,
    TxStatusRequest,
)

if TYPE_CHECKING:
    from services.case_services import CaseServices


class CaseActivities:
    """The registered names are those of recorded histories: renaming one breaks their replay."""

    def __init__(self, services: CaseServices) -> None:
        self._s = services

    def all(self) -> list[Any]:
        return [
            self.trace_transaction,
            self.gather_facts,
            self.quote_recovery,
            self.sign_transaction,
            self.broadcast_transaction,
            self.transaction_status,
            self.settle_case,
            self.save_case,
            self.sla_terms,
            self.record_audit,
            self.quote_or_reason,
            self.verify_manual_execution,
            self.require_ownership,
        ]

    @activity.defn(name="trace_transaction")
    async def trace_transaction(self, request: TraceRequest) -> TraceResult:
        with fail_fast_on_permanent():
            return await self._s.tracer.trace(chain=request.chain, tx_hash=request.tx_hash)

    @activity.defn(name="gather_facts")
    async def gather_facts(self, request: FactsRequest) -> DepositFacts:
        with fail_fast_on_permanent():
            return await self._s.facts.gather(
                user_id=request.user_id,
                trace=request.trace,
                log_index=request.log_index,
                vanished_from_block=request.vanished_from_block,
            )

    @activity.defn(name="quote_recovery")
    async def quote_recovery(self, request: QuoteRequest) -> Quote:
        with fail_fast_on_permanent():
            return await self._s.quotes.quote(
                request.deposit,
                on_chain=request.on_chain,
                pattern=request.pattern,
                vip=request.vip,
                case_id=request.case_id,
            )

    @activity.defn(name="quote_or_reason")
    async def quote_or_reason(self, request: QuoteRequest) -> QuoteOutcome:
        """A quote, or the reason there is none (no price, say) as a result: the UI shows a completed step
        with its reason, not a red failed activity, for what the workflow expects."""
        try:
            quote = await self._s.quotes.quote(
                request.deposit,
                on_chain=request.on_chain,
                fee_usd=request.fee_usd,
                refund=request.refund,
                pattern=request.pattern,
                vip=request.vip,
                case_id=request.case_id,
            )
        except PermanentError as err:
            return QuoteOutcome(reason=str(err))
        return QuoteOutcome(quote=quote)

    @activity.defn(name="verify_manual_execution")
    async def verify_manual_execution(self, request: ExecutionRequest) -> ExecutionCheck:
        with fail_fast_on_permanent():
            transfer, problem = await self._s.executions.verify(
                case_id=request.case_id,
                deposit=request.deposit,
                chain=request.chain,
                tx_hash=request.tx_hash,
                engineer=request.engineer,
            )
        return ExecutionCheck(transfer=transfer, problem=problem)

    @activity.defn(name="require_ownership")
    async def require_ownership(self, need: OwnershipNeed) -> None:
        with fail_fast_on_permanent():
            await self._s.records.require_ownership(
                case_id=need.case_id, chain=need.chain, address=need.address, recipient=need.recipient
            )

    @activity.defn(name="sign_transaction")
    async def sign_transaction(self, request: SignRequest) -> SignedTx:
        """Sign at most once per idempotency key; the signed transaction is stored before any broadcast."""
        with fail_fast_on_permanent():
            return await self._s.signing.sign(
                idempotency_key=request.idempotency_key,
                case_id=request.case_id,
                purpose=request.purpose,
                deposit=request.deposit,
                sweep_key=request.sweep_key,
                amount=request.amount,
            )

    @activity.defn(name="broadcast_transaction")
    async def broadcast_transaction(self, signed: SignedTx) -> TxReceipt:
        """Broadcast the stored signed transaction (idempotent) and wait until it is mined, heartbeating."""
        with fail_fast_on_permanent():
            return await self._s.broadcasting.broadcast(signed.idempotency_key, on_wait=activity.heartbeat)

    @activity.defn(name="transaction_status")
    async def transaction_status(self, request: TxStatusRequest) -> TxReceipt:
        """Kept for cases started before the workflow's REBROADCAST_WHILE_CONFIRMING patch."""
        with fail_fast_on_permanent():
            return await self._s.broadcasting.status(request.chain, request.tx_hash)

    @activity.defn(name="settle_case")
    async def settle_case(self, request: SettleRequest) -> Settlement:
        with fail_fast_on_permanent():
            return await self._s.settlement.settle(
                case_id=request.case_id,
                user_id=request.user_id,
                deposit=request.deposit,
                quote=request.quote,
                receipts=request.receipts,
                refund=request.refund,
            )

    @activity.defn(name="sla_terms")
    async def sla_terms(self, request: SlaRequest) -> SlaTerms:
        """The working-day calendar (public holidays read by the ``holidays`` package) and the SLA's days."""
        with fail_fast_on_permanent():
            return await asyncio.to_thread(self._s.calendar.terms, request.start)

    @activity.defn(name="record_audit")
    async def record_audit(self, record: AuditRecord) -> None:
        with fail_fast_on_permanent():
            await self._s.audit.record(
                case_id=record.case_id,
                key=record.key,
                engineer=record.engineer,
                action=record.action,
                attested=record.attested,
                request=record.request,
                before=record.before,
                after=record.after,
            )

    @activity.defn(name="save_case")
    async def save_case(self, update: CaseUpdate) -> None:
        with fail_fast_on_permanent():
            await self._s.records.save(update)
