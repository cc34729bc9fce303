"""The answer at claim time: what the engine expects to do with a claimed deposit, before its workflow runs.

The status API calls :meth:`ClaimPreviewer.preview` with the trace it already made. It gathers the facts the
case workflow will gather (:class:`~services.facts.FactGatherer`, its independent lookups at once), classifies
them with the workflow's own classifier, prices the deposit with the worker's price source under the fee
policy of the pattern, and follows the workflow's route (``workflows.case_workflow``: the automatic limit,
the eligibility floor of work for engineers, the ownership proof, the fee acceptance) to say what happens next
and when: the confirmations still needed and when the last is expected, the SLA dates of a case for an
engineer, the fee policy and an estimate of its fee, and what the user will be asked to do.

The answer is provisional: the workflow decides once the deposit has its confirmations (facts can change
meanwhile, and its quote adds the network cost). This process never loads a key: what the facts need of the
exchange's keys comes from the stored deposit addresses (:class:`StoredCustody`), and the exchange's own
wallets are not known here, so no deposit is recognised as the exchange's own transfer (the worker checks).
The preview never raises: a chain that does not answer in time gives an answer that says so.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field
from sqlalchemy import Engine
from sqlmodel import Session

from chains.endpoints import RpcError, RpcUnavailable, redact_url
from fees.policy import CannotQuote, fee_basis
from fees.policy import quote as policy_quote
from fees.prices import PricePort, StaticPrices
from recovery.classify import classify
from recovery.errors import PermanentError
from recovery.i18n import N_, AmountText, Message, render, render_ref, translate
from recovery.locales import DEFAULT_LOCALE
from recovery.models import Action, DepositFacts, Pattern, Quote, Route, TraceResult, Transfer
from recovery.roster import ApprovalPolicy, Tier
from recovery.settings import ChainConfig, Settings
from recovery.working_days import SlaTerms, plan_sla
from services.calendar import SlaCalendar
from services.evm_chains import EvmChains
from services.facts import CodeAhead, FactGatherer, StoredFacts, stored_facts
from store.users import AddressOwner

log = logging.getLogger(__name__)

Tr = Callable[..., str]
"""``translate`` in the reader's language: ``tr(N_("... {name} ..."), name=value)``."""

DEFAULT_BUDGET = timedelta(seconds=5)
"""The longest the preview's own lookups may take; past it the claim is answered without them."""
PENDING_LIMIT_DAYS = 3
"""How long the workflow waits for an unmined transaction (``workflows.case_workflow.PENDING_LIMIT``; a test
keeps the two equal)."""
STAND_IN_SWEEP_DESTINATION = "0x000000000000000000000000000000000000C1A1"
"""The unlisted-token dry run's recipient where the hot wallet is not known (EVM hot wallets come from the
signer): an address with no code and no special meaning; the worker dry-runs to the real hot wallet."""


class StoredCustody:
    """The status API's answers about keys, from the stored deposit addresses: it loads none. An address stored
    with its derivation index was derived by the signer, so the exchange holds its key. The exchange's own
    wallets are not known here: no deposit counts as the exchange's own transfer (the worker checks it)."""

    def own_wallets(self) -> frozenset[str] | None:
        return None

    def holds_key(self, owner: AddressOwner, recipient: str) -> bool:
        return owner.deposit_index is not None

    def sweep_destination(self, chain: ChainConfig) -> str:
        return chain.hot_wallet or STAND_IN_SWEEP_DESTINATION


class ClaimRoute(StrEnum):
    AUTOMATIC = "automatic"
    """The engine recovers the deposit by itself."""
    ENGINEER = "engineer"
    """A recovery engineer decides (the pattern needs one, the value is above the automatic limit, or there
    is no price to quote a fee with)."""
    REJECTED = "rejected"
    """The case will be closed without moving anything, for the reason given."""
    UNDECIDED = "undecided"
    """The transaction is not in a block yet: nothing can be said until it is."""


