"""USD prices and decimals a fee needs, or a permanent error saying which one is missing."""

from __future__ import annotations

from decimal import Decimal

from fees.prices import PricePort
from recovery.errors import PermanentError
from recovery.i18n import Message
from recovery.models import Transfer


class CannotPrice(PermanentError):
    """No usable USD price, or no decimals, for an asset: no fee can be quoted or charged."""


def require_price(prices: PricePort, asset: str) -> Decimal:
    price = prices.usd_price(asset)
    if price is None or price <= 0:
        raise CannotPrice(Message("no USD price configured for {asset}", asset=asset))
    return price


def asset_and_decimals(deposit: Transfer) -> tuple[str, int]:
    """The deposit's asset key (prices, ledger) and decimals."""
    if deposit.decimals is None:
        raise CannotPrice(Message("token {token} has no known decimals: no fee", token=str(deposit.token_address)))
    return deposit.asset_key, deposit.decimals
