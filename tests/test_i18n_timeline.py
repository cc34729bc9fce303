"""Timeline messages and case reasons as message ids (docs/i18n.md): the workflow and the classifier send a ref
beside the English text, the store keeps both, a reader and a notification get the text in their language."""

from __future__ import annotations

import ast
import re
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import Session, select
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from api.schemas import CaseDetail
from recovery.classify import classify
from recovery.i18n import format_amount, format_date, render_ref, translate
from recovery.models import (
    CaseStatus,
    CaseUpdate,
    DepositFacts,
    MessageRef,
    Pattern,
    Route,
    TimelineEvent,
    TraceResult,
    Transfer,
    ref_amount,
    ref_date,
    ref_message,
)
from recovery.names import PATTERN_NAMES, ROUTE_NAMES
from store import cases, users
from store.notifications import Notification
from tests.api_fixtures import TX, Api
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.workflow_fakes import (
    ATTESTER,
    FakeCase,
    english_equals_refs,
    facts,
    new_case,
    quote,
    receipt,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import Assignment, Decision, Escalation
from workflows.case_workflow import CaseWorkflow, _amount, _date

ROOT = Path(__file__).resolve().parent.parent
AMOUNT = 1_234_500_000  # 1234.5 USDT at 6 decimals: grouped and with a decimal mark per language
RECOVERING = "Recovering {amount} on {chain}: fee {fee} (${fee_usd}) plus gas"
ASKS = (
    "A recovery engineer asks: {question} Please answer by {due} (POST {request}); until then your case waits for you."
)
DUE = date(2027, 1, 13)


def _wrong_network() -> DepositFacts:
    deposit = Transfer(
        chain="bsc",
        tx_hash=TX,
        log_index=7,
        token_address="0x55d398326f99059fF775485246999027B3197955",
        asset="USDT",
        decimals=6,
        sender="0x" + "11" * 20,
        recipient="0x" + "22" * 20,
        amount=AMOUNT,
    )
    return DepositFacts(
        claimant_user_id="alice",
        trace=TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=True, transfers=[deposit]),
        deposit=deposit,
        owner_user_id="alice",
        signer_holds_key=True,
        credited_chains=["ethereum", "tron"],
    )


def _update(key: str, status: CaseStatus, text: MessageRef | None, **fields: object) -> CaseUpdate:
    event = TimelineEvent(key=key, status=status, message=f"English of {key}", text=text)
    return CaseUpdate.model_validate({"case_id": "case-i18n", "event": event, **fields})


def _write_case(session: Session, signer: MnemonicSigner, locale: str) -> None:
    users.create_user(session, user_id="alice", signer=signer, path_for=deposit_path_for_tests, locale=locale)
    cases.create_case(session, case_id="case-i18n", user_id="alice", chain="bsc", tx_hash=TX, log_index=7)
    verdict = classify(_wrong_network())
    assert verdict.pattern is Pattern.WRONG_NETWORK_SAME_KEY and verdict.text is not None
    classified = MessageRef(
        msgid="Classified as {pattern} ({route}): {reason}",
        params={
            "pattern": ref_message(MessageRef(msgid=PATTERN_NAMES[verdict.pattern])),
            "route": ref_message(MessageRef(msgid=ROUTE_NAMES[Route.AUTOMATIC])),
            "reason": ref_message(verdict.text),
        },
    )
    recovering = MessageRef(
        msgid=RECOVERING,
        params={
            "amount": ref_amount(AMOUNT, 6, "USDT"),
            "chain": "bsc",
            "fee": ref_amount(5_000_000, 6, "USDT"),
            "fee_usd": "5",
        },
    )
    asks = MessageRef(
        msgid=ASKS,
        params={"question": "Which wallet?", "due": ref_date(DUE), "request": "/v1/cases/case-i18n/messages"},
    )
    updates = [
        _update(
            "classified",
            CaseStatus.CLASSIFIED,
            classified,
            pattern=verdict.pattern,
            reason=verdict.reason,
            reason_text=verdict.text,
        ),
        _update("recovering", CaseStatus.RECOVERING, recovering),
        _update("info-request-1", CaseStatus.AWAITING_USER, asks),
        _update("old-style", CaseStatus.AWAITING_USER, None),  # no ref: English only, as before the migration
    ]
    for update in updates:
        assert cases.apply_case_update(session, update=update)


