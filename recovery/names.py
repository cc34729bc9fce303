"""What the codes a user meets inside a sentence are called: a case's status, its pattern, its route and fee
policy, the tier of engineers it is with, how ownership was proven, the action an engineer chose. Each name is a
message id (``N_``), rendered in the reader's language; the codes themselves stay in their own JSON fields
(``status``, ``pattern``, ``sla.tier``, ``fees.policy``), in logs, search attributes and the staff's tools.

Pure and workflow-safe.
"""

from __future__ import annotations

from recovery.i18n import N_
from recovery.models import CaseStatus, Pattern, RecoveryChoice, Route
from recovery.roster import Tier

STATUS_NAMES: dict[CaseStatus, str] = {
    CaseStatus.RECEIVED: N_("received"),
    CaseStatus.TRACING: N_("tracing the transaction"),
    CaseStatus.WAITING_CONFIRMATIONS: N_("waiting for confirmations"),
    CaseStatus.CLASSIFIED: N_("classified"),
    CaseStatus.AWAITING_APPROVAL: N_("awaiting an engineer's approval"),
    CaseStatus.AWAITING_USER: N_("awaiting your answer"),
    CaseStatus.RECOVERING: N_("recovering"),
    CaseStatus.COMPLETED: N_("completed"),
    CaseStatus.REJECTED: N_("rejected"),
    CaseStatus.EXPIRED: N_("expired"),
    CaseStatus.CANCELLED: N_("cancelled"),
}

PATTERN_NAMES: dict[Pattern, str] = {
    Pattern.WRONG_NETWORK_SAME_KEY: N_("deposit on the wrong network"),
    Pattern.CONTRACT_RECIPIENT: N_("deposit to a contract wallet"),
    Pattern.UNLISTED_TOKEN: N_("unlisted token"),
    Pattern.NOT_FOUND: N_("transaction not found"),
    Pattern.FAILED_TX: N_("failed transaction"),
    Pattern.NOT_OURS: N_("transfer not sent to this exchange"),
    Pattern.NOT_YOUR_DEPOSIT: N_("another account's deposit"),
    Pattern.ALREADY_CREDITED: N_("deposit already credited"),
    Pattern.TOO_SMALL: N_("deposit too small to recover"),
    Pattern.MISSING_OR_WRONG_MEMO: N_("missing or wrong memo"),
    Pattern.TOKEN_CONTRACT_RECIPIENT: N_("deposit to a token contract"),
    Pattern.BELOW_MINIMUM: N_("deposit below the minimum"),
    Pattern.DEPRECATED_ADDRESS: N_("deposit to an old deposit address"),
    Pattern.UTXO_FORK: N_("deposit on a fork of the chain"),
}

DEFAULT_POLICY = N_("default")
"""The fee policy of a pattern without one of its own (``Settings.fee_policy``); the others are named as their
pattern."""

ROUTE_NAMES: dict[Route, str] = {
    Route.AUTOMATIC: N_("automatic"),
    Route.MANUAL: N_("manual"),
    Route.NONE: N_("not recoverable"),
}

TIER_NAMES: dict[Tier, str] = {
    Tier.FIRST_LINE: N_("first-line"),
    Tier.ENGINEERING: N_("engineering"),
    Tier.EXPERT: N_("expert"),
    Tier.VIP: N_("VIP"),
}
"""A tier as the sentences that name it read it: "the {tier} queue", "from the {before} to the {after} tier"."""

PROOF_METHOD_NAMES: dict[str, str] = {
    "signature": N_("signed message"),
    "verification_deposit": N_("verification deposit"),
}
"""How a claimant proved control of the sending address (``store.ownership.METHODS``)."""

CHOICE_NAMES: dict[RecoveryChoice, str] = {
    RecoveryChoice.SWEEP: N_("sweep"),
    RecoveryChoice.CREDIT: N_("credit"),
    RecoveryChoice.REFUND: N_("refund"),
}
"""What an approving engineer chose to do with the deposit."""


def policy_name(policy: str) -> str:
    """A fee policy (a pattern's, or ``default``) as a sentence names it: a message id."""
    if policy in Pattern.__members__:
        return PATTERN_NAMES[Pattern(policy)]
    return DEFAULT_POLICY
