"""Fees: exact commissions, rounding, rebates, BNB discount, VIP tiers re-evaluated at 00:00 UTC."""

from __future__ import annotations

import pytest

from engine.errors import ConfigError
from engine.fixed import parse_e8
from venues.sim.models.fees import (
    DAY_NS,
    SPOT_VIP_TIERS,
    BnbPayment,
    FlatFees,
    TieredFees,
    VipTier,
    rate_e8,
    received_e8,
    round_commission,
    validate_tiers,
)

pytestmark = pytest.mark.edge

E = parse_e8
HOUR_NS = 3_600 * 1_000_000_000


def test_rate_units_are_exact() -> None:
    assert rate_e8("10") == 100_000  # 10 bps = 0.1 %
    assert rate_e8("4.2") == 42_000
    assert rate_e8("-0.5") == -5_000  # a rebate
    assert rate_e8("0.042", unit="percent") == 42_000
    assert rate_e8("0.25", unit="fraction") == 25_000_000
    with pytest.raises(ConfigError, match="not exact"):
        rate_e8("0.00001")  # 1e-9 as a fraction
    with pytest.raises(ConfigError, match="not a number"):
        rate_e8("ten")


def test_default_table_matches_the_reference() -> None:
    t = {tier.level: tier for tier in SPOT_VIP_TIERS}
    assert len(t) == 10
    assert (t[0].maker_rate_e8, t[0].taker_rate_e8) == (100_000, 100_000)  # 0.1000 % / 0.1000 %
    assert (t[3].maker_rate_e8, t[3].taker_rate_e8) == (42_000, 60_000)  # 0.0420 % / 0.0600 %
    assert (t[9].maker_rate_e8, t[9].taker_rate_e8) == (12_000, 24_000)
    assert t[1].min_volume_e8 == E("1000000") and t[1].min_bnb_e8 == E("25")
    assert t[4].min_volume_e8 == E("75000000")
    assert t[9].min_volume_e8 == E("2500000000") and t[9].min_bnb_e8 == E("5500")


def test_received_amount_is_what_the_fill_credits() -> None:
    assert received_e8("BUY", E("35000"), E("0.49975")) == E("0.49975")
    assert received_e8("SELL", E("35000"), E("0.49975")) == E("17491.25")  # the commission FAQ example
    assert received_e8("SELL", 3, 3) == 0  # 9e-16 truncates to 0


def test_flat_commission_on_the_faq_example() -> None:
    fees = FlatFees("10", "10")
    c = fees.commission(0, received_asset="USDT", received_e8=E("17491.25"), is_maker=False)
    assert (c.asset, c.amount_e8, c.rate_e8, c.is_maker, c.paid_in_bnb) == (
        "USDT",
        E("17.49125"),
        100_000,
        False,
        False,
    )
    buy = fees.commission(0, received_asset="BTC", received_e8=E("0.49975"), is_maker=True)
    assert buy.amount_e8 == E("0.00049975")


def test_rounding_is_up_to_the_commission_precision() -> None:
    fees = FlatFees("10", "10")
    tiny = fees.commission(0, received_asset="BTC", received_e8=1, is_maker=False)
    assert tiny.amount_e8 == 1  # 1e-11 BTC rounds up to one e8 unit, never to zero
    two_dp = fees.commission(0, received_asset="USDT", received_e8=E("17491.25"), is_maker=False, precision=2)
    assert two_dp.amount_e8 == E("17.50")
    assert round_commission(10, 10) == 1
    assert round_commission(11, 10) == 2
    assert round_commission(-11, 10) == -1  # toward +inf: a rebate is rounded toward zero
    with pytest.raises(ConfigError):
        round_commission(1, 1, precision=9)


def test_maker_rebate_is_negative_and_rounded_toward_zero() -> None:
    fees = FlatFees("-1", "5")
    c = fees.commission(0, received_asset="USDT", received_e8=123_456_789, is_maker=True)
    assert c.amount_e8 == -12_345  # exact -12345.6789 e8 units
    assert fees.commission(0, received_asset="USDT", received_e8=E("100"), is_maker=False).amount_e8 == E(
        "0.05"
    )


def test_bnb_payment_pays_75_percent_converted_at_the_bnb_price() -> None:
    fees = FlatFees("10", "10")
    bnb = BnbPayment(price_e8=E("500"), available_e8=E("1"))
    c = fees.commission(0, received_asset="USDT", received_e8=E("17491.25"), is_maker=False, bnb=bnb)
    # 17.49125 USDT * 0.75 / 500 = 0.026236875 BNB -> up to 8 decimals
    assert (c.asset, c.amount_e8, c.paid_in_bnb) == ("BNB", E("0.02623688"), True)
    poor = BnbPayment(price_e8=E("500"), available_e8=E("0.02623687"))
    fallback = fees.commission(0, received_asset="USDT", received_e8=E("17491.25"), is_maker=False, bnb=poor)
    assert (fallback.asset, fallback.amount_e8, fallback.paid_in_bnb) == ("USDT", E("17.49125"), False)
    half = FlatFees("10", "10", bnb_discount="0.5")
    assert half.commission(
        0, received_asset="USDT", received_e8=E("1000"), is_maker=False, bnb=bnb
    ).amount_e8 == E("0.001")
    with pytest.raises(ConfigError):
        FlatFees("10", "10", bnb_discount="1.5")


