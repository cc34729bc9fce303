"""Who may decide on a manual case, and whether an approval counts: the roster of engineers, their tiers
and limits, four-eyes above a USD threshold, and which approvals must carry an attestation.

Pure and workflow-safe: the workflow's update validators call :func:`refuse_approval` and
:func:`refuse_decision`, whose messages the Temporal UI shows in its update dialog.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field


class Tier(StrEnum):
    FIRST_LINE = "first_line"
    ENGINEERING = "engineering"
    EXPERT = "expert"
    VIP = "vip"

    @property
    def rank(self) -> int:
        """first_line < engineering < expert; the VIP desk ranks with engineering (its own line)."""
        return {Tier.FIRST_LINE: 0, Tier.ENGINEERING: 1, Tier.VIP: 1, Tier.EXPERT: 2}[self]

    def may_handle(self, case_tier: Tier) -> bool:
        """Whether an engineer of this tier may decide a case at ``case_tier``: their own tier or a higher
        one; a VIP case skips first and second line (the VIP desk and experts decide it)."""
        if case_tier is Tier.VIP:
            return self in (Tier.VIP, Tier.EXPERT)
        return self.rank >= case_tier.rank


ESCALATION = {Tier.FIRST_LINE: Tier.ENGINEERING, Tier.ENGINEERING: Tier.EXPERT, Tier.VIP: Tier.EXPERT}
"""The next tier of each; experts are the last line."""


class Engineer(BaseModel):
    """One recovery engineer. ``approval_limit_usd`` None: no limit. ``user_id``: the engineer's own
    exchange account, whose cases they may not decide."""

    name: str
    tier: Tier = Tier.FIRST_LINE
    approval_limit_usd: Decimal | None = None
    user_id: str | None = None


UnattestedRule = Literal["never", "single"]
"""Where an approval without attestation (typed into the Temporal UI) counts: nowhere, or on a case that
needs a single approval. The second approval of a four-eyes case always needs one."""


class ApprovalPolicy(BaseModel):
    """What the worker's configuration says about approvals, handed to the workflow as data."""

    roster: list[Engineer] = Field(default_factory=list)
    four_eyes_usd: Decimal | None = None
    """Above this USD value a case needs two approvals by distinct engineers (None: never)."""
    auto_limit_usd: Decimal | None = None
    """Above this USD value an automatic pattern goes to an engineer (None: no limit)."""
    ownership_proof_usd: Decimal | None = None
    """Above this USD value a manual case waits for the claimant's proof that they control the sender."""
    unattested: UnattestedRule = "single"
    attestation_keys: list[str] = Field(default_factory=list)
    """Hex Ed25519 public keys whose attestations the workflow accepts (the API's and the CLI's)."""

    def engineer(self, name: str) -> Engineer | None:
        return next((e for e in self.roster if e.name == name), None)

    def approvals_needed(self, amount_usd: Decimal | None) -> int:
        if self.four_eyes_usd is not None and amount_usd is not None and amount_usd > self.four_eyes_usd:
            return 2
        return 1

    def names(self) -> str:
        return ", ".join(e.name for e in self.roster) or "empty"


class Approval(BaseModel):
    """An approval the workflow accepted; ``attested`` says whether its sender proved who approved."""

    engineer: str
    attested: bool
    note: str = ""


def refuse_decision(policy: ApprovalPolicy, *, engineer: str, case_user_id: str) -> str | None:
    """Why ``engineer`` may not decide on this case at all, or None."""
    who = policy.engineer(engineer)
    if who is None:
        return f"{engineer!r} is not on the roster of recovery engineers ({policy.names()})."
    if who.user_id is not None and who.user_id == case_user_id:
        return f"{engineer} may not decide on a case of their own account ({case_user_id}): ask a colleague."
    return None


def refuse_approval(
    policy: ApprovalPolicy,
    *,
    engineer: str,
    case_user_id: str,
    amount_usd: Decimal | None,
    approvals: list[Approval],
    attested: bool,
    case_tier: Tier = Tier.FIRST_LINE,
) -> str | None:
    """Why this approval cannot count, or None. ``approvals``: those already accepted on the case.

    ``amount_usd`` None (the case has no quote yet): the limits cannot be checked; the workflow checks
    again once the approval has quoted the case."""
    refused = refuse_decision(policy, engineer=engineer, case_user_id=case_user_id)
    if refused is not None:
        return refused
    who = policy.engineer(engineer)
    assert who is not None
    if not who.tier.may_handle(case_tier):
        return (
            f"The case is with the {case_tier} tier: {engineer} ({who.tier}) cannot approve it. "
            "Assign it to an engineer of that tier or above."
        )
    if any(a.engineer == engineer for a in approvals):
        return f"{engineer} already approved this case; the second approval must come from another engineer."
    needed = policy.approvals_needed(amount_usd)
    if needed > 1 and who.tier is Tier.FIRST_LINE:
        return (
            f"This case ({amount_usd} USD) is above the four-eyes threshold of {policy.four_eyes_usd} USD: first-line "
            "engineers cannot approve it; an engineer of tier engineering or above must."
        )
    if who.approval_limit_usd is not None and amount_usd is not None and amount_usd > who.approval_limit_usd:
        return (
            f"{engineer}'s approval limit is {who.approval_limit_usd} USD and this case is {amount_usd} USD: "
            "escalate it, or ask an engineer with a higher limit."
        )
    if not attested and not (policy.unattested == "single" and needed == 1):
        what = "The second approval of a four-eyes case" if approvals else "This approval"
        return (
            f"{what} must be attested: send it with `recovery case approve` or the staff API; an approval "
            "typed into the Temporal UI cannot prove who sent it."
        )
    return None
