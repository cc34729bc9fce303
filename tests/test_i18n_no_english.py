"""No English inside a text a user reads in another language (docs/i18n.md).

A representative set of what users read is built the way the engine builds it: every pattern's reason and name,
the workflow's timeline on three paths (an engineer's case with a question, an escalation, a fee override and a
quote to accept; a fee that cannot be quoted, with the SLA's reminders and escalation; an ownership proof), what
adapters could not read, token checks' findings, the credit and incident notes, the scanner's note, a re-run
reported on a closed case, the case read (its reason, timeline and fee basis), ownership-proof refusals, the
refusals of the user's updates, and errors handed on by lower layers. Texts cross activities, the workflow and the
database as they do in production.

Two checks over that set:

- **pseudo-language**: a catalog that turns the words of every message id into glyphs (placeholders kept) leaves
  no English word but the data a text quotes (hashes, addresses, chain names, symbols, the user's or an
  engineer's own words): a text written in English instead of a catalog message shows up here, whatever its
  wording;
- **German and Japanese**: no text contains a phrase of a message id's English (catalogs complete, translated).
"""

from __future__ import annotations

import functools
import gettext
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

import pytest
from babel.messages.pofile import read_po
from sqlmodel import Session
from temporalio import activity
from temporalio.client import WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from api.schemas import CaseDetail
from api.staff_actions import refusal_text
from chains import bitcoin, evm_decode, tron, xrpl
from chains.adapter import Findings
from chains.evm_scan import uncredited_reason
from chains.registry import accepted_formats
from chains.token_safety import BalanceHistory, rebasing_finding, revert_reason
from fees.policy import fee_basis
from fees.prices import StaticPrices
from recovery import i18n
from recovery.classify import classify
from recovery.errors import PermanentError
from recovery.i18n import CATALOG_DIR, Message, render, render_ref
from recovery.models import (
    CaseStatus,
    CaseUpdate,
    DepositFacts,
    MessageRef,
    RecoveryChoice,
    Refund,
    TimelineEvent,
    TokenFinding,
    TokenRisk,
    TraceResult,
    Transfer,
)
from recovery.names import CHOICE_NAMES, PATTERN_NAMES, PROOF_METHOD_NAMES, ROUTE_NAMES, TIER_NAMES
from recovery.settings import ChainConfig, FeePolicyConfig, Settings, UnknownChain, dev_chains
from services import incidents
from services.deposit_finder import scanner_message
from services.evm_chains import EvmChains
from services.ownership import ProofRefused, VerificationTarget, check_verification_deposit
from services.quotes import Quoter
from services.settlement import _completion_message
from store import cases, users
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.workflow_fakes import (
    ATTESTER,
    POLICY,
    SETTLEMENT,
    FakeCase,
    facts,
    new_case,
    quote,
    running,
    saved_soon,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import (
    Assignment,
    Decision,
    Escalation,
    InfoRequest,
    OwnershipProven,
    QuoteAnswer,
    QuoteOutcome,
    QuoteRequest,
    UserMessage,
)
from workflows.case_workflow import OWNERSHIP_PROVER, CaseWorkflow

TX = "0x" + "ab" * 32
TOKEN = "0x55d398326f99059fF775485246999027B3197955"
SENDER = "0x" + "22" * 20
DATA = frozenset(
    {"bsc", "ethereum", "polygon", "tron", "xrp", "bitcoin", "evm", "xrpl", "USDT", "BNB", "ETH", "TRX", "XRP"}
    | {"USD", "alice", "bob", "chen", "solana", "transfer", "KeyError", "EscrowFinish", "SUICIDE"}
    | {"ShieldedTransferContract"}
)
"""Words that are data, not English: chain names, families and symbols, the engineers' names, a function's, a
Python error's and the chains' own names of a transaction's or a call's type."""
IN_OWN_WORDS = "ウォレット？ 42"
"""The user's answer, the engineers' notes and an incident's reason: shown as written, by design (in no English
here, so that the check needs no exception for them)."""
PSEUDO = "ja"
"""The pseudo-language replaces Japanese: Babel writes its dates, numbers and lists without Latin letters."""


@dataclass(frozen=True)
class Shown:
    """One text a user reads: where it comes from, and how it renders in a language."""

    where: str
    render: Callable[[str], str]


def _ref(where: str, ref: MessageRef | None) -> Shown:
    assert ref is not None, f"{where}: English only, no message ref"
    return Shown(where, lambda locale: render_ref(locale, ref.msgid, ref.params))


def _text(where: str, text: str) -> Shown:
    assert isinstance(text, Message), f"{where}: {text!r} is not a message"
    return Shown(where, lambda locale: render(text, locale))


def _saved(where: str, saved: list[CaseUpdate]) -> list[Shown]:
    shown = [_ref(f"{where}: {u.event.key}", u.event.text) for u in saved]
    return shown + [_ref(f"{where}: {u.event.key}, reason", u.reason_text) for u in saved if u.reason is not None]


# --- what lower layers hand on ------------------------------------------------------------------------------


def _chain(name: str, family: Any, symbol: str) -> ChainConfig:
    return ChainConfig(name=name, family=family, rpc_urls=[f"http://{name}.invalid"], native_symbol=symbol)


def _unread() -> list[str]:
    """What the adapters of every family could not read, as they say it."""
    bsc = next(c for c in dev_chains() if c.name == "bsc")
    topics = [evm_decode.TRANSFER_TOPIC, "0x" + "00" * 12 + "11" * 20, "0x" + "00" * 12 + "22" * 20]
    odd_log = {"topics": topics, "logIndex": "0x3", "address": TOKEN, "data": "0x01"}
    shielded = {"raw_data": {"contract": [{"type": "ShieldedTransferContract", "parameter": {"value": {}}}]}}
    xrp = _chain("xrp", "xrpl", "XRP")
    escrow, undelivered = Findings(), Findings()
    xrpl.payment_transfer(xrp, "AB" * 32, {"TransactionType": "EscrowFinish"}, {}, escrow)
    xrpl.payment_transfer(xrp, "AB" * 32, {"TransactionType": "Payment"}, {}, undelivered)
    return [
        *evm_decode.receipt_outcome({"status": None, "logs": [{}]}).unread,
        *evm_decode.receipt_outcome({"status": None, "gasUsed": "0x5208"}, {"gas": "0x5208"}).unread,
        *evm_decode.read_transfer_log(bsc, odd_log).unread,
        *evm_decode.read_internal(bsc, TX, {"calls": [{"type": "SUICIDE", "value": "0x1"}, 7]}).unread,
        *evm_decode.not_decoded(bsc, TX, KeyError("blockNumber")).unread,
        *bitcoin.transfers_of(_chain("bitcoin", "bitcoin", "BTC"), {"txid": "ab" * 32, "vout": [7]}).unread,
        *tron.contract_transfers(_chain("tron", "tron", "TRX"), "ab" * 32, shielded, None).unread,
        *escrow.unread,
        *undelivered.unread,
    ]


def _findings() -> list[TokenFinding]:
    """A token check's findings: a balance that moved without a Transfer log, a transfer that reverted."""
    history = BalanceHistory(
        before=10, at_deposit=110, now=121, head=200, logged_in=100, logged_out=0, logs_after_deposit=0
    )
    rebasing = rebasing_finding(history, holder=SENDER, deposit_block=100)
    assert rebasing is not None
    reverted = TokenFinding(
        risk=TokenRisk.TRANSFER_REVERTS,
        detail=Message("{sweep} reverted: {reason}", sweep="transfer(…)", reason=revert_reason("0x")),
    )
    return [rebasing, reverted]


def _settings(policy: FeePolicyConfig | None = None) -> Settings:
    """The dev chains (without withdrawal fees: a policy charging a multiple of them cannot quote)."""
    settings = Settings(chains=[c.model_copy(update={"withdrawal_fees": {}}) for c in dev_chains()])
    return settings if policy is None else settings.model_copy(update={"fee": policy})


async def _why_no_quote(deposit: Transfer, policy: FeePolicyConfig | None = None) -> str:
    """What the quote activity hands on when no fee can be quoted (``quote_or_reason``)."""
    settings = _settings(policy)
    quoter = Quoter(
        settings=settings,
        signer=cast(Any, None),
        prices=StaticPrices({"USDT": Decimal(1)}),
        chains=EvmChains(settings),
        engine=cast(Any, None),
    )
    try:
        await quoter.quote(deposit, on_chain=False)
    except PermanentError as exc:
        return str(exc)
    raise AssertionError("quoted")


class _Unpriced(FakeCase):
    """A case whose fee cannot be quoted: ``quote_or_reason`` answers the real quoter's reason."""

    @activity.defn(name="quote_or_reason")
    async def quote_or_reason(self, request: QuoteRequest) -> QuoteOutcome:
        self.quote_requests.append(request)
        return QuoteOutcome(reason=await _why_no_quote(_unlisted()))


# --- the workflow's timeline ------------------------------------------------------------------------------


def _unlisted() -> Transfer:
    return usdt_deposit().model_copy(update={"asset": None})


def _basis() -> str:
    return fee_basis(FeePolicyConfig(free_usd=Decimal(50), vip_discount_bps=2_500, network_cost="absorbed"), vip=True)


async def _refusal(handle: Any, update: Any, argument: Any) -> Shown:
    """An update of the user's refused by the workflow, as the status API words it (``refusal_text``)."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(update, argument)
    return _text(f"refusal of {update.__name__}", refusal_text(refused.value.cause))


async def _engineers_case(env: WorkflowEnvironment) -> list[Shown]:
    """An unlisted token with findings and unread parts: a question, an escalation, an assignment, an approval
    with a fee and an action, a quote to accept."""
    deposit = _unlisted()
    offered = quote().model_copy(update={"acceptance_required": True, "basis": _basis()})
    fake = FakeCase(
        traces=[
            trace(deposit, confirmations=1, required=3, block_time_ms=1),
            trace(deposit).model_copy(update={"unread": _unread()}),
        ],
        facts=facts(deposit, credited_chains=[], priced=True, token_findings=_findings()),
        quotes=[offered],
    )
    case = new_case()
    async with running(env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        refusals = [await _refusal(handle, CaseWorkflow.user_message, UserMessage(text=IN_OWN_WORDS))]
        await handle.execute_update(CaseWorkflow.request_info, InfoRequest(engineer="alice", question=IN_OWN_WORDS))
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        refusals.append(await _refusal(handle, CaseWorkflow.user_message, UserMessage(text=" ")))
        await handle.execute_update(CaseWorkflow.user_message, UserMessage(text=IN_OWN_WORDS))
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.escalate, Escalation(engineer="alice", reason=IN_OWN_WORDS))
        await handle.execute_update(CaseWorkflow.assign, Assignment(engineer="bob", to="chen"))
        now = await env.get_current_time()
        approval = Decision(
            engineer="bob",
            note=IN_OWN_WORDS,
            fee_usd=Decimal("4.00"),
            action=RecoveryChoice.SWEEP,
            attestation=ATTESTER.attest(case_id=case.case_id, engineer="bob", action="approve", now=now),
        )
        await handle.execute_update(CaseWorkflow.approve, approval)
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        now = await env.get_current_time()
        attestation = ATTESTER.attest(case_id=case.case_id, engineer=OWNERSHIP_PROVER, action="fee_acceptance", now=now)
        await handle.execute_update(CaseWorkflow.fee_acceptance, QuoteAnswer(accept=True, attestation=attestation))
        refusals.append(await _refusal(handle, CaseWorkflow.fee_acceptance, QuoteAnswer(accept=True)))
        await handle.result()
    waited = {"deposit-confirmations-1", "info-request-1", "escalated-1", "assigned-1", "quote-offered"}
    assert waited <= set(fake.keys)
    return _saved("engineer's case", fake.saved) + refusals


async def _unpriced_case(env: WorkflowEnvironment) -> list[Shown]:
    """A fee that cannot be quoted; the SLA's reminders, its target escalating the case; an engineer rejects."""
    deposit = usdt_deposit()
    fake = _Unpriced(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[]))
    async with running(env, fake) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await env.sleep(timedelta(days=24))
        await saved_soon(fake, "sla-target")
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason=IN_OWN_WORDS))
        await handle.result()
    assert {"no-quote-1", "sla-reminder-1", "sla-target", "rejected"} <= set(fake.keys)
    return _saved("unpriced case", fake.saved)