def _read(session: Session, locale: str) -> tuple[CaseDetail, dict[str, str]]:
    case = cases.get_case(session, case_id="case-i18n")
    assert case is not None
    events = cases.timeline(session, case_id="case-i18n")
    detail = CaseDetail.model_validate(CaseDetail.fields_of(case, events, locale=locale))
    return detail, {e.key: entry.message for e, entry in zip(events, detail.timeline, strict=True)}


EXPECTED = {
    "de": {
        "recovering": "1.234,5 USDT wird auf bsc zurückgeholt: Gebühr 5 USDT ($5) zuzüglich Gas",
        "info-request-1": "Ein Recovery-Techniker fragt: Which wallet? Bitte antworten Sie bis 13. Januar 2027 "
        "(POST /v1/cases/case-i18n/messages); bis dahin wartet Ihr Fall auf Sie.",
        "reason": "USDT wurde auf bsc gesendet, wo die Börse es nicht gutschreibt; gutgeschrieben wird es auf "
        "ethereum, tron. Derselbe Schlüssel kontrolliert Ihre Adresse auf bsc, daher wird es automatisch "
        "zurückgeholt.",
    },
    "ja": {
        "recovering": "bsc で 1,234.5 USDT を回収しています：手数料 5 USDT（$5）とガス代",
        "info-request-1": "復旧エンジニアからの質問：Which wallet? 2027年1月13日 までにご回答ください"
        "（POST /v1/cases/case-i18n/messages）。それまでケースはお客様の回答をお待ちします。",
        "reason": "USDT は、取引所が入金として扱わない bsc で送られました。入金として扱われるのは ethereum, tron です。"
        "bsc 上のお客様のアドレスは同じ鍵で管理されているため、自動で回収されます。",
    },
    "ar": {
        "recovering": f"جارٍ استرداد {format_amount(AMOUNT, 6, 'ar')} USDT على bsc: رسوم "
        f"{format_amount(5_000_000, 6, 'ar')} USDT ($5) بالإضافة إلى الغاز",
        "info-request-1": f"يسأل مهندس الاسترداد: Which wallet? يُرجى الرد قبل {format_date(DUE, 'ar')} "
        "(POST /v1/cases/case-i18n/messages)؛ وحتى ذلك الحين تنتظرك حالتك.",
        "reason": "أُرسل USDT على bsc، حيث لا تقيّده المنصة في الحساب؛ بل يُقيَّد على ethereum, tron. المفتاح نفسه "
        "يتحكم في عنوانك على bsc، لذا يُسترد تلقائيًا.",
    },
}


CLASSIFIED_AS = {
    "de": "Eingestuft als Einzahlung im falschen Netzwerk (automatisch): ",
    "ja": "誤ったネットワークへの入金（自動）に分類されました：",
    "ar": "صُنّفت على أنها إيداع على الشبكة الخطأ (تلقائي): ",
}
"""The pattern and the route by their names in the reader's language (``recovery.names``), never as codes."""


@pytest.mark.parametrize("locale", sorted(EXPECTED))
def test_a_case_reads_in_the_readers_language_and_older_events_stay_english(
    db_session: Session, fake_signer: MnemonicSigner, locale: str
) -> None:
    _write_case(db_session, fake_signer, locale)
    detail, timeline = _read(db_session, locale)
    expected = EXPECTED[locale]
    assert timeline["recovering"] == expected["recovering"]
    assert timeline["info-request-1"] == expected["info-request-1"]
    assert detail.reason == expected["reason"]
    classified = timeline["classified"]  # the reason nested in the sentence, in the same language
    assert classified.startswith(CLASSIFIED_AS[locale]) and classified.endswith(expected["reason"])
    assert timeline["received"] == translate(locale, "Claim received")
    # written without a ref: the stored English in every language
    assert timeline["old-style"] == "English of old-style"


def test_the_store_keeps_the_english_rendering_and_the_ref(db_session: Session, fake_signer: MnemonicSigner) -> None:
    _write_case(db_session, fake_signer, "en")
    events = {e.key: e for e in cases.timeline(db_session, case_id="case-i18n")}
    recovering = events["recovering"]
    assert recovering.message == "Recovering 1,234.5 USDT on bsc: fee 5 USDT ($5) plus gas"
    assert recovering.message_id == RECOVERING and recovering.message_params is not None
    assert events["old-style"].message_id is None and events["old-style"].message == "English of old-style"
    case = cases.get_case(db_session, case_id="case-i18n")
    assert case is not None and case.reason == classify(_wrong_network()).reason and case.reason_id is not None
    detail, timeline = _read(db_session, "en")
    assert timeline["recovering"] == recovering.message and detail.reason == case.reason


