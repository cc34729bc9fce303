"""Price port: USD prices per asset symbol. Dev uses static prices from the configuration."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class PricePort(Protocol):
    def usd_price(self, asset: str) -> Decimal | None: ...


class StaticPrices:
    """Prices by listed symbol (``USDT``) or, for unlisted tokens, ``<chain>:<token address>``."""

    def __init__(self, prices: dict[str, Decimal]) -> None:
        self._prices = {_key(k): v for k, v in prices.items()}

    def usd_price(self, asset: str) -> Decimal | None:
        return self._prices.get(_key(asset))


def _key(asset: str) -> str:
    return asset.lower() if ":" in asset else asset