async def _proven_case(env: WorkflowEnvironment) -> list[Shown]:
    """A case worth more than the policy's proof threshold: a proof for another address, then the right one."""
    deposit = usdt_deposit()
    policy = POLICY.model_copy(update={"ownership_proof_usd": Decimal("50")})
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit, credited_chains=[], approval_policy=policy))
    case = new_case()
    async with running(env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.approve, Decision(engineer="alice"))
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        now = await env.get_current_time()
        attestation = ATTESTER.attest(
            case_id=case.case_id, engineer=OWNERSHIP_PROVER, action="ownership_proven", now=now
        )
        proof = OwnershipProven(address=SENDER, method="verification_deposit", reference=TX, attestation=attestation)
        other = proof.model_copy(update={"address": "0x" + "99" * 20})
        refusals = [await _refusal(handle, CaseWorkflow.ownership_proven, other)]
        await handle.execute_update(CaseWorkflow.ownership_proven, proof)
        await handle.result()
    assert "ownership-proven" in fake.keys
    return _saved("proven case", fake.saved) + refusals


# --- what services, the store and the API write --------------------------------------------------------


def _reasons() -> list[Shown]:
    """The classifier's reason for a deposit of each kind (every pattern it gives)."""
    unlisted = _unlisted()
    tx = trace(usdt_deposit())
    variants: list[dict[str, Any]] = [
        {},
        {"credited_chains": []},
        {"trace": TraceResult(chain=None, tx_hash=TX, found=False), "deposit": None},
        {"trace": tx.model_copy(update={"succeeded": False}), "deposit": None},
        {"owner_user_id": None},
        {"owner_user_id": "mallory"},
        {"already_credited": True},
        {"credited_here": True, "minimum": 200 * 10**18},
        {"deprecated_address": True, "credited_here": True},
        {"recipient_token_contract": True, "owner_user_id": None},
        {"signer_holds_key": False, "contract_on_chains": ["ethereum"]},
        {"fork_of": "bitcoin"},
        {"shared_address": True, "memo_owner_user_id": None},
        {"deposit": unlisted, "priced": False, "token_findings": _findings()},
        {"deposit": unlisted, "priced": True, "recipient_token_contract": True, "owner_user_id": None},
        {"trace": tx.model_copy(update={"unread": _unread()}), "deposit": None},
        {"trace": tx.model_copy(update={"unread": _unread()})},
        {"family": "tron"},
    ]
    shown = []
    for variant in variants:
        verdict = classify(DepositFacts.model_validate(facts(usdt_deposit()).model_dump() | variant))
        shown.append(_ref(f"reason of {verdict.pattern}", verdict.text))
    return shown


