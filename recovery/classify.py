"""The classifier: one pattern, a verdict, a route and a reason a user can read, from gathered facts.

Pure and workflow-safe, so the workflow classifies deterministically and tests need no chain.
The checks run in order; the first that applies names the pattern.
"""

from __future__ import annotations

from typing import Any

from recovery.i18n import N_
from recovery.models import Action, Classification, DepositFacts, MessageRef, Pattern, Route, Transfer, ref_message

ANY_CHAIN = N_("any configured chain")


def _ref(msgid: str, **params: Any) -> tuple[str, MessageRef]:
    """A reason's English text and its message ref (the English equals the ref rendered in English: the values
    are plain text, or a nested ref given with its English)."""
    english = {k: v[0] if isinstance(v, tuple) else v for k, v in params.items()}
    values = {k: ref_message(v[1]) if isinstance(v, tuple) else v for k, v in params.items()}
    return msgid.format(**english), MessageRef(msgid=msgid, params=values)


def _chain(chain: str | None) -> str | tuple[str, MessageRef]:
    return chain if chain else (ANY_CHAIN, MessageRef(msgid=ANY_CHAIN))


def _reject(pattern: Pattern, reason: str | tuple[str, MessageRef]) -> Classification:
    reason, text = reason if isinstance(reason, tuple) else (reason, None)
    return Classification(
        pattern=pattern, recoverable=False, route=Route.NONE, reason=reason, action=Action.NONE, text=text
    )


def _manual(pattern: Pattern, reason: str, action: Action = Action.SWEEP) -> Classification:
    return Classification(pattern=pattern, recoverable=True, route=Route.MANUAL, reason=reason, action=action)


def _automatic(pattern: Pattern, reason: str | tuple[str, MessageRef], action: Action = Action.SWEEP) -> Classification:
    reason, text = reason if isinstance(reason, tuple) else (reason, None)
    return Classification(
        pattern=pattern, recoverable=True, route=Route.AUTOMATIC, reason=reason, action=action, text=text
    )


def _trace_problem(facts: DepositFacts) -> Classification | None:
    trace = facts.trace
    chain = trace.chain or "any configured chain"
    where = _chain(trace.chain)
    if not trace.found and facts.vanished_from_block is not None:
        return _reject(
            Pattern.NOT_FOUND,
            f"Transaction {trace.tx_hash} was in block {facts.vanished_from_block} on {chain} but a chain "
            f"reorganisation removed it before it reached {trace.required_confirmations} confirmations. "
            "Nothing was credited. If you send again, file a new claim for the new transaction.",
        )
    if not trace.found:
        return _reject(
            Pattern.NOT_FOUND,
            _ref(
                N_(
                    "Transaction {tx_hash} was not found on {chain}. Check the hash and the network, "
                    "and claim again once the transaction is on chain."
                ),
                tx_hash=trace.tx_hash,
                chain=where,
            ),
        )
    if trace.succeeded is None:
        return _reject(
            Pattern.NOT_FOUND,
            _ref(
                N_(
                    "Transaction {tx_hash} is known on {chain} but was never mined; it may have been dropped. "
                    "Claim again once it is in a block."
                ),
                tx_hash=trace.tx_hash,
                chain=where,
            ),
        )
    if trace.succeeded is False:
        return _reject(
            Pattern.FAILED_TX,
            _ref(
                N_("Transaction {tx_hash} failed on {chain}: no funds moved, so there is nothing to recover."),
                tx_hash=trace.tx_hash,
                chain=where,
            ),
        )
    return None


