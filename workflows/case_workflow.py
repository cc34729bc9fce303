"""The case workflow: one per deposit, from claim to credit or rejection.

Only workflow-safe code here: chain access, keys and the database live in activities.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from recovery.attestation import Attestation, refuse_attestation
    from recovery.choices import default_choice, refuse_choice, refuse_fee_override
    from recovery.classify import classify
    from recovery.i18n import N_, SEPARATED, SPACED
    from recovery.models import (
        Action,
        CaseHandling,
        CaseStatus,
        CaseUpdate,
        Classification,
        DepositFacts,
        MessageRef,
        Pattern,
        Quote,
        RecoveryChoice,
        Refund,
        RefValue,
        Route,
        Settlement,
        SignedTx,
        SlaState,
        TimelineEvent,
        TraceResult,
        Transfer,
        TxReceipt,
        joined_refs,
        ref_amount,
        ref_date,
        ref_decimal,
        text_param,
        text_ref,
    )
    from recovery.names import (
        CHOICE_NAMES,
        PATTERN_NAMES,
        PROOF_METHOD_NAMES,
        ROUTE_NAMES,
        STATUS_NAMES,
        TIER_NAMES,
    )
    from recovery.roster import ESCALATION, Approval, ApprovalPolicy, Tier, refuse_approval, refuse_decision
    from recovery.units import format_units
    from recovery.working_days import SlaEvent, SlaPlan, SlaTerms, next_sla_event, plan_sla
    from workflows import search_attributes as sa
    from workflows.activity_policy import LIVENESS, RETRY
    from workflows.case_activities import CaseActivities
    from workflows.case_messages import (
        Assignment,
        AuditRecord,
        CaseEvidence,
        CaseInput,
        CaseResult,
        Decision,
        Escalation,
        ExecutionRequest,
        FactsRequest,
        InfoRequest,
        ManualExecution,
        OwnershipNeed,
        OwnershipProven,
        QuoteAnswer,
        QuoteRequest,
        SettleRequest,
        SignRequest,
        SlaRequest,
        TraceRequest,
        TxStatusRequest,
        UserMessage,
    )

SHORT = timedelta(seconds=30)
CHAIN_CALL = timedelta(minutes=2)
A = TypeVar("A")
R = TypeVar("R")
MIN_POLL = timedelta(seconds=1)
M = TypeVar("M")


def _update(
    description: str,
) -> Callable[[Callable[[Any, M], Awaitable[R]]], workflow.UpdateMethodMultiParam[[Any, M], R]]:
    """``@workflow.update(description=...)`` typed like the bare decorator: the SDK's keyword overload keeps
    the coroutine as the return type, so ``execute_update`` on such an update would type as a coroutine."""
    decorator: Any = workflow.update(description=description)
    return decorator  # type: ignore[no-any-return]


REBROADCAST_WHILE_CONFIRMING = "rebroadcast-while-confirming"
"""Patch id: cases started before it poll ``transaction_status``; later ones re-send while they wait."""
OFF_ENGINE_NO_QUOTE = "off-engine-no-quote"
"""Patch id: a case the engine cannot carry out is not quoted (cases started before it were)."""
ROSTER_AND_FOUR_EYES = "roster-and-four-eyes"
"""Patch id: cases started after it check approvals against the roster's tiers and limits, need two
approvals above the four-eyes threshold, and go to an engineer above the automatic limit."""
SLA_TIMERS = "sla-timers"
"""Patch id: cases started after it (and after ROSTER_AND_FOUR_EYES) keep working-day SLA timers while they
wait for engineers (reminders, escalation at the target, breach at the deadline), can be escalated and
assigned, and record their tier, assignee and SLA."""
PENDING_BACKOFF = "pending-backoff"
"""Patch id: cases started after it save a confirmation count once (not on every poll) and poll an unmined
transaction with exponential backoff up to MAX_POLL: three days pending stay well below Temporal's history
limits (before: about 18 events every poll interval, past the 51,200-event limit in under two days)."""
AUDIT_TRAIL = "audit-trail"
"""Patch id: cases started after it write an append-only audit row for every accepted engineer action."""
MANUAL_ACTIONS = "manual-actions"
"""Patch id: cases started after it (and after AUDIT_TRAIL) quote with ``quote_or_reason`` (no price is a
step with its reason, not a failed activity), take an approval's fee override and action, and accept a
recovery carried out outside the engine (``record_manual_execution``), checked on chain."""
OWNERSHIP_PROOF = "ownership-proof"
"""Patch id: cases started after it (and after MANUAL_ACTIONS) worth more than the policy's
``ownership_proof_usd`` move nothing until the claimant proves control of the sending address."""
REFUND_TO_SENDER = "refund-to-sender"
"""Patch id: cases started after it (and after OWNERSHIP_PROOF) can be approved with action ``refund``: the
deposit goes back to its sender, after the sender's ownership proof, whatever the amount."""
FEE_POLICIES = "fee-policies"
"""Patch id: cases started after it (and after REFUND_TO_SENDER) refuse manual work below the fee policy's
eligibility floor, and wait for the user to accept a quote the policy says needs accepting."""
UNDECODABLE_ANSWERS = "undecodable-answers"
"""Patch id: cases started after it stop waiting for a transaction whose answer the adapter could not decode
(found, no block, ``unread``) after ``UNDECODABLE_POLLS`` such answers in a row, instead of polling it for the
pending limit as if it were unmined; the classifier then says the answer could not be read."""
UNDECODABLE_POLLS = 3
"""Undecodable answers in a row before the case stops waiting (a node's passing hiccup is polled through)."""
OWNERSHIP_PROVER = "status-api"
"""The name the status API attests ownership proofs under (it is no engineer)."""
PENDING_LIMIT = timedelta(days=3)
"""How long a claimed transaction may stay unmined before the case gives up on it."""
MAX_POLL = timedelta(minutes=10)
MAX_ANSWER_CHARS = 2_000


# --- timeline messages and reasons: English and message ref together (docs/i18n.md) -------------

Text = tuple[str, MessageRef]
"""A timeline message or a reason: its English and its message ref, the ref rendered in English being the
English (the workflow renders nothing: Babel stays out of the sandbox)."""
Value = RefValue
"""A value in a message: text or an integer as it is (an engineer's or a user's own words stay as typed), or
its English with a tagged value (:func:`_amount`, :func:`_date`) or a nested :data:`Text`."""

NO_QUOTE = N_("The fee cannot be quoted: {reason}. An engineer must decide on this case.")
SWEEP_REVERTED = N_(
    "Sweep {tx_hash} reverted on {chain} in block {block}; nothing was credited. An operator must investigate this "
    "case."
)
REFUND_REVERTED = N_(
    "Refund {tx_hash} reverted on {chain} in block {block}; nothing was credited. An operator must investigate "
    "this case."
)
FEE_TRANSFER_REVERTED = N_(
    "The fee transfer {tx_hash} reverted on {chain} in block {block}; nothing was credited. An operator must "
    "investigate this case."
)
_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


_ref = text_ref
"""A message's English and its ref (``msgid`` marked with ``N_`` where it is written)."""


def _amount(base_units: int, decimals: int | None, asset: str) -> Value:
    """An amount of ``asset``, formatted per language when read; its English as Babel writes it (``1,234.5
    USDT``), built here without Babel."""
    tagged = ref_amount(base_units, decimals, asset)
    if decimals is None or isinstance(tagged, str):
        return f"{base_units} {asset}"  # as ref_amount writes it: no decimals to format with
    whole, _, fraction = format_units(abs(base_units), decimals).partition(".")
    sign = "-" if base_units < 0 else ""
    return f"{sign}{int(whole):,}" + (f".{fraction}" if fraction else "") + f" {asset}", tagged


def _decimal(value: Decimal) -> tuple[str, dict[str, str]]:
    """A number (a USD figure), formatted per language when read; its English as Babel writes it (``1,234.50``:
    grouped, every decimal kept), built here without Babel."""
    return f"{value:,f}", ref_decimal(value)


def _date(value: datetime | date) -> tuple[str, dict[str, str]]:
    """A calendar day, in the reader's long form; its English as Babel writes it (``January 13, 2027``)."""
    day = value.date() if isinstance(value, datetime) else value
    return f"{_MONTHS[day.month - 1]} {day.day}, {day.year}", ref_date(day)


def _block(number: int | None) -> Value:
    return "?" if number is None else number


def _reason(verdict: Classification) -> Value:
    """The classifier's reason inside another sentence (its English alone where it has no ref)."""
    return verdict.reason if verdict.text is None else (verdict.reason, verdict.text)


def _named(msgid: str) -> Text:
    """A code's name (``recovery.names``: a pattern, a tier, ...), in the reader's language."""
    return msgid, MessageRef(msgid=msgid)


def _approval_note(decision: Decision) -> Value:
    """An approval's note on the timeline: the engineer's own words (as typed), then the fee and the action the
    approval set; ``""`` when there is none of these."""
    parts: list[Value] = [decision.text] if decision.text.strip() else []
    if decision.fee_usd is not None:
        parts.append(_ref(N_("(fee set to {fee_usd} USD)"), fee_usd=_decimal(decision.fee_usd)))
    if decision.action is not None:
        parts.append(_ref(N_("(action: {action})"), action=_named(CHOICE_NAMES[decision.action])))
    return joined_refs(parts, SPACED) if parts else ""