def _names() -> list[Shown]:
    """The names of the codes a sentence shows (``recovery.names``)."""
    names: list[dict[Any, str]] = [PATTERN_NAMES, ROUTE_NAMES, TIER_NAMES, CHOICE_NAMES, PROOF_METHOD_NAMES]
    return [_text(f"name of {code}", Message(msgid)) for named in names for code, msgid in named.items()]


def _handed_on() -> list[Shown]:
    """Texts of lower layers that end up in a sentence or an error body: the fee's basis, why a case was opened by
    the scanner, ownership-proof refusals, a chain that is not configured, the transaction ids a chain takes."""
    settings = _settings()
    bsc = settings.require_chain("bsc")
    unlisted = _unlisted()
    uncredited = uncredited_reason(bsc, unlisted)
    assert uncredited is not None
    shown = [
        _text("fee basis", _basis()),
        _text("amount of an unlisted token", unlisted.amount_message()),
        _text("scanner's note", scanner_message(unlisted, reason=uncredited, block_number=7)),
        _text("transaction id formats", accepted_formats(dev_chains())),
    ]
    with pytest.raises(UnknownChain) as unknown:
        settings.require_chain("solana")
    shown.append(_text("unknown chain", str(unknown.value)))
    target = VerificationTarget(
        case_id="case-1",
        chain=bsc,
        address=SENDER.lower(),
        recipient="0x" + "11" * 20,
        memo=None,
        deposit_tx_hash=TX,
        challenged_at=None,
    )
    for traced in (trace(None), trace(None, found=False)):
        with pytest.raises(ProofRefused) as refused:
            check_verification_deposit(traced, target, linked_to=None)
        shown.append(_text("ownership proof refused", str(refused.value)))
    return shown


