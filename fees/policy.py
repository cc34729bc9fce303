"""Fee arithmetic, exact: fractions over integer base units, rounded in the exchange's favour once.

Pure and workflow-safe. ``recovered = credited + fee + gas`` holds for every settlement.
"""

from __future__ import annotations

import math
from decimal import Decimal, localcontext
from fractions import Fraction

from recovery.choices import refuse_fee_override
from recovery.models import Quote, Settlement

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


def fee_usd(amount_usd: Fraction, *, percent_bps: int, min_usd: Decimal, max_usd: Decimal) -> Fraction:
    raw = amount_usd * Fraction(percent_bps, 10_000)
    return min(max(raw, Fraction(min_usd)), Fraction(max_usd))


def quote(
    *,
    asset: str,
    amount: int,
    decimals: int,
    price_usd: Decimal,
    percent_bps: int,
    min_usd: Decimal,
    max_usd: Decimal,
    gas_estimate: int,
    fee_usd_override: Decimal | None = None,
) -> Quote:
    """Quote a recovery. ``gas_estimate`` is already in the asset's base units. ``fee_usd_override``: an
    engineer's fee in USD instead of the percentage, within ``min_usd``..``max_usd`` (else ``ValueError``)."""
    if amount < 0 or gas_estimate < 0:
        raise ValueError("amounts must not be negative")
    value = usd_value(amount, decimals, price_usd)
    if fee_usd_override is not None:
        refused = refuse_fee_override(fee_usd_override, min_usd=min_usd, max_usd=max_usd)
        if refused is not None:
            raise ValueError(refused)
        fee_value = Fraction(fee_usd_override)
    else:
        fee_value = fee_usd(value, percent_bps=percent_bps, min_usd=min_usd, max_usd=max_usd)
    fee = usd_to_units(fee_value, decimals, price_usd)
    return Quote(
        asset=asset,
        decimals=decimals,
        amount=amount,
        amount_usd=_cents(value),
        percent_bps=percent_bps,
        fee_usd=_cents(fee_value),
        fee=fee,
        gas_estimate=gas_estimate,
        net_estimate=amount - fee - gas_estimate,
        min_fee_usd=min_usd,
        max_fee_usd=max_usd,
        fee_overridden=fee_usd_override is not None,
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
