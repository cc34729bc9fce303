"""Gathering the facts about a claimed deposit that the classifier needs (so that classification stays
pure): who owns the recipient, which chains have code there, whether the ledger already credited it,
what an unlisted token is and how risky, the uncredited balance of a below-minimum address."""

from __future__ import annotations

import asyncio
import logging

from sqlalchemy import Engine

from chains.signer import GAS_WALLET_PATH, HOT_WALLET_PATH, Signer, deposit_path
from chains.token_safety import assess_token, token_metadata
from fees.prices import PricePort
from recovery.models import DepositFacts, TraceResult, Transfer
from recovery.roster import ApprovalPolicy
from recovery.settings import ChainConfig, Settings
from services.evm_chains import EvmChains
from store import ledger, users
from store.db import run_in_session

log = logging.getLogger(__name__)


class FactGatherer:
    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        signer: Signer,
        prices: PricePort,
        chains: EvmChains,
        policy: ApprovalPolicy,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._engine = engine
        self._signer = signer
        self._prices = prices
        self._chains = chains

    async def gather(
        self, *, user_id: str, trace: TraceResult, log_index: int | None, vanished_from_block: int | None
    ) -> DepositFacts:
        facts = DepositFacts(
            claimant_user_id=user_id,
            trace=trace,
            claimant_vip=await run_in_session(self._engine, users.is_vip, user_id=user_id),
            engineers=[e.name for e in self._policy.roster],
            approval_policy=self._policy,
            vanished_from_block=vanished_from_block,
        )
        if trace.chain is None:
            return facts
        config = self._chains.config(trace.chain)
        facts.family = config.family
        deposit = _pick_deposit(config, trace, log_index)
        if log_index is None:
            # the claim resolved to no transfer of the claimant's (e.g. an internal transfer the API's trace
            # could not read): look again now, the ledger is keyed by deposit so this never credits twice
            claimed = await run_in_session(self._engine, users.claimant_deposit, user_id=user_id, trace=trace)
            deposit = claimed.transfer or deposit
        if deposit is None:
            return facts
        facts.deposit = deposit
        facts.internal_transfer = deposit.sender.lower() in {
            self._signer.address(HOT_WALLET_PATH).lower(),
            self._signer.address(GAS_WALLET_PATH).lower(),
        }
        if _is_token_contract(config, deposit):
            facts.recipient_token_contract = True
            facts.rescue_route = {a.lower(): r for a, r in config.rescue_routes.items()}.get(deposit.recipient.lower())
            return facts
        facts.shared_address = _same_address(deposit.recipient, config.shared_deposit_address)
        facts.fork_of = config.fork_of
        owner = await run_in_session(self._engine, users.deposit_owner, address=deposit.recipient, memo=deposit.memo)
        if owner is None:
            return facts
        facts.owner_user_id = owner.user_id
        if facts.shared_address:
            facts.memo_owner_user_id = owner.user_id
        facts.deprecated_address = owner.deprecated
        facts.signer_holds_key = owner.deposit_index is not None and _same_address(
            self._signer.address(deposit_path(owner.deposit_index)), deposit.recipient
        )
        if config.family == "evm":
            facts.contract_on_chains = await self._chains_with_code(deposit.recipient, trace.chain)
            facts.recipient_is_contract = trace.chain in facts.contract_on_chains
            facts.sender_is_contract = await self._chains.get(trace.chain).is_contract(deposit.sender)
        facts.already_credited = await run_in_session(self._engine, ledger.is_settled, deposit_key=deposit.key)
        if deposit.asset is not None:
            facts.credited_here = deposit.asset in config.credited_assets
            facts.credited_chains = [
                c.name
                for c in self._settings.chains
                if c.name != trace.chain and c.family == config.family and deposit.asset in c.credited_assets
            ]
            facts.minimum = config.deposit_minimums.get(deposit.asset)
            if facts.minimum is not None and deposit.amount < facts.minimum and config.family == "evm":
                facts.uncredited_total = await self._balance_of(deposit)
        elif config.family == "evm" and deposit.token_address is not None:
            await self._assess_unlisted_token(facts, deposit)
        return facts

    async def _chains_with_code(self, address: str, deposit_chain: str) -> list[str]:
        """EVM chains where ``address`` has code. Only the deposit chain must answer: another chain being
        down leaves it out (it only words the reason of a contract-wallet case) rather than stalling every case."""
        evm = self._chains.all()
        answers = await asyncio.gather(*(chain.is_contract(address) for chain in evm), return_exceptions=True)
        out: list[str] = []
        for chain, answer in zip(evm, answers, strict=True):
            name = chain.config.name
            if isinstance(answer, BaseException):
                if name == deposit_chain or not isinstance(answer, Exception):
                    raise answer
                log.warning("code at %s on %s unknown (%s); left out", address, name, answer)
            elif answer:
                out.append(name)
        return out

    async def _balance_of(self, deposit: Transfer) -> int:
        chain = self._chains.get(deposit.chain)
        if deposit.token_address is None:
            return await chain.balance(deposit.recipient)
        return await chain.token_balance(deposit.token_address, deposit.recipient)

    async def _assess_unlisted_token(self, facts: DepositFacts, deposit: Transfer) -> None:
        """Symbol, decimals, price and the risky-token checks of a token the exchange does not list."""
        token = deposit.token_address
        assert token is not None and facts.trace.block_number is not None
        chain = self._chains.get(deposit.chain)
        symbol, decimals = await token_metadata(chain, token)
        facts.token_symbol = symbol
        if decimals is not None:
            deposit = deposit.model_copy(update={"decimals": decimals})
            facts.deposit = deposit
        facts.token_findings = await assess_token(
            chain,
            token=token,
            holder=deposit.recipient,
            amount=deposit.amount,
            to=self._signer.address(HOT_WALLET_PATH),
            deposit_block=facts.trace.block_number,
        )
        price = self._prices.usd_price(deposit.asset_key)
        facts.priced = decimals is not None and price is not None and price > 0


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
