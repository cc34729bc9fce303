"""Gathering the facts about a claimed deposit that the classifier needs (so that classification stays
pure): who owns the recipient, which chains have code there, whether the ledger already credited it,
what an unlisted token is and how risky, the uncredited balance of a below-minimum address.

What the facts need to know of the exchange's keys (its own wallets, whether it holds a deposit address's
key, where a sweep goes) comes through :class:`KeyCustody`: the worker answers from its signer
(:class:`SignerCustody`); the status API, which never loads a key, answers from the stored deposit addresses
(``services.claim_preview``). Independent lookups run at the same time."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any, NamedTuple, Protocol

from eth_utils import to_checksum_address
from sqlalchemy import Engine
from sqlmodel import Session

from chains.endpoints import RpcError
from chains.evm import EvmChain
from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer, deposit_path
from chains.token_safety import assess_token, token_metadata
from fees.prices import PricePort
from recovery.models import DepositFacts, TokenFinding, TraceResult, Transfer
from recovery.roster import ApprovalPolicy
from recovery.settings import ChainConfig, Settings
from services.evm_chains import EvmChains
from store import ledger, users
from store.db import run_in_session
from store.users import AddressOwner, AddressSigner

log = logging.getLogger(__name__)


class KeyCustody(Protocol):
    """What gathering facts needs to know about the exchange's keys, without touching one."""

    def own_wallets(self) -> frozenset[str] | None:
        """The exchange's own sending wallets (hot and gas), lower-case; None when this process cannot know
        them (then no deposit counts as the exchange's own transfer)."""
        ...

    def holds_key(self, owner: AddressOwner, recipient: str) -> bool:
        """Whether the exchange holds the key of ``recipient``, whose stored owner row is ``owner``."""
        ...

    def sweep_destination(self, chain: ChainConfig) -> str:
        """Where a sweep from a deposit address on ``chain`` sends the funds (the unlisted-token dry run's
        recipient)."""
        ...


class SignerCustody:
    """The worker's answers, from the signer itself (the only component that touches keys)."""

    def __init__(self, signer: AddressSigner) -> None:
        self._signer = signer

    def own_wallets(self) -> frozenset[str] | None:
        return frozenset(self._signer.address(p).lower() for p in (HOT_WALLET_PATH, GAS_WALLET_PATH))

    def holds_key(self, owner: AddressOwner, recipient: str) -> bool:
        return owner.deposit_index is not None and _same_address(
            self._signer.address(deposit_path(owner.deposit_index)), recipient
        )

    def sweep_destination(self, chain: ChainConfig) -> str:
        return self._signer.address(HOT_WALLET_PATH)


class CodeAhead:
    """Code lookups on the deposit chain started before the facts are gathered: the status API starts them right
    after the trace, for each transfer the trace found, while it reads the database, so that the claim's answer
    does not wait for them afterwards. Keyed by (chain, recipient, sender), lower-case; :meth:`cancel` drops
    the ones nobody took."""

    def __init__(self) -> None:
        self._tasks: dict[tuple[str, str, str], asyncio.Task[tuple[bool, bool]]] = {}

    def started(self, key: tuple[str, str, str]) -> bool:
        return key in self._tasks

    def start(self, key: tuple[str, str, str], lookup: Awaitable[tuple[bool, bool]]) -> None:
        self._tasks[key] = asyncio.ensure_future(lookup)

    def take(self, chain: str, recipient: str, sender: str) -> asyncio.Task[tuple[bool, bool]] | None:
        return self._tasks.pop((chain, recipient.lower(), sender.lower()), None)

    def cancel(self) -> None:
        for task in self._tasks.values():
            if task.done() and not task.cancelled():
                task.exception()  # retrieved: a lookup nobody needed failed, which is no one's error
            else:
                task.cancel()
        self._tasks.clear()


AHEAD_LIMIT = 4
"""At most this many transfers' code lookups are started ahead (a transaction with more is looked up as usual)."""


