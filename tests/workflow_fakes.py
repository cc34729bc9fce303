"""Fake case activities for the fast workflow tier: registered under the real activity names, they
return canned domain records and record what the workflow asked, so a test runs ``CaseWorkflow`` on
the time-skipping server with no chain, database or API.

Nothing here imports ``store`` or ``api``, nor a service that does I/O: only the domain records, the
messages and the attester (a key in memory) that signs decisions as the CLI does.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from temporalio import activity
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from recovery.models import (
    CaseStatus,
    CaseUpdate,
    DepositFacts,
    Quote,
    Settlement,
    SignedTx,
    TraceResult,
    Transfer,
    TxReceipt,
)
from recovery.roster import ApprovalPolicy
from recovery.settings import dev_roster
from recovery.working_days import SlaTerms, WorkingCalendar
from services.attesting import Attester
from store.cases import english
from workflows import search_attributes as sa
from workflows.case_messages import (
    AuditRecord,
    CaseInput,
    CaseResult,
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
from workflows.case_workflow import CaseWorkflow

TX = "0x" + "ab" * 32
DEPOSIT_ADDRESS = "0x1111111111111111111111111111111111111111"
USDT = "0x55d398326f99059fF775485246999027B3197955"
ATTESTER = Attester(Ed25519PrivateKey.generate())
"""Signs decisions as ``recovery case approve`` does; its public key is the one the policy trusts."""
POLICY = ApprovalPolicy(
    roster=dev_roster(),
    four_eyes_usd=Decimal("50000"),
    auto_limit_usd=Decimal("20000"),
    unattested="single",
    attestation_keys=[ATTESTER.public_key],
)
"""The dev configuration's rules: alice first_line up to 1,000 USD, bob engineering up to 100,000, chen
expert with no limit, vera VIP up to 100,000."""
ENGINEERS = [e.name for e in POLICY.roster]
CALENDAR = WorkingCalendar(holidays=[date(2026, 12, 25), date(2027, 1, 1)])
"""Weekends off, Christmas 2026 and New Year's Day 2027 (both Fridays): what the fake ``sla_terms`` gives."""
CLAIMANT = "user-1"


def usdt_deposit(tx_hash: str = TX, amount: int = 100 * 10**18) -> Transfer:
    return Transfer(
        chain="bsc",
        tx_hash=tx_hash,
        log_index=0,
        token_address=USDT,
        asset="USDT",
        decimals=18,
        sender="0x" + "22" * 20,
        recipient=DEPOSIT_ADDRESS,
        amount=amount,
    )


def xrp_deposit(tx_hash: str, amount: int = 500 * 10**6, memo: str | None = None) -> Transfer:
    return Transfer(
        chain="xrp",
        tx_hash=tx_hash,
        log_index=0,
        token_address=None,
        asset="XRP",
        decimals=6,
        sender="rSender" + "1" * 20,
        recipient="rExchange" + "2" * 20,
        amount=amount,
        memo=memo,
    )


def trace(
    deposit: Transfer | None,
    *,
    tx_hash: str = TX,
    chain: str | None = "bsc",
    found: bool = True,
    confirmations: int = 5,
    required: int = 3,
    block_number: int | None = 100,
    block_time_ms: int = 3000,
) -> TraceResult:
    return TraceResult(
        chain=chain,
        tx_hash=tx_hash,
        found=found,
        succeeded=True if found else None,
        block_number=block_number if found else None,
        confirmations=confirmations if found else 0,
        required_confirmations=required,
        block_time_ms=block_time_ms,
        transfers=[deposit] if deposit is not None and found else [],
    )


