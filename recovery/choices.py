"""What an approving engineer may choose for a case (sweep, credit or refund) and what a manually
executed recovery must look like on chain before the engine books it.

Pure and workflow-safe: the case workflow's update validators and the manual-execution check call these.
"""

from __future__ import annotations

from decimal import Decimal

from recovery.models import Action, RecoveryChoice, TraceResult, Transfer

CENT = Decimal("0.01")

NATIVE_GAS_TOLERANCE_BPS = 100
"""A native-coin recovery pays its own gas from the moved amount: up to 1% less than the deposit counts."""


def default_choice(action: Action) -> RecoveryChoice:
    return RecoveryChoice.CREDIT if action is Action.CREDIT else RecoveryChoice.SWEEP


def refuse_choice(
    choice: RecoveryChoice, *, action: Action, sender_is_contract: bool, refunds_available: bool
) -> str | None:
    """Why ``choice`` cannot be carried out on a case whose classified action is ``action``, or None."""
    if action is Action.CREDIT:
        if choice is RecoveryChoice.CREDIT:
            return None
        return (
            f"The funds of this case already sit in an exchange wallet: {choice} is not possible here; approve "
            "with action 'credit' (or without an action)."
        )
    if action is not Action.SWEEP:
        return f"This case cannot be carried out by the engine ({action}): record a manual execution or reject it."
    if choice is RecoveryChoice.SWEEP:
        return None
    if choice is RecoveryChoice.CREDIT:
        return (
            "The funds still sit at the deposit address, not in an exchange wallet: approve with action 'sweep' "
            "(the engine moves them to the hot wallet and credits the claimant)."
        )
    if sender_is_contract:
        return (
            "The sender is a contract: it cannot sign an ownership proof, so the deposit cannot be refunded. "
            "Offer the claimant a credit instead: approve with action 'sweep'."
        )
    if not refunds_available:
        return (
            "Refunds to the sender are not available in this engine version yet: approve with action 'sweep' "
            "to credit the claimant, or reject the case."
        )
    return None


def executed_transfer(trace: TraceResult, *, deposit: Transfer, hot_wallet: str) -> tuple[Transfer | None, str | None]:
    """The transfer in ``trace`` that recovers ``deposit`` into ``hot_wallet``, or what is wrong.

    It must move the deposit's asset from the address that holds the funds (the deposit's recipient: our
    deposit address, or the token contract an issuer's rescue sends from) to the exchange's hot wallet,
    the deposit's amount (a native coin may be short of it by the gas it paid, up to 1%), in a successful
    transaction with its chain's confirmations."""
    if not trace.found:
        return None, f"transaction {trace.tx_hash} was not found on {trace.chain}: check the chain and the hash."
    if trace.succeeded is False:
        return None, f"transaction {trace.tx_hash} failed on {trace.chain}: it moved nothing."
    same_chain = trace.chain == deposit.chain
    holder, hot = deposit.recipient.lower(), hot_wallet.lower()
    candidates = [t for t in trace.transfers if _same_asset(t, deposit, same_chain=same_chain)]
    if not candidates:
        return None, f"transaction {trace.tx_hash} moves no {deposit.asset or deposit.token_address}."
    to_hot = [t for t in candidates if t.recipient.lower() == hot]
    if not to_hot:
        seen = ", ".join(sorted({t.recipient for t in candidates}))
        return (
            None,
            f"transaction {trace.tx_hash} sends the asset to {seen}, not to the exchange's hot wallet {hot_wallet}.",
        )
    from_holder = [t for t in to_hot if t.sender.lower() == holder]
    if not from_holder:
        seen = ", ".join(sorted({t.sender for t in to_hot}))
        return (
            None,
            f"transaction {trace.tx_hash} sends from {seen}, not from {deposit.recipient}, where the deposit sits.",
        )
    lowest = deposit.amount * (10_000 - NATIVE_GAS_TOLERANCE_BPS) // 10_000 if deposit.native else deposit.amount
    matching = [t for t in from_holder if lowest <= t.amount <= deposit.amount]
    if not matching:
        moved = ", ".join(str(t.amount) for t in from_holder)
        return None, (
            f"transaction {trace.tx_hash} moves {moved} base units; the deposit is {deposit.amount} base units"
            + (" (a native coin may be up to 1% short for its gas)." if deposit.native else ".")
        )
    if not trace.confirmed:
        return None, (
            f"transaction {trace.tx_hash} has {trace.confirmations} of {trace.required_confirmations} "
            "confirmations: record it again once it is final."
        )
    return matching[0], None


def _same_asset(transfer: Transfer, deposit: Transfer, *, same_chain: bool) -> bool:
    if same_chain:
        if deposit.native or transfer.native:
            return deposit.native and transfer.native
        assert deposit.token_address is not None and transfer.token_address is not None
        return transfer.token_address.lower() == deposit.token_address.lower()
    return transfer.asset is not None and transfer.asset == deposit.asset


def refuse_fee_override(fee: Decimal, *, min_usd: Decimal | None, max_usd: Decimal | None) -> str | None:
    """Why an engineer's fee of ``fee`` USD is outside the policy's bounds, or None."""
    if not fee.is_finite() or fee != fee.quantize(CENT):
        return f"The fee override {fee} USD must be an amount in cents, e.g. 25.00."
    if (min_usd is not None and fee < min_usd) or (max_usd is not None and fee > max_usd):
        return (
            f"The fee override {fee} USD is outside the fee policy's bounds ({min_usd} to {max_usd} USD): "
            "choose a fee within them."
        )
    return None