def _refusal(msgid: str, /, **params: Value) -> ApplicationError:
    """A refusal of an update the status API sends for the user (an answer, a proof, an answer to the quote): its
    English is the message, its message ref the details, so that the user reads it in their language."""
    english, ref = _ref(msgid, **params)
    return ApplicationError(english, ref.model_dump(mode="json"), type="ValueError", non_retryable=True)


def _approver(approval: Approval) -> Text:
    """``bob (attested)``: an approving engineer and how their approval came."""
    if approval.attested:
        return _ref(N_("{engineer} (attested)"), engineer=approval.engineer)
    return _ref(N_("{engineer} (typed in)"), engineer=approval.engineer)


class _Expired(Exception):
    """The user did not answer a request for information in time (the message says so; ``text`` is its ref)."""

    def __init__(self, reason: Text) -> None:
        english, self.text = reason
        super().__init__(english)


class CaseState:
    """What the UI's query and the update validators read."""

    def __init__(self) -> None:
        self.status = CaseStatus.RECEIVED
        self.pattern: Pattern | None = None
        self.waiting_for = "Starting"
        self.engineers: list[str] = []
        self.policy: ApprovalPolicy | None = None
        """The roster and approval rules (None for cases started before ROSTER_AND_FOUR_EYES)."""
        self.user_id = ""
        self.approvals: list[Approval] = []
        self.approval_notes: list[Value] = []
        """The timeline's note of each approval, in the order of ``approvals`` (:func:`_approval_note`)."""
        self.tier = Tier.FIRST_LINE
        self.assigned_to: str | None = None
        self.sla_terms: SlaTerms | None = None
        self.sla: SlaPlan | None = None
        """None: no SLA timers (cases started before SLA_TIMERS, or not yet waiting for an engineer)."""
        self.sla_state = SlaState.ON_TRACK
        self.sla_fired: list[str] = []
        self.escalations = 0
        self.audits = 0
        self.info_requests = 0
        self.info_pending: InfoRequest | None = None
        self.answer: str | None = None
        self.paused = False
        self.assignments = 0
        self.decision: tuple[bool, Decision] | None = None
        self.approving = False
        self.quote: Quote | None = None
        self.quote_attempts = 0
        self.action = Action.SWEEP
        self.choice: RecoveryChoice | None = None
        """The approving engineer's choice of action (None: the classified action)."""
        self.execution: Transfer | None = None
        """The transfer of a recovery carried out outside the engine, checked on chain."""
        self.executed_by: str | None = None
        self.ownership_needed = False
        self.ownership: OwnershipProven | None = None
        self.quote_offered = False
        self.quote_answer: QuoteAnswer | None = None

    @property
    def amount_usd(self) -> Decimal | None:
        return self.quote.amount_usd if self.quote is not None else None

    def approvals_needed(self) -> int:
        return self.policy.approvals_needed(self.amount_usd) if self.policy is not None else 1

    @property
    def approved(self) -> bool:
        return self.policy is not None and len(self.approvals) >= self.approvals_needed()