def facts(deposit: Transfer | None, **overrides: Any) -> DepositFacts:
    """Facts of a WRONG_NETWORK_SAME_KEY deposit (USDT on bsc, credited on ethereum) unless overridden.
    The fake ``gather_facts`` replaces ``trace`` and ``vanished_from_block`` with the request's."""
    base: dict[str, Any] = {
        "claimant_user_id": CLAIMANT,
        "trace": TraceResult(chain=deposit.chain if deposit else None, tx_hash=TX, found=False),
        "deposit": deposit,
        "owner_user_id": CLAIMANT,
        "signer_holds_key": True,
        "credited_chains": ["ethereum"],
        "engineers": list(ENGINEERS),
        "approval_policy": POLICY,
    }
    base.update(overrides)
    return DepositFacts.model_validate(base)


def quote(
    amount: int = 100 * 10**18,
    *,
    decimals: int = 18,
    asset: str = "USDT",
    net: int | None = None,
    amount_usd: Decimal = Decimal("100.00"),
) -> Quote:
    fee = amount * 5 // 100
    gas = 10**15 if decimals == 18 else 0
    return Quote(
        asset=asset,
        decimals=decimals,
        amount=amount,
        amount_usd=amount_usd,
        percent_bps=500,
        fee_usd=Decimal("5.00"),
        fee=fee,
        gas_estimate=gas,
        net_estimate=amount - fee - gas if net is None else net,
        min_fee_usd=Decimal("1"),
        max_fee_usd=Decimal("5000"),
    )


def no_price(asset: str = "USDT") -> ApplicationError:
    """What ``quote_recovery`` raises for an asset without a USD price (a PermanentError upstream)."""
    return ApplicationError(f"no USD price configured for {asset}", type="PermanentError", non_retryable=True)


def receipt(tx_hash: str, *, succeeded: bool = True, confirmations: int = 3, required: int = 3) -> TxReceipt:
    return TxReceipt(
        chain="bsc",
        tx_hash=tx_hash,
        succeeded=succeeded,
        block_number=200,
        gas_used=50_000,
        effective_gas_price=3 * 10**9,
        confirmations=confirmations,
        required_confirmations=required,
    )


SETTLEMENT = Settlement(
    recovered=100 * 10**18, credited=94 * 10**18, fee=5 * 10**18, gas=10**18, gas_native=150_000 * 10**9
)


def _next(items: list[Any], calls: int) -> Any:
    """The ``calls``-th canned answer; the last one repeats."""
    return items[min(calls, len(items) - 1)]