class UserStepKind(StrEnum):
    """What the user will be asked to do (the values of the case's ``next_action.action``)."""

    PROVE_OWNERSHIP = "prove_ownership"
    ACCEPT_FEE = "accept_fee"


class ConfirmationOutlook(BaseModel):
    chain: str
    have: int
    need: int
    remaining: int
    block_time_ms: int
    expected_at: datetime | None
    """now + remaining × block time; None when the transaction is not in a block yet."""


class SlaOutlook(BaseModel):
    starts_at: datetime
    target_at: datetime
    deadline_at: datetime
    target_working_days: int
    deadline_working_days: int
    tier: Tier
    approvals_needed: int


class FeeOutlook(BaseModel):
    policy: str
    basis: str
    network_cost: str
    asset: str | None = None
    decimals: int | None = None
    value_usd: Decimal | None = None
    fee: int | None = None
    """The policy's fee in base units of the asset, without the network cost; None when it cannot be estimated."""
    fee_usd: Decimal | None = None
    acceptance_above_usd: Decimal | None = None
    acceptance_required: bool | None = None
    """None: unknown (no value to compare with the threshold)."""
    eligible_from_usd: Decimal | None = None
    not_estimated: str | None = None
    """Why there is no estimate (no price, no decimals, a policy figure missing), in plain words."""


class UserStep(BaseModel):
    kind: UserStepKind
    text: str


