"""Quoting a recovery: the fee policy applied to the deposit's USD value, plus the gas it will cost."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine

from chains.signer import HOT_WALLET_PATH, Signer
from fees.policy import CannotQuote, native_to_asset_units, quote, refuse_fee_override, waive
from fees.prices import PricePort
from recovery.errors import PermanentError
from recovery.i18n import Message
from recovery.models import Quote, Transfer
from recovery.names import policy_name
from recovery.settings import Settings
from services import incidents
from services.evm_chains import EvmChains
from services.pricing import asset_and_decimals, require_price
from services.transactions import NATIVE_TRANSFER_GAS, transfer_gas_limit
from store.db import run_in_session


class FeeOutOfBounds(PermanentError):
    """An engineer's fee override outside the fee policy's bounds."""


class PolicyIncomplete(PermanentError):
    """The fee policy needs a figure the configuration does not give."""


class Quoter:
    def __init__(
        self,
        *,
        settings: Settings,
        signer: Signer,
        prices: PricePort,
        chains: EvmChains,
        engine: Engine,
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._signer = signer
        self._prices = prices
        self._chains = chains

    async def quote(
        self,
        deposit: Transfer,
        *,
        on_chain: bool,
        fee_usd: Decimal | None = None,
        refund: bool = False,
        pattern: str | None = None,
        vip: bool = False,
        case_id: str | None = None,
    ) -> Quote:
        """``on_chain`` False: a credit of funds already held, no gas to pay. ``refund``: two transfers
        from the deposit address (the refund to the sender, the fee to the hot wallet) instead of one. Raises
        :class:`~services.pricing.CannotPrice` when the asset or the native coin has no price, and
        :class:`FeeOutOfBounds` for an engineer's ``fee_usd`` outside the policy's bounds. The policy is the
        ``pattern``'s own where configured, else the default; a ``vip`` claimant gets its VIP discount. A
        ``case_id`` in a platform-fault incident's window is quoted with its fee waived."""
        config = self._chains.config(deposit.chain)
        asset, decimals = asset_and_decimals(deposit)
        price = require_price(self._prices, asset)
        gas_estimate = 0
        if on_chain:
            chain = self._chains.get(deposit.chain)
            max_fee, _tip = await chain.fee_params()
            hot = self._signer.address(HOT_WALLET_PATH)
            gas = await transfer_gas_limit(chain, deposit, to=hot, amount=deposit.amount)
            if refund:
                gas += await transfer_gas_limit(chain, deposit, to=deposit.sender, amount=deposit.amount)
            gas_estimate = native_to_asset_units(
                (gas + NATIVE_TRANSFER_GAS) * max_fee,
                native_decimals=config.native_decimals,
                native_price_usd=require_price(self._prices, config.native_symbol),
                decimals=decimals,
                price_usd=price,
            )
        name, policy = self._settings.fee_policy(pattern)
        if fee_usd is not None:
            refused = refuse_fee_override(fee_usd, min_usd=policy.min_usd, max_usd=policy.max_usd)
            if refused is not None:
                raise FeeOutOfBounds(refused)
        withdrawal = config.withdrawal_fees.get(asset)
        try:
            quoted = quote(
                asset=asset,
                amount=deposit.amount,
                decimals=decimals,
                price_usd=price,
                gas_estimate=gas_estimate,
                policy=policy,
                policy_name=name,
                withdrawal_fee_usd=None if withdrawal is None else withdrawal * price,
                vip=vip,
                fee_usd_override=fee_usd,
            )
        except CannotQuote as exc:
            raise PolicyIncomplete(
                Message(
                    "{problem} (fee policy {policy}, {asset} on {chain})",
                    problem=str(exc),
                    policy=Message(policy_name(name)),
                    asset=asset,
                    chain=deposit.chain,
                )
            ) from None
        if case_id is not None:
            incident = await run_in_session(self._engine, incidents.covering, case_id=case_id)
            if incident is not None and incident.id is not None:
                quoted = waive(quoted, incident_id=incident.id, reason=incident.reason)
        return quoted