@workflow.defn
class CaseWorkflow:
    def __init__(self) -> None:
        self._state = CaseState()
        self._case: CaseInput | None = None
        self._deposit: Transfer | None = None
        self._seen_in_block: int | None = None
        self._pending_backoff = False
        self._audit_trail = False
        self._facts: DepositFacts | None = None
        self._verdict: Classification | None = None

    @workflow.run
    async def run(self, case: CaseInput) -> CaseResult:
        result = await self._run(case)
        # an engineer's update (its audit row, its timeline event) finishes before the case does
        await workflow.wait_condition(workflow.all_handlers_finished)
        return result

    async def _run(self, case: CaseInput) -> CaseResult:
        self._case = case
        self._state.user_id = case.user_id
        roster_rules = workflow.patched(ROSTER_AND_FOUR_EYES)
        self._sla_timers = roster_rules and workflow.patched(SLA_TIMERS)
        self._pending_backoff = workflow.patched(PENDING_BACKOFF)
        self._audit_trail = roster_rules and workflow.patched(AUDIT_TRAIL)
        self._manual_actions = self._audit_trail and workflow.patched(MANUAL_ACTIONS)
        self._ownership_proof = self._manual_actions and workflow.patched(OWNERSHIP_PROOF)
        self._refunds = self._ownership_proof and workflow.patched(REFUND_TO_SENDER)
        self._fee_policies = self._refunds and workflow.patched(FEE_POLICIES)
        await self._save(
            "tracing",
            CaseStatus.TRACING,
            "Tracing the transaction",
            waiting="tracing",
            text=MessageRef(msgid=N_("Tracing the transaction")),
        )

        trace = await self._wait_for_deposit_depth(case)
        facts: DepositFacts = await _activity(
            CaseActivities.gather_facts,
            FactsRequest(
                case_id=case.case_id,
                user_id=case.user_id,
                trace=trace,
                log_index=case.log_index,
                vanished_from_block=None if trace.found else self._seen_in_block,
            ),
            summary=f"gather the facts of {_short(case.tx_hash)} (owner, code, credits, token checks)",
        )
        self._state.engineers = facts.engineers
        if roster_rules:
            self._state.policy = facts.approval_policy or ApprovalPolicy()
        verdict = classify(facts)
        self._facts, self._verdict = facts, verdict
        self._state.pattern = verdict.pattern
        self._state.action = verdict.action
        self._upsert_deposit_attributes(verdict, facts.deposit)
        if not verdict.recoverable or facts.deposit is None:
            return await self._reject(verdict.pattern, verdict.reason, text=verdict.text)
        deposit = facts.deposit

        classified, classified_text = _ref(
            N_("Classified as {pattern} ({route}): {reason}"),
            pattern=_named(PATTERN_NAMES[verdict.pattern]),
            route=_named(ROUTE_NAMES[verdict.route]),
            reason=_reason(verdict),
        )
        await self._save(
            "classified",
            CaseStatus.CLASSIFIED,
            classified,
            waiting="quoting the fee",
            text=classified_text,
            pattern=verdict.pattern,
            reason=verdict.reason,
            reason_text=verdict.text,
            chain=deposit.chain,
            asset=deposit.asset,
            token_address=deposit.token_address,
            decimals=deposit.decimals,
            amount=deposit.amount,
        )
        self._deposit = deposit
        off_engine = verdict.action is Action.OFF_ENGINE and workflow.patched(OFF_ENGINE_NO_QUOTE)
        quote = None if off_engine else await self._quote(deposit)
        if quote is not None and quote.net_estimate <= 0:
            too_small, text = _too_small(quote)
            return await self._reject(Pattern.TOO_SMALL, too_small, text=text)

        verdict = await self._above_auto_limit(verdict, quote)
        self._verdict = verdict
        # without a quote even an automatic pattern needs an engineer
        if verdict.route is Route.MANUAL or quote is None:
            floor = quote.eligible_from_usd if quote is not None and self._fee_policies else None
            if quote is not None and floor is not None and quote.amount_usd < floor:
                reason, text = _ref(
                    N_(
                        "{reason} Recovering it takes an engineer's work, which the fee policy offers only for "
                        "deposits worth more than {floor} USD; this one is worth {value} USD."
                    ),
                    reason=_reason(verdict),
                    floor=_decimal(floor),
                    value=_decimal(quote.amount_usd),
                )
                return await self._reject(verdict.pattern, reason, text=text)
            try:
                approved = await self._await_decision(verdict)
            except _Expired as expired:
                return await self._close(CaseStatus.EXPIRED, verdict.pattern, str(expired), text=expired.text)
            if not approved:
                reason, text = self._rejection_reason()
                return await self._reject(verdict.pattern, reason, text=text)
            try:
                if self._state.choice is RecoveryChoice.REFUND:
                    await self._require_ownership(refund=True)
                await self._await_ownership(deposit)
            except _Expired as expired:
                return await self._close(CaseStatus.EXPIRED, verdict.pattern, str(expired), text=expired.text)
            quote = self._state.quote
        assert quote is not None and quote.net_estimate > 0
        if self._fee_policies and quote.acceptance_required and self._state.execution is None:
            try:
                accepted = await self._await_acceptance(quote)
            except _Expired as expired:
                return await self._close(CaseStatus.EXPIRED, verdict.pattern, str(expired), text=expired.text)
            if not accepted:
                reason, text = _ref(
                    N_("You declined the quote (fee {fee_usd} USD), so the case is closed; nothing was moved."),
                    fee_usd=_decimal(quote.fee_usd),
                )
                return await self._close(CaseStatus.CANCELLED, verdict.pattern, reason, text=text)

        if self._state.execution is not None:
            settlement = await self._settle(
                case, deposit.model_copy(update={"amount": self._state.execution.amount}), quote, []
            )
        elif verdict.action is Action.CREDIT:
            settlement = await self._credit(case, deposit, quote)
        elif self._state.choice is RecoveryChoice.REFUND:
            settlement = await self._refund(case, deposit, quote)
        else:
            settlement = await self._recover(case, deposit, quote)
        return CaseResult(
            case_id=case.case_id,
            status=CaseStatus.COMPLETED,
            pattern=verdict.pattern,
            reason=verdict.reason,
            settlement=settlement,
        )

    # --- the engineer's decision -------------------------------------------------------------

    @_update(
        'Approve the case: {"engineer": "bob", "note": "...", "fee_usd": "25.00", '
        '"action": "sweep|credit|refund"} (note, fee_usd and action optional).'
    )
    async def approve(self, decision: Decision) -> str:
        before = self._snapshot()
        self._state.approving = True
        try:
            quote = self._state.quote
            if quote is None or quote.net_estimate <= 0:
                # no usable quote yet (no price, or too small): quote again, prices may have changed
                assert self._deposit is not None
                quote = await self._quote(self._deposit)
            if quote is None:
                raise ApplicationError(
                    "The fee still cannot be quoted (see the case timeline). Configure a USD price for the "
                    "asset and approve again, or reject the case."
                )
            refund = decision.action is RecoveryChoice.REFUND or (
                decision.action is None and self._state.choice is RecoveryChoice.REFUND
            )
            if (decision.fee_usd is not None or refund) and self._manual_actions:
                assert self._deposit is not None
                quote = await self._quote(self._deposit, fee_usd=decision.fee_usd, refund=refund)
                if quote is None:
                    raise ApplicationError("The fee cannot be quoted (see the case timeline).")
            if quote.net_estimate <= 0:
                raise ApplicationError(_too_small(quote)[0] + " Reject the case instead.")
            if self._state.policy is None:
                self._state.decision = (True, decision)
                return f"approved by {decision.engineer}"
            refused = self._refuse_approval(decision)  # again: the quote may have changed the amount
            if refused is not None:
                raise ApplicationError(refused)
            note = decision.text
            if decision.fee_usd is not None:
                note = f"{note} (fee set to {decision.fee_usd} USD)".strip()
            if decision.action is not None:
                self._state.choice = decision.action
                note = f"{note} (action: {decision.action})".strip()
            self._state.approvals.append(
                Approval(engineer=decision.engineer, attested=decision.attestation is not None, note=note)
            )
            self._state.approval_notes.append(_approval_note(decision))
        finally:
            self._state.approving = False
        await self._audit("approve", decision.engineer, decision.attestation is not None, decision, before)
        if self._state.approved:
            return f"approved by {decision.engineer}"
        return f"approved by {decision.engineer}: 1 of {self._state.approvals_needed()} approvals, waiting for a second"

    @approve.validator
    def _validate_approve(self, decision: Decision) -> None:
        self._validate_decision(decision, action="approve")
        if self._state.action is Action.OFF_ENGINE:
            then = (
                "then record it with the record_manual_execution update (`recovery case record-execution`)"
                if self._manual_actions
                else "then reject the case with a reason that records what was done"
            )
            raise ValueError(
                f"The engine cannot carry out this recovery (see the case's reason): do it outside the engine, {then}."
            )
        refused = self._refuse_approval(decision) or self._refuse_options(decision)
        if refused is not None:
            raise ValueError(refused)

    def _refuse_options(self, decision: Decision) -> str | None:
        """Why an approval's fee override or action cannot be taken, or None."""
        if decision.fee_usd is None and decision.action is None:
            return None
        if not self._manual_actions:
            return "This case was started before approvals took a fee or an action: approve without them."
        quote = self._state.quote
        if decision.fee_usd is not None and quote is not None and quote.min_fee_usd is not None:
            refused = refuse_fee_override(decision.fee_usd, min_usd=quote.min_fee_usd, max_usd=quote.max_fee_usd)
            if refused is not None:
                return refused
        if decision.action is not None and decision.action is not default_choice(self._state.action):
            return refuse_choice(
                decision.action,
                action=self._state.action,
                sender_is_contract=self._facts is not None and self._facts.sender_is_contract,
                refunds_available=self._refunds,
            )
        return None

    def _refuse_approval(self, decision: Decision) -> str | None:
        if self._state.policy is None:
            return None
        return refuse_approval(
            self._state.policy,
            engineer=decision.engineer,
            case_user_id=self._state.user_id,
            amount_usd=self._state.amount_usd,
            approvals=self._state.approvals,
            attested=decision.attestation is not None,
            case_tier=self._state.tier,
        )

    @_update('Reject the case: {"engineer": "bob", "reason": "..."}; the user reads the reason.')
    async def reject(self, decision: Decision) -> str:
        before = self._snapshot()
        self._state.decision = (False, decision)
        await self._audit("reject", decision.engineer, decision.attestation is not None, decision, before)
        return f"rejected by {decision.engineer}"

    @reject.validator
    def _validate_reject(self, decision: Decision) -> None:
        self._validate_decision(decision, action="reject")
        if not decision.reason.strip():
            raise ValueError("A rejection needs a reason the user can read.")

    def _validate_decision(self, decision: Decision, *, action: str) -> None:
        if self._state.status is not CaseStatus.AWAITING_APPROVAL:
            raise ValueError(f"The case is {self._state.status}, not awaiting approval.")
        if self._state.decision is not None or self._state.approving or self._state.approved:
            raise ValueError("A decision was already made on this case.")
        if self._state.info_pending is not None:
            raise ValueError("The case has just asked the user a question: decide once they have answered.")
        policy = self._state.policy
        if policy is not None:
            refused = refuse_decision(policy, engineer=decision.engineer, case_user_id=self._state.user_id)
            if refused is None and decision.attestation is not None:
                refused = self._refuse_attestation(decision, action=action)
            if refused is not None:
                raise ValueError(refused)
        elif decision.engineer not in self._state.engineers:
            raise ValueError(
                f"{decision.engineer!r} is not on the roster of recovery engineers "
                f"({', '.join(self._state.engineers) or 'empty'})."
            )

    def _refuse_attestation(self, decision: Decision, *, action: str) -> str | None:
        assert self._state.policy is not None and decision.attestation is not None
        # the signature check loads parts of ``cryptography`` on first use: from outside the sandbox, whose
        # re-import of a native extension would abort the worker (it is deterministic, pure computation)
        with workflow.unsafe.imports_passed_through():
            return refuse_attestation(
                decision.attestation,
                keys=self._state.policy.attestation_keys,
                case_id=workflow.info().workflow_id,
                engineer=decision.engineer,
                action=action,
                now=workflow.now(),
            )

    @_update(
        "Book a recovery done outside the engine (contract redeploy, issuer's rescue, fork keys, "
        "non-EVM chain): {engineer, chain, tx_hash, note}. The engine checks the transaction on chain first."
    )
    async def record_manual_execution(self, execution: ManualExecution) -> str:
        before = self._snapshot()
        self._state.approving = True
        try:
            assert self._case is not None and self._deposit is not None
            quote = self._state.quote
            if quote is None or quote.net_estimate <= 0:
                quote = await self._quote(self._deposit, on_chain=False)
            if quote is None:
                raise ApplicationError(
                    "The fee cannot be quoted (see the case timeline): configure a USD price for the asset and "
                    "record the execution again."
                )
            if quote.net_estimate <= 0:
                raise ApplicationError(_too_small(quote)[0] + " Reject the case instead.")
            self._state.quote = quote
            refused = self._refuse_execution(execution)  # again: the quote may have changed the amount
            if refused is not None:
                raise ApplicationError(refused)
            check = await _activity(
                CaseActivities.verify_manual_execution,
                ExecutionRequest(
                    case_id=self._case.case_id,
                    deposit=self._deposit,
                    chain=execution.chain,
                    tx_hash=execution.tx_hash,
                    engineer=execution.engineer,
                ),
                summary=f"check the manual execution {_short(execution.tx_hash)} on {execution.chain}",
            )
            if check.transfer is None:
                raise ApplicationError(f"Refused: {check.problem}")
            self._state.execution = check.transfer
            self._state.executed_by = execution.engineer
        finally:
            self._state.approving = False
        await self._audit(
            "record_manual_execution", execution.engineer, execution.attestation is not None, execution, before
        )
        return f"recovery in {execution.tx_hash} checked on {execution.chain} and booked"

    @record_manual_execution.validator
    def _validate_manual_execution(self, execution: ManualExecution) -> None:
        if not self._manual_actions:
            raise ValueError(
                "This case was started before manual executions could be recorded: reject it with a reason."
            )
        as_decision = Decision(engineer=execution.engineer, note=execution.note, attestation=execution.attestation)
        self._validate_decision(as_decision, action="record_manual_execution")
        if not execution.chain.strip() or not execution.tx_hash.strip():
            raise ValueError("Name the chain and the transaction hash of the recovery.")
        if self._deposit is None:
            raise ValueError("The case has no located deposit to match a transaction against.")
        refused = self._refuse_execution(execution)
        if refused is not None:
            raise ValueError(refused)

    def _refuse_execution(self, execution: ManualExecution) -> str | None:
        """The approval rules (roster, tier, limit, four-eyes tier, attestation) for who books the execution."""
        assert self._state.policy is not None
        return refuse_approval(
            self._state.policy,
            engineer=execution.engineer,
            case_user_id=self._state.user_id,
            amount_usd=self._state.amount_usd,
            approvals=[],
            attested=execution.attestation is not None,
            case_tier=self._state.tier,
        )

    @workflow.query(description="What the classifier saw and decided, the quote and the approvals so far.")
    def evidence(self) -> CaseEvidence:
        return CaseEvidence(
            facts=self._facts,
            classification=self._verdict,
            quote=self._state.quote,
            approvals=list(self._state.approvals),
        )

    @workflow.query(description="The case's status, pattern, what it waits for and the approvals so far.")
    def status(self) -> dict[str, str]:
        return {
            "status": self._state.status.value,
            "pattern": self._state.pattern.value if self._state.pattern else "",
            "waiting_for": self._state.waiting_for,
            "approvals": ", ".join(
                f"{a.engineer} ({'attested' if a.attested else 'typed in'})" for a in self._state.approvals
            ),
            "approvals_needed": str(self._state.approvals_needed()),
            "tier": self._state.tier.value,
            "assigned_to": self._state.assigned_to or "",
            "sla_state": self._state.sla_state.value if self._state.sla else "",
            "sla_target_at": self._state.sla.target_at.isoformat() if self._state.sla else "",
            "sla_deadline_at": self._state.sla.deadline_at.isoformat() if self._state.sla else "",
            "paused": str(self._state.paused).lower(),
        }

    async def _quote(
        self, deposit: Transfer, *, fee_usd: Decimal | None = None, on_chain: bool | None = None, refund: bool = False
    ) -> Quote | None:
        """The fee quote, or None when it cannot be made (no USD price, unknown token decimals)."""
        assert self._case is not None
        self._state.quote_attempts += 1
        request = QuoteRequest(
            case_id=self._case.case_id,
            deposit=deposit,
            on_chain=self._state.action is not Action.CREDIT if on_chain is None else on_chain,
            fee_usd=fee_usd,
            refund=refund,
            pattern=self._state.pattern,
            vip=self._facts is not None and self._facts.claimant_vip,
        )
        if self._manual_actions:
            outcome = await _activity(
                CaseActivities.quote_or_reason, request, summary=f"quote the fee of {deposit.amount_text()}"
            )
            if outcome.quote is None:
                message, text = _ref(NO_QUOTE, reason=text_param(outcome.reason))
                await self._save(f"no-quote-{self._state.quote_attempts}", self._state.status, message, text=text)
                return None
            self._state.quote = outcome.quote
            self._set_amount_usd(outcome.quote)
            return outcome.quote
        try:
            quote = await _activity(
                CaseActivities.quote_recovery, request, summary=f"quote the fee of {deposit.amount_text()}"
            )
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.non_retryable):
                raise
            message, text = _ref(NO_QUOTE, reason=cause.message)
            await self._save(f"no-quote-{self._state.quote_attempts}", self._state.status, message, text=text)
            return None
        self._state.quote = quote
        self._set_amount_usd(quote)
        return quote

    async def _await_decision(self, verdict: Classification) -> bool:
        needed = self._state.approvals_needed()
        waiting = (
            _ref(
                N_(
                    "Waiting for a recovery engineer to approve or reject ({pattern}); it needs {needed} approvals "
                    "by distinct engineers (four-eyes)"
                ),
                pattern=_named(PATTERN_NAMES[verdict.pattern]),
                needed=needed,
            )
            if needed > 1
            else _ref(
                N_("Waiting for a recovery engineer to approve or reject ({pattern})"),
                pattern=_named(PATTERN_NAMES[verdict.pattern]),
            )
        )
        handling: CaseHandling | None = None
        if self._sla_timers:
            if self._facts is not None and self._facts.claimant_vip:
                self._state.tier = Tier.VIP  # a VIP's case skips first and second line
            await self._start_sla()
            handling = self._handling()
            assert self._state.sla is not None
            waiting = _ref(
                N_("{waiting}. Target: {target}, at the latest {deadline}"),
                waiting=waiting,
                target=_date(self._state.sla.target_at),
                deadline=_date(self._state.sla.deadline_at),
            )
        ownership = await self._require_ownership()
        if ownership is not None:
            waiting = _ref(N_("{waiting}. {ownership}"), waiting=waiting, ownership=ownership)
        message, text = waiting
        await self._save(
            "awaiting-approval",
            CaseStatus.AWAITING_APPROVAL,
            message,
            waiting="an engineer's approve or reject update",
            text=text,
            handling=handling,
        )
        if self._state.policy is None:
            await workflow.wait_condition(lambda: self._state.decision is not None)
        else:
            await self._collect_approvals()
        execution = self._state.execution
        if execution is not None:
            quote = self._state.quote
            assert quote is not None
            message, text = _ref(
                N_("Recovered outside the engine by {engineer}: {amount} in {tx_hash} on {chain}, checked on chain"),
                engineer=str(self._state.executed_by),
                amount=_amount(execution.amount, quote.decimals, quote.asset),
                tx_hash=execution.tx_hash,
                chain=execution.chain,
            )
            await self._save(
                "manual-execution", CaseStatus.AWAITING_APPROVAL, message, waiting="crediting the user", text=text
            )
            return True
        if self._state.decision is None:  # approved by every engineer needed
            names = _approver(self._state.approvals[0])
            for approval in self._state.approvals[1:]:
                names = _ref(N_("{first} and {second}"), first=names, second=_approver(approval))
            notes = [n for n in self._state.approval_notes if n]  # the engineers' own words, and what they set
            message, text = (
                _ref(N_("Approved by {engineer}: {note}"), engineer=names, note=joined_refs(notes, SEPARATED))
                if notes
                else _ref(N_("Approved by {engineer}"), engineer=names)
            )
            await self._save("decision-approved", CaseStatus.AWAITING_APPROVAL, message, waiting="recovery", text=text)
            return True
        approved, decision = self._state.decision
        verb = "approved" if approved else "rejected"
        if approved:
            message, text = (
                _ref(N_("Approved by {engineer}: {note}"), engineer=decision.engineer, note=decision.reason)
                if decision.reason
                else _ref(N_("Approved by {engineer}"), engineer=decision.engineer)
            )
        else:
            message, text = (
                _ref(N_("Rejected by {engineer}: {note}"), engineer=decision.engineer, note=decision.reason)
                if decision.reason
                else _ref(N_("Rejected by {engineer}"), engineer=decision.engineer)
            )
        await self._save(
            f"decision-{verb}",
            CaseStatus.AWAITING_APPROVAL,
            message,
            waiting="recovery" if approved else "closing",
            text=text,
        )
        return approved

    async def _collect_approvals(self) -> None:
        """Until a rejection or every approval needed; each approval short of that is on the timeline."""
        announced = 0
        while True:
            await self._wait_for_engineers(functools.partial(self._decided_or_more_approvals, announced))
            if self._state.decision is not None or self._state.approved or self._state.execution is not None:
                return
            announced = len(self._state.approvals)
            latest = self._state.approvals[-1]
            note = self._state.approval_notes[-1]
            needed = self._state.approvals_needed()
            message, text = (
                _ref(
                    N_(
                        "Approved by {engineer}, {count} of {needed} approvals: {note}. Waiting for a second engineer "
                        "(tier engineering or above, attested)."
                    ),
                    engineer=_approver(latest),
                    count=announced,
                    needed=needed,
                    note=note,
                )
                if note
                else _ref(
                    N_(
                        "Approved by {engineer}, {count} of {needed} approvals. Waiting for a second engineer (tier "
                        "engineering or above, attested)."
                    ),
                    engineer=_approver(latest),
                    count=announced,
                    needed=needed,
                )
            )
            await self._save(
                f"approval-{announced}",
                CaseStatus.AWAITING_APPROVAL,
                message,
                waiting=f"a second approval ({announced} of {needed})",
                text=text,
            )

    # --- ownership of the sending address ----------------------------------------------------------

    async def _require_ownership(self, *, refund: bool = False) -> Text | None:
        """Above the policy's ``ownership_proof_usd``, and before any refund, the claimant must prove control
        of the sender before anything moves; the requirement is recorded (the status API issues the challenge)
        and the sentence for the timeline returned (None: nothing to say). The proof may come while engineers
        review. A contract sender can sign nothing: the engineers must satisfy themselves of ownership from the
        evidence."""
        policy, deposit, amount = self._state.policy, self._deposit, self._state.amount_usd
        if not self._ownership_proof or policy is None or deposit is None or self._state.ownership_needed:
            return None
        if not refund and (
            policy.ownership_proof_usd is None or amount is None or amount <= policy.ownership_proof_usd
        ):
            return None
        if self._facts is not None and self._facts.sender_is_contract:
            return _ref(
                N_(
                    "The sender {sender} is a contract, which cannot sign an ownership proof: the engineers check "
                    "who controls it from the evidence"
                ),
                sender=deposit.sender,
            )
        assert self._case is not None
        self._state.ownership_needed = True
        await _activity(
            CaseActivities.require_ownership,
            OwnershipNeed(
                case_id=self._case.case_id, chain=deposit.chain, address=deposit.sender, recipient=deposit.recipient
            ),
            timeout=SHORT,
            summary=f"ownership proof needed: {_short(deposit.sender)}",
        )
        if refund:
            return None
        assert policy.ownership_proof_usd is not None  # not a refund: only above the threshold
        return _ref(
            N_(
                "Worth more than {limit} USD: before anything moves, prove that you control {sender} (GET {challenge}, "
                "sign its message)"
            ),
            limit=_decimal(policy.ownership_proof_usd),
            sender=deposit.sender,
            challenge=f"/v1/cases/{self._case.case_id}/ownership-challenge",
        )

    async def _await_ownership(self, deposit: Transfer) -> None:
        """Wait for the claimant's proof, if the case needs one; ``_Expired`` when it does not come in time."""
        if not self._state.ownership_needed:
            return
        assert self._case is not None and self._state.sla_terms is not None
        if self._state.ownership is None:
            terms = self._state.sla_terms
            asked_at = workflow.now()
            expires_at = terms.calendar.add_working_days(asked_at, terms.info_timeout_days)
            refund = self._state.choice is RecoveryChoice.REFUND
            message, text = _ref(
                N_(
                    "Approved for a refund to the sender. Before the funds move, prove that you control {sender}: "
                    "GET {challenge}, sign its message with that wallet (personal_sign) and POST the signature to "
                    "{proof}, or send a small verification deposit from that address (see the case's next_action), "
                    "by {due}."
                )
                if refund
                else N_(
                    "Approved. Before the funds move, prove that you control {sender}: GET {challenge}, sign its "
                    "message with that wallet (personal_sign) and POST the signature to {proof}, or send a small "
                    "verification deposit from that address (see the case's next_action), by {due}."
                ),
                sender=deposit.sender,
                challenge=f"/v1/cases/{self._case.case_id}/ownership-challenge",
                proof=f"/v1/cases/{self._case.case_id}/ownership-proof",
                due=_date(expires_at),
            )
            await self._save(
                "ownership-wait",
                CaseStatus.AWAITING_USER,
                message,
                waiting="the user's ownership proof",
                due_at=expires_at,
                text=text,
            )
            await self._wait_for_user(
                lambda: self._state.ownership is not None,
                since=asked_at,
                until=expires_at,
                what="the ownership proof",
                missed=(
                    N_(
                        "You did not prove that you control {sender} within {days} working days, so the case is "
                        "closed; nothing was moved. File a new claim to have it looked at again."
                    ),
                    {"sender": deposit.sender},
                ),
            )
        proof = self._state.ownership
        assert proof is not None
        method = PROOF_METHOD_NAMES.get(proof.method)
        message, text = _ref(
            N_("You proved that you control {address} ({method})"),
            address=proof.address,
            method=proof.method if method is None else _named(method),
        )
        await self._save("ownership-proven", CaseStatus.RECOVERING, message, waiting="recovery", text=text)

    async def _wait_for_user(
        self,
        done: Callable[[], bool],
        *,
        since: datetime,
        until: datetime,
        what: str,
        missed: tuple[str, dict[str, Value]],
        days: int | None = None,
    ) -> None:
        """Wait until ``done()`` or ``until``; :class:`_Expired` saying what was ``missed`` when time runs out
        (within ``days`` working days: the request for information's timeout unless given). ``missed`` is the
        message id (with a ``{days}`` placeholder) and its other values."""
        assert self._state.sla_terms is not None
        days = self._state.sla_terms.info_timeout_days if days is None else days
        try:
            await workflow.wait_condition(
                done, timeout=until - since, timeout_summary=f"{what}, until {until:%Y-%m-%d %H:%M} UTC"
            )
        except TimeoutError:
            msgid, params = missed
            raise _Expired(_ref(msgid, days=days, **params)) from None

    # --- the user's acceptance of the quote --------------------------------------------------------

    async def _await_acceptance(self, quote: Quote) -> bool:
        """Offer the quote and wait for the user's answer: True accepted, False declined; ``_Expired`` when no
        answer comes within the configured working days (engineers are done by now: no SLA timer runs)."""
        assert self._case is not None
        terms = await self._terms()
        offered_at = workflow.now()
        expires_at = terms.calendar.add_working_days(offered_at, terms.fee_acceptance_days)
        self._state.quote_offered = True
        message, text = _ref(
            N_(
                "Your recovery is quoted: fee {fee} (${fee_usd}, {basis}), network cost about {gas}; you would "
                "receive about {net}. Accept or decline it by {due}: POST {request} {body} (or false); nothing "
                "is signed before you accept."
            ),
            fee=_amount(quote.fee, quote.decimals, quote.asset),
            fee_usd=_decimal(quote.fee_usd),
            basis=text_param(quote.basis),
            gas=_amount(quote.gas_estimate, quote.decimals, quote.asset),
            net=_amount(quote.net_estimate, quote.decimals, quote.asset),
            due=_date(expires_at),
            request=f"/v1/cases/{self._case.case_id}/fee-acceptance",
            body='{"accept": true}',
        )
        await self._save(
            "quote-offered",
            CaseStatus.AWAITING_USER,
            message,
            text=text,
            waiting="the user's answer to the quote",
            due_at=expires_at,
            quote=quote,
        )
        await self._wait_for_user(
            lambda: self._state.quote_answer is not None,
            since=offered_at,
            until=expires_at,
            what="the user's answer to the quote",
            missed=(
                N_(
                    "You did not accept the quote within {days} working days, so the case is closed; nothing was "
                    "moved. File a new claim to have it looked at again."
                ),
                {},
            ),
            days=terms.fee_acceptance_days,
        )
        answer = self._state.quote_answer
        assert answer is not None
        if answer.accept:
            message, text = _ref(
                N_("You accepted the fee of {fee} (${fee_usd})"),
                fee=_amount(quote.fee, quote.decimals, quote.asset),
                fee_usd=_decimal(quote.fee_usd),
            )
            await self._save("quote-accepted", CaseStatus.RECOVERING, message, text=text, waiting="recovery")
        return answer.accept

    async def _terms(self) -> SlaTerms:
        """The working-day calendar, read once (an automatic case has not needed it before)."""
        if self._state.sla_terms is None:
            assert self._case is not None
            self._state.sla_terms = await _activity(
                CaseActivities.sla_terms,
                SlaRequest(case_id=self._case.case_id, start=workflow.now().date()),
                summary="working-day calendar",
            )
        return self._state.sla_terms

    @_update("The user's answer to the quote (sent and attested by the status API): {accept: true|false}.")
    async def fee_acceptance(self, answer: QuoteAnswer) -> str:
        self._state.quote_answer = answer
        return "quote accepted" if answer.accept else "quote declined"

    @fee_acceptance.validator
    def _validate_fee_acceptance(self, answer: QuoteAnswer) -> None:
        if not self._state.quote_offered or self._state.quote_answer is not None:
            raise _refusal(N_("This case is not waiting for an answer to its quote."))
        self._refuse_unless_from_api(
            answer.attestation,
            "fee_acceptance",
            "An answer to the quote counts only when the status API sent and attested it.",
        )

    def _refuse_unless_from_api(self, attestation: Attestation | None, action: str, unattested: str) -> None:
        """Raise unless ``attestation`` is the status API's, for this case and ``action``."""
        if attestation is None:
            raise ValueError(unattested)
        assert self._state.policy is not None
        with workflow.unsafe.imports_passed_through():
            refused = refuse_attestation(
                attestation,
                keys=self._state.policy.attestation_keys,
                case_id=workflow.info().workflow_id,
                engineer=OWNERSHIP_PROVER,
                action=action,
                now=workflow.now(),
            )
        if refused is not None:
            raise ValueError(refused)

    @_update("The claimant's ownership proof, checked and attested by the status API.")
    async def ownership_proven(self, proof: OwnershipProven) -> str:
        self._state.ownership = proof
        return "ownership proof received"

    @ownership_proven.validator
    def _validate_ownership(self, proof: OwnershipProven) -> None:
        if not self._state.ownership_needed or self._state.ownership is not None:
            raise _refusal(N_("This case is not waiting for an ownership proof."))
        assert self._deposit is not None and self._state.policy is not None
        if proof.address.lower() != self._deposit.sender.lower():
            raise _refusal(
                N_("The proof is for {address}, not the deposit's sender {sender}."),
                address=proof.address,
                sender=self._deposit.sender,
            )
        self._refuse_unless_from_api(
            proof.attestation,
            "ownership_proven",
            "An ownership proof counts only when the status API checked and attested it.",
        )

    # --- service levels, tiers and assignment ----------------------------------------------------

    async def _start_sla(self) -> None:
        assert self._case is not None
        now = workflow.now()
        terms = await _activity(
            CaseActivities.sla_terms,
            SlaRequest(case_id=self._case.case_id, start=now.date()),
            summary="working-day calendar of the SLA",
        )
        self._state.sla_terms = terms
        self._state.sla = plan_sla(terms, now)
        workflow.upsert_search_attributes(
            [
                sa.TIER.value_set(self._state.tier.value),
                sa.SLA_DEADLINE.value_set(self._state.sla.deadline_at),
                sa.SLA_STATE.value_set(self._state.sla_state.value),
                sa.SLA_BREACHED.value_set(False),
                sa.APPROVALS_NEEDED.value_set(self._state.approvals_needed()),
                sa.VIP.value_set(self._facts is not None and self._facts.claimant_vip),
            ]
        )

    def _handling(self) -> CaseHandling:
        plan = self._state.sla
        return CaseHandling(
            tier=self._state.tier,
            assigned_to=self._state.assigned_to,
            approvals_needed=self._state.approvals_needed(),
            sla_started_at=plan.started_at if plan else None,
            sla_target_at=plan.target_at if plan else None,
            sla_deadline_at=plan.deadline_at if plan else None,
            sla_state=self._state.sla_state,
            paused=self._state.paused,
        )

    async def _wait_for_engineers(self, done: Callable[[], bool]) -> None:
        """Wait until ``done``; meanwhile the SLA's moments fire, each once, in time order, and questions to
        the user are asked (the clock stands still until the answer)."""

        def woken() -> bool:
            return done() or self._state.info_pending is not None

        while not done():
            if self._state.info_pending is not None:
                await self._ask_user(self._state.info_pending)
                continue
            upcoming = next_sla_event(self._state.sla, self._state.sla_fired) if self._state.sla else None
            if upcoming is None:
                await workflow.wait_condition(woken)
                continue
            delay = upcoming.at - workflow.now()
            if delay > timedelta(0):
                try:
                    await workflow.wait_condition(
                        woken, timeout=delay, timeout_summary=f"SLA {upcoming.kind}: {upcoming.at:%Y-%m-%d %H:%M} UTC"
                    )
                    continue
                except TimeoutError:
                    pass
            self._state.sla_fired.append(upcoming.key)
            await self._on_sla_event(upcoming)

    async def _ask_user(self, request: InfoRequest) -> None:
        """Put the engineer's question to the user and wait for the answer, the SLA paused; ``_Expired``
        when it does not come within ``info_timeout_days`` working days."""
        assert self._case is not None and self._state.sla is not None and self._state.sla_terms is not None
        terms, number = self._state.sla_terms, self._state.info_requests
        self._state.info_pending = None
        paused_at = workflow.now()
        expires_at = terms.calendar.add_working_days(paused_at, terms.info_timeout_days)
        self._state.paused = True
        message, text = _ref(
            N_(
                "A recovery engineer asks: {question} Please answer by {due} (POST {request}); until then your "
                "case waits for you."
            ),
            question=request.question,
            due=_date(expires_at),
            request=f"/v1/cases/{self._case.case_id}/messages",
        )
        await self._save(
            f"info-request-{number}",
            CaseStatus.AWAITING_USER,
            message,
            text=text,
            waiting="the user's answer",
            due_at=expires_at,
            handling=self._handling(),
        )
        await self._wait_for_user(
            lambda: self._state.answer is not None,
            since=paused_at,
            until=expires_at,
            what="the user's answer",
            missed=(
                N_(
                    "You did not answer the question of {asked} within {days} working days, so the case is closed; "
                    "nothing was moved. File a new claim to have it looked at again."
                ),
                {"asked": _date(paused_at)},
            ),
        )
        answer, self._state.answer = self._state.answer, None
        self._state.sla = self._state.sla.shifted(workflow.now() - paused_at)
        self._state.paused = False
        workflow.upsert_search_attributes([sa.SLA_DEADLINE.value_set(self._state.sla.deadline_at)])
        await self._save(
            f"user-answer-{number}",
            CaseStatus.AWAITING_APPROVAL,
            f"You answered: {answer}",
            text=MessageRef(msgid=N_("You answered: {answer}"), params={"answer": str(answer)}),
            waiting="an engineer's approve or reject update",
            handling=self._handling(),
        )

    @_update("Ask the user a question; the case waits for the answer and its SLA clock stops.")
    async def request_info(self, request: InfoRequest) -> str:
        before = self._snapshot()
        self._state.info_requests += 1
        self._state.info_pending = request
        await self._audit("request_info", request.engineer, False, request, before)
        return "asked the user"

    @request_info.validator
    def _validate_request_info(self, request: InfoRequest) -> None:
        self._validate_handling(request.engineer)
        if not request.question.strip():
            raise ValueError("A request for information needs the question the user should answer.")
        if self._state.info_pending is not None or self._state.approvals:
            raise ValueError("The case cannot ask the user now: a question or an approval is already in progress.")

    @_update("The user's answer to an engineer's question (sent by the status API).")
    async def user_message(self, message: UserMessage) -> str:
        self._state.answer = message.text.strip()
        return "answer received"

    @user_message.validator
    def _validate_user_message(self, message: UserMessage) -> None:
        asked = self._state.waiting_for == "the user's answer"
        if self._state.status is not CaseStatus.AWAITING_USER or self._state.answer is not None or not asked:
            raise _refusal(
                N_("Nobody asked you anything on this case right now (it is {status})."),
                status=_named(STATUS_NAMES[self._state.status]),
            )
        if not message.text.strip():
            raise _refusal(N_("The answer is empty: write what the engineer asked for."))
        if len(message.text) > MAX_ANSWER_CHARS:
            raise _refusal(
                N_("The answer is {length} characters long; keep it under {limit}."),
                length=len(message.text),
                limit=MAX_ANSWER_CHARS,
            )

    async def _on_sla_event(self, event: SlaEvent) -> None:
        terms, plan = self._state.sla_terms, self._state.sla
        assert terms is not None and plan is not None
        who: Value = self._state.assigned_to or _ref(N_("the {tier} queue"), tier=_named(TIER_NAMES[self._state.tier]))
        if event.kind == "reminder":
            days = sorted(d for d in terms.reminder_days if 0 < d < terms.target_days)[event.number - 1]
            message, text = _ref(
                N_(
                    "Still waiting for an engineer after {days} working days; {who} has been reminded. Target date: "
                    "{target}."
                ),
                days=days,
                who=who,
                target=_date(plan.target_at),
            )
        elif event.kind == "due_soon":
            self._state.sla_state = SlaState.DUE_SOON
            message, text = _ref(N_("Due soon: the target date is {target}."), target=_date(plan.target_at))
        elif event.kind == "target":
            self._state.sla_state = SlaState.TARGET_MISSED
            before, self._state.tier = self._state.tier, ESCALATION.get(self._state.tier, self._state.tier)
            message, text = (
                _ref(
                    N_(
                        "Escalated: SLA target reached ({days} working days); the case moves from the {before} to "
                        "the {after} tier."
                    ),
                    days=terms.target_days,
                    before=_named(TIER_NAMES[before]),
                    after=_named(TIER_NAMES[self._state.tier]),
                )
                if before != self._state.tier
                else _ref(
                    N_("Escalated: SLA target reached ({days} working days); the case moves to experts."),
                    days=terms.target_days,
                )
            )
        else:
            self._state.sla_state = SlaState.BREACHED
            expect = terms.calendar.add_working_days(workflow.now(), terms.breach_extension_days)
            message, text = _ref(
                N_(
                    "We did not finish your case within {days} working days. It is now with our operations team; "
                    "expect an answer by {due}."
                ),
                days=terms.deadline_days,
                due=_date(expect),
            )
        workflow.upsert_search_attributes(
            [
                sa.SLA_STATE.value_set(self._state.sla_state.value),
                sa.TIER.value_set(self._state.tier.value),
                sa.SLA_BREACHED.value_set(self._state.sla_state is SlaState.BREACHED),
            ]
        )
        await self._save(event.key, self._state.status, message, text=text, handling=self._handling())

    @_update("Send the case to the next tier (first_line → engineering → expert), with a reason.")
    async def escalate(self, request: Escalation) -> str:
        snapshot = self._snapshot()
        before, self._state.tier = self._state.tier, ESCALATION[self._state.tier]
        self._state.escalations += 1
        workflow.upsert_search_attributes([sa.TIER.value_set(self._state.tier.value)])
        message, text = _ref(
            N_("Escalated by {engineer} from the {before} to the {after} tier: {reason}"),
            engineer=request.engineer,
            before=_named(TIER_NAMES[before]),
            after=_named(TIER_NAMES[self._state.tier]),
            reason=request.reason,  # the engineer's own words
        )
        await self._save(
            f"escalated-{self._state.escalations}", self._state.status, message, text=text, handling=self._handling()
        )
        await self._audit("escalate", request.engineer, False, request, snapshot)
        return f"escalated to {self._state.tier}"

    @escalate.validator
    def _validate_escalate(self, request: Escalation) -> None:
        self._validate_handling(request.engineer)
        if not request.reason.strip():
            raise ValueError("An escalation needs a reason for the next tier.")
        if self._state.tier not in ESCALATION:
            raise ValueError(f"The case is with the {self._state.tier} tier already, the last line.")

    @_update("Make an engineer on the roster the owner of the case.")
    async def assign(self, request: Assignment) -> str:
        snapshot = self._snapshot()
        self._state.assigned_to = request.to
        self._state.assignments += 1
        workflow.upsert_search_attributes([sa.ASSIGNED_TO.value_set(request.to)])
        self._set_waiting(self._state.waiting_for)
        message, text = _ref(N_("Assigned to {assignee} by {engineer}"), assignee=request.to, engineer=request.engineer)
        await self._save(
            f"assigned-{self._state.assignments}", self._state.status, message, text=text, handling=self._handling()
        )
        await self._audit("assign", request.engineer, False, request, snapshot)
        return f"assigned to {request.to}"

    @assign.validator
    def _validate_assign(self, request: Assignment) -> None:
        self._validate_handling(request.engineer)
        assert self._state.policy is not None
        refused = refuse_decision(self._state.policy, engineer=request.to, case_user_id=self._state.user_id)
        if refused is not None:
            raise ValueError(refused)
        if request.to == self._state.assigned_to:
            raise ValueError(f"The case is assigned to {request.to} already.")

    def _validate_handling(self, engineer: str) -> None:
        if self._state.sla is None or self._state.policy is None:
            raise ValueError(
                "This case has no tiers or assignment (it was started before them, or does not wait for an engineer)."
            )
        if self._state.status is not CaseStatus.AWAITING_APPROVAL or self._state.decision is not None:
            raise ValueError(f"The case is {self._state.status}, not waiting for an engineer.")
        refused = refuse_decision(self._state.policy, engineer=engineer, case_user_id=self._state.user_id)
        if refused is not None:
            raise ValueError(refused)

    # --- the audit trail --------------------------------------------------------------------------

    def _snapshot(self) -> dict[str, Any]:
        state = self._state
        return {
            "status": state.status.value,
            "tier": state.tier.value,
            "assigned_to": state.assigned_to,
            "approvals": [f"{a.engineer} ({'attested' if a.attested else 'typed in'})" for a in state.approvals],
            "approvals_needed": state.approvals_needed(),
            "decision": None if state.decision is None else ("approved" if state.decision[0] else "rejected"),
            "sla_state": state.sla_state.value if state.sla else None,
        }

    async def _audit(
        self, action: str, engineer: str, attested: bool, request: BaseModel, before: dict[str, Any]
    ) -> None:
        """One append-only audit row per accepted engineer action (cases started after AUDIT_TRAIL)."""
        if not self._audit_trail:
            return
        assert self._case is not None
        self._state.audits += 1
        await _activity(
            CaseActivities.record_audit,
            AuditRecord(
                case_id=self._case.case_id,
                key=f"{action}-{self._state.audits}",
                engineer=engineer,
                action=action,
                attested=attested,
                request=request.model_dump(mode="json"),
                before=before,
                after=self._snapshot(),
            ),
            timeout=SHORT,
            summary=f"audit: {action} by {engineer}",
        )

    def _decided_or_more_approvals(self, seen: int) -> bool:
        return (
            self._state.decision is not None or len(self._state.approvals) > seen or self._state.execution is not None
        )

    async def _above_auto_limit(self, verdict: Classification, quote: Quote | None) -> Classification:
        """An automatic pattern worth more than the automatic limit goes to an engineer; the case says why."""
        policy = self._state.policy
        limit = policy.auto_limit_usd if policy is not None else None
        if verdict.route is not Route.AUTOMATIC or quote is None or limit is None or quote.amount_usd <= limit:
            return verdict
        reason, reason_text = _ref(
            N_(
                "{reason} It is worth {value} USD, above the automatic limit of {limit} USD: a recovery "
                "engineer approves it before anything moves."
            ),
            reason=_reason(verdict),
            value=_decimal(quote.amount_usd),
            limit=_decimal(limit),
        )
        message, text = _ref(
            N_("Above the automatic limit of {limit} USD ({amount_usd} USD): an engineer decides"),
            limit=_decimal(limit),
            amount_usd=_decimal(quote.amount_usd),
        )
        await self._save(
            "above-auto-limit", CaseStatus.CLASSIFIED, message, text=text, reason=reason, reason_text=reason_text
        )
        return verdict.model_copy(update={"route": Route.MANUAL, "reason": reason, "text": reason_text})

    def _rejection_reason(self) -> Text:
        """The reason of an engineer's rejection (their own words, as they typed them)."""
        assert self._state.decision is not None
        _, decision = self._state.decision
        return _ref(N_("A recovery engineer rejected the case: {reason}"), reason=decision.reason)

    # --- tracing and confirmations -------------------------------------------------------------

    async def _wait_for_deposit_depth(self, case: CaseInput) -> TraceResult:
        request = TraceRequest(chain=case.chain, tx_hash=case.tx_hash)

        async def trace() -> TraceResult:
            where = f"on {case.chain}" if case.chain else "on every chain"
            result: TraceResult = await _activity(
                CaseActivities.trace_transaction, request, summary=f"trace {_short(case.tx_hash)} {where}"
            )
            if result.block_number is not None:
                self._seen_in_block = result.block_number
            return result

        result = await trace()
        give_up_at = workflow.now() + PENDING_LIMIT
        saved: str | None = None
        unmined_polls = 0
        undecodable = 0
        while result.found and result.succeeded is not False and not result.confirmed:
            if result.succeeded is None and workflow.now() >= give_up_at:
                break  # still not mined: the classifier says so
            undecodable = undecodable + 1 if _undecodable(result) else 0
            if undecodable >= UNDECODABLE_POLLS and workflow.patched(UNDECODABLE_ANSWERS):
                break  # the classifier says the node's answer could not be read
            key = f"deposit-confirmations-{result.confirmations}"
            if key != saved or not self._pending_backoff:
                await self._save(
                    key,
                    CaseStatus.WAITING_CONFIRMATIONS,
                    f"Deposit has {result.confirmations} of {result.required_confirmations} confirmations",
                    text=MessageRef(
                        msgid=N_("Deposit has {have} of {need} confirmations"),
                        params={"have": result.confirmations, "need": result.required_confirmations},
                    ),
                    waiting=self._confirmations_text(
                        "the deposit", result.chain, result.confirmations, result.required_confirmations
                    ),
                )
                saved = key
            wait = _poll_interval(result.block_time_ms, result.required_confirmations - result.confirmations)
            if self._pending_backoff and result.succeeded is None:
                # not mined yet: back off, so that three days of waiting stay a few thousand history events
                wait = min(max(wait, MIN_POLL * 2 ** min(unmined_polls, 16)), MAX_POLL)
                unmined_polls += 1
            await workflow.sleep(wait, summary=f"wait for {result.required_confirmations} confirmations")
            result = await trace()
        return result

    async def _wait_for_tx_depth(self, signed: SignedTx, receipt: TxReceipt, label: str) -> TxReceipt:
        request = TxStatusRequest(chain=receipt.chain, tx_hash=receipt.tx_hash)
        while receipt.confirmations < receipt.required_confirmations:
            self._set_waiting(
                self._confirmations_text(label, receipt.chain, receipt.confirmations, receipt.required_confirmations)
            )
            missing = receipt.required_confirmations - receipt.confirmations
            await workflow.sleep(_poll_interval(1000, missing))
            if workflow.patched(REBROADCAST_WHILE_CONFIRMING):
                # a transaction reorged out of the chain is sent again (the same signed bytes)
                receipt = await _activity(
                    CaseActivities.broadcast_transaction, signed, summary=f"re-send {label} if it was dropped"
                )
            else:
                receipt = await _activity(CaseActivities.transaction_status, request)
        return receipt

    @staticmethod
    def _confirmations_text(what: str, chain: str | None, have: int, need: int) -> str:
        return f"{need - have} more confirmation(s) of {what} on {chain} ({have}/{need})"

    # --- recovery -------------------------------------------------------------------------------

    async def _recover(self, case: CaseInput, deposit: Transfer, quote: Quote) -> Settlement:
        message, text = _ref(
            N_("Recovering {amount} on {chain}: fee {fee} (${fee_usd}) plus gas"),
            amount=_amount(deposit.amount, quote.decimals, quote.asset),
            chain=deposit.chain,
            fee=_amount(quote.fee, quote.decimals, quote.asset),
            fee_usd=_decimal(quote.fee_usd),
        )
        await self._save(
            "recovering",
            CaseStatus.RECOVERING,
            message,
            text=text,
            waiting="signing the sweep",
            quote=quote,
        )
        sweep_key = f"{deposit.key}:sweep"
        sweep = await _activity(
            CaseActivities.sign_transaction,
            SignRequest(idempotency_key=sweep_key, case_id=case.case_id, purpose="sweep", deposit=deposit),
            summary="sign the sweep",
        )
        receipts = await self._top_up(case, deposit, sweep_key)
        self._set_waiting(f"the sweep {sweep.tx_hash} to be mined")
        sweep_receipt = await _activity(
            CaseActivities.broadcast_transaction, sweep, summary=f"send the sweep {_short(sweep.tx_hash or '')}"
        )
        if not sweep_receipt.succeeded:
            await self._sweep_failed(sweep_receipt)
        await self._save(
            "sweep-mined",
            CaseStatus.RECOVERING,
            f"Sweep {sweep.tx_hash} mined in block {sweep_receipt.block_number}",
            text=MessageRef(
                msgid=N_("Sweep {tx_hash} mined in block {block}"),
                params={"tx_hash": str(sweep.tx_hash), "block": sweep_receipt.block_number},
            ),
            sweep_tx_hash=sweep.tx_hash,
        )
        final_sweep = await self._wait_for_tx_depth(sweep, sweep_receipt, "the sweep")
        if not final_sweep.succeeded:  # re-included after a reorg, and reverted this time
            await self._sweep_failed(final_sweep)
        receipts.append(final_sweep)
        return await self._settle(case, deposit, quote, receipts)

    async def _refund(self, case: CaseInput, deposit: Transfer, quote: Quote) -> Settlement:
        """Send the deposit back to its sender: the refund, then what the exchange keeps (the fee and the
        quoted network cost) to the hot wallet, both signed once from the deposit address, gas topped up."""
        refunded = quote.net_estimate
        kept = deposit.amount - refunded
        sender = deposit.sender
        message, text = _ref(
            N_(
                "Refunding {amount} to the sender {sender} on {chain}: fee {fee} (${fee_usd}) and network cost {gas} "
                "kept"
            ),
            amount=_amount(refunded, quote.decimals, quote.asset),
            sender=sender,
            chain=deposit.chain,
            fee=_amount(quote.fee, quote.decimals, quote.asset),
            fee_usd=_decimal(quote.fee_usd),
            gas=_amount(quote.gas_estimate, quote.decimals, quote.asset),
        )
        await self._save(
            "refunding", CaseStatus.RECOVERING, message, waiting="signing the refund", text=text, quote=quote
        )
        refund_key = f"{deposit.key}:refund"
        refund = await _activity(
            CaseActivities.sign_transaction,
            SignRequest(
                idempotency_key=refund_key, case_id=case.case_id, purpose="refund", deposit=deposit, amount=refunded
            ),
            summary=f"sign the refund to {_short(sender)}",
        )
        last_key, kept_tx = refund_key, None
        if kept > 0:
            last_key = f"{deposit.key}:refund_fee"
            kept_tx = await _activity(
                CaseActivities.sign_transaction,
                SignRequest(
                    idempotency_key=last_key, case_id=case.case_id, purpose="refund_fee", deposit=deposit, amount=kept
                ),
                summary="sign the fee and network cost to the hot wallet",
            )
        receipts = await self._top_up(case, deposit, last_key)
        self._set_waiting(f"the refund {refund.tx_hash} to be mined")
        receipt = await _activity(
            CaseActivities.broadcast_transaction, refund, summary=f"send the refund {_short(refund.tx_hash or '')}"
        )
        if not receipt.succeeded:
            await self._sweep_failed(receipt, REFUND_REVERTED)
        message, text = _ref(
            N_("Refund {tx_hash} to {sender} mined in block {block}"),
            tx_hash=str(refund.tx_hash),
            sender=sender,
            block=_block(receipt.block_number),
        )
        await self._save("refund-mined", CaseStatus.RECOVERING, message, text=text)
        final = await self._wait_for_tx_depth(refund, receipt, "the refund")
        if not final.succeeded:
            await self._sweep_failed(final, REFUND_REVERTED)
        receipts.append(final)
        if kept_tx is not None:
            self._set_waiting(f"the fee transfer {kept_tx.tx_hash} to be mined")
            kept_receipt = await _activity(
                CaseActivities.broadcast_transaction,
                kept_tx,
                summary=f"send the fee to the hot wallet {_short(kept_tx.tx_hash or '')}",
            )
            if not kept_receipt.succeeded:
                await self._sweep_failed(kept_receipt, FEE_TRANSFER_REVERTED)
            kept_final = await self._wait_for_tx_depth(kept_tx, kept_receipt, "the fee transfer")
            if not kept_final.succeeded:
                await self._sweep_failed(kept_final, FEE_TRANSFER_REVERTED)
            receipts.append(kept_final)
        assert refund.tx_hash is not None
        return await self._settle(
            case, deposit, quote, receipts, refund=Refund(to=sender, amount=refunded, tx_hash=refund.tx_hash)
        )

    async def _top_up(self, case: CaseInput, deposit: Transfer, last_key: str) -> list[TxReceipt]:
        """Sign and send the deposit address's gas top-up, if it needs one (its receipt, or nothing)."""
        topup = await _activity(
            CaseActivities.sign_transaction,
            SignRequest(
                idempotency_key=f"{deposit.key}:gas_topup",
                case_id=case.case_id,
                purpose="gas_topup",
                deposit=deposit,
                sweep_key=last_key,
            ),
            summary="sign the gas top-up, if the address needs gas",
        )
        if topup.tx_hash is None:
            return []
        self._set_waiting(f"the gas top-up {topup.tx_hash} to be mined")
        receipt = await _activity(
            CaseActivities.broadcast_transaction, topup, summary=f"send the gas top-up {_short(topup.tx_hash)}"
        )
        await self._save(
            "gas-topup",
            CaseStatus.RECOVERING,
            f"Gas topped up on {deposit.chain} in {topup.tx_hash}",
            text=MessageRef(
                msgid=N_("Gas topped up on {chain} in {tx_hash}"),
                params={"chain": deposit.chain, "tx_hash": str(topup.tx_hash)},
            ),
            topup_tx_hash=topup.tx_hash,
        )
        return [receipt]

    async def _credit(self, case: CaseInput, deposit: Transfer, quote: Quote) -> Settlement:
        """Funds already in an exchange wallet (a shared address): a ledger credit, no transaction."""
        message, text = _ref(
            N_("Crediting {amount} already held at the exchange's address on {chain}: fee {fee}, no network fee"),
            amount=_amount(deposit.amount, quote.decimals, quote.asset),
            chain=deposit.chain,
            fee=_amount(quote.fee, quote.decimals, quote.asset),
        )
        await self._save(
            "crediting", CaseStatus.RECOVERING, message, waiting="crediting the user", text=text, quote=quote
        )
        return await self._settle(case, deposit, quote, [])

    async def _settle(
        self, case: CaseInput, deposit: Transfer, quote: Quote, receipts: list[TxReceipt], refund: Refund | None = None
    ) -> Settlement:
        """Book the credit (or the refund) and the fee and mark the case COMPLETED, in one database transaction."""
        self._set_waiting("crediting the user" if refund is None else "booking the refund")
        settlement = await _activity(
            CaseActivities.settle_case,
            SettleRequest(
                case_id=case.case_id,
                user_id=case.user_id,
                deposit=deposit,
                quote=quote,
                receipts=receipts,
                refund=refund,
            ),
            timeout=SHORT,
            summary=(
                "credit the user and book the fee (one transaction)"
                if refund is None
                else "book the refund and the fee (one transaction)"
            ),
        )
        self._state.status = CaseStatus.COMPLETED
        self._set_waiting("nothing: completed")
        workflow.upsert_search_attributes([sa.CASE_STATUS.value_set(CaseStatus.COMPLETED.value)])
        return settlement

    async def _sweep_failed(self, receipt: TxReceipt, msgid: str = SWEEP_REVERTED) -> None:
        """Nothing is credited for a sweep (or refund) that did not move the funds: stop and leave it to an
        operator. ``msgid`` says which transaction reverted (:data:`SWEEP_REVERTED` and the like)."""
        message, text = _ref(msgid, tx_hash=receipt.tx_hash, chain=receipt.chain, block=_block(receipt.block_number))
        await self._save(
            "sweep-reverted", CaseStatus.RECOVERING, message, waiting="an operator (sweep reverted)", text=text
        )
        raise ApplicationError(message, non_retryable=True)

    # --- bookkeeping ----------------------------------------------------------------------------

    async def _close(self, status: CaseStatus, pattern: Pattern, reason: str, *, text: MessageRef | None) -> CaseResult:
        """End the case without moving anything (an expired request for information, a declined quote);
        ``text`` is the reason's message ref."""
        assert self._case is not None
        self._state.paused = False
        await self._save(
            status.value.lower(),
            status,
            reason,
            waiting=f"nothing: {status.value.lower()}",
            text=text,
            reason=reason,
            reason_text=text,
        )
        return CaseResult(case_id=self._case.case_id, status=status, pattern=pattern, reason=reason)

    async def _reject(self, pattern: Pattern, reason: str, *, text: MessageRef | None) -> CaseResult:
        """Reject the case; ``text`` is the reason's message ref."""
        assert self._case is not None
        self._state.pattern = pattern
        await self._save(
            "rejected",
            CaseStatus.REJECTED,
            reason,
            waiting="nothing: rejected",
            text=text,
            pattern=pattern,
            reason=reason,
            reason_text=text,
        )
        return CaseResult(case_id=self._case.case_id, status=CaseStatus.REJECTED, pattern=pattern, reason=reason)

    async def _save(
        self,
        key: str,
        status: CaseStatus,
        message: str,
        *,
        waiting: str | None = None,
        due_at: datetime | None = None,
        text: MessageRef | None = None,
        **fields: object,
    ) -> None:
        """Write a timeline event (and the case's fields): ``message`` in English, ``text`` the same as a message
        id and values that the store renders in English and a reader's language (docs/i18n.md); without ``text``
        the event is English only."""
        assert self._case is not None
        self._state.status = status
        if waiting is not None:
            self._set_waiting(waiting)
        workflow.upsert_search_attributes([sa.CASE_STATUS.value_set(status.value)])
        update = CaseUpdate.model_validate(
            {
                "case_id": self._case.case_id,
                "event": TimelineEvent(key=key, status=status, message=message, text=text, due_at=due_at),
                **fields,
            }
        )
        await _activity(CaseActivities.save_case, update, timeout=SHORT, summary=f"timeline: {key} ({status})")

    def _set_waiting(self, what: str) -> None:
        self._state.waiting_for = what
        details = f"**{self._state.status}**: waiting for {what}"
        plan = self._state.sla
        if plan is not None and self._state.status is CaseStatus.AWAITING_APPROVAL:
            who = self._state.assigned_to or f"any engineer of the {self._state.tier} tier or above"
            details += (
                f" since {plan.started_at:%Y-%m-%d %H:%M} UTC; who acts: {who}. SLA {self._state.sla_state}: "
                f"target {plan.target_at:%Y-%m-%d}, deadline {plan.deadline_at:%Y-%m-%d}"
            )
        workflow.set_current_details(details)

    def _upsert_deposit_attributes(self, verdict: Classification, deposit: Transfer | None) -> None:
        updates = [sa.PATTERN.value_set(verdict.pattern.value)]
        if deposit is not None:
            updates.append(sa.CHAIN.value_set(deposit.chain))
            updates.append(sa.ASSET.value_set(deposit.asset or deposit.token_address or "unknown"))
        workflow.upsert_search_attributes(updates)

    def _set_amount_usd(self, quote: Quote) -> None:
        workflow.upsert_search_attributes([sa.AMOUNT_USD.value_set(int(quote.amount_usd))])


