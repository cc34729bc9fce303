"""Fee arithmetic, exact: fractions over integer base units, rounded in the exchange's favour once.

Pure and workflow-safe. ``recovered = credited + fee + gas`` holds for every settlement.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

from recovery.choices import refuse_fee_override
from recovery.i18n import Message, Percent
from recovery.models import Quote, Settlement
from recovery.settings import FeePolicyConfig

CENT = Decimal("0.01")


def to_decimal(amount: int, decimals: int) -> Decimal:
    """Display value of base units; exact for any 256-bit amount."""
    with localcontext() as ctx:
        ctx.prec = 200
        return Decimal(amount).scaleb(-decimals)


def usd_value(amount: int, decimals: int, price_usd: Decimal) -> Fraction:
    return Fraction(amount, 10**decimals) * Fraction(price_usd)


def usd_to_units(usd: Fraction, decimals: int, price_usd: Decimal) -> int:
    """Base units of an asset worth ``usd``, rounded up."""
    return math.ceil(usd / Fraction(price_usd) * 10**decimals)


def native_to_asset_units(
    native_amount: int,
    *,
    native_decimals: int,
    native_price_usd: Decimal,
    decimals: int,
    price_usd: Decimal,
) -> int:
    """Convert gas paid in the chain's native coin into the deposit's asset, rounded up."""
    return usd_to_units(usd_value(native_amount, native_decimals, native_price_usd), decimals, price_usd)


class CannotQuote(ValueError):
    """The policy needs something the configuration does not give (a withdrawal fee)."""


def policy_fee_usd(
    value_usd: Fraction, policy: FeePolicyConfig, *, withdrawal_fee_usd: Fraction | None, vip: bool
) -> Fraction:
    """The fee in USD for a recovery worth ``value_usd`` under ``policy`` (see FeePolicyConfig)."""
    if policy.flat_usd is not None:
        fee = Fraction(policy.flat_usd)
    elif policy.withdrawal_fee_multiple is not None:
        if withdrawal_fee_usd is None:
            raise CannotQuote(
                Message(
                    "the fee policy charges a multiple of the asset's withdrawal fee, and the chain's withdrawal_fees "
                    "give none for this asset"
                )
            )
        fee = policy.withdrawal_fee_multiple * withdrawal_fee_usd
    else:
        if value_usd <= policy.free_usd:
            return Fraction(0)
        fee = (value_usd - Fraction(policy.free_usd)) * Fraction(policy.percent_bps, 10_000)
    if policy.min_usd is not None:
        fee = max(fee, Fraction(policy.min_usd))
    if policy.max_usd is not None:
        fee = min(fee, Fraction(policy.max_usd))
    if vip and policy.vip_discount_bps:
        fee = fee * Fraction(10_000 - policy.vip_discount_bps, 10_000)
    return fee


def fee_basis(policy: FeePolicyConfig, *, vip: bool) -> str:
    """The policy in words, for the quote's breakdown: a :class:`~recovery.i18n.Message` (its English is the
    text; a reader gets it in their language)."""
    if policy.flat_usd is not None:
        basis = Message("a flat {usd} USD", usd=policy.flat_usd)
    elif policy.withdrawal_fee_multiple is not None:
        basis = Message("{multiple}x the asset's withdrawal fee", multiple=Decimal(policy.withdrawal_fee_multiple))
    else:
        basis = Message("{percent} of the value", percent=_percent(policy.percent_bps))
        if policy.free_usd:
            basis = Message("free up to {usd} USD, then {basis} above it", usd=policy.free_usd, basis=basis)
    basis = _bounded(basis, policy)
    if vip and policy.vip_discount_bps:
        basis = Message(
            "{basis}, less the VIP discount of {percent}", basis=basis, percent=_percent(policy.vip_discount_bps)
        )
    if policy.network_cost == "absorbed":
        return Message("{basis}; network cost absorbed by the exchange", basis=basis)
    return basis


def _percent(bps: int) -> Percent:
    """A rate in basis points as a percentage in the reader's language (500 is ``5%``, ``5 %`` in German)."""
    return Percent(Decimal(bps).scaleb(-2).normalize())


def _bounded(basis: Message, policy: FeePolicyConfig) -> Message:
    low, high = policy.min_usd, policy.max_usd
    if low is not None and high is not None:
        return Message("{basis} (at least {min} USD, at most {max} USD)", basis=basis, min=low, max=high)
    if low is not None:
        return Message("{basis} (at least {min} USD)", basis=basis, min=low)
    if high is not None:
        return Message("{basis} (at most {max} USD)", basis=basis, max=high)
    return basis


