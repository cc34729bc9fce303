"""USD figures, percentages and other numbers inside the texts users read are formatted for the reader's language
by Babel (docs/i18n.md), never handed on as English text: German groups thousands with a dot and marks decimals
with a comma (``1.234,50``), French groups with a narrow no-break space (``1 234,50``), Turkish writes the percent
sign first (``%2,5``). A figure passed as a preformatted string again keeps its English form and fails here."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlmodel import Session
from temporalio.testing import WorkflowEnvironment

from api.schemas import CaseDetail
from chains.token_safety import _pct
from fees.policy import fee_basis, waive
from recovery.i18n import Message, decode, encode, render, render_ref, translate
from recovery.models import CaseStatus, MessageRef, Quote, TokenFinding, TokenRisk
from recovery.settings import FeePolicyConfig
from services import incidents
from services.claim_preview import _seconds
from store import cases, users
from tests.api_fixtures import TX
from tests.db_fixtures import MnemonicSigner, deposit_path_for_tests
from tests.workflow_fakes import (
    ATTESTER,
    FakeCase,
    facts,
    new_case,
    quote,
    running,
    trace,
    usdt_deposit,
    wait_for_status,
)
from workflows.case_messages import QuoteAnswer
from workflows.case_workflow import OWNERSHIP_PROVER, CaseWorkflow, _decimal

FIGURE = Decimal("1234.50")
"""A USD figure with thousands and cents: every decimal it has is shown, as the reader's language writes it."""
WRITTEN = {"en": "1,234.50", "de": "1.234,50", "fr": "1\u202f234,50", "ru": "1\u00a0234,50"}


def _ref_in(locale: str, ref: MessageRef | None) -> str:
    assert ref is not None
    return render_ref(locale, ref.msgid, ref.params)


def test_a_fee_policy_in_words_has_the_readers_figures_and_percentages() -> None:
    policy = FeePolicyConfig(
        percent_bps=250, free_usd=FIGURE, min_usd=Decimal("10.50"), max_usd=Decimal("5000"), vip_discount_bps=1250
    )
    basis = fee_basis(policy, vip=True)
    assert basis == (
        "free up to 1,234.50 USD, then 2.5% of the value above it (at least 10.50 USD, at most 5,000 USD), less the "
        "VIP discount of 12.5%"
    )
    german, french = render(basis, "de"), render(basis, "fr")
    for figure in ("1.234,50 USD", "2,5\u00a0%", "10,50 USD", "5.000 USD", "12,5\u00a0%"):
        assert figure in german, german
    for figure in ("1\u202f234,50 USD", "2,5\u00a0%", "10,50 USD", "5\u202f000 USD", "12,5\u00a0%"):
        assert figure in french, french
    assert "%2,5" in render(basis, "tr") and "%12,5" in render(basis, "tr")

    flat = fee_basis(FeePolicyConfig(flat_usd=Decimal("1500"), min_usd=None, max_usd=None), vip=False)
    assert flat == "a flat 1,500 USD" and "1.500 USD" in render(flat, "de")
    multiple = fee_basis(FeePolicyConfig(withdrawal_fee_multiple=1000, min_usd=None, max_usd=None), vip=False)
    assert "1.000" in render(multiple, "de") and "1\u202f000" in render(multiple, "fr")


def test_a_quotes_basis_keeps_its_figures_through_json() -> None:
    """A quote crosses activities and the database as JSON: its basis's numbers stay tagged, not English."""
    quoted = quote().model_copy(
        update={"fee_usd": FIGURE, "basis": fee_basis(FeePolicyConfig(percent_bps=250), vip=False)}
    )
    waived = Quote.model_validate_json(waive(quoted, incident_id=7, reason="node outage").model_dump_json())
    assert waived.basis == "fee waived: incident #7 (node outage); the policy's fee would be 1,234.50 USD"
    assert WRITTEN["de"] in render(waived.basis, "de") and WRITTEN["fr"] in render(waived.basis, "fr")
    again = Quote.model_validate_json(quoted.model_dump_json())
    assert "2,5\u00a0%" in render(again.basis, "de") and "2,5\u00a0%" in render(again.basis, "ru")