def _closed_case(session: Session, signer: MnemonicSigner) -> list[Shown]:
    """A case the store wrote (an incident's note, the reason, the quote, the credit with the waived fee, a re-run
    reported after its close), read as the API answers it; and a refund's note."""
    users.create_user(session, user_id="alice", signer=signer, path_for=deposit_path_for_tests)
    cases.create_case(session, case_id="case-1", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
    opened = cases.get_case(session, case_id="case-1")
    assert opened is not None
    incident, _ = incidents.declare(
        session,
        chain="bsc",
        asset=None,
        starts_at=opened.created_at - timedelta(hours=1),
        ends_at=opened.created_at + timedelta(hours=1),
        reason=IN_OWN_WORDS,
        compensation_usd=Decimal("20"),
        declared_by="alice",
    )
    verdict = classify(facts(usdt_deposit()))
    classified = TimelineEvent(
        key="classified", status=CaseStatus.CLASSIFIED, message=verdict.reason, text=verdict.text
    )
    quoted = quote().model_copy(update={"basis": _basis()})
    update = CaseUpdate(
        case_id="case-1", event=classified, reason=verdict.reason, reason_text=verdict.text, quote=quoted
    )
    assert cases.apply_case_update(session, update=update)
    case = cases.get_case(session, case_id="case-1")
    assert case is not None
    credited = _completion_message(18, "USDT", SETTLEMENT, None, incident)
    cases.add_completion(session, case=case, settlement=SETTLEMENT, fee_usd=Decimal("5"), message=credited)
    session.commit()
    rerun = TimelineEvent(key="sweep-mined", status=CaseStatus.RECOVERING, message=verdict.reason, text=verdict.text)
    assert cases.apply_case_update(session, update=CaseUpdate(case_id="case-1", event=rerun))
    events = cases.timeline(session, case_id="case-1")
    assert [e.key for e in events] == ["received", "incident-1", "classified", "credited", "sweep-mined"]

    def read(locale: str) -> dict[str, str]:
        detail = CaseDetail.model_validate(CaseDetail.fields_of(case, events, locale=locale))
        assert detail.fees.basis is not None
        texts = {"reason": detail.reason, "fees.basis": detail.fees.basis, "next_action": detail.next_action.text}
        return texts | {f"timeline: {e.key}": entry.message for e, entry in zip(events, detail.timeline, strict=True)}

    refund = Refund(to=SENDER, amount=90 * 10**18, tx_hash=TX)
    refunded = SETTLEMENT.model_copy(update={"credited": 0, "refunded": 90 * 10**18, "gas": 5 * 10**18})
    return [
        *(Shown(f"case read, {field}", functools.partial(_field, read, field)) for field in read("en")),
        _text("refunded", _completion_message(18, "USDT", refunded, refund, None)),
    ]


def _field(read: Callable[[str], dict[str, str]], field: str, locale: str) -> str:
    return read(locale)[field]


# --- the checks --------------------------------------------------------------------------------------------

LETTERS = re.compile(r"[A-Za-z]+")
QUOTED_DATA = re.compile(r"0x\w+|\b[0-9a-fA-F]{16,}\b|/v1/\S+|https?://\S+|\bcase-[\w-]+|\{[^{}]*\}")
"""Hashes and addresses (the fakes' transaction hashes too), API paths, URLs, case ids and JSON bodies a text
quotes."""
WORD = re.compile(r"[A-Za-z]{2,}")


class _Pseudo(gettext.NullTranslations):
    """Every word of a message id as glyphs (``■■■■``); placeholders, digits and punctuation kept."""

    def gettext(self, message: str) -> str:
        parts: list[str] = []
        for literal, field, _spec, _conversion in string.Formatter().parse(message):
            glyphs = LETTERS.sub(lambda word: "■" * len(word.group()), literal)
            parts.append(glyphs.replace("{", "{{").replace("}", "}}"))
            if field is not None:
                parts.append("{" + field + "}")
        return "".join(parts)


def _in_pseudo_language(text: Shown) -> str:
    real = i18n._translations

    def translations(tag: str) -> gettext.NullTranslations:
        return _Pseudo() if tag == PSEUDO else real(tag)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(i18n, "_translations", translations)
        return text.render(PSEUDO)


def _english_words(text: str) -> set[str]:
    return {word for word in WORD.findall(QUOTED_DATA.sub(" ", text)) if word not in DATA}


def _phrases() -> set[str]:
    """The English of the catalogs' messages, as phrases of three words or more between placeholders and marks."""
    with (CATALOG_DIR / "messages.pot").open("rb") as file:
        template = read_po(file)
    phrases: set[str] = set()
    for message in template:
        if not isinstance(message.id, str) or not message.id:
            continue
        for literal, *_ in string.Formatter().parse(message.id):
            for phrase in re.split(r"[.;:()\"]", literal):
                words = phrase.split()
                if len(words) >= 3:
                    phrases.add(" ".join(words))
    return phrases


async def _everything(env: WorkflowEnvironment, session: Session, signer: MnemonicSigner) -> list[Shown]:
    return [
        *_names(),
        *_reasons(),
        *_handed_on(),
        _text("no fee: no price", await _why_no_quote(usdt_deposit().model_copy(update={"asset": None}))),
        _text("no fee: the policy", await _why_no_quote(usdt_deposit(), FeePolicyConfig(withdrawal_fee_multiple=5))),
        *_closed_case(session, signer),
        *await _engineers_case(env),
        *await _unpriced_case(env),
        *await _proven_case(env),
    ]


async def test_no_text_a_user_reads_is_english_in_another_language(
    time_skipping_env: WorkflowEnvironment, db_session: Session, fake_signer: MnemonicSigner
) -> None:
    shown = await _everything(time_skipping_env, db_session, fake_signer)
    assert all(s.render("en") for s in shown)

    english = {s.where: words for s in shown if (words := _english_words(_in_pseudo_language(s)))}
    assert not english, "English words in texts of another language (write them as catalog messages):\n" + "\n".join(
        f"{where}: {sorted(words)}" for where, words in english.items()
    )
    phrases = _phrases()
    for locale in ("de", "ja"):
        found = {s.where: [p for p in phrases if p in s.render(locale)] for s in shown}
        left = {where: sorted(p) for where, p in found.items() if p}
        assert not left, f"English phrases in {locale} (translate them in its catalog): {left}"