class FakeCase:
    """One case's activities: canned answers in, recorded requests out.

    ``traces``, ``quotes`` and ``sweep_receipts`` are answered in order, the last repeating; a quote
    that is an exception is raised. ``topup_needed=False`` signs no gas top-up (``tx_hash`` None).
    """

    def __init__(
        self,
        *,
        traces: list[TraceResult],
        facts: DepositFacts,
        quotes: list[Quote | Exception] | None = None,
        sweep_receipts: list[TxReceipt] | None = None,
        topup_needed: bool = True,
        settlement: Settlement = SETTLEMENT,
        terms: SlaTerms | None = None,
        executions: list[ExecutionCheck] | None = None,
    ) -> None:
        self.traces = traces
        self.facts = facts
        self.quotes: list[Quote | Exception] = quotes if quotes is not None else [quote()]
        self.sweep_receipts = sweep_receipts
        self.topup_needed = topup_needed
        self.settlement = settlement
        self.terms = terms or SlaTerms(calendar=CALENDAR)
        self.executions = executions or [ExecutionCheck(problem="no execution was expected")]
        self.execution_requests: list[ExecutionRequest] = []
        self.ownership_needs: list[OwnershipNeed] = []
        self.sla_requests: list[SlaRequest] = []
        self.audit: list[AuditRecord] = []

        self.trace_requests: list[TraceRequest] = []
        self.facts_requests: list[FactsRequest] = []
        self.quote_requests: list[QuoteRequest] = []
        self.sign_requests: list[SignRequest] = []
        self.broadcasts: list[SignedTx] = []
        self.status_requests: list[TxStatusRequest] = []
        self.settle_requests: list[SettleRequest] = []
        self.saved: list[CaseUpdate] = []

    # --- what the tests read ---------------------------------------------------------------------

    @property
    def keys(self) -> list[str]:
        """Timeline event keys saved, in order."""
        return [u.event.key for u in self.saved]

    @property
    def statuses(self) -> list[str]:
        return [u.event.status.value for u in self.saved]

    def saved_event(self, key: str) -> CaseUpdate:
        return next(u for u in self.saved if u.event.key == key)

    def activities(self) -> list[Callable[..., Any]]:
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

    # --- the activities --------------------------------------------------------------------------

    @activity.defn(name="trace_transaction")
    async def trace_transaction(self, request: TraceRequest) -> TraceResult:
        answer: TraceResult = _next(self.traces, len(self.trace_requests))
        self.trace_requests.append(request)
        return answer

    @activity.defn(name="gather_facts")
    async def gather_facts(self, request: FactsRequest) -> DepositFacts:
        self.facts_requests.append(request)
        return self.facts.model_copy(
            update={"trace": request.trace, "vanished_from_block": request.vanished_from_block}
        )

    @activity.defn(name="quote_recovery")
    async def quote_recovery(self, request: QuoteRequest) -> Quote:
        answer = _next(self.quotes, len(self.quote_requests))
        self.quote_requests.append(request)
        if isinstance(answer, Exception):
            raise answer
        assert isinstance(answer, Quote)
        return answer

    @activity.defn(name="quote_or_reason")
    async def quote_or_reason(self, request: QuoteRequest) -> QuoteOutcome:
        """The same canned quotes; an exception is the reason, as the real activity returns it. A fee
        override replaces the fee in USD (the fake does not convert it to base units)."""
        answer = _next(self.quotes, len(self.quote_requests))
        self.quote_requests.append(request)
        if isinstance(answer, ApplicationError):
            return QuoteOutcome(reason=answer.message)
        assert isinstance(answer, Quote)
        if request.fee_usd is not None:
            answer = answer.model_copy(update={"fee_usd": request.fee_usd, "fee_overridden": True})
        return QuoteOutcome(quote=answer)

    @activity.defn(name="verify_manual_execution")
    async def verify_manual_execution(self, request: ExecutionRequest) -> ExecutionCheck:
        answer: ExecutionCheck = _next(self.executions, len(self.execution_requests))
        self.execution_requests.append(request)
        return answer

    @activity.defn(name="require_ownership")
    async def require_ownership(self, need: OwnershipNeed) -> None:
        self.ownership_needs.append(need)

    @activity.defn(name="sign_transaction")
    async def sign_transaction(self, request: SignRequest) -> SignedTx:
        self.sign_requests.append(request)
        tx_hash = None if request.purpose == "gas_topup" and not self.topup_needed else f"0x{request.purpose}"
        return SignedTx(idempotency_key=request.idempotency_key, chain=request.deposit.chain, tx_hash=tx_hash)

    @activity.defn(name="broadcast_transaction")
    async def broadcast_transaction(self, signed: SignedTx) -> TxReceipt:
        assert signed.tx_hash is not None, "a transaction without a hash must not be broadcast"
        sweeps_before = sum(1 for b in self.broadcasts if b.idempotency_key.endswith(":sweep"))
        self.broadcasts.append(signed)
        if signed.idempotency_key.endswith(":sweep") and self.sweep_receipts:
            answer: TxReceipt = _next(self.sweep_receipts, sweeps_before)
            return answer
        return receipt(signed.tx_hash)

    @activity.defn(name="transaction_status")
    async def transaction_status(self, request: TxStatusRequest) -> TxReceipt:
        self.status_requests.append(request)
        return receipt(request.tx_hash)

    @activity.defn(name="settle_case")
    async def settle_case(self, request: SettleRequest) -> Settlement:
        self.settle_requests.append(request)
        return self.settlement

    @activity.defn(name="save_case")
    async def save_case(self, update: CaseUpdate) -> None:
        self.saved.append(update)

    @activity.defn(name="record_audit")
    async def record_audit(self, record: AuditRecord) -> None:
        self.audit.append(record)

    @activity.defn(name="sla_terms")
    async def sla_terms(self, request: SlaRequest) -> SlaTerms:
        self.sla_requests.append(request)
        return self.terms