def test_a_token_checks_share_is_a_percentage_in_the_readers_language() -> None:
    share = _pct(1, 3)
    assert share == "33.33%" and render(share, "de") == "33,33\u00a0%" and render(share, "tr") == "%33,33"
    detail = Message(
        "{sweep} delivered {delivered} of {amount} to {to}: {kept} ({share}) kept",
        sweep="a dry run",
        delivered=2,
        amount=3,
        to="0xabc",
        kept=1,
        share=share,
    )
    finding = TokenFinding.model_validate_json(
        TokenFinding(risk=TokenRisk.FEE_ON_TRANSFER, detail=detail).model_dump_json()
    )
    assert finding.detail == "a dry run delivered 2 of 3 to 0xabc: 1 (33.33%) kept"
    assert "(33,33\u00a0%)" in render(finding.detail, "de") and "(33,33\u00a0%)" in render(finding.detail, "fr")
    assert decode(encode({"share": share})) == {"share": share}


def test_the_claim_previews_timeout_in_the_readers_number_format() -> None:
    seconds = _seconds(timedelta(milliseconds=1500))
    msgid = "The checks on {chain} took longer than {seconds} s; the engine continues them."
    assert "longer than 1.5 s" in translate("en", msgid, chain="bsc", seconds=seconds)
    assert "1,5 s" in translate("de", msgid, chain="bsc", seconds=seconds)
    assert _seconds(timedelta(seconds=10)) == 10 and _seconds(timedelta(milliseconds=200)) == Decimal("0.2")


@pytest.mark.parametrize("value", ["0", "0.00", "5.00", "1234.50", "-1234.5", "1E+3", "60000", "12345678901.123456"])
def test_the_workflows_figures_in_english_are_babels(value: str) -> None:
    english, tagged = _decimal(Decimal(value))
    assert render_ref("en", "{v}", {"v": tagged}) == english
    assert tagged == {"decimal": value}


async def test_the_workflows_usd_figures_read_in_the_readers_language(time_skipping_env: WorkflowEnvironment) -> None:
    deposit = usdt_deposit()
    offered = quote().model_copy(update={"acceptance_required": True, "fee_usd": FIGURE})
    fake = FakeCase(traces=[trace(deposit)], facts=facts(deposit), quotes=[offered])
    case = new_case()
    async with running(time_skipping_env, fake, case) as handle:
        await wait_for_status(handle, CaseStatus.AWAITING_USER)
        now = await time_skipping_env.get_current_time()
        attestation = ATTESTER.attest(case_id=case.case_id, engineer=OWNERSHIP_PROVER, action="fee_acceptance", now=now)
        await handle.execute_update(CaseWorkflow.fee_acceptance, QuoteAnswer(accept=False, attestation=attestation))
        result = await handle.result()
    assert result.status is CaseStatus.CANCELLED and "(fee 1,234.50 USD)" in result.reason
    cancelled, quoted = fake.saved_event("cancelled").event, fake.saved_event("quote-offered").event
    assert "($1,234.50, " in quoted.message
    for locale, written in WRITTEN.items():
        assert written in _ref_in(locale, cancelled.text), (locale, _ref_in(locale, cancelled.text))
        assert written in _ref_in(locale, quoted.text), (locale, _ref_in(locale, quoted.text))


def test_an_incidents_compensation_reads_in_the_readers_language(
    db_session: Session, fake_signer: MnemonicSigner
) -> None:
    users.create_user(db_session, user_id="alice", signer=fake_signer, path_for=deposit_path_for_tests)
    cases.create_case(db_session, case_id="case-1", user_id="alice", chain="bsc", tx_hash=TX, log_index=0)
    opened = cases.get_case(db_session, case_id="case-1")
    assert opened is not None
    incidents.declare(
        db_session,
        chain="bsc",
        asset=None,
        starts_at=opened.created_at - timedelta(hours=1),
        ends_at=opened.created_at + timedelta(hours=1),
        reason="node outage",
        compensation_usd=FIGURE,
        declared_by="alice",
    )
    case = cases.get_case(db_session, case_id="case-1")
    assert case is not None
    events = cases.timeline(db_session, case_id="case-1")
    keys = [e.key for e in events]
    for locale, written in WRITTEN.items():
        note = (
            CaseDetail.model_validate(CaseDetail.fields_of(case, events, locale=locale))
            .timeline[keys.index("incident-1")]
            .message
        )
        assert written in note, (locale, note)