class FactGatherer:
    """``keys`` answers what the facts need of the exchange's keys; ``signer`` is short for
    ``keys=SignerCustody(signer)`` (the worker's). ``code_elsewhere``: ask every other EVM chain for code at the
    address even where the classifier does not read it (the exchange holds the address's key), for the case's
    evidence (the worker); without it, only where it is read (the claim-time answer)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        prices: PricePort,
        chains: EvmChains,
        policy: ApprovalPolicy,
        keys: KeyCustody | None = None,
        signer: Signer | None = None,
        code_elsewhere: bool = True,
    ) -> None:
        if keys is None:
            if signer is None:
                raise TypeError("FactGatherer needs keys (a KeyCustody) or the signer")
            keys = SignerCustody(signer)
        self._settings = settings
        self._policy = policy
        self._engine = engine
        self._keys = keys
        self._prices = prices
        self._chains = chains
        self._code_elsewhere = code_elsewhere

    async def gather(
        self,
        *,
        user_id: str,
        trace: TraceResult,
        log_index: int | None,
        vanished_from_block: int | None,
        stored: StoredFacts | None = None,
        ahead: CodeAhead | None = None,
    ) -> DepositFacts:
        """``stored``: what the database knows, read by the caller in a session it had open anyway (the status
        API, with the claim's own lookups); used if it is about the deposit gathered, else read here. ``ahead``:
        code lookups started already (:meth:`code_ahead`)."""
        facts = DepositFacts(
            claimant_user_id=user_id,
            trace=trace,
            engineers=[e.name for e in self._policy.roster],
            approval_policy=self._policy,
            vanished_from_block=vanished_from_block,
        )

        def vip() -> Awaitable[bool]:
            return run_in_session(self._engine, users.is_vip, user_id=user_id)

        if trace.chain is None:
            facts.claimant_vip = await vip()
            return facts
        config = self._chains.config(trace.chain)
        facts.family = config.family
        deposit = _pick_deposit(config, trace, log_index)
        if log_index is None:
            # the claim resolved to no transfer of the claimant's (e.g. an internal transfer the API's trace
            # could not read): look again now, the ledger is keyed by deposit so this never credits twice
            claimed = await run_in_session(self._engine, users.claimant_deposit, user_id=user_id, trace=trace)
            deposit = claimed.transfer or deposit
        if deposit is None or _is_token_contract(config, deposit):
            facts.claimant_vip = await vip()
            if deposit is None:
                return facts
            facts.deposit = deposit
            facts.internal_transfer = self._internal(deposit)
            facts.recipient_token_contract = True
            facts.rescue_route = {a.lower(): r for a, r in config.rescue_routes.items()}.get(deposit.recipient.lower())
            return facts
        facts.deposit = deposit
        facts.internal_transfer = self._internal(deposit)
        facts.shared_address = _same_address(deposit.recipient, config.shared_deposit_address)
        facts.fork_of = config.fork_of
        # what the database knows, in one session (one thread hop, one connection, given back at once)
        if stored is None or stored.deposit_key != deposit.key or stored.user_id != user_id:
            stored = await run_in_session(self._engine, stored_facts, user_id=user_id, deposit=deposit)
        facts.claimant_vip, owner, settled = stored.vip, stored.owner, stored.settled
        if owner is None:
            return facts
        facts.owner_user_id = owner.user_id
        if facts.shared_address:
            facts.memo_owner_user_id = owner.user_id
        facts.deprecated_address = owner.deprecated
        facts.signer_holds_key = self._keys.holds_key(owner, deposit.recipient)
        if deposit.asset is not None:
            facts.credited_here = deposit.asset in config.credited_assets
            facts.credited_chains = [
                c.name
                for c in self._settings.chains
                if c.name != trace.chain and c.family == config.family and deposit.asset in c.credited_assets
            ]
            facts.minimum = config.deposit_minimums.get(deposit.asset)
        # the lookups below are independent of each other: all at once
        evm = config.family == "evm"
        below_minimum = facts.minimum is not None and deposit.amount < facts.minimum and evm
        unlisted = deposit.asset is None and evm and deposit.token_address is not None
        code, balance, token = await _concurrently(
            self._code(
                deposit.recipient,
                deposit.sender,
                trace.chain,
                elsewhere=self._code_elsewhere or not facts.signer_holds_key,
                ahead=ahead,
            )
            if evm
            else _none(),
            self._balance_of(deposit) if below_minimum else _none(),
            self._unlisted_token(config, deposit, trace) if unlisted else _none(),
        )
        if evm:
            facts.contract_on_chains, facts.sender_is_contract = code
            facts.recipient_is_contract = trace.chain in facts.contract_on_chains
        facts.already_credited = settled
        if below_minimum:
            facts.uncredited_total = balance
        if unlisted:
            symbol, decimals, findings = token
            facts.token_symbol = symbol
            if decimals is not None:
                facts.deposit = deposit.model_copy(update={"decimals": decimals})
            facts.token_findings = findings
            price = self._prices.usd_price(deposit.asset_key)
            facts.priced = decimals is not None and price is not None and price > 0
        return facts

    def _internal(self, deposit: Transfer) -> bool:
        wallets = self._keys.own_wallets()
        return wallets is not None and deposit.sender.lower() in wallets

    def code_ahead(self, trace: TraceResult) -> CodeAhead:
        """Start the deposit chain's code lookups for the transfers of ``trace`` (an EVM chain's, up to
        ``AHEAD_LIMIT`` of them) before their facts are gathered."""
        ahead = CodeAhead()
        if trace.chain is None or not trace.found or len(trace.transfers) > AHEAD_LIMIT:
            return ahead
        if self._chains.config(trace.chain).family != "evm":
            return ahead
        chain = self._chains.get(trace.chain)
        for transfer in trace.transfers:
            key = (trace.chain, transfer.recipient.lower(), transfer.sender.lower())
            if not ahead.started(key):
                ahead.start(key, _code_here(chain, transfer.recipient, transfer.sender))
        return ahead

    async def _code(
        self, recipient: str, sender: str, deposit_chain: str, *, elsewhere: bool, ahead: CodeAhead | None = None
    ) -> tuple[list[str], bool]:
        """The EVM chains where ``recipient`` has code (only the deposit chain unless ``elsewhere``), and whether
        ``sender`` has code on the deposit chain: one batch on the deposit chain, one call on each other. Only the
        deposit chain must answer: another chain being down leaves it out (it only words the reason of a
        contract-wallet case) rather than stalling every case."""
        evm = [c for c in self._chains.all() if elsewhere or c.config.name == deposit_chain]

        started = ahead.take(deposit_chain, recipient, sender) if ahead is not None else None

        async def ask(chain: EvmChain) -> tuple[bool, bool]:
            if chain.config.name != deposit_chain:
                return await chain.is_contract(recipient), False
            if started is not None:
                return await started
            return await _code_here(chain, recipient, sender)

        answers = await asyncio.gather(*(ask(chain) for chain in evm), return_exceptions=True)
        out: list[str] = []
        sender_code = False
        for chain, answer in zip(evm, answers, strict=True):
            name = chain.config.name
            if isinstance(answer, BaseException):
                if name == deposit_chain or not isinstance(answer, Exception):
                    raise answer
                log.warning("code at %s on %s unknown (%s); left out", recipient, name, answer)
                continue
            has_code, sender_has_code = answer
            if has_code:
                out.append(name)
            if name == deposit_chain:
                sender_code = sender_has_code
        return out, sender_code

    async def _balance_of(self, deposit: Transfer) -> int:
        chain = self._chains.get(deposit.chain)
        if deposit.token_address is None:
            return await chain.balance(deposit.recipient)
        return await chain.token_balance(deposit.token_address, deposit.recipient)

    async def _unlisted_token(
        self, config: ChainConfig, deposit: Transfer, trace: TraceResult
    ) -> tuple[str | None, int | None, list[TokenFinding]]:
        """Symbol, decimals and the risky-token checks of a token the exchange does not list."""
        token = deposit.token_address
        assert token is not None and trace.block_number is not None
        chain = self._chains.get(deposit.chain)
        (symbol, decimals), findings = await _concurrently(
            token_metadata(chain, token),
            assess_token(
                chain,
                token=token,
                holder=deposit.recipient,
                amount=deposit.amount,
                to=self._keys.sweep_destination(config),
                deposit_block=trace.block_number,
            ),
        )
        return symbol, decimals, findings


class StoredFacts(NamedTuple):
    """What the database knows about a claimed deposit."""

    user_id: str
    deposit_key: str
    vip: bool
    """The claimant is a VIP."""
    owner: AddressOwner | None
    """Who owns the deposit's address (with its memo, on a shared address)."""
    settled: bool
    """The deposit was credited or refunded already."""


