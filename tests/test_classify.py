"""The classifier is pure: every pattern of the walking skeleton from hand-built facts."""

from __future__ import annotations

import pytest

from recovery.classify import classify
from recovery.i18n import render_ref
from recovery.models import Action, DepositFacts, Pattern, Route, TokenFinding, TokenRisk, TraceResult, Transfer

TX = "0x" + "ab" * 32
D = "0x1111111111111111111111111111111111111111"


def _usdt(chain: str = "bsc", asset: str | None = "USDT") -> Transfer:
    return Transfer(
        chain=chain,
        tx_hash=TX,
        log_index=0,
        token_address="0x55d398326f99059fF775485246999027B3197955",
        asset=asset,
        decimals=18 if asset else None,
        sender="0x" + "22" * 20,
        recipient=D,
        amount=100 * 10**18,
    )


def _facts(**overrides: object) -> DepositFacts:
    deposit = _usdt()
    base: dict[str, object] = {
        "claimant_user_id": "alice",
        "trace": TraceResult(
            chain="bsc",
            tx_hash=TX,
            found=True,
            succeeded=True,
            confirmations=5,
            required_confirmations=3,
            transfers=[deposit],
        ),
        "deposit": deposit,
        "owner_user_id": "alice",
        "signer_holds_key": True,
        "credited_chains": ["ethereum"],
    }
    base.update(overrides)
    return DepositFacts.model_validate(base)


def test_wrong_network_same_key_is_automatic() -> None:
    verdict = classify(_facts())
    assert verdict.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert verdict.recoverable and verdict.route is Route.AUTOMATIC
    assert "ethereum" in verdict.reason and "bsc" in verdict.reason


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"trace": TraceResult(chain=None, tx_hash=TX, found=False), "deposit": None}, Pattern.NOT_FOUND),
        (
            {"trace": TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=False), "deposit": None},
            Pattern.FAILED_TX,
        ),
        (  # known to the node but never mined
            {"trace": TraceResult(chain="bsc", tx_hash=TX, found=True, succeeded=None), "deposit": None},
            Pattern.NOT_FOUND,
        ),
        ({"deposit": None, "owner_user_id": None}, Pattern.NOT_OURS),
        ({"owner_user_id": None}, Pattern.NOT_OURS),
        ({"internal_transfer": True}, Pattern.NOT_OURS),
        ({"owner_user_id": "mallory"}, Pattern.NOT_YOUR_DEPOSIT),
        ({"already_credited": True}, Pattern.ALREADY_CREDITED),
        ({"credited_here": True}, Pattern.ALREADY_CREDITED),
    ],
)
def test_rejections_have_a_readable_reason(overrides: dict[str, object], pattern: Pattern) -> None:
    verdict = classify(_facts(**overrides))
    assert verdict.pattern is pattern
    assert not verdict.recoverable and verdict.route is Route.NONE
    assert len(verdict.reason) > 20


@pytest.mark.parametrize(
    ("overrides", "pattern"),
    [
        ({"recipient_is_contract": True}, Pattern.CONTRACT_RECIPIENT),
        ({"signer_holds_key": False}, Pattern.CONTRACT_RECIPIENT),
        ({"credited_chains": []}, Pattern.UNLISTED_TOKEN),
        ({"deposit": _usdt(asset=None), "priced": False}, Pattern.UNLISTED_TOKEN),
    ],
)
def test_recoverable_but_manual(overrides: dict[str, object], pattern: Pattern) -> None:
    verdict = classify(_facts(**overrides))
    assert verdict.pattern is pattern
    assert verdict.recoverable and verdict.route is Route.MANUAL


def test_not_your_deposit_wins_over_already_credited() -> None:
    assert classify(_facts(owner_user_id="bob", already_credited=True)).pattern is Pattern.NOT_YOUR_DEPOSIT