def test_a_notification_carries_the_text_in_the_users_locale(db_session: Session, fake_signer: MnemonicSigner) -> None:
    _write_case(db_session, fake_signer, "de")
    rows = {
        n.event_key: n for n in db_session.exec(select(Notification).where(Notification.case_id == "case-i18n")).all()
    }
    assert rows["recovering"].locale == "de" and rows["recovering"].text == EXPECTED["de"]["recovering"]
    assert EXPECTED["de"]["recovering"] in rows["recovering"].payload
    assert rows["old-style"].text == "English of old-style"


async def test_the_api_reads_the_timeline_in_the_requested_language(api: Api) -> None:
    with Session(api.engine) as session:
        cases.create_case(session, case_id="case-i18n", user_id="alice", chain="bsc", tx_hash=TX, log_index=7)
        ref = MessageRef(msgid="Deposit has {have} of {need} confirmations", params={"have": 1, "need": 15})
        cases.apply_case_update(
            session, update=_update("deposit-confirmations-1", CaseStatus.WAITING_CONFIRMATIONS, ref)
        )
    for language, expected, received in (
        ("ja", "入金の承認数は 15 件中 1 件です", "申請を受け付けました"),
        ("de", "Die Einzahlung hat 1 von 15 Bestätigungen", "Antrag eingegangen"),
        ("en", "Deposit has 1 of 15 confirmations", "Claim received"),
    ):
        response = await api.http.get("/v1/cases/case-i18n", headers=api.auth() | {"Accept-Language": language})
        assert response.status_code == 200, response.text
        messages = [e["message"] for e in response.json()["timeline"]]
        assert messages[-1] == expected and messages[0] == received


# --- the English text equals the ref rendered in English ----------------------------------------------


async def test_the_workflows_english_equals_its_refs_in_english(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    fake = FakeCase(
        traces=[trace(deposit, confirmations=1, required=3), trace(deposit, confirmations=3, required=3)],
        facts=facts(deposit),
        sweep_receipts=[receipt("0xsweep", confirmations=1), receipt("0xsweep", confirmations=3)],
    )
    async with running(time_skipping_env, fake) as handle:
        await handle.result()
    with_refs = [u for u in fake.saved if u.event.text is not None]
    assert [u.event.key for u in with_refs] == fake.keys  # the whole automatic path has refs
    for update in with_refs:
        assert update.event.text is not None
        assert cases.english(update.event.text) == update.event.message, update.event.key
    classified = fake.saved_event("classified")
    assert classified.reason_text is not None and cases.english(classified.reason_text) == classified.reason

    missing = FakeCase(traces=[trace(None, chain=None, found=False)], facts=facts(None))
    async with running(time_skipping_env, missing) as handle:
        result = await handle.result()
    rejected = missing.saved_event("rejected")
    assert rejected.event.text is not None and rejected.reason_text == rejected.event.text
    assert cases.english(rejected.event.text) == rejected.event.message == result.reason


async def test_an_engineers_path_has_refs_whose_english_is_the_workflows(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    deposit = usdt_deposit(amount=60_000 * 10**18)  # grouped in English: 60,000 USDT
    fake = FakeCase(
        traces=[trace(deposit)],
        facts=facts(deposit),
        quotes=[quote(amount=deposit.amount, amount_usd=Decimal("60000"))],
    )
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.assign, Assignment(engineer="bob", to="chen"))
        await handle.execute_update(CaseWorkflow.escalate, Escalation(engineer="bob", reason="needs {an} expert"))
        for engineer, note in (("bob", "KYC {ok}"), ("chen", "")):
            now = await time_skipping_env.get_current_time()
            attestation = ATTESTER.attest(case_id=case.case_id, engineer=engineer, action="approve", now=now)
            await handle.execute_update(
                CaseWorkflow.approve, Decision(engineer=engineer, note=note, attestation=attestation)
            )
        await handle.result()
    assert fake.saved_event("recovering").event.message.startswith("Recovering 60,000 USDT on bsc")
    assert fake.saved_event("escalated-1").event.message.endswith(": needs {an} expert")  # as typed
    assert (
        fake.saved_event("decision-approved").event.message
        == "Approved by bob (attested) and chen (attested): KYC {ok}"
    )
    waiting = fake.saved_event("awaiting-approval").event.message  # the SLA's dates, as Babel writes them
    assert re.search(r"Target: [A-Z][a-z]+ \d{1,2}, \d{4}, at the latest [A-Z][a-z]+ \d{1,2}, \d{4}$", waiting)
    english_equals_refs(fake)

    rejected = FakeCase(
        traces=[trace(usdt_deposit())], facts=facts(usdt_deposit(), credited_chains=[]), quotes=[quote()]
    )
    async with running(time_skipping_env, rejected) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_APPROVAL)
        await handle.execute_update(CaseWorkflow.reject, Decision(engineer="bob", reason="a scam token"))
        result = await handle.result()
    assert result.reason == "A recovery engineer rejected the case: a scam token"
    english_equals_refs(rejected)

    reverted = FakeCase(
        traces=[trace(usdt_deposit())],
        facts=facts(usdt_deposit()),
        sweep_receipts=[receipt("0xsweep", succeeded=False)],
    )
    async with running(time_skipping_env, reverted) as handle:
        with pytest.raises(WorkflowFailureError):
            await handle.result()
    assert reverted.keys[-1] == "sweep-reverted"
    english_equals_refs(reverted)


