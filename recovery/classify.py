"""The classifier: one pattern, a verdict, a route and a reason a user can read, from gathered facts.

Pure and workflow-safe, so the workflow classifies deterministically and tests need no chain.
"""

from __future__ import annotations

from recovery.models import Classification, DepositFacts, Pattern, Route


def _reject(pattern: Pattern, reason: str) -> Classification:
    return Classification(pattern=pattern, recoverable=False, route=Route.NONE, reason=reason)


def classify(facts: DepositFacts) -> Classification:
    trace = facts.trace
    chain = trace.chain or "any configured chain"
    if not trace.found:
        return _reject(
            Pattern.NOT_FOUND,
            f"Transaction {trace.tx_hash} was not found on {chain}. Check the hash and the network, "
            "and claim again once the transaction is on chain.",
        )
    if trace.succeeded is None:
        return _reject(
            Pattern.NOT_FOUND,
            f"Transaction {trace.tx_hash} is known on {chain} but was never mined; it may have been dropped. "
            "Claim again once it is in a block.",
        )
    if trace.succeeded is False:
        return _reject(
            Pattern.FAILED_TX,
            f"Transaction {trace.tx_hash} failed on {chain}: no funds moved, so there is nothing to recover.",
        )
    deposit = facts.deposit
    if deposit is None or facts.owner_user_id is None:
        return _reject(
            Pattern.NOT_OURS,
            f"Transaction {trace.tx_hash} on {chain} sent nothing to an address of this exchange. "
            "Funds sent elsewhere can only be returned by the owner of the receiving address.",
        )
    if facts.internal_transfer:
        return _reject(
            Pattern.NOT_OURS,
            f"Transaction {trace.tx_hash} is the exchange's own transfer (a gas top-up or a sweep), not a deposit.",
        )
    if facts.owner_user_id != facts.claimant_user_id:
        return _reject(
            Pattern.NOT_YOUR_DEPOSIT,
            "This deposit was made to an address that belongs to another account.",
        )
    if facts.already_credited:
        return _reject(
            Pattern.ALREADY_CREDITED,
            f"This deposit ({deposit.asset or 'token'} on {deposit.chain}) was already recovered and credited.",
        )
    if facts.credited_here:
        return _reject(
            Pattern.ALREADY_CREDITED,
            f"{deposit.asset} on {deposit.chain} is a supported deposit: the regular deposit process credits "
            "it once confirmed, no recovery is needed.",
        )
    if deposit.asset is None:
        return Classification(
            pattern=Pattern.UNLISTED_TOKEN,
            recoverable=True,
            route=Route.MANUAL,
            reason=f"Token {deposit.token_address} is not listed by the exchange; an engineer reviews it.",
        )
    if facts.recipient_is_contract:
        return Classification(
            pattern=Pattern.CONTRACT_RECIPIENT,
            recoverable=True,
            route=Route.MANUAL,
            reason=(
                f"Your deposit address has contract code on {deposit.chain}; an engineer must review the "
                "recovery route."
            ),
        )
    if facts.credited_chains and facts.signer_holds_key:
        return Classification(
            pattern=Pattern.WRONG_NETWORK_SAME_KEY,
            recoverable=True,
            route=Route.AUTOMATIC,
            reason=(
                f"{deposit.asset} was sent on {deposit.chain}, where the exchange does not credit it; it is "
                f"credited on {', '.join(facts.credited_chains)}. The same key controls your address on "
                f"{deposit.chain}, so it is recovered automatically."
            ),
        )
    return Classification(
        pattern=Pattern.UNLISTED_TOKEN,
        recoverable=True,
        route=Route.MANUAL,
        reason=f"{deposit.asset} is not credited on any chain of this exchange; an engineer reviews it.",
    )