def _findings(*risks: TokenRisk) -> list[TokenFinding]:
    return [TokenFinding(risk=r, detail=f"{r.value.lower()} observed") for r in risks]


def test_unlisted_token_safe_and_priced_is_automatic() -> None:
    verdict = classify(_facts(deposit=_usdt(asset=None), token_symbol="SAFE", priced=True))
    assert verdict.pattern is Pattern.UNLISTED_TOKEN and verdict.route is Route.AUTOMATIC
    assert verdict.action is Action.SWEEP and "SAFE" in verdict.reason


@pytest.mark.parametrize("risk", [TokenRisk.TRANSFER_REVERTS, TokenRisk.FEE_ON_TRANSFER, TokenRisk.REBASING])
def test_risky_unlisted_token_goes_to_an_engineer_with_the_finding(risk: TokenRisk) -> None:
    verdict = classify(_facts(deposit=_usdt(asset=None), token_findings=_findings(risk), priced=True))
    assert verdict.pattern is Pattern.UNLISTED_TOKEN and verdict.route is Route.MANUAL
    assert f"{risk.value.lower()} observed" in verdict.reason


def test_unpriced_unlisted_token_says_so() -> None:
    verdict = classify(_facts(deposit=_usdt(asset=None), priced=False))
    assert verdict.route is Route.MANUAL and "no price" in verdict.reason


def test_reorged_deposit_says_why() -> None:
    trace = TraceResult(chain="bsc", tx_hash=TX, found=False, required_confirmations=12)
    verdict = classify(_facts(trace=trace, deposit=None, vanished_from_block=41))
    assert verdict.pattern is Pattern.NOT_FOUND and not verdict.recoverable
    assert "block 41" in verdict.reason and "reorganisation" in verdict.reason


def test_token_contract_recipient_without_rescue_route_is_unrecoverable() -> None:
    verdict = classify(_facts(recipient_token_contract=True, owner_user_id=None))
    assert verdict.pattern is Pattern.TOKEN_CONTRACT_RECIPIENT and not verdict.recoverable


def test_token_contract_recipient_with_rescue_route_is_manual() -> None:
    verdict = classify(_facts(recipient_token_contract=True, owner_user_id=None, rescue_route="issuer rescue"))
    assert verdict.pattern is Pattern.TOKEN_CONTRACT_RECIPIENT and verdict.route is Route.MANUAL
    assert verdict.action is Action.OFF_ENGINE and "issuer rescue" in verdict.reason


def test_contract_wallet_elsewhere_warns_about_the_redeploy_race() -> None:
    verdict = classify(_facts(signer_holds_key=False, contract_on_chains=["ethereum"]))
    assert verdict.pattern is Pattern.CONTRACT_RECIPIENT and verdict.route is Route.MANUAL
    assert "race" in verdict.reason and verdict.action is Action.OFF_ENGINE


@pytest.mark.parametrize(
    ("memo", "memo_owner", "expect", "action"),
    [
        (None, None, "no memo", Action.CREDIT),
        ("7", None, "belongs to no account", Action.CREDIT),
        # credited to its owner already: the engine never credits it a second time
        ("8", "mallory", "another account", Action.OFF_ENGINE),
    ],
)
def test_missing_or_wrong_memo_is_manual(memo: str | None, memo_owner: str | None, expect: str, action: Action) -> None:
    deposit = _usdt().model_copy(update={"memo": memo})
    verdict = classify(
        _facts(deposit=deposit, owner_user_id=memo_owner, shared_address=True, memo_owner_user_id=memo_owner)
    )
    assert verdict.pattern is Pattern.MISSING_OR_WRONG_MEMO and verdict.route is Route.MANUAL
    assert verdict.action is action and expect in verdict.reason


def test_own_memo_for_an_asset_not_credited_there_goes_to_an_engineer() -> None:
    deposit = _usdt().model_copy(update={"memo": "5"})
    verdict = classify(_facts(deposit=deposit, shared_address=True, memo_owner_user_id="alice", credited_here=False))
    assert verdict.route is Route.MANUAL and verdict.action is Action.CREDIT


