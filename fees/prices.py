"""Price port: USD prices per asset symbol. Dev uses static prices from the configuration."""

from __future__ import annotations

from decimal import Decimal
from typing import Protocol


class PricePort(Protocol):
    def usd_price(self, asset: str) -> Decimal | None: ...


class StaticPrices:
    def __init__(self, prices: dict[str, Decimal]) -> None:
        self._prices = dict(prices)

    def usd_price(self, asset: str) -> Decimal | None:
        return self._prices.get(asset)