@pytest.mark.parametrize(
    ("base_units", "decimals"),
    [(0, 6), (1, 6), (1_234_500_000, 6), (10**30 + 7, 18), (5_000, 0), (123, 2), (-1_234_500_000, 6)],
)
def test_the_workflows_amounts_and_dates_in_english_are_babels(base_units: int, decimals: int) -> None:
    amount = _amount(base_units, decimals, "USDT")
    assert isinstance(amount, tuple)
    assert render_ref("en", "{a}", {"a": amount[1]}) == amount[0]
    for day in (date(2027, 1, 13), date(2026, 12, 1), datetime(2027, 5, 3, 23, 59, tzinfo=UTC)):
        english, tagged = _date(day)
        assert render_ref("en", "{d}", {"d": tagged}) == english


def test_the_classifiers_english_equals_its_ref_in_english() -> None:
    verdict = classify(_wrong_network())
    assert verdict.text is not None and cases.english(verdict.text) == verdict.reason
    for found, succeeded in ((False, None), (True, None), (True, False)):
        problem = _wrong_network().model_copy(
            update={"trace": TraceResult(chain=None, tx_hash=TX, found=found, succeeded=succeeded)}
        )
        verdict = classify(problem)
        assert verdict.text is not None and cases.english(verdict.text) == verdict.reason
        assert "any configured chain" in verdict.reason


# --- the rule: timeline messages and reasons have a ref, or are listed here as English only -------------

SINKS = {
    "workflows/case_workflow.py": {"_save": 2, "_reject": 1, "_close": 2},
}
"""Calls whose argument (by position) is a timeline message or a reason, per file. (The classifier's
``_reject``, ``_manual`` and ``_automatic`` take only a ``Reason``, an English text with its ref, which mypy
checks: a bare string there fails ``make lint``.)"""
PENDING: set[tuple[str, str]] = set()
"""Functions whose timeline messages or reasons are still English only (docs/i18n.md); each must still have one
(else remove it), and no other function may add one."""


def _unmarked_sinks() -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path, sinks in SINKS.items():

        def visit(node: ast.AST, function: str, path: str = path, sinks: dict[str, int] = sinks) -> None:
            for child in ast.iter_child_nodes(node):
                inner = child.name if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else function
                if isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute | ast.Name):
                    name = child.func.attr if isinstance(child.func, ast.Attribute) else child.func.id
                    position = sinks.get(name)
                    if position is not None and inner not in ("_save", "_reject", "_close", "_manual", "_automatic"):
                        arg = child.args[position] if len(child.args) > position else None
                        has_ref = any(k.arg == "text" for k in child.keywords) or (
                            isinstance(arg, ast.Call) and isinstance(arg.func, ast.Name) and arg.func.id == "_ref"
                        )
                        if not has_ref:
                            found.add((path, inner))
                visit(child, inner)

        visit(ast.parse((ROOT / path).read_text()), "<module>")
    return found


def test_timeline_messages_and_reasons_have_a_ref_or_are_listed_as_pending() -> None:
    unmarked = _unmarked_sinks()
    assert not unmarked - PENDING, f"a timeline message or reason without a ref: {sorted(unmarked - PENDING)}"
    assert not PENDING - unmarked, f"done: remove from PENDING {sorted(PENDING - unmarked)}"
