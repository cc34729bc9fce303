"""The classifier: one pattern, a verdict, a route and a reason a user can read, from gathered facts.

Pure and workflow-safe, so the workflow classifies deterministically and tests need no chain.
The checks run in order; the first that applies names the pattern.
"""

from __future__ import annotations

from collections.abc import Sequence

from recovery.i18n import N_, SEPARATED, amount
from recovery.models import (
    TOKEN_AMOUNT,
    Action,
    Classification,
    DepositFacts,
    MessageRef,
    Pattern,
    RefValue,
    Route,
    Transfer,
    joined_refs,
    ref_amount,
    ref_decimal,
    text_param,
    text_ref,
)
from recovery.units import format_units

ANY_CHAIN = N_("any configured chain")
UNNAMED_TOKEN = N_("token")


Param = RefValue
"""A value in a reason: plain text or a number as it is, or its English with a nested ref or a tagged value
(:func:`_amount`)."""
Reason = tuple[str, MessageRef]
_ref = text_ref


def _amount(deposit: Transfer, value: int | None = None) -> Param:
    """``value`` (default: the deposit's amount) of the deposit's asset, formatted per language when read; its
    English as Babel writes it (``1,234.5 USDT``), so that the reason equals its ref rendered in English."""
    base_units = deposit.amount if value is None else value
    if deposit.asset is None:
        return _ref(TOKEN_AMOUNT, amount=_number(base_units, deposit.decimals), address=str(deposit.token_address))
    tagged = ref_amount(base_units, deposit.decimals, deposit.label)
    if isinstance(tagged, str):
        return tagged
    return f"{_grouped(base_units, deposit.decimals or 0)} {deposit.label}", tagged


def _number(base_units: int, decimals: int | None) -> Param:
    """A number of whole units, formatted per language when read; base units as they are without decimals."""
    if decimals is None:
        return str(base_units)
    return _grouped(base_units, decimals), ref_decimal(amount(base_units, decimals))


def _grouped(base_units: int, decimals: int) -> str:
    """The number as Babel writes it in English (``1,234.5``)."""
    whole, _, fraction = format_units(base_units, decimals).partition(".")
    return f"{int(whole):,}" + (f".{fraction}" if fraction else "")


def _separated(texts: Sequence[str]) -> Param:
    """Texts one after the other (``a; b``): each a lower layer's text (a message is rendered in the reader's
    language), separated as the reader's language does it."""
    values = [text_param(text) for text in texts]
    if all(isinstance(value, str) for value in values):
        return "; ".join(str(value) for value in values)
    return joined_refs(values, SEPARATED)


def _chain(chain: str | None) -> str | Reason:
    return chain if chain else (ANY_CHAIN, MessageRef(msgid=ANY_CHAIN))


def _reject(pattern: Pattern, reason: Reason) -> Classification:
    english, text = reason
    return Classification(
        pattern=pattern, recoverable=False, route=Route.NONE, reason=english, action=Action.NONE, text=text
    )


def _manual(pattern: Pattern, reason: Reason, action: Action = Action.SWEEP) -> Classification:
    english, text = reason
    return Classification(
        pattern=pattern, recoverable=True, route=Route.MANUAL, reason=english, action=action, text=text
    )


def _automatic(pattern: Pattern, reason: Reason, action: Action = Action.SWEEP) -> Classification:
    english, text = reason
    return Classification(
        pattern=pattern, recoverable=True, route=Route.AUTOMATIC, reason=english, action=action, text=text
    )


def _reason(verdict: Classification) -> str | Reason:
    """A verdict's reason as a value inside another reason."""
    return verdict.reason if verdict.text is None else (verdict.reason, verdict.text)


