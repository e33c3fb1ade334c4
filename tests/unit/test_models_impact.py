"""Square-root impact: exact zero when off, the formula's numbers, permanent decay, estimation."""

from __future__ import annotations

import math

import pytest

from engine.errors import ConfigError
from engine.fixed import parse_e8
from venues.sim.models.impact import (
    FixedStats,
    NoImpact,
    RollingStats,
    SquareRootImpact,
    round_to_tick,
)

pytestmark = pytest.mark.edge

E = parse_e8
TICK = E("0.01")
SEC = 1_000_000_000
WALK = [(E("50000"), E("4")), (E("50000.5"), E("6"))]


def test_y_zero_gives_the_plain_book_walk_exactly() -> None:
    imp = SquareRootImpact(0.0, FixedStats(0.05, E("1000")))
    assert imp.apply(0, "BUY", WALK, TICK) == WALK
    assert imp.apply(1, "SELL", WALK, TICK) == WALK
    assert imp.permanent_shift_e8(2, E("50000"), TICK) == 0
    assert NoImpact().apply(0, "BUY", WALK, TICK) == WALK


def test_square_root_numbers() -> None:
    # I = 1 * 0.02 * sqrt(10 / 1000) = 0.002 -> 100 USDT at 50000
    imp = SquareRootImpact(1.0, FixedStats(0.02, E("1000")), permanent_share=0.5, half_life_ns=60 * SEC)
    assert imp.impact_fraction(0, E("10")) == pytest.approx(0.002)
    buy = imp.apply(0, "BUY", WALK, TICK)
    assert buy == [(E("50100"), E("4")), (E("50100.5"), E("6"))]
    # half of I stays: 0.001 relative, i.e. +50 at 50000, halving every 60 s
    assert imp.permanent_shift_e8(0, E("50000"), TICK) == E("50")
    assert imp.permanent_shift_e8(60 * SEC, E("50000"), TICK) == E("25")
    assert imp.permanent_shift_e8(120 * SEC, E("50000"), TICK) == E("12.5")


def test_permanent_part_moves_later_fills_both_ways() -> None:
    imp = SquareRootImpact(1.0, FixedStats(0.02, E("1000")), permanent_share=1.0, half_life_ns=60 * SEC)
    imp.apply(0, "BUY", [(E("50000"), E("10"))], TICK)  # leaves +0.002
    # a later SELL of the same size: permanent +0.002 and its own -0.002 cancel exactly
    assert imp.apply(0, "SELL", [(E("50000"), E("10"))], TICK) == [(E("50000"), E("10"))]
    assert imp.permanent_fraction(0) == pytest.approx(0.0, abs=1e-15)


def test_sell_moves_down_and_limit_clamps() -> None:
    imp = SquareRootImpact(1.0, FixedStats(0.02, E("1000")))
    assert imp.apply(0, "SELL", [(E("50000"), E("10"))], TICK) == [(E("49900"), E("10"))]
    clamped = SquareRootImpact(1.0, FixedStats(0.02, E("1000")))
    assert clamped.apply(0, "BUY", [(E("50000"), E("10"))], TICK, limit_price_e8=E("50040")) == [
        (E("50040"), E("10"))
    ]


def test_no_volume_means_no_impact() -> None:
    imp = SquareRootImpact(1.0, RollingStats(60 * SEC))
    assert imp.impact_fraction(0, E("1")) == 0.0
    assert imp.apply(0, "BUY", WALK, TICK) == WALK


def test_rounding_to_tick() -> None:
    assert round_to_tick(149.0, 100) == 100
    assert round_to_tick(151.0, 100) == 200
    assert round_to_tick(150.0, 100) == 200  # ties to even (2 ticks)
    assert round_to_tick(250.0, 100) == 200
    assert round_to_tick(-151.0, 100) == -200
    assert round_to_tick(3.4, 0) == 3


def test_rolling_stats_matches_a_direct_computation() -> None:
    st = RollingStats(window_ns=10 * SEC, sample_ns=SEC)
    tape = [(0, 100.0, 1), (SEC // 2, 101.0, 2), (SEC, 102.0, 3), (3 * SEC, 99.0, 4), (3 * SEC + 1, 100.0, 5)]
    for ts, p, q in tape:
        st.on_trade(ts, E(str(p)), E(str(q)))
    closes = [101.0, 102.0, 100.0]  # bucket closes at 0 s, 1 s, 3 s
    want = math.sqrt(sum((math.log(b) - math.log(a)) ** 2 for a, b in zip(closes, closes[1:], strict=False)))
    sigma, volume = st.estimate(3 * SEC + 1)
    assert sigma == pytest.approx(want, rel=1e-12)
    assert volume == E("15")


def test_rolling_stats_evicts_old_buckets_and_their_links() -> None:
    st = RollingStats(window_ns=2 * SEC, sample_ns=SEC)
    st.on_trade(0, E("100"), E("1"))
    st.on_trade(SEC, E("110"), E("1"))
    st.on_trade(2 * SEC, E("121"), E("1"))
    sigma, volume = st.estimate(2 * SEC)  # window (0 s, 2 s]: buckets 1 s and 2 s
    assert volume == E("2")
    assert sigma == pytest.approx(abs(math.log(121 / 110)), rel=1e-12)
    assert st.estimate(100 * SEC) == (0.0, 0)


def test_impact_uses_rolling_estimates() -> None:
    st = RollingStats(window_ns=60 * SEC, sample_ns=SEC)
    imp = SquareRootImpact(0.5, st)
    imp.on_trade(0, E("100"), E("50"))
    imp.on_trade(SEC, E("101"), E("50"))
    sigma, volume = st.estimate(SEC)
    assert imp.impact_fraction(SEC, E("25")) == pytest.approx(0.5 * sigma * math.sqrt(25 / 100))
    assert volume == E("100")


def test_config_errors() -> None:
    with pytest.raises(ConfigError):
        SquareRootImpact(-1.0, FixedStats(0.1, 1))
    with pytest.raises(ConfigError):
        SquareRootImpact(1.0, FixedStats(0.1, 1), permanent_share=1.5)
    with pytest.raises(ConfigError):
        SquareRootImpact(1.0, FixedStats(0.1, 1), half_life_ns=0)
    with pytest.raises(ConfigError):
        RollingStats(window_ns=SEC, sample_ns=2 * SEC)