def test_owned_non_evm_deposit_is_not_mistaken_for_a_contract_wallet() -> None:
    deposit = _usdt(chain="tron")
    trace = TraceResult(chain="tron", tx_hash=TX, found=True, succeeded=True, confirmations=1, required_confirmations=1)
    supported = classify(
        _facts(family="tron", trace=trace, deposit=deposit, signer_holds_key=False, credited_here=True)
    )
    assert supported.pattern is Pattern.ALREADY_CREDITED
    wrong_network = classify(_facts(family="tron", trace=trace, deposit=deposit, signer_holds_key=False))
    assert wrong_network.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert wrong_network.route is Route.MANUAL and wrong_network.action is Action.OFF_ENGINE


def test_own_memo_on_shared_address_is_a_regular_deposit() -> None:
    deposit = _usdt().model_copy(update={"memo": "5"})
    verdict = classify(_facts(deposit=deposit, shared_address=True, memo_owner_user_id="alice", credited_here=True))
    assert verdict.pattern is Pattern.ALREADY_CREDITED


def test_below_minimum_waits_until_the_total_passes() -> None:
    small = _facts(credited_here=True, minimum=200 * 10**18, uncredited_total=100 * 10**18)
    assert classify(small).pattern is Pattern.BELOW_MINIMUM and classify(small).route is Route.MANUAL
    enough = _facts(credited_here=True, minimum=200 * 10**18, uncredited_total=250 * 10**18)
    assert classify(enough).pattern is Pattern.BELOW_MINIMUM and classify(enough).route is Route.AUTOMATIC
    assert classify(_facts(credited_here=True, minimum=10 * 10**18)).pattern is Pattern.ALREADY_CREDITED


def test_deprecated_address_is_automatic() -> None:
    verdict = classify(_facts(deprecated_address=True, credited_here=True))
    assert verdict.pattern is Pattern.DEPRECATED_ADDRESS and verdict.route is Route.AUTOMATIC


def test_utxo_fork_is_manual() -> None:
    verdict = classify(_facts(fork_of="bitcoin"))
    assert verdict.pattern is Pattern.UTXO_FORK and verdict.route is Route.MANUAL
    assert verdict.action is Action.OFF_ENGINE


# --- what the adapter could not read never becomes a silent verdict ------------------------------------------

UNREAD = "the receipt has no status field (before Byzantium)"


def _unread_trace(**update: object) -> TraceResult:
    trace = _facts().trace
    return trace.model_copy(update={"unread": [UNREAD], **update})


def test_an_automatic_verdict_with_unread_parts_goes_to_an_engineer_and_says_why() -> None:
    verdict = classify(_facts(trace=_unread_trace()))
    assert verdict.pattern is Pattern.WRONG_NETWORK_SAME_KEY
    assert verdict.recoverable and verdict.route is Route.MANUAL and verdict.action is Action.SWEEP
    assert UNREAD in verdict.reason and "an engineer checks it before anything moves" in verdict.reason
    assert verdict.text is not None


def test_a_manual_verdict_with_unread_parts_names_them() -> None:
    verdict = classify(_facts(credited_chains=[], trace=_unread_trace()))
    assert verdict.route is Route.MANUAL and UNREAD in verdict.reason


def test_no_deposit_with_unread_parts_is_not_a_silent_nothing_here() -> None:
    verdict = classify(_facts(deposit=None, trace=_unread_trace(transfers=[])))
    assert verdict.pattern is Pattern.NOT_OURS and verdict.route is Route.NONE
    assert UNREAD in verdict.reason and "contact support" in verdict.reason


