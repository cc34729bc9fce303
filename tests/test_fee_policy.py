"""Fee arithmetic: exact in base units for 6 and 18 decimals, dust and 256-bit amounts."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from fees.policy import native_to_asset_units, quote, settle, to_decimal
from recovery.settings import FeePolicyConfig

POLICY: dict[str, Any] = {"policy": FeePolicyConfig(percent_bps=500, min_usd=Decimal("10"), max_usd=Decimal("500"))}


@pytest.mark.parametrize("decimals", [6, 18])
def test_percentage_fee_between_min_and_max(decimals: int) -> None:
    amount = 1_000 * 10**decimals  # 1,000 USDT -> 5% = 50 USD
    q = quote(asset="USDT", amount=amount, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, **POLICY)
    assert q.fee == 50 * 10**decimals
    assert q.fee_usd == Decimal("50.00")
    assert q.amount_usd == Decimal("1000.00")
    assert q.net_estimate == amount - q.fee


@pytest.mark.parametrize("decimals", [6, 18])
def test_minimum_and_maximum_fee(decimals: int) -> None:
    small = quote(
        asset="USDT", amount=100 * 10**decimals, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, **POLICY
    )
    assert small.fee == 10 * 10**decimals  # 5% of 100 = 5 < minimum 10
    big = quote(
        asset="USDT",
        amount=1_000_000 * 10**decimals,
        decimals=decimals,
        price_usd=Decimal("1"),
        gas_estimate=0,
        **POLICY,
    )
    assert big.fee == 500 * 10**decimals  # 5% of 1M = 50,000 > maximum 500


def test_fee_rounds_up_to_the_base_unit() -> None:
    # 10 tokens worth 3 USD each: 5% is 1.5 USD, so the 10 USD minimum = 3.333333.. tokens -> 3.333334
    q = quote(asset="X", amount=10 * 10**6, decimals=6, price_usd=Decimal("3"), gas_estimate=0, **POLICY)
    assert q.fee == 3_333_334


def test_dust_does_not_cover_the_fee() -> None:
    q = quote(asset="USDT", amount=1, decimals=18, price_usd=Decimal("1"), gas_estimate=5, **POLICY)
    assert q.net_estimate < 0


def test_huge_amounts_stay_exact() -> None:
    amount = 2**256 - 1
    q = quote(asset="USDT", amount=amount, decimals=18, price_usd=Decimal("1"), gas_estimate=7, **POLICY)
    assert q.fee == 500 * 10**18
    assert q.net_estimate == amount - 500 * 10**18 - 7
    digits = str(amount)
    assert format(to_decimal(amount, 18), "f") == digits[:-18] + "." + digits[-18:]


def test_gas_conversion_from_native_coin() -> None:
    # 0.001 BNB at 600 USD = 0.6 USD = 0.6 USDT (18 decimals) and 600000 base units of a 6-decimal USDT
    gas = 10**15
    assert (
        native_to_asset_units(
            gas, native_decimals=18, native_price_usd=Decimal("600"), decimals=18, price_usd=Decimal("1")
        )
        == 6 * 10**17
    )
    assert (
        native_to_asset_units(
            gas, native_decimals=18, native_price_usd=Decimal("600"), decimals=6, price_usd=Decimal("1")
        )
        == 600_000
    )
    # rounding is up, never down: one wei of gas still costs one base unit
    assert (
        native_to_asset_units(
            1, native_decimals=18, native_price_usd=Decimal("600"), decimals=6, price_usd=Decimal("1")
        )
        == 1
    )


@pytest.mark.parametrize(
    ("recovered", "fee", "gas"),
    [(100 * 10**18, 10 * 10**18, 3 * 10**15), (5, 10, 3), (5, 1, 10), (0, 0, 0), (2**256 - 1, 10**20, 10**18)],
)
def test_settlement_accounts_for_every_unit(recovered: int, fee: int, gas: int) -> None:
    s = settle(recovered=recovered, fee=fee, gas=gas, gas_native=123)
    assert s.recovered == s.credited + s.fee + s.gas
    assert min(s.credited, s.fee, s.gas) >= 0
    assert s.gas == min(gas, recovered)


def test_negative_amounts_are_refused() -> None:
    with pytest.raises(ValueError):
        settle(recovered=-1, fee=0, gas=0, gas_native=0)
    with pytest.raises(ValueError):
        quote(asset="USDT", amount=-5, decimals=6, price_usd=Decimal("1"), gas_estimate=0, **POLICY)