def _unclaimed_recipient(facts: DepositFacts, deposit: Transfer) -> Classification | None:
    """Deposits whose recipient is not simply the claimant's own address."""
    if facts.recipient_token_contract:
        if facts.rescue_route:
            return _manual(
                Pattern.TOKEN_CONTRACT_RECIPIENT,
                f"{deposit.amount_text()} was sent to the token contract {deposit.recipient} itself on "
                f"{deposit.chain}. The configured rescue route is: {facts.rescue_route}. An engineer verifies "
                "that you sent it and carries out the rescue.",
                Action.OFF_ENGINE,
            )
        return _reject(
            Pattern.TOKEN_CONTRACT_RECIPIENT,
            f"{deposit.amount_text()} was sent to the token contract {deposit.recipient} itself on {deposit.chain}. "
            "Nobody holds a key for a contract address and this token has no rescue procedure, so the "
            "funds cannot be recovered.",
        )
    if facts.fork_of and facts.owner_user_id is not None:
        return _manual(
            Pattern.UTXO_FORK,
            f"{deposit.amount_text()} was sent on {deposit.chain}, a fork of {facts.fork_of}, to your {facts.fork_of} "
            f"deposit address. The exchange does not credit {deposit.chain}; recovering it needs the address's "
            f"{facts.fork_of} key on the fork, which an engineer handles by hand.",
            Action.OFF_ENGINE,
        )
    if facts.shared_address and facts.memo_owner_user_id != facts.claimant_user_id:
        if facts.memo_owner_user_id is not None:
            # the regular deposit process credited the memo's owner: crediting the claimant too would pay
            # one deposit twice, so the engine never does it; an engineer settles it with both accounts
            return _manual(
                Pattern.MISSING_OR_WRONG_MEMO,
                f"{deposit.amount_text()} reached the exchange's shared address on {deposit.chain} with the memo "
                f"{deposit.memo}, which belongs to another account that was credited for it. It is never moved "
                "automatically: an engineer verifies who sent it and corrects both accounts by hand.",
                Action.OFF_ENGINE,
            )
        problem = (
            "carries no memo (destination tag)"
            if deposit.memo is None
            else f"carries the memo {deposit.memo}, which belongs to no account"
        )
        return _manual(
            Pattern.MISSING_OR_WRONG_MEMO,
            f"{deposit.amount_text()} reached the exchange's shared address on {deposit.chain} but {problem}. "
            "An engineer verifies that you sent it before it is credited to you.",
            Action.CREDIT,
        )
    if facts.owner_user_id is None:
        return _reject(
            Pattern.NOT_OURS,
            f"Transaction {facts.trace.tx_hash} on {deposit.chain} sent nothing to an address of this exchange. "
            "Funds sent elsewhere can only be returned by the owner of the receiving address.",
        )
    return None


def _held_key_problem(facts: DepositFacts, deposit: Transfer) -> Classification | None:
    if facts.family != "evm":
        return None  # the engine signs EVM only: classify() sends non-EVM recoveries to an engineer
    if not facts.signer_holds_key:
        elsewhere = [c for c in facts.contract_on_chains if c != deposit.chain]
        if elsewhere and not facts.recipient_is_contract:
            return _manual(
                Pattern.CONTRACT_RECIPIENT,
                f"Your deposit address is a contract wallet on {', '.join(elsewhere)} but has no code on "
                f"{deposit.chain}, so nobody can move {deposit.amount_text()} yet. Recovering it means deploying the "
                f"same wallet at that address on {deposit.chain}; an engineer must do this carefully, because "
                "anyone who can reproduce the deployment could race the redeploy and take the funds.",
                Action.OFF_ENGINE,
            )
        return _manual(
            Pattern.CONTRACT_RECIPIENT,
            f"Your deposit address on {deposit.chain} is a contract wallet without a key the engine holds; an "
            "engineer reviews how to move the funds.",
            Action.OFF_ENGINE,
        )
    if facts.recipient_is_contract:
        return _manual(
            Pattern.CONTRACT_RECIPIENT,
            f"Your deposit address has contract code on {deposit.chain}; an engineer must review the recovery route.",
        )
    return None


def _unlisted(facts: DepositFacts, deposit: Transfer) -> Classification:
    name = f"{facts.token_symbol or 'token'} ({deposit.token_address})"
    problems = [f.detail for f in facts.token_findings]
    if not facts.priced:
        problems.append("the token has no price, so no fee can be quoted")
    if problems:
        return _manual(
            Pattern.UNLISTED_TOKEN,
            f"{name} is not listed by the exchange and needs an engineer: " + "; ".join(problems) + ".",
        )
    return _automatic(
        Pattern.UNLISTED_TOKEN,
        f"{name} is not listed by the exchange. It transfers cleanly and has a price, so it is recovered "
        "automatically and credited to you in that token.",
    )