def test_a_mined_transaction_whose_success_could_not_be_judged_is_not_called_unmined_or_failed() -> None:
    verdict = classify(_facts(trace=_unread_trace(succeeded=None, block_number=4_000_000)))
    assert verdict.pattern is Pattern.WRONG_NETWORK_SAME_KEY and verdict.route is Route.MANUAL
    provisional = _unread_trace(
        succeeded=None, block_number=90_000_000, confirmations=0
    )  # an XRPL ledger not validated
    assert classify(_facts(trace=provisional, deposit=None)).pattern is Pattern.NOT_FOUND
    unmined = classify(_facts(trace=_facts().trace.model_copy(update={"succeeded": None}), deposit=None))
    assert unmined.pattern is Pattern.NOT_FOUND  # without a block and with nothing unread: never mined
    assert "never mined" in unmined.reason


def test_an_answer_the_adapter_could_not_decode_is_not_called_unmined() -> None:
    undecoded = _unread_trace(succeeded=None, block_number=None, transfers=[])
    verdict = classify(_facts(trace=undecoded, deposit=None))
    assert verdict.pattern is Pattern.NOT_FOUND and verdict.route is Route.NONE
    assert "could not read the node's answer" in verdict.reason and "never mined" not in verdict.reason
    assert UNREAD in verdict.reason and "contact support" in verdict.reason


def test_amounts_in_reasons_are_tagged_for_the_readers_language() -> None:
    deposit = _usdt().model_copy(update={"amount": 1_234_500_000_000_000_000_000})
    verdict = classify(_facts(deposit=deposit, deprecated_address=True, credited_chains=[]))
    assert verdict.reason.startswith("1,234.5 USDT was sent on bsc")
    assert verdict.text is not None
    assert verdict.text.params["amount"] == {
        "amount": {"base_units": str(deposit.amount), "decimals": 18, "asset": "USDT"}
    }


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"trace": _unread_trace()},
        {"deposit": None, "trace": _unread_trace(transfers=[])},
        {"credited_chains": []},
        {"deposit": _usdt(asset=None), "token_symbol": "SCAM", "priced": False},
        {"deprecated_address": True, "credited_chains": []},
        {"recipient_token_contract": True, "rescue_route": "ask the issuer"},
        {"recipient_token_contract": True},
        {"shared_address": True, "memo_owner_user_id": None},
        {"shared_address": True, "memo_owner_user_id": "bob"},
        {"credited_here": True, "minimum": 200 * 10**18, "uncredited_total": 300 * 10**18},
        {"credited_here": True, "minimum": 200 * 10**18},
        {"signer_holds_key": False, "contract_on_chains": ["ethereum"]},
        {"fork_of": "bitcoin", "family": "bitcoin"},
        {"family": "tron"},
        {"already_credited": True},
        {"internal_transfer": True},
    ],
)
def test_every_reason_is_its_ref_rendered_in_english(overrides: dict[str, object]) -> None:
    verdict = classify(_facts(**overrides))
    assert verdict.text is not None, verdict.reason
    assert render_ref("en", verdict.text.msgid, verdict.text.params) == verdict.reason


def test_a_trc10_deposit_is_an_unlisted_token_for_an_engineer() -> None:
    """A TRC-10 transfer is traced as a token keyed by its asset id (chains/tron.py), like any unlisted token."""
    trc10 = Transfer(
        chain="tron",
        tx_hash=TX,
        log_index=-1,
        token_address="1002000",
        asset=None,
        decimals=None,
        sender="TXYZ" + "1" * 30,
        recipient="TABC" + "2" * 30,
        amount=16,
    )
    trace = TraceResult(chain="tron", tx_hash=TX, found=True, succeeded=True, transfers=[trc10])
    verdict = classify(_facts(trace=trace, deposit=trc10, family="tron", credited_chains=[]))
    assert verdict.pattern is Pattern.UNLISTED_TOKEN and verdict.route is Route.MANUAL
    assert "(1002000)" in verdict.reason and "no price" in verdict.reason
