"""The approval rules as pure functions: roster, tiers, limits, four-eyes, attestations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from recovery.attestation import refuse_attestation
from recovery.roster import Approval, ApprovalPolicy, Engineer, Tier, refuse_approval, refuse_decision
from recovery.settings import Settings, dev_roster
from services.attesting import Attester, load_or_create_key, public_hex

POLICY = ApprovalPolicy(roster=dev_roster(), four_eyes_usd=Decimal("50000"), unattested="single")


def refusal(engineer: str, usd: str | None, *, approvals: tuple[str, ...] = (), attested: bool = True) -> str | None:
    return refuse_approval(
        POLICY,
        engineer=engineer,
        case_user_id="user-1",
        amount_usd=None if usd is None else Decimal(usd),
        approvals=[Approval(engineer=a, attested=True) for a in approvals],
        attested=attested,
    )


def test_dev_roster_tiers_and_limits() -> None:
    assert [(e.name, e.tier, e.approval_limit_usd) for e in Settings().engineers] == [
        ("alice", Tier.FIRST_LINE, Decimal("1000")),
        ("bob", Tier.ENGINEERING, Decimal("100000")),
        ("chen", Tier.EXPERT, None),
        ("vera", Tier.VIP, Decimal("100000")),
    ]
    settings = Settings()
    assert (settings.auto_limit_usd, settings.four_eyes_usd) == (Decimal("20000"), Decimal("50000"))


def test_plain_names_load_as_first_line_engineers_without_limit() -> None:
    settings = Settings(engineers=["ann", {"name": "ben", "tier": "expert"}])  # type: ignore[list-item]
    assert [(e.name, e.tier, e.approval_limit_usd) for e in settings.engineers] == [
        ("ann", Tier.FIRST_LINE, None),
        ("ben", Tier.EXPERT, None),
    ]
    with pytest.raises(ValueError, match="unique"):
        Settings(engineers=["ann", "ann"])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("engineer", "usd", "approvals", "attested", "expected"),
    [
        ("alice", "999", (), False, None),
        ("alice", "1001", (), True, "approval limit is 1000 USD"),
        ("alice", "60000", (), True, "first-line engineers cannot approve it"),
        ("bob", "60000", (), True, None),
        ("bob", "60000", (), False, "This approval must be attested"),
        ("bob", "60000", ("bob",), True, "already approved"),
        ("chen", "60000", ("bob",), False, "second approval of a four-eyes case must be attested"),
        ("chen", "60000", ("bob",), True, None),
        ("bob", "150000", (), True, "approval limit is 100000 USD"),
        ("chen", "150000", (), True, None),
        ("mallory", "10", (), True, "not on the roster"),
        ("alice", None, (), False, None),  # unpriced: checked again once the approval quoted it
    ],
)
def test_refuse_approval(
    engineer: str, usd: str | None, approvals: tuple[str, ...], attested: bool, expected: str | None
) -> None:
    answer = refusal(engineer, usd, approvals=approvals, attested=attested)
    if expected is None:
        assert answer is None
    else:
        assert answer is not None and expected in answer


def test_own_account_and_tier_order() -> None:
    policy = ApprovalPolicy(roster=[Engineer(name="dana", tier=Tier.EXPERT, user_id="user-1")])
    assert "own account" in (refuse_decision(policy, engineer="dana", case_user_id="user-1") or "")
    assert refuse_decision(policy, engineer="dana", case_user_id="user-2") is None
    assert Tier.FIRST_LINE.rank < Tier.ENGINEERING.rank == Tier.VIP.rank < Tier.EXPERT.rank
    assert [t for t in Tier if t.may_handle(Tier.VIP)] == [Tier.EXPERT, Tier.VIP]
    assert [t for t in Tier if t.may_handle(Tier.ENGINEERING)] == [Tier.ENGINEERING, Tier.EXPERT, Tier.VIP]


def test_attestation_binds_case_engineer_action_and_expiry() -> None:
    attester = Attester(Ed25519PrivateKey.generate())
    now = datetime(2027, 1, 4, 10, 0, tzinfo=UTC)
    good = attester.attest(case_id="case-1", engineer="bob", action="approve", now=now)
    keys = [attester.public_key]

    def check(**changes: object) -> str | None:
        args: dict[str, object] = {"keys": keys, "case_id": "case-1", "engineer": "bob", "action": "approve"}
        args.update(changes)
        return refuse_attestation(good, now=now, **args)  # type: ignore[arg-type]

    assert check() is None
    assert "does not match" in (check(case_id="case-2") or "")
    assert "does not match" in (check(engineer="chen") or "")
    assert "does not match" in (check(action="reject") or "")
    assert "does not trust" in (check(keys=[public_hex(Ed25519PrivateKey.generate())]) or "")
    expired = refuse_attestation(
        good, keys=keys, case_id="case-1", engineer="bob", action="approve", now=now + timedelta(minutes=11)
    )
    assert expired is not None and "expired" in expired
    garbage = good.model_copy(update={"signature": "zz"})
    assert "does not match" in (
        refuse_attestation(garbage, keys=keys, case_id="case-1", engineer="bob", action="approve", now=now) or ""
    )


def test_key_file_is_created_once_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "decision.key"
    first = load_or_create_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert public_hex(load_or_create_key(path)) == public_hex(first)
    assert public_hex(first) not in repr(Attester(first))  # the repr shows a prefix only