def classify(facts: DepositFacts) -> Classification:
    verdict = _classify(facts)
    if verdict.action is Action.SWEEP and facts.family != "evm":
        return _manual(
            verdict.pattern,
            f"{verdict.reason} The engine signs EVM transactions only, so an engineer moves the funds on "
            f"{facts.trace.chain}.",
            Action.OFF_ENGINE,
        )
    return verdict


def _classify(facts: DepositFacts) -> Classification:
    problem = _trace_problem(facts)
    if problem is not None:
        return problem
    deposit = facts.deposit
    trace = facts.trace
    chain = trace.chain or "any configured chain"
    if deposit is None:
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
    unclaimed = _unclaimed_recipient(facts, deposit)
    if unclaimed is not None:
        return unclaimed
    if facts.owner_user_id != facts.claimant_user_id:
        return _reject(
            Pattern.NOT_YOUR_DEPOSIT,
            _ref(N_("This deposit was made to an address that belongs to another account.")),
        )
    if facts.already_credited:
        return _reject(
            Pattern.ALREADY_CREDITED,
            f"This deposit ({deposit.asset or 'token'} on {deposit.chain}) was already recovered and credited.",
        )
    if facts.shared_address and not facts.credited_here:
        return _manual(
            Pattern.UNLISTED_TOKEN,
            f"{deposit.amount_text()} carries your memo, but the exchange does not credit it on {deposit.chain}; "
            "an engineer reviews it before it is credited to you.",
            Action.CREDIT,
        )
    if facts.shared_address:  # the claimant's own memo: the regular deposit process handles it
        return _reject(
            Pattern.ALREADY_CREDITED,
            f"{deposit.amount_text()} on {deposit.chain} carries your memo: the regular deposit process credits it.",
        )
    key_problem = _held_key_problem(facts, deposit)
    if key_problem is not None:
        return key_problem
    if deposit.asset is None:
        return _unlisted(facts, deposit)
    if facts.deprecated_address:
        return _automatic(
            Pattern.DEPRECATED_ADDRESS,
            f"{deposit.amount_text()} was sent on {deposit.chain} to one of your old deposit addresses, which the "
            "exchange no longer watches. It is still yours and the exchange holds its key, so it is recovered "
            "automatically.",
        )
    if facts.credited_here:
        if facts.minimum is not None and deposit.amount < facts.minimum:
            return _below_minimum(facts, deposit, facts.minimum)
        return _reject(
            Pattern.ALREADY_CREDITED,
            f"{deposit.asset} on {deposit.chain} is a supported deposit: the regular deposit process credits "
            "it once confirmed, no recovery is needed.",
        )
    if facts.credited_chains:
        return _automatic(
            Pattern.WRONG_NETWORK_SAME_KEY,
            _ref(
                N_(
                    "{asset} was sent on {chain}, where the exchange does not credit it; it is credited on "
                    "{credited_chains}. The same key controls your address on {chain}, so it is recovered "
                    "automatically."
                ),
                asset=deposit.asset,
                chain=deposit.chain,
                credited_chains=", ".join(facts.credited_chains),
            ),
        )
    return _manual(
        Pattern.UNLISTED_TOKEN,
        f"{deposit.asset} is not credited on any chain of this exchange; an engineer reviews it.",
    )


def _below_minimum(facts: DepositFacts, deposit: Transfer, minimum: int) -> Classification:
    total = facts.uncredited_total
    if total is not None and total >= minimum:
        return _automatic(
            Pattern.BELOW_MINIMUM,
            f"{deposit.amount_text()} is under the deposit minimum of {deposit.amount_text(minimum)}, but the "
            f"uncredited deposits at your address now total {deposit.amount_text(total)}, so it is credited.",
        )
    return _manual(
        Pattern.BELOW_MINIMUM,
        f"{deposit.amount_text()} is under the deposit minimum of {deposit.amount_text(minimum)}. It is credited once "
        "the uncredited deposits at your address pass the minimum, or earlier if an engineer approves it "
        "under the exchange's policy.",
    )