def quote(
    *,
    asset: str,
    amount: int,
    decimals: int,
    price_usd: Decimal,
    gas_estimate: int,
    policy: FeePolicyConfig,
    policy_name: str = "default",
    withdrawal_fee_usd: Decimal | None = None,
    vip: bool = False,
    fee_usd_override: Decimal | None = None,
) -> Quote:
    """Quote a recovery. ``gas_estimate`` is the network cost in the asset's base units (charged unless the
    policy absorbs it). ``fee_usd_override``: an engineer's fee in USD instead of the policy's, within its
    bounds (else ``ValueError``). Raises :class:`CannotQuote` when the policy lacks a figure."""
    if amount < 0 or gas_estimate < 0:
        raise ValueError("amounts must not be negative")
    value = usd_value(amount, decimals, price_usd)
    if fee_usd_override is not None:
        refused = refuse_fee_override(fee_usd_override, min_usd=policy.min_usd, max_usd=policy.max_usd)
        if refused is not None:
            raise ValueError(refused)
        fee_value = Fraction(fee_usd_override)
    else:
        withdrawal = None if withdrawal_fee_usd is None else Fraction(withdrawal_fee_usd)
        fee_value = policy_fee_usd(value, policy, withdrawal_fee_usd=withdrawal, vip=vip)
    fee = usd_to_units(fee_value, decimals, price_usd)
    charged_gas = 0 if policy.network_cost == "absorbed" else gas_estimate
    acceptance = policy.acceptance_above_usd
    return Quote(
        asset=asset,
        decimals=decimals,
        amount=amount,
        amount_usd=_cents(value),
        percent_bps=policy.percent_bps if policy.flat_usd is None and policy.withdrawal_fee_multiple is None else 0,
        fee_usd=_cents(fee_value),
        fee=fee,
        gas_estimate=charged_gas,
        net_estimate=amount - fee - charged_gas,
        min_fee_usd=policy.min_usd,
        max_fee_usd=policy.max_usd,
        fee_overridden=fee_usd_override is not None,
        policy=policy_name,
        basis=Message("an engineer's fee") if fee_usd_override is not None else fee_basis(policy, vip=vip),
        network_cost=policy.network_cost,
        network_cost_estimate=gas_estimate,
        vip_discount_bps=policy.vip_discount_bps if vip else 0,
        eligible_from_usd=policy.eligible_from_usd,
        acceptance_required=acceptance is not None and value > Fraction(acceptance),
        price_usd=price_usd,
    )


def settle(*, recovered: int, fee: int, gas: int, gas_native: int) -> Settlement:
    """Split what was recovered. Gas comes first, then the fee; the user never goes negative."""
    if recovered < 0 or fee < 0 or gas < 0:
        raise ValueError("amounts must not be negative")
    gas_charged = min(gas, recovered)
    fee_charged = min(fee, recovered - gas_charged)
    return Settlement(
        recovered=recovered,
        credited=recovered - gas_charged - fee_charged,
        fee=fee_charged,
        gas=gas_charged,
        gas_native=gas_native,
    )


def settle_refund(*, recovered: int, refunded: int, fee: int, gas_native: int) -> Settlement:
    """Split a refund: the sender gets ``refunded``, the exchange keeps the fee, and the rest (the quoted
    network cost, fixed before signing) is the gas charged."""
    gas = recovered - refunded - fee
    if refunded <= 0 or fee < 0 or gas < 0:
        raise ValueError(f"a refund of {refunded} with fee {fee} does not fit in {recovered} base units")
    return Settlement(recovered=recovered, credited=0, refunded=refunded, fee=fee, gas=gas, gas_native=gas_native)


def _cents(value: Fraction) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 200
        return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(CENT)


def waive(quoted: Quote, *, incident_id: int, reason: str) -> Quote:
    """The quote with its fee waived for a platform-fault incident: the user pays no fee (the network cost
    stays as quoted), needs to accept nothing, and sees why in ``basis``; ``waived_fee`` keeps the fee the
    policy would have charged, for the ledger's ``waived`` entry."""
    if quoted.waived_by is not None:
        return quoted
    return quoted.model_copy(
        update={
            "fee": 0,
            "fee_usd": Decimal("0.00"),
            "net_estimate": quoted.amount - quoted.gas_estimate,
            "waived_by": incident_id,
            "waived_fee": quoted.fee,
            "basis": Message(
                "fee waived: incident #{incident} ({reason}); the policy's fee would be {fee_usd} USD",
                incident=incident_id,
                reason=reason,
                fee_usd=quoted.fee_usd,
            ),
            "acceptance_required": False,
        }
    )