def stored_facts(session: Session, *, user_id: str, deposit: Transfer) -> StoredFacts:
    """:class:`StoredFacts` of ``deposit`` claimed by ``user_id``, read in ``session``."""
    return StoredFacts(
        user_id=user_id,
        deposit_key=deposit.key,
        vip=users.is_vip(session, user_id=user_id),
        owner=users.deposit_owner(session, address=deposit.recipient, memo=deposit.memo),
        settled=ledger.is_settled(session, deposit_key=deposit.key),
    )


async def _code_here(chain: EvmChain, recipient: str, sender: str) -> tuple[bool, bool]:
    """Whether ``recipient`` and ``sender`` have code on ``chain``: one JSON-RPC batch."""
    here, sent_by = await chain.rpc.batch(
        [("eth_getCode", [to_checksum_address(a), "latest"]) for a in (recipient, sender)]
    )
    for answer in (here, sent_by):
        if isinstance(answer, RpcError):
            raise answer
    return _has_code(here), _has_code(sent_by)


async def _none() -> None:
    return None


def _has_code(code: object) -> bool:
    """An ``eth_getCode`` answer with code in it (what ``EvmChain.is_contract`` reads)."""
    return code not in (None, "0x", "0x0", "")


async def _concurrently(*calls: Awaitable[Any]) -> list[Any]:
    """The results of ``calls``, run at once, in order; the first failure cancels the others and is raised
    as it is (not wrapped in a group: the activity's retry policy reads its type)."""
    tasks = [asyncio.ensure_future(c) for c in calls]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _same_address(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return False
    return a.lower() == b.lower() if a.startswith("0x") else a == b


def _is_token_contract(config: ChainConfig, deposit: Transfer) -> bool:
    """Sent to the token's own contract, or to a listed token's contract."""
    if deposit.token_address is not None and _same_address(deposit.token_address, deposit.recipient):
        return True
    return any(_same_address(t.address, deposit.recipient) for t in config.tokens)


def _pick_deposit(config: ChainConfig, trace: TraceResult, log_index: int | None) -> Transfer | None:
    """The claimed transfer; for a claim that matched none of our addresses, a transfer whose recovery is
    still possible to discuss: to our shared address or to a token contract."""
    if log_index is not None:
        return trace.transfer_at(log_index)
    for transfer in trace.transfers:
        if _same_address(transfer.recipient, config.shared_deposit_address) or _is_token_contract(config, transfer):
            return transfer
    return None