def test_rebates_are_never_paid_in_bnb() -> None:
    fees = FlatFees("-1", "10")
    c = fees.commission(
        0, received_asset="USDT", received_e8=E("1000"), is_maker=True, bnb=BnbPayment(E("500"), E("10"))
    )
    assert (c.asset, c.amount_e8) == ("USDT", -E("0.1"))


def test_tier_follows_30_day_volume_at_midnight_utc() -> None:
    fees = TieredFees()
    day0 = 19_000 * DAY_NS
    fees.record_fill(day0 + HOUR_NS, E("1500000"))
    assert fees.rates_e8(day0 + 23 * HOUR_NS) == (100_000, 100_000)  # still VIP 0 the same day
    assert fees.rates_e8(day0 + DAY_NS) == (90_000, 100_000)  # VIP 1 from the next 00:00
    assert fees.tier_level == 1
    assert fees.rates_e8(day0 + 30 * DAY_NS) == (90_000, 100_000)  # day 0 is still inside the window
    assert fees.rates_e8(day0 + 31 * DAY_NS - 1) == (90_000, 100_000)
    assert fees.rates_e8(day0 + 31 * DAY_NS) == (100_000, 100_000)  # and now it has left it


def test_tier_by_bnb_holding_or_and() -> None:
    day0 = 100 * DAY_NS
    either = TieredFees()
    either.update_bnb_balance(day0, E("100"))
    assert either.rates_e8(day0 + DAY_NS) == (80_000, 100_000)  # VIP 2 by BNB alone
    both = TieredFees(qualify="and")
    both.update_bnb_balance(day0, E("100"))
    assert both.rates_e8(day0 + DAY_NS) == (100_000, 100_000)
    both.record_fill(day0 + DAY_NS, E("5000000"))
    assert both.rates_e8(day0 + 2 * DAY_NS) == (80_000, 100_000)


def test_evaluation_uses_only_what_happened_before_midnight() -> None:
    """Lazy evaluation at the first event after 00:00 must equal a timer firing at 00:00."""
    fees = TieredFees()
    day0 = 200 * DAY_NS
    fees.record_fill(day0, E("1000000"))
    fees.update_bnb_balance(day0 + DAY_NS + HOUR_NS, E("1000"))  # after the midnight
    fees.record_fill(day0 + DAY_NS + HOUR_NS, E("50000000"))
    assert fees.rates_e8(day0 + DAY_NS + 2 * HOUR_NS) == (90_000, 100_000)  # VIP 1 from day 0 only
    assert fees.rates_e8(day0 + 2 * DAY_NS) == (36_000, 48_000)  # VIP 5 by 1000 BNB


def test_initial_tier_holds_until_the_first_midnight() -> None:
    fees = TieredFees(initial_tier=3)
    assert fees.rates_e8(5 * DAY_NS + 1) == (42_000, 60_000)
    assert fees.rates_e8(6 * DAY_NS) == (100_000, 100_000)
    assert fees.commission(6 * DAY_NS, received_asset="BTC", received_e8=E("1"), is_maker=True).tier == 0
    with pytest.raises(ConfigError, match="initial fee tier 12"):
        TieredFees(initial_tier=12)


def test_custom_tables_are_validated_and_may_rebate() -> None:
    rebate = (
        VipTier(0, 0, 0, rate_e8("2"), rate_e8("4")),
        VipTier(1, E("100"), E("1000000"), rate_e8("-0.5"), rate_e8("3")),
    )
    fees = TieredFees(rebate)
    fees.record_fill(0, E("100"))
    c = fees.commission(DAY_NS, received_asset="USDT", received_e8=E("1000"), is_maker=True)
    assert c.amount_e8 == -E("0.05") and c.tier == 1
    with pytest.raises(ConfigError, match="empty"):
        validate_tiers([])
    with pytest.raises(ConfigError, match="first fee tier"):
        validate_tiers([VipTier(0, 1, 0, 0, 0)])
    with pytest.raises(ConfigError, match="out of order"):
        validate_tiers([VipTier(0, 0, 0, 0, 0), VipTier(1, 10, 10, 0, 0), VipTier(2, 5, 20, 0, 0)])
    with pytest.raises(ValueError):
        fees.record_fill(0, -1)