class ClaimPreview(BaseModel):
    available: bool
    unavailable_reason: str | None = None
    pattern: Pattern | None = None
    reason: str | None = None
    route: ClaimRoute | None = None
    confirmations: ConfirmationOutlook | None = None
    sla: SlaOutlook | None = None
    fee: FeeOutlook | None = None
    user_steps: list[UserStep] = Field(default_factory=list)
    next: str
    caveats: list[str] = Field(default_factory=list)
    as_of: datetime

    @classmethod
    def unavailable(cls, *, why: str, case_id: str, as_of: datetime, tr: Tr | None = None) -> ClaimPreview:
        tr = tr or functools.partial(translate, DEFAULT_LOCALE)
        return cls(
            available=False,
            unavailable_reason=why,
            next=tr(
                N_("Your claim is filed and the engine is checking it: follow it at GET /v1/cases/{case_id}."),
                case_id=case_id,
            ),
            as_of=as_of,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def preview_approval_policy(settings: Settings) -> ApprovalPolicy:
    """The approval rules as the worker reads them (``services.approvals``), without the attesters' keys (the
    preview checks no attestation)."""
    return ApprovalPolicy(
        roster=list(settings.engineers),
        four_eyes_usd=settings.four_eyes_usd,
        auto_limit_usd=settings.auto_limit_usd,
        ownership_proof_usd=settings.ownership_proof_usd,
        unattested=settings.unattested_approvals,
    )


def quick_chains(settings: Settings) -> EvmChains:
    """The chain clients of the preview: each endpoint tried once (failing over between endpoints), no retry
    rounds with backoff, so that a chain that is down costs the claim's answer no time (the workflow, with
    its retries, decides)."""
    quick = [c.model_copy(update={"rpc_retries": 0}) for c in settings.chains]
    return EvmChains(settings.model_copy(update={"chains": quick}))


class ClaimPreviewer:
    """``redact`` cleans every text of the answer (the API's secret redactor); ``budget`` bounds the preview's
    lookups; ``clock`` is the current UTC time (tests)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        prices: PricePort | None = None,
        chains: EvmChains | None = None,
        budget: timedelta = DEFAULT_BUDGET,
        redact: Callable[[str], str] | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._settings = settings
        self._prices = prices if prices is not None else StaticPrices(settings.prices_usd)
        self._policy = preview_approval_policy(settings)
        self._facts = FactGatherer(
            settings=settings,
            engine=engine,
            prices=self._prices,
            chains=chains if chains is not None else quick_chains(settings),
            policy=self._policy,
            keys=StoredCustody(),
            code_elsewhere=False,
        )
        self._calendar = SlaCalendar(settings.sla)
        self._terms: dict[date, SlaTerms] = {}
        self._budget = budget
        self._redact = redact or (lambda text: text)
        self._scrub = _Scrubber(settings.chains)
        self._clock = clock

    def stored(self, session: Session, *, user_id: str, deposit: Transfer | None) -> StoredFacts | None:
        """What the preview reads from the database, read in the caller's ``session`` (the claim's own lookups'
        session: no thread hop or connection of the preview's own); None without a deposit."""
        return None if deposit is None else stored_facts(session, user_id=user_id, deposit=deposit)

    def look_ahead(self, trace: TraceResult) -> CodeAhead:
        """Start the chain lookups the answer will need for ``trace``'s transfers, before :meth:`preview` (the API
        calls it right after the trace, then reads the database); the caller cancels what is left
        (:meth:`CodeAhead.cancel`)."""
        return self._facts.code_ahead(trace)

    async def preview(
        self,
        *,
        case_id: str,
        user_id: str,
        trace: TraceResult,
        deposit: Transfer | None,
        stored: StoredFacts | None = None,
        locale: str = DEFAULT_LOCALE,
        ahead: CodeAhead | None = None,
    ) -> ClaimPreview:
        """What the engine expects to do with the claim of ``user_id`` (``deposit``: the claimant's transfer in
        ``trace``, if the API found one; ``stored``: :meth:`stored` of it), its texts in ``locale``. Never raises
        (but for cancellation)."""
        now = self._clock()
        tr: Tr = functools.partial(translate, locale)
        try:
            async with asyncio.timeout(self._budget.total_seconds()):
                answer = await self._preview(case_id, user_id, trace, deposit, stored, now, locale, ahead)
        except TimeoutError:
            why = (
                tr(
                    N_("The checks on {chain} took longer than {seconds} s; the engine continues them."),
                    chain=trace.chain,
                    seconds=_seconds(self._budget),
                )
                if trace.chain
                else tr(
                    N_("The checks on the chains took longer than {seconds} s; the engine continues them."),
                    seconds=_seconds(self._budget),
                )
            )
            answer = ClaimPreview.unavailable(why=why, case_id=case_id, as_of=now, tr=tr)
        except Exception as exc:
            log.warning("claim preview of %s unavailable: %r", case_id, exc)
            answer = ClaimPreview.unavailable(why=_plain_failure(exc, trace, tr), case_id=case_id, as_of=now, tr=tr)
        return self._cleaned(answer)

    def _cleaned(self, answer: ClaimPreview) -> ClaimPreview:
        """The answer with no endpoint URL and no secret in any of its texts."""
        return _clean_texts(answer, lambda text: self._redact(self._scrub(text)))

    # --- the workflow's route, followed ahead of time ------------------------------------------

    async def _preview(
        self,
        case_id: str,
        user_id: str,
        trace: TraceResult,
        deposit: Transfer | None,
        stored: StoredFacts | None,
        now: datetime,
        locale: str,
        ahead: CodeAhead | None = None,
    ) -> ClaimPreview:
        tr: Tr = functools.partial(translate, locale)
        confirmations = self._confirmations(trace, now)
        if (
            trace.found
            and trace.succeeded is None
            and not (trace.unread and trace.block_number and trace.confirmations)
        ):
            return ClaimPreview(
                available=True,
                route=ClaimRoute.UNDECIDED,
                reason=tr(
                    N_("Transaction {tx_hash} is known on {chain} but not in a block yet."),
                    tx_hash=trace.tx_hash,
                    chain=trace.chain,
                ),
                confirmations=confirmations,
                next=tr(
                    N_(
                        "Nothing to do yet: the engine waits up to {days} days for the transaction to be mined and "
                        "confirmed, then decides; if it never is, the case is closed and nothing moves."
                    ),
                    days=PENDING_LIMIT_DAYS,
                ),
                caveats=[_provisional(tr)],
                as_of=now,
            )
        facts = await self._facts.gather(
            user_id=user_id,
            trace=trace,
            log_index=deposit.log_index if deposit is not None else None,
            vanished_from_block=None,
            stored=stored,
            ahead=ahead,
        )
        verdict = classify(facts)
        reason = verdict.reason if verdict.text is None else render_ref(locale, verdict.text.msgid, verdict.text.params)
        if not verdict.recoverable or facts.deposit is None:
            return self._rejected(verdict.pattern, reason, confirmations, now, tr)
        found = facts.deposit
        off_engine = verdict.action is Action.OFF_ENGINE
        # the workflow quotes nothing it cannot carry out (until an engineer books the recovery, without gas)
        fee, quoted = self._fee(
            found, verdict.pattern, facts, on_chain=not off_engine and verdict.action is Action.SWEEP, locale=locale
        )
        quote = None if off_engine else quoted
        if quote is not None and quote.net_estimate <= 0:
            return self._rejected(Pattern.TOO_SMALL, _too_small(quote, tr), confirmations, now, tr)
        route = verdict.route
        limit = self._policy.auto_limit_usd
        if route is Route.AUTOMATIC and quote is not None and limit is not None and quote.amount_usd > limit:
            route = Route.MANUAL
            reason = tr(
                N_(
                    "{reason} It is worth {value} USD, above the automatic limit of {limit} USD: a recovery "
                    "engineer approves it before anything moves."
                ),
                reason=reason,
                value=quote.amount_usd,
                limit=limit,
            )
        ready_at = max(now, confirmations.expected_at) if confirmations and confirmations.expected_at else now
        caveats = [_provisional(tr), _fee_caveat(fee, tr)]
        if route is Route.MANUAL or quote is None:
            floor = quote.eligible_from_usd if quote is not None else None
            if quote is not None and floor is not None and quote.amount_usd < floor:
                return self._rejected(
                    verdict.pattern,
                    tr(
                        N_(
                            "{reason} Recovering it takes an engineer's work, which the fee policy offers only for "
                            "deposits worth more than {floor} USD; this one is worth {value} USD."
                        ),
                        reason=reason,
                        floor=floor,
                        value=quote.amount_usd,
                    ),
                    confirmations,
                    now,
                    tr,
                )
            if quote is None and not off_engine:
                reason = tr(
                    N_("{reason} No fee can be quoted ({why}), so an engineer decides."),
                    reason=reason,
                    why=fee.not_estimated or "",
                )
            sla = await self._sla(ready_at, facts, quote)
            steps = self._engineer_steps(case_id, found, facts, quote, caveats, tr)
            text = _engineer_next(sla, off_engine, steps, tr)
            return ClaimPreview(
                available=True,
                pattern=verdict.pattern,
                reason=reason,
                route=ClaimRoute.ENGINEER,
                confirmations=confirmations,
                sla=sla,
                fee=fee,
                user_steps=steps,
                next=_waiting_text(confirmations, tr) + " " + text,
                caveats=caveats,
                as_of=now,
            )
        steps = [_accept_step(case_id, tr)] if quote.acceptance_required else []
        amount = found.amount_message()
        if steps:
            text = tr(
                N_(
                    "Then the engine quotes the fee with the network cost and waits for you to accept it; once you "
                    "do, it recovers it automatically: {amount} moves to the exchange and is credited to you, less "
                    "the fee and the network cost. Nothing for you to do but accept the fee."
                ),
                amount=amount,
            )
        else:
            text = tr(
                N_(
                    "Then the engine recovers it automatically: {amount} moves to the exchange and is credited to "
                    "you, less the fee and the network cost. Nothing for you to do."
                ),
                amount=amount,
            )
        return ClaimPreview(
            available=True,
            pattern=verdict.pattern,
            reason=reason,
            route=ClaimRoute.AUTOMATIC,
            confirmations=confirmations,
            fee=fee,
            user_steps=steps,
            next=_waiting_text(confirmations, tr) + " " + text,
            caveats=caveats,
            as_of=now,
        )

    def _rejected(
        self, pattern: Pattern, reason: str, confirmations: ConfirmationOutlook | None, now: datetime, tr: Tr
    ) -> ClaimPreview:
        return ClaimPreview(
            available=True,
            pattern=pattern,
            reason=reason,
            route=ClaimRoute.REJECTED,
            confirmations=confirmations,
            next=tr(N_("Nothing to do: the engine will close the case without moving anything, for the reason given.")),
            caveats=[_provisional(tr)],
            as_of=now,
        )

    def _confirmations(self, trace: TraceResult, now: datetime) -> ConfirmationOutlook | None:
        if not trace.found or trace.chain is None:
            return None
        config = self._settings.require_chain(trace.chain)
        need = trace.required_confirmations or config.confirmations
        block_ms = trace.block_time_ms or config.block_time_ms
        remaining = max(need - trace.confirmations, 0)
        mined = trace.succeeded is not None
        return ConfirmationOutlook(
            chain=trace.chain,
            have=trace.confirmations,
            need=need,
            remaining=remaining,
            block_time_ms=block_ms,
            expected_at=now + timedelta(milliseconds=remaining * block_ms) if mined else None,
        )

    # --- the fee ------------------------------------------------------------------------------

    def _fee(
        self, deposit: Transfer, pattern: Pattern, facts: DepositFacts, *, on_chain: bool, locale: str
    ) -> tuple[FeeOutlook, Quote | None]:
        """The policy that applies and the quote the workflow would make without the network cost (which
        needs chain calls the preview does not make), or None where the workflow could make none; its texts in
        ``locale``."""
        tr: Tr = functools.partial(translate, locale)
        name, policy = self._settings.fee_policy(pattern)
        outlook = FeeOutlook(
            policy=name,
            basis=render(fee_basis(policy, vip=facts.claimant_vip), locale),
            network_cost=policy.network_cost,
            asset=deposit.asset_key,
            decimals=deposit.decimals,
            acceptance_above_usd=policy.acceptance_above_usd,
            eligible_from_usd=policy.eligible_from_usd,
        )
        config = self._settings.require_chain(deposit.chain)
        price = self._prices.usd_price(deposit.asset_key)
        native = self._prices.usd_price(config.native_symbol)
        missing: str | None
        if deposit.decimals is None:
            missing = tr(N_("the token {token} has no known decimals"), token=deposit.token_address or "")
        elif price is None or price <= 0:
            missing = tr(N_("there is no USD price for {asset}"), asset=_asset(deposit))
        elif on_chain and (native is None or native <= 0):
            missing = tr(
                N_("there is no USD price for {symbol}, which pays the network cost"), symbol=config.native_symbol
            )
        else:
            missing = None
        if missing is not None or deposit.decimals is None or price is None:
            return outlook.model_copy(update={"not_estimated": missing}), None
        withdrawal = config.withdrawal_fees.get(deposit.asset_key)
        try:
            quoted = policy_quote(
                asset=deposit.asset_key,
                amount=deposit.amount,
                decimals=deposit.decimals,
                price_usd=price,
                gas_estimate=0,
                policy=policy,
                policy_name=name,
                withdrawal_fee_usd=None if withdrawal is None else withdrawal * price,
                vip=facts.claimant_vip,
            )
        except CannotQuote as exc:
            return outlook.model_copy(update={"not_estimated": render(str(exc), locale)}), None
        return (
            outlook.model_copy(
                update={
                    "value_usd": quoted.amount_usd,
                    "fee": quoted.fee,
                    "fee_usd": quoted.fee_usd,
                    "acceptance_required": quoted.acceptance_required,
                }
            ),
            quoted,
        )

    # --- the engineer's path ------------------------------------------------------------------

    async def _sla(self, starts_at: datetime, facts: DepositFacts, quote: Quote | None) -> SlaOutlook:
        terms = await self._sla_terms(starts_at.date())
        plan = plan_sla(terms, starts_at)
        return SlaOutlook(
            starts_at=starts_at,
            target_at=plan.target_at,
            deadline_at=plan.deadline_at,
            target_working_days=terms.target_days,
            deadline_working_days=terms.deadline_days,
            tier=Tier.VIP if facts.claimant_vip else Tier.FIRST_LINE,
            approvals_needed=self._policy.approvals_needed(quote.amount_usd if quote is not None else None),
        )

    async def _sla_terms(self, start: date) -> SlaTerms:
        """The working-day calendar as the worker computes it, once a day (``holidays`` reads files: in a
        thread)."""
        terms = self._terms.get(start)
        if terms is None:
            terms = await asyncio.to_thread(self._calendar.terms, start)
            self._terms = {start: terms}  # only today's is ever asked for again
        return terms

    def _engineer_steps(
        self, case_id: str, deposit: Transfer, facts: DepositFacts, quote: Quote | None, caveats: list[str], tr: Tr
    ) -> list[UserStep]:
        """The workflow's order: the ownership proof (it may come while engineers review), then, once approved,
        the fee's acceptance."""
        steps: list[UserStep] = []
        threshold = self._policy.ownership_proof_usd
        if threshold is not None and quote is not None and quote.amount_usd > threshold:
            if facts.sender_is_contract:
                caveats.append(
                    tr(
                        N_(
                            "The sender {sender} is a contract, which cannot sign an ownership proof: the engineers "
                            "check who controls it from the evidence."
                        ),
                        sender=deposit.sender,
                    )
                )
            else:
                steps.append(
                    UserStep(
                        kind=UserStepKind.PROVE_OWNERSHIP,
                        text=tr(
                            N_(
                                "Worth more than {threshold} USD: prove that you control the sender {sender} (GET "
                                "/v1/cases/{case_id}/ownership-challenge, sign its message with that wallet, POST the "
                                "signature to /v1/cases/{case_id}/ownership-proof), or send a small verification "
                                "deposit from it; the case shows how in next_action."
                            ),
                            threshold=threshold,
                            sender=deposit.sender,
                            case_id=case_id,
                        ),
                    )
                )
        if quote is not None and quote.acceptance_required:
            steps.append(_accept_step(case_id, tr))
        return steps


def _provisional(tr: Tr) -> str:
    return tr(
        N_(
            "Provisional: the engine decides once the deposit has its confirmations, on the facts it gathers then; "
            "it also checks whether the sender is one of the exchange's own wallets, which this answer cannot."
        )
    )


def _fee_caveat(fee: FeeOutlook, tr: Tr) -> str:
    if fee.network_cost == "passed":
        return tr(
            N_(
                "The fee estimate leaves out the network cost (charged to you); the engine's quote is final, and a "
                "deposit that does not cover its fee and network cost is rejected."
            )
        )
    return tr(
        N_(
            "The fee estimate leaves out the network cost (paid by the exchange); the engine's quote is final, and "
            "a deposit that does not cover its fee and network cost is rejected."
        )
    )


def _accept_step(case_id: str, tr: Tr) -> UserStep:
    return UserStep(
        kind=UserStepKind.ACCEPT_FEE,
        text=tr(
            N_(
                "Accept the fee quote: the value is above the policy's acceptance threshold, so nothing is signed "
                'before you answer POST /v1/cases/{case_id}/fee-acceptance {{"accept": true}} (or false to '
                "decline)."
            ),
            case_id=case_id,
        ),
    )


def _waiting_text(confirmations: ConfirmationOutlook | None, tr: Tr) -> str:
    if confirmations is None or confirmations.remaining == 0:
        return tr(N_("Your deposit has its confirmations."))
    values = {
        "remaining": confirmations.remaining,
        "chain": confirmations.chain,
        "have": confirmations.have,
        "need": confirmations.need,
    }
    if confirmations.expected_at is None:
        return tr(
            N_("The deposit needs {remaining} more confirmation(s) on {chain}, {have} of {need} so far."), **values
        )
    return tr(
        N_(
            "The deposit needs {remaining} more confirmation(s) on {chain}, {have} of {need} so far (expected by "
            "{expected_at})."
        ),
        expected_at=confirmations.expected_at,
        **values,
    )


def _engineer_next(sla: SlaOutlook, off_engine: bool, steps: list[UserStep], tr: Tr) -> str:
    parts = [
        tr(
            N_(
                "Then a recovery engineer reviews the case: the decision is due by {target}, at the latest "
                "{deadline} ({target_days} and {deadline_days} working days)."
            ),
            target=sla.target_at.date(),
            deadline=sla.deadline_at.date(),
            target_days=sla.target_working_days,
            deadline_days=sla.deadline_working_days,
        )
    ]
    if off_engine:
        parts.append(
            tr(N_("The engine cannot carry this recovery out itself: the engineer does it by hand (see the reason)."))
        )
    kinds = {s.kind for s in steps}
    if UserStepKind.PROVE_OWNERSHIP in kinds:
        parts.append(tr(N_("Before anything moves you prove that you control the sending address.")))
    if UserStepKind.ACCEPT_FEE in kinds:
        parts.append(tr(N_("Once approved, you accept the fee quote before anything is signed.")))
    if not kinds:
        parts.append(tr(N_("Nothing for you to do unless the engineer asks you something.")))
    return " ".join(parts)


def _seconds(span: timedelta) -> Decimal:
    """A duration in seconds, exactly (``0.2``, not a float's digits), for the reader's number format."""
    return Decimal(span // timedelta(microseconds=1)).scaleb(-6).normalize()


def _asset(deposit: Transfer) -> str:
    """The deposit's asset as a reader knows it: its symbol, else the token in their language."""
    return deposit.asset or Message("token {address}", address=str(deposit.token_address))


def _too_small(quote: Quote, tr: Tr) -> str:
    return tr(
        N_(
            "The deposit of {amount} does not cover the recovery fee of {fee}, before the network cost; it cannot "
            "be recovered."
        ),
        amount=AmountText(quote.amount, quote.decimals, quote.asset),
        fee=AmountText(quote.fee, quote.decimals, quote.asset),
    )


def _plain_failure(exc: Exception, trace: TraceResult, tr: Tr) -> str:
    """Why the preview could not be made, in plain words (never the exception's text: it may carry a node's
    answer or an endpoint)."""
    where = trace.chain or tr(N_("a chain"))
    if isinstance(exc, RpcUnavailable):
        return tr(
            N_("A node the engine asks about this deposit ({chain} or another configured chain) did not answer."),
            chain=where,
        )
    if isinstance(exc, RpcError):
        return tr(
            N_("A node the engine asks about this deposit ({chain} or another configured chain) refused a check."),
            chain=where,
        )
    if isinstance(exc, PermanentError):
        return tr(N_("The engine's configuration cannot answer this yet (an operator has been told in the logs)."))
    return tr(N_("The engine could not check the deposit at claim time."))


class _Scrubber:
    """Removes every configured endpoint URL from a text (the redactor removes secrets)."""

    def __init__(self, chains: list[ChainConfig]) -> None:
        self._urls = sorted({u for c in chains for u in c.rpc_urls}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for url in self._urls:
            if url in text:
                text = text.replace(url, redact_url(url))
        return text


def _clean_texts(answer: ClaimPreview, clean: Callable[[str], str]) -> ClaimPreview:
    def opt(text: str | None) -> str | None:
        return None if text is None else clean(text)

    fee = answer.fee
    if fee is not None:
        fee = fee.model_copy(update={"basis": clean(fee.basis), "not_estimated": opt(fee.not_estimated)})
    return answer.model_copy(
        update={
            "unavailable_reason": opt(answer.unavailable_reason),
            "reason": opt(answer.reason),
            "next": clean(answer.next),
            "caveats": [clean(c) for c in answer.caveats],
            "user_steps": [s.model_copy(update={"text": clean(s.text)}) for s in answer.user_steps],
            "fee": fee,
        }
    )