# --- running a case on the fakes ---------------------------------------------------------------

Handle = WorkflowHandle[CaseWorkflow, CaseResult]


def new_case(chain: str | None = "bsc", tx_hash: str = TX, log_index: int | None = 0) -> CaseInput:
    return CaseInput(
        case_id=f"case-fast-{uuid.uuid4().hex[:12]}",
        user_id=CLAIMANT,
        chain=chain,
        tx_hash=tx_hash,
        log_index=log_index,
    )


@asynccontextmanager
async def running(env: WorkflowEnvironment, fake: FakeCase, case: CaseInput | None = None) -> AsyncIterator[Handle]:
    """A worker with ``fake``'s activities on a task queue of its own, and the case started on it with the
    search attributes ``workflows.starter.start_case`` gives a case."""
    case = case or new_case()
    task_queue = f"case-fast-{uuid.uuid4().hex[:12]}"
    async with Worker(env.client, task_queue=task_queue, workflows=[CaseWorkflow], activities=fake.activities()):
        handle = await env.client.start_workflow(
            CaseWorkflow.run,
            case,
            id=case.case_id,
            task_queue=task_queue,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(sa.CASE_STATUS, CaseStatus.RECEIVED.value),
                    SearchAttributePair(sa.CHAIN, case.chain or "unknown"),
                    SearchAttributePair(sa.USER_ID, case.user_id),
                ]
            ),
        )
        yield handle


async def wait_for_status(handle: Handle, status: CaseStatus, timeout: float = 10.0) -> dict[str, str]:
    """Poll the ``status`` query (real time: nothing awaits the result, so no time is skipped)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: dict[str, str] = {}
    while asyncio.get_running_loop().time() < deadline:
        last = await handle.query(CaseWorkflow.status)
        if last["status"] == status.value:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"case never reached {status}: last status {last}")


async def refused(handle: Handle, update: object, decision: object) -> str:
    """Send an update the workflow must refuse; return the refusal's message."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, decision)  # type: ignore[call-overload]
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError), cause
    return cause.message


def nothing_moved(fake: FakeCase) -> None:
    assert fake.sign_requests == [] and fake.broadcasts == [] and fake.settle_requests == []


async def saved_soon(fake: FakeCase, key: str, timeout: float = 10.0) -> None:
    """Wait (real time) until the workflow saved the event ``key``: a skipped timer fires asynchronously."""
    deadline = asyncio.get_running_loop().time() + timeout
    while key not in fake.keys:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{key} never saved; saved: {fake.keys}")
        await asyncio.sleep(0.02)


def english_equals_refs(fake: FakeCase) -> None:
    """Every event and reason the workflow saved has a ref whose English rendering is the workflow's English."""
    for update in fake.saved:
        assert update.event.text is not None, f"{update.event.key}: a timeline message without a ref"
        assert english(update.event.text) == update.event.message, update.event.key
        if update.reason is not None:
            assert update.reason_text is not None, f"{update.event.key}: a reason without a ref"
            assert english(update.reason_text) == update.reason, update.event.key


@pytest.fixture(autouse=True)
def timeline_refs_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """After every test that runs the workflow against a :class:`FakeCase`: each timeline message and reason
    it saved has a ref (docs/i18n.md) whose English is the workflow's English."""
    fakes: list[FakeCase] = []
    original = FakeCase.__init__

    def recording(self: FakeCase, **kwargs: Any) -> None:
        original(self, **kwargs)
        fakes.append(self)

    monkeypatch.setattr(FakeCase, "__init__", recording)
    yield
    for fake in fakes:
        english_equals_refs(fake)