async def _activity(
    method: Callable[[Any, A], Awaitable[R]], arg: A, *, timeout: timedelta = CHAIN_CALL, summary: str | None = None
) -> R:
    """Every activity of a case, called by reference: retried with backoff, its liveness watched by
    heartbeat timeout. The result type comes from the method's annotation."""
    return await workflow.execute_activity_method(
        method,
        arg,
        start_to_close_timeout=timeout,
        retry_policy=RETRY,
        heartbeat_timeout=LIVENESS,
        summary=summary,
    )


def _short(tx_hash: str) -> str:
    """``0xabcd…ef12``: enough of a hash to recognise it in the UI's timeline."""
    return tx_hash if len(tx_hash) <= 14 else f"{tx_hash[:6]}…{tx_hash[-4:]}"


def _undecodable(result: TraceResult) -> bool:
    """An answer the adapter could not decode: found, but neither mined nor unmined as far as it could read."""
    return bool(result.unread) and result.succeeded is None and result.block_number is None


def _too_small(quote: Quote) -> Text:
    return _ref(
        N_(
            "The deposit of {amount} does not cover the recovery cost of about {cost} (fee and gas); it cannot be "
            "recovered."
        ),
        amount=_amount(quote.amount, quote.decimals, quote.asset),
        cost=_amount(quote.fee + quote.gas_estimate, quote.decimals, quote.asset),
    )


def _poll_interval(block_time_ms: int, missing_blocks: int) -> timedelta:
    wait = timedelta(milliseconds=max(block_time_ms, 1) * max(missing_blocks, 1))
    return min(max(wait, MIN_POLL), MAX_POLL)
