"""Run statistics: small curves worked by hand, every documented None case, no NaN ever."""

from __future__ import annotations

import json
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InputError
from replay.metrics import (
    DAY_NS,
    SECOND_NS,
    YEAR_NS,
    RoundTrip,
    choose_period,
    compute_metrics,
    drawdown,
    exposure,
    resample,
    trade_stats,
)

pytestmark = pytest.mark.edge

H = 3600 * SECOND_NS
TS = [0, H, 2 * H, 3 * H, 4 * H]
EQ = [100.0, 110.0, 99.0, 121.0, 120.0]


def _trip(entry: int, exit_: int, gross: float, fees: float, notional: float) -> RoundTrip:
    return RoundTrip("BTCUSDT.SPOT", 1, 1, entry, exit_, 100, 101, gross, fees, notional)


TRADES = [
    _trip(0, H, 50.0, 5.0, 1000.0),
    _trip(H // 2, 3 * H // 2, -20.0, 5.0, 2000.0),
    _trip(3 * H, 4 * H, 10.0, 5.0, 500.0),
]


def test_returns_and_ratios_worked_by_hand() -> None:
    m = compute_metrics(TS, EQ, TRADES, period_ns=H)
    r = [110 / 100 - 1, 99 / 110 - 1, 121 / 99 - 1, 120 / 121 - 1]
    ppy = YEAR_NS / H
    assert m.total_return == pytest.approx(0.2)
    assert m.annualised_return == pytest.approx(1.2 ** (YEAR_NS / (4 * H)) - 1, rel=1e-9)
    assert (m.period_ns, m.n_periods, m.span_ns) == (H, 4, 4 * H)
    assert m.sharpe == pytest.approx(statistics.mean(r) / statistics.stdev(r) * math.sqrt(ppy))
    downside = math.sqrt(sum(min(x, 0.0) ** 2 for x in r) / 4)
    assert m.sortino == pytest.approx(statistics.mean(r) / downside * math.sqrt(ppy))
    assert m.annualised_volatility == pytest.approx(statistics.stdev(r) * math.sqrt(ppy))
    assert m.calmar == pytest.approx(m.annualised_return / 0.1)  # type: ignore[operator]


def test_drawdown_worked_by_hand() -> None:
    m = compute_metrics(TS, EQ, period_ns=H)
    # peak 110 at 1h, trough 99 at 2h (-10%), back to 121 at 3h; then 121 -> 120 never recovers
    assert m.max_drawdown == pytest.approx(0.1)
    assert (m.max_drawdown_peak_ts, m.max_drawdown_trough_ts, m.max_drawdown_recovery_ts) == (H, 2 * H, 3 * H)
    assert m.max_drawdown_duration_ns == 2 * H  # 1h -> 3h beats the unrecovered 3h -> 4h
    long_tail = drawdown(np.array([0, 1, 2, 10], dtype=np.int64), np.array([5.0, 4.0, 5.0, 4.9]))
    assert long_tail is not None and long_tail.longest_duration_ns == 8  # 2 -> end of curve
    repeated_peak = drawdown(np.array([0, 1, 2, 3], dtype=np.int64), np.array([10.0, 10.0, 8.0, 9.0]))
    assert repeated_peak is not None and repeated_peak.peak_ts == 1 and repeated_peak.recovery_ts is None


def test_trade_statistics_worked_by_hand() -> None:
    m = compute_metrics(TS, EQ, TRADES, period_ns=H)
    assert m.n_trades == 3
    assert m.win_rate == pytest.approx(2 / 3)  # nets: +45, -25, +5
    assert m.profit_factor == pytest.approx(50 / 25)
    assert m.avg_trade == pytest.approx(25 / 3)
    assert (m.gross_pnl, m.fees, m.net_pnl) == (40.0, 15.0, 25.0)
    assert m.fee_share == pytest.approx(15 / 40)
    assert m.traded_notional == 3500.0
    assert m.turnover == pytest.approx(3500 / ((100 + 110 + 99 + 121) / 4))  # time-weighted mean equity
    assert m.exposure == pytest.approx(2.5 / 4)  # [0, 1.5h] and [3h, 4h] open


def test_e8_integers_give_the_same_ratios_as_floats() -> None:
    ints = compute_metrics(TS, [int(v * 10**8) for v in EQ], period_ns=H)
    floats = compute_metrics(TS, EQ, period_ns=H)
    assert ints.sharpe == pytest.approx(floats.sharpe) and ints.max_drawdown == pytest.approx(
        floats.max_drawdown
    )
    assert ints.total_return == pytest.approx(floats.total_return)
    int_trades = trade_stats([_trip(0, 1, 5_000_000_000, 500_000_000, 10**11)])
    assert (int_trades.gross_pnl, int_trades.net_pnl, int_trades.fee_share) == (
        5_000_000_000,
        4_500_000_000,
        0.1,
    )


def test_single_point_has_defined_values() -> None:
    m = compute_metrics([5], [100.0])
    assert (m.total_return, m.max_drawdown, m.max_drawdown_duration_ns, m.n_periods) == (0.0, 0.0, 0, 0)
    for name in ("annualised_return", "sharpe", "sortino", "calmar", "exposure", "annualised_volatility"):
        assert getattr(m, name) is None, name
    assert m.turnover == 0.0 and m.span_ns == 0


def test_flat_equity_has_no_sharpe_and_no_drawdown() -> None:
    ts = [i * SECOND_NS for i in range(121)]
    m = compute_metrics(ts, [1000.0] * 121)
    assert (m.total_return, m.annualised_return, m.max_drawdown) == (0.0, 0.0, 0.0)
    assert m.sharpe is None and m.sortino is None and m.calmar is None
    assert m.max_drawdown_peak_ts is None and m.max_drawdown_duration_ns == 0
    assert m.annualised_volatility == 0.0


def test_no_trades_gives_none_for_per_trade_ratios() -> None:
    m = compute_metrics(TS, EQ, [], period_ns=H)
    assert m.n_trades == 0
    assert (m.win_rate, m.profit_factor, m.avg_trade, m.fee_share) == (None, None, None, None)
    assert (m.gross_pnl, m.fees, m.net_pnl, m.traded_notional, m.turnover, m.exposure) == (
        0,
        0,
        0,
        0,
        0.0,
        0.0,
    )


def test_one_sided_trade_sets() -> None:
    losers = trade_stats([_trip(0, 1, -10.0, 1.0, 1.0), _trip(1, 2, 0.5, 1.0, 1.0)])
    assert (losers.win_rate, losers.profit_factor, losers.fee_share) == (0.0, 0.0, None)  # gross -9.5
    winners = trade_stats([_trip(0, 1, 10.0, 1.0, 1.0)])
    assert (winners.win_rate, winners.profit_factor, winners.avg_trade) == (1.0, None, 9.0)
    breakeven = trade_stats([_trip(0, 1, 1.0, 1.0, 1.0)])
    assert breakeven.win_rate == 0.0  # a zero net trade is not a win


def test_ruin_and_non_positive_start() -> None:
    ts = [0, H, 2 * H, 3 * H]
    ruined = compute_metrics(ts, [100.0, 50.0, 0.0, -10.0], period_ns=H)
    assert ruined.total_return == pytest.approx(-1.1) and ruined.annualised_return == -1.0
    assert ruined.sharpe is None and ruined.sortino is None  # returns after a zero are undefined
    assert ruined.max_drawdown == pytest.approx(1.1)
    broke = compute_metrics(ts, [0.0, 1.0, 2.0, 3.0], period_ns=H)
    assert broke.total_return is None and broke.annualised_return is None and broke.max_drawdown is None
    assert broke.calmar is None and broke.max_drawdown_duration_ns is None


def test_annualising_a_few_minutes_of_a_big_move_is_none_not_inf() -> None:
    m = compute_metrics([0, 60 * SECOND_NS], [100.0, 120.0])
    assert m.total_return == pytest.approx(0.2) and m.annualised_return is None and m.calmar is None


def test_automatic_period() -> None:
    assert choose_period(10 * 60 * SECOND_NS) == 10 * SECOND_NS  # a 10-minute recording: 60 returns
    assert choose_period(2 * DAY_NS) == H  # 48 hourly returns
    assert choose_period(60 * DAY_NS) == DAY_NS
    assert choose_period(20 * SECOND_NS) == SECOND_NS  # too short for 30 of anything: 1s
    m = compute_metrics([0, 10 * 60 * SECOND_NS], [1.0, 2.0])
    assert (m.period_ns, m.n_periods) == (10 * SECOND_NS, 60)


def test_resampling_takes_the_last_value_and_drops_the_partial_period() -> None:
    ts = np.array([0, H // 2, H + 1, 5 * H // 2], dtype=np.int64)
    eq = np.array([1.0, 2.0, 3.0, 4.0])
    assert resample(ts, eq, H).tolist() == [1.0, 2.0, 3.0]  # grid 0, 1h, 2h; 4.0 at 2.5h is left out


def test_exposure_merges_overlaps_and_clips_to_the_curve() -> None:
    trips = [_trip(-5, 2, 0, 0, 0), _trip(1, 3, 0, 0, 0), _trip(6, 20, 0, 0, 0), _trip(4, 4, 0, 0, 0)]
    assert exposure(trips, 0, 10) == pytest.approx((3 + 4) / 10)
    assert exposure(trips, 5, 5) is None


def test_bad_curves_are_input_errors() -> None:
    with pytest.raises(InputError, match="non-empty"):
        compute_metrics([], [])
    with pytest.raises(InputError, match="shape"):
        compute_metrics([0, 1], [1.0])
    with pytest.raises(InputError, match="back in time at point 2"):
        compute_metrics([0, 5, 3], [1.0, 1.0, 1.0])
    with pytest.raises(InputError, match="point 1 is not finite"):
        compute_metrics([0, 5], [1.0, math.nan])
    with pytest.raises(InputError, match="integer"):
        compute_metrics([0.5, 1.0], [1.0, 1.0])
    with pytest.raises(InputError, match="period_ns"):
        compute_metrics([0, 5], [1.0, 1.0], period_ns=0)


def test_extreme_values_give_none_not_inf() -> None:
    tiny, huge = 5e-324, 1.7e308
    m = compute_metrics(
        [0, H, 2 * H, 3 * H], [tiny, huge, tiny, huge], [_trip(0, H, huge, tiny, huge)], period_ns=H
    )
    assert m.total_return is None and m.sharpe is None and m.sortino is None
    for name, value in m.to_dict().items():
        assert value is None or math.isfinite(value), name
    crash = compute_metrics([0, H], [1e300, tiny], period_ns=H)
    assert crash.annualised_return == -1.0 and crash.total_return == pytest.approx(-1.0)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(0, 10 * SECOND_NS), min_size=1, max_size=60),
    st.lists(st.floats(-1e6, 1e9, allow_nan=False), min_size=60, max_size=60),
    st.lists(
        st.tuples(st.integers(0, 600), st.integers(0, 600), st.floats(-1e4, 1e4), st.floats(0, 100)),
        max_size=6,
    ),
)
def test_never_nan_or_infinite(
    steps: list[int], values: list[float], raw_trades: list[tuple[int, int, float, float]]
) -> None:
    ts = np.cumsum(steps)
    eq = values[: len(ts)]
    trips = [_trip(a * SECOND_NS, max(a, b) * SECOND_NS, g, f, abs(g)) for a, b, g, f in raw_trades]
    m = compute_metrics(ts, eq, trips)
    for name, value in m.to_dict().items():
        assert value is None or math.isfinite(value), (name, value)
    json.dumps(m.to_dict(), allow_nan=False)
    if m.max_drawdown is not None:
        assert m.max_drawdown >= 0.0
    if m.exposure is not None:
        assert 0.0 <= m.exposure <= 1.0
