"""The classifier is pure: every pattern of the walking skeleton from hand-built facts."""

from __future__ import annotations

import pytest

from recovery.classify import classify
from recovery.models import DepositFacts, Pattern, Route, TraceResult, Transfer

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
        ({"signer_holds_key": False}, Pattern.UNLISTED_TOKEN),
        ({"credited_chains": []}, Pattern.UNLISTED_TOKEN),
        ({"deposit": _usdt(asset=None)}, Pattern.UNLISTED_TOKEN),
    ],
)
def test_recoverable_but_manual(overrides: dict[str, object], pattern: Pattern) -> None:
    verdict = classify(_facts(**overrides))
    assert verdict.pattern is pattern
    assert verdict.recoverable and verdict.route is Route.MANUAL


def test_not_your_deposit_wins_over_already_credited() -> None:
    assert classify(_facts(owner_user_id="bob", already_credited=True)).pattern is Pattern.NOT_YOUR_DEPOSIT
