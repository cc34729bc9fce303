"""Every kind of fee policy exchanges publish, with edge values: zero, dust, amounts above 2**64, 6 and 18
decimals, the free threshold exactly, flat fees, multiples of the withdrawal fee, VIP discounts, an absorbed
network cost and the acceptance threshold; and the dev configuration's policies per pattern."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fees.policy import CannotQuote, policy_fee_usd, quote, settle
from recovery.models import Pattern
from recovery.settings import FeePolicyConfig, Settings

COINBASE = FeePolicyConfig(percent_bps=500, free_usd=Decimal("100"), min_usd=None, max_usd=None)
KUCOIN_MEMO = FeePolicyConfig(flat_usd=Decimal("40"), min_usd=None, max_usd=None)
BYBIT = FeePolicyConfig(withdrawal_fee_multiple=5, min_usd=None, max_usd=None, eligible_from_usd=Decimal("500"))


@pytest.mark.parametrize("decimals", [6, 18])
def test_free_up_to_the_threshold_then_a_percentage_of_the_part_above(decimals: int) -> None:
    unit = 10**decimals
    at = quote(
        asset="USDT", amount=100 * unit, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, policy=COINBASE
    )
    assert at.fee == 0 and at.fee_usd == Decimal("0.00") and at.net_estimate == 100 * unit  # exactly the threshold
    one_above = quote(
        asset="USDT", amount=100 * unit + 1, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, policy=COINBASE
    )
    assert one_above.fee == 1  # 5 % of one base unit, rounded up in the exchange's favour
    above = quote(
        asset="USDT", amount=300 * unit, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, policy=COINBASE
    )
    assert above.fee == 10 * unit  # 5 % of the 200 above the free 100
    assert "free up to 100 USD, then 5% of the value above it" in above.basis


def test_a_free_recovery_is_not_clamped_up_to_the_minimum() -> None:
    policy = COINBASE.model_copy(update={"min_usd": Decimal("10")})
    assert policy_fee_usd(Fraction(50), policy, withdrawal_fee_usd=None, vip=False) == 0
    assert policy_fee_usd(Fraction(101), policy, withdrawal_fee_usd=None, vip=False) == 10


@pytest.mark.parametrize("decimals", [6, 18])
def test_a_flat_fee_is_the_same_for_any_amount(decimals: int) -> None:
    unit = 10**decimals
    for amount in (50 * unit, 10**6 * unit, 2**70):
        q = quote(
            asset="USDT", amount=amount, decimals=decimals, price_usd=Decimal("1"), gas_estimate=3, policy=KUCOIN_MEMO
        )
        assert q.fee == 40 * unit and q.net_estimate == amount - 40 * unit - 3 and q.percent_bps == 0
    dust = quote(asset="USDT", amount=1, decimals=decimals, price_usd=Decimal("1"), gas_estimate=0, policy=KUCOIN_MEMO)
    assert dust.net_estimate < 0  # a dust deposit does not cover a flat fee: the case is rejected TOO_SMALL


def test_a_multiple_of_the_withdrawal_fee() -> None:
    q = quote(
        asset="BNB",
        amount=10**18,
        decimals=18,
        price_usd=Decimal("600"),
        gas_estimate=0,
        policy=BYBIT,
        withdrawal_fee_usd=Decimal("0.0005") * Decimal("600"),
    )
    assert q.fee_usd == Decimal("1.50") and q.fee == 25 * 10**14  # 5 x 0.0005 BNB
    assert q.eligible_from_usd == Decimal("500") and "5x the asset's withdrawal fee" in q.basis
    with pytest.raises(CannotQuote, match="withdrawal fee"):
        quote(asset="X", amount=10**18, decimals=18, price_usd=Decimal("1"), gas_estimate=0, policy=BYBIT)


def test_a_vip_discount_comes_off_the_clamped_fee() -> None:
    policy = FeePolicyConfig(percent_bps=500, min_usd=Decimal("10"), max_usd=Decimal("500"), vip_discount_bps=2_500)
    assert policy_fee_usd(Fraction(100_000), policy, withdrawal_fee_usd=None, vip=True) == 375  # 500 less 25 %
    assert policy_fee_usd(Fraction(100_000), policy, withdrawal_fee_usd=None, vip=False) == 500
    vip = quote(
        asset="USDT", amount=10**6 * 10**6, decimals=6, price_usd=Decimal("1"), gas_estimate=0, policy=policy, vip=True
    )
    assert vip.vip_discount_bps == 2_500 and "VIP discount of 25%" in vip.basis


def test_an_absorbed_network_cost_is_not_charged_and_settles_with_no_gas() -> None:
    policy = FeePolicyConfig(percent_bps=0, min_usd=None, max_usd=None, network_cost="absorbed")
    q = quote(asset="USDT", amount=10**18, decimals=18, price_usd=Decimal("1"), gas_estimate=7 * 10**15, policy=policy)
    assert q.fee == 0 and q.gas_estimate == 0 and q.network_cost_estimate == 7 * 10**15
    assert q.net_estimate == 10**18 and "absorbed by the exchange" in q.basis


def test_zero_amount_and_zero_percent() -> None:
    free = FeePolicyConfig(percent_bps=0, min_usd=None, max_usd=None)
    q = quote(asset="USDT", amount=0, decimals=6, price_usd=Decimal("1"), gas_estimate=0, policy=free)
    assert q.fee == 0 and q.net_estimate == 0


def test_acceptance_is_required_above_the_threshold_only() -> None:
    policy = FeePolicyConfig(acceptance_above_usd=Decimal("1000"))
    at = quote(asset="USDT", amount=1000 * 10**6, decimals=6, price_usd=Decimal("1"), gas_estimate=0, policy=policy)
    above = quote(
        asset="USDT", amount=1000 * 10**6 + 1, decimals=6, price_usd=Decimal("1"), gas_estimate=0, policy=policy
    )
    assert not at.acceptance_required and above.acceptance_required


def test_an_engineer_override_stays_within_the_bounds() -> None:
    policy = FeePolicyConfig(min_usd=Decimal("10"), max_usd=Decimal("500"))
    q = quote(
        asset="USDT",
        amount=10**9,
        decimals=6,
        price_usd=Decimal("1"),
        gas_estimate=0,
        policy=policy,
        fee_usd_override=Decimal("12.50"),
    )
    assert q.fee == 12_500_000 and q.fee_overridden and q.basis == "an engineer's fee"
    with pytest.raises(ValueError, match="outside the fee policy's bounds"):
        quote(
            asset="USDT",
            amount=10**9,
            decimals=6,
            price_usd=Decimal("1"),
            gas_estimate=0,
            policy=policy,
            fee_usd_override=Decimal("9.99"),
        )


def test_bounds_out_of_order_are_refused() -> None:
    with pytest.raises(ValueError, match="min_usd must not be above its max_usd"):
        FeePolicyConfig(min_usd=Decimal("50"), max_usd=Decimal("10"))


def test_the_dev_configuration_prices_patterns_differently() -> None:
    settings = Settings()
    names = {p: settings.fee_policy(p)[0] for p in ("UNLISTED_TOKEN", "MISSING_OR_WRONG_MEMO", "BELOW_MINIMUM")}
    assert names == {p: p for p in names}
    assert settings.fee_policy(Pattern.WRONG_NETWORK_SAME_KEY) == ("default", settings.fee)
    assert settings.fee_policy(None)[0] == "default"
    assert settings.fee_policy("MISSING_OR_WRONG_MEMO")[1].flat_usd == Decimal("40")
    assert settings.fee.acceptance_above_usd == Decimal("1000")
    with pytest.raises(ValueError, match="names no pattern"):
        Settings(fee_policies={"WRONG_NETWRK": FeePolicyConfig()})


POLICIES = st.builds(
    FeePolicyConfig,
    percent_bps=st.integers(0, 10_000),
    free_usd=st.decimals(0, 1000, places=2),
    min_usd=st.none() | st.decimals(0, 50, places=2),
    max_usd=st.none() | st.decimals(50, 5000, places=2),
    flat_usd=st.none() | st.decimals(0, 500, places=2),
    vip_discount_bps=st.integers(0, 10_000),
    network_cost=st.sampled_from(["passed", "absorbed"]),
)


@given(
    policy=POLICIES,
    amount=st.integers(0, 2**256 - 1),
    decimals=st.sampled_from([6, 18]),
    gas=st.integers(0, 10**20),
    vip=st.booleans(),
)
def test_every_unit_is_accounted_for(policy: FeePolicyConfig, amount: int, decimals: int, gas: int, vip: bool) -> None:
    """For any policy and amount: the quote's parts add up, the fee stays within the bounds, and a
    settlement of what was recovered splits it exactly."""
    q = quote(
        asset="USDT", amount=amount, decimals=decimals, price_usd=Decimal("1"), gas_estimate=gas, policy=policy, vip=vip
    )
    assert q.net_estimate + q.fee + q.gas_estimate == amount
    assert isinstance(q.fee, int) and q.fee >= 0
    if policy.max_usd is not None:
        assert q.fee <= policy.max_usd * 10**decimals
    settled = settle(recovered=amount, fee=q.fee, gas=q.gas_estimate, gas_native=0)
    assert settled.credited + settled.fee + settled.gas == amount and settled.credited >= 0