def _trace_problem(facts: DepositFacts) -> Classification | None:
    trace = facts.trace
    where = _chain(trace.chain)
    if not trace.found and facts.vanished_from_block is not None:
        return _reject(
            Pattern.NOT_FOUND,
            _ref(
                N_(
                    "Transaction {tx_hash} was in block {block} on {chain} but a chain reorganisation removed it "
                    "before it reached {confirmations} confirmations. Nothing was credited. If you send again, "
                    "file a new claim for the new transaction."
                ),
                tx_hash=trace.tx_hash,
                block=facts.vanished_from_block,
                chain=where,
                confirmations=trace.required_confirmations,
            ),
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
    # mined (in a block, with confirmations: an XRPL ledger index alone may be provisional) but not judged
    mined_unjudged = trace.unread and trace.block_number is not None and trace.confirmations > 0
    if trace.succeeded is None and trace.unread and not mined_unjudged:
        return _reject(
            Pattern.NOT_FOUND,
            _ref(
                N_("Transaction {tx_hash} is known on {chain}, but the engine could not read the node's answer."),
                tx_hash=trace.tx_hash,
                chain=where,
            ),
        )
    if trace.succeeded is None and not mined_unjudged:
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
    amount = _amount(deposit)
    if facts.recipient_token_contract:
        if facts.rescue_route:
            return _manual(
                Pattern.TOKEN_CONTRACT_RECIPIENT,
                _ref(
                    N_(
                        "{amount} was sent to the token contract {recipient} itself on {chain}. The configured "
                        "rescue route is: {rescue_route}. An engineer verifies that you sent it and carries out "
                        "the rescue."
                    ),
                    amount=amount,
                    recipient=deposit.recipient,
                    chain=deposit.chain,
                    rescue_route=facts.rescue_route,
                ),
                Action.OFF_ENGINE,
            )
        return _reject(
            Pattern.TOKEN_CONTRACT_RECIPIENT,
            _ref(
                N_(
                    "{amount} was sent to the token contract {recipient} itself on {chain}. Nobody holds a key "
                    "for a contract address and this token has no rescue procedure, so the funds cannot be "
                    "recovered."
                ),
                amount=amount,
                recipient=deposit.recipient,
                chain=deposit.chain,
            ),
        )
    if facts.fork_of and facts.owner_user_id is not None:
        return _manual(
            Pattern.UTXO_FORK,
            _ref(
                N_(
                    "{amount} was sent on {chain}, a fork of {fork_of}, to your {fork_of} deposit address. The "
                    "exchange does not credit {chain}; recovering it needs the address's {fork_of} key on the "
                    "fork, which an engineer handles by hand."
                ),
                amount=amount,
                chain=deposit.chain,
                fork_of=facts.fork_of,
            ),
            Action.OFF_ENGINE,
        )
    if facts.shared_address and facts.memo_owner_user_id != facts.claimant_user_id:
        if facts.memo_owner_user_id is not None:
            # the regular deposit process credited the memo's owner: crediting the claimant too would pay
            # one deposit twice, so the engine never does it; an engineer settles it with both accounts
            return _manual(
                Pattern.MISSING_OR_WRONG_MEMO,
                _ref(
                    N_(
                        "{amount} reached the exchange's shared address on {chain} with the memo {memo}, which "
                        "belongs to another account that was credited for it. It is never moved automatically: "
                        "an engineer verifies who sent it and corrects both accounts by hand."
                    ),
                    amount=amount,
                    chain=deposit.chain,
                    memo=deposit.memo or "",
                ),
                Action.OFF_ENGINE,
            )
        if deposit.memo is None:
            reason = _ref(
                N_(
                    "{amount} reached the exchange's shared address on {chain} but carries no memo (destination "
                    "tag). An engineer verifies that you sent it before it is credited to you."
                ),
                amount=amount,
                chain=deposit.chain,
            )
        else:
            reason = _ref(
                N_(
                    "{amount} reached the exchange's shared address on {chain} but carries the memo {memo}, "
                    "which belongs to no account. An engineer verifies that you sent it before it is credited "
                    "to you."
                ),
                amount=amount,
                chain=deposit.chain,
                memo=deposit.memo,
            )
        return _manual(Pattern.MISSING_OR_WRONG_MEMO, reason, Action.CREDIT)
    if facts.owner_user_id is None:
        return _reject(Pattern.NOT_OURS, _not_ours(facts.trace.tx_hash, deposit.chain))
    return None


def _not_ours(tx_hash: str, chain: str | Reason) -> Reason:
    return _ref(
        N_(
            "Transaction {tx_hash} on {chain} sent nothing to an address of this exchange. Funds sent elsewhere "
            "can only be returned by the owner of the receiving address."
        ),
        tx_hash=tx_hash,
        chain=chain,
    )


def _held_key_problem(facts: DepositFacts, deposit: Transfer) -> Classification | None:
    if facts.family != "evm":
        return None  # the engine signs EVM only: classify() sends non-EVM recoveries to an engineer
    if not facts.signer_holds_key:
        elsewhere = [c for c in facts.contract_on_chains if c != deposit.chain]
        if elsewhere and not facts.recipient_is_contract:
            return _manual(
                Pattern.CONTRACT_RECIPIENT,
                _ref(
                    N_(
                        "Your deposit address is a contract wallet on {elsewhere} but has no code on {chain}, so "
                        "nobody can move {amount} yet. Recovering it means deploying the same wallet at that "
                        "address on {chain}; an engineer must do this carefully, because anyone who can reproduce "
                        "the deployment could race the redeploy and take the funds."
                    ),
                    elsewhere=", ".join(elsewhere),
                    chain=deposit.chain,
                    amount=_amount(deposit),
                ),
                Action.OFF_ENGINE,
            )
        return _manual(
            Pattern.CONTRACT_RECIPIENT,
            _ref(
                N_(
                    "Your deposit address on {chain} is a contract wallet without a key the engine holds; an "
                    "engineer reviews how to move the funds."
                ),
                chain=deposit.chain,
            ),
            Action.OFF_ENGINE,
        )
    if facts.recipient_is_contract:
        return _manual(
            Pattern.CONTRACT_RECIPIENT,
            _ref(
                N_("Your deposit address has contract code on {chain}; an engineer must review the recovery route."),
                chain=deposit.chain,
            ),
        )
    return None


def _unlisted(facts: DepositFacts, deposit: Transfer) -> Classification:
    address = deposit.token_address or ""
    name: str | Reason = (
        f"{facts.token_symbol} ({address})" if facts.token_symbol else _ref(N_("token ({address})"), address=address)
    )
    problems = _separated([f.detail for f in facts.token_findings])
    if problems and not facts.priced:
        reason = _ref(
            N_(
                "{name} is not listed by the exchange and needs an engineer: {problems}; and the token has no "
                "price, so no fee can be quoted."
            ),
            name=name,
            problems=problems,
        )
    elif problems:
        reason = _ref(
            N_("{name} is not listed by the exchange and needs an engineer: {problems}."), name=name, problems=problems
        )
    elif not facts.priced:
        reason = _ref(
            N_(
                "{name} is not listed by the exchange and needs an engineer: the token has no price, so no fee "
                "can be quoted."
            ),
            name=name,
        )
    else:
        return _automatic(
            Pattern.UNLISTED_TOKEN,
            _ref(
                N_(
                    "{name} is not listed by the exchange. It transfers cleanly and has a price, so it is recovered "
                    "automatically and credited to you in that token."
                ),
                name=name,
            ),
        )
    return _manual(Pattern.UNLISTED_TOKEN, reason)


def classify(facts: DepositFacts) -> Classification:
    verdict = _classify(facts)
    if verdict.action is Action.SWEEP and facts.family != "evm":
        verdict = _manual(
            verdict.pattern,
            _ref(
                N_("{reason} The engine signs EVM transactions only, so an engineer moves the funds on {chain}."),
                reason=_reason(verdict),
                chain=_chain(facts.trace.chain),
            ),
            Action.OFF_ENGINE,
        )
    return _with_unread(facts, verdict)


def _with_unread(facts: DepositFacts, verdict: Classification) -> Classification:
    """Parts of the transaction the adapter could not read never turn into a silent verdict: an automatic
    recovery goes to an engineer, and every reason says what could not be read.

    A verdict that found no deposit (or a failed or unmined transaction) stays a rejection, because the
    engine recovers only a deposit it can name; its reason tells the user what was not read and to contact
    support with the case, so that nobody reads it as "nothing arrived"."""
    unread = facts.trace.unread
    if not unread:
        return verdict
    what = _separated(unread)
    if verdict.route is Route.AUTOMATIC:
        return _manual(
            verdict.pattern,
            _ref(
                N_(
                    "{reason} Part of the transaction could not be read ({unread}), so an engineer checks it "
                    "before anything moves."
                ),
                reason=_reason(verdict),
                unread=what,
            ),
            verdict.action,
        )
    if verdict.route is Route.MANUAL:
        return _manual(
            verdict.pattern,
            _ref(
                N_("{reason} Part of the transaction could not be read: {unread}."),
                reason=_reason(verdict),
                unread=what,
            ),
            verdict.action,
        )
    return _reject(
        verdict.pattern,
        _ref(
            N_(
                "{reason} Part of the transaction could not be read ({unread}): if you sent funds to this exchange "
                "in it, contact support with this case's id so that an engineer checks it."
            ),
            reason=_reason(verdict),
            unread=what,
        ),
    )


def _classify(facts: DepositFacts) -> Classification:
    problem = _trace_problem(facts)
    if problem is not None:
        return problem
    deposit = facts.deposit
    trace = facts.trace
    if deposit is None:
        return _reject(Pattern.NOT_OURS, _not_ours(trace.tx_hash, _chain(trace.chain)))
    if facts.internal_transfer:
        return _reject(
            Pattern.NOT_OURS,
            _ref(
                N_("Transaction {tx_hash} is the exchange's own transfer (a gas top-up or a sweep), not a deposit."),
                tx_hash=trace.tx_hash,
            ),
        )
    unclaimed = _unclaimed_recipient(facts, deposit)
    if unclaimed is not None:
        return unclaimed
    if facts.owner_user_id != facts.claimant_user_id:
        return _reject(
            Pattern.NOT_YOUR_DEPOSIT,
            _ref(N_("This deposit was made to an address that belongs to another account.")),
        )
    amount = _amount(deposit)
    if facts.already_credited:
        return _reject(
            Pattern.ALREADY_CREDITED,
            _ref(
                N_("This deposit ({asset} on {chain}) was already recovered and credited."),
                asset=deposit.asset or (UNNAMED_TOKEN, MessageRef(msgid=UNNAMED_TOKEN)),
                chain=deposit.chain,
            ),
        )
    if facts.shared_address and not facts.credited_here:
        return _manual(
            Pattern.UNLISTED_TOKEN,
            _ref(
                N_(
                    "{amount} carries your memo, but the exchange does not credit it on {chain}; an engineer "
                    "reviews it before it is credited to you."
                ),
                amount=amount,
                chain=deposit.chain,
            ),
            Action.CREDIT,
        )
    if facts.shared_address:  # the claimant's own memo: the regular deposit process handles it
        return _reject(
            Pattern.ALREADY_CREDITED,
            _ref(
                N_("{amount} on {chain} carries your memo: the regular deposit process credits it."),
                amount=amount,
                chain=deposit.chain,
            ),
        )
    key_problem = _held_key_problem(facts, deposit)
    if key_problem is not None:
        return key_problem
    if deposit.asset is None:
        return _unlisted(facts, deposit)
    if facts.deprecated_address:
        return _automatic(
            Pattern.DEPRECATED_ADDRESS,
            _ref(
                N_(
                    "{amount} was sent on {chain} to one of your old deposit addresses, which the exchange no "
                    "longer watches. It is still yours and the exchange holds its key, so it is recovered "
                    "automatically."
                ),
                amount=amount,
                chain=deposit.chain,
            ),
        )
    if facts.credited_here:
        if facts.minimum is not None and deposit.amount < facts.minimum:
            return _below_minimum(facts, deposit, facts.minimum)
        return _reject(
            Pattern.ALREADY_CREDITED,
            _ref(
                N_(
                    "{asset} on {chain} is a supported deposit: the regular deposit process credits it once "
                    "confirmed, no recovery is needed."
                ),
                asset=deposit.asset,
                chain=deposit.chain,
            ),
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
        _ref(N_("{asset} is not credited on any chain of this exchange; an engineer reviews it."), asset=deposit.asset),
    )


def _below_minimum(facts: DepositFacts, deposit: Transfer, minimum: int) -> Classification:
    total = facts.uncredited_total
    if total is not None and total >= minimum:
        return _automatic(
            Pattern.BELOW_MINIMUM,
            _ref(
                N_(
                    "{amount} is under the deposit minimum of {minimum}, but the uncredited deposits at your "
                    "address now total {total}, so it is credited."
                ),
                amount=_amount(deposit),
                minimum=_amount(deposit, minimum),
                total=_amount(deposit, total),
            ),
        )
    return _manual(
        Pattern.BELOW_MINIMUM,
        _ref(
            N_(
                "{amount} is under the deposit minimum of {minimum}. It is credited once the uncredited deposits at "
                "your address pass the minimum, or earlier if an engineer approves it under the exchange's policy."
            ),
            amount=_amount(deposit),
            minimum=_amount(deposit, minimum),
        ),
    )
