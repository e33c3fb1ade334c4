"""The incremental features against plain reference definitions (the semantics, not parity).

References are written the obvious way (whole-window recomputation, numpy/statistics, exact
fractions), so they share no code or evaluation order with the O(1) forms: float results
agree to a tight relative tolerance, int-accumulated results exactly.
"""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime
from fractions import Fraction

import numpy as np
import pytest

from engine.errors import ConfigError, InputError
from strategies.features import (
    Bollinger,
    DepthRatio,
    FundingRate,
    LiquidationIntensity,
    Microprice,
    OpenInterestChange,
    OrderBookImbalance,
    RealizedVolatility,
    RollingBeta,
    RollingCorrelation,
    Rsi,
    Spread,
    TimeEncoding,
    TimeToFunding,
    TradeFlowImbalance,
    VwapDeviation,
)

pytestmark = pytest.mark.edge

E8 = 100_000_000
SEC = 1_000_000_000


def walk(n: int, seed: int, start: int = 60_000 * E8, step: int = E8 // 100) -> list[int]:
    """A random walk of e8 prices in ticks of ``step`` (with repeats: changes of 0 happen)."""
    rng = np.random.default_rng(seed)
    return [int(v) for v in start + np.cumsum(rng.integers(-3, 4, n)) * step]


def ns(iso: str) -> int:
    return int(datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()) * SEC


# --------------------------------------------------------------------------- RSI


def peer_rsi(prices: list[int], n: int) -> list[float | None]:
    """shared/bench/nautilus_peer.py's RsiMarketStrategy._rsi, applied to price / 1e8."""
    out: list[float | None] = []
    prev: float | None = None
    count, ag, al = 0, 0.0, 0.0
    for p in prices:
        px = p / E8
        if prev is None:
            prev = px
            out.append(None)
            continue
        change = px - prev
        prev = px
        gain = change if change > 0.0 else 0.0
        loss = -change if change < 0.0 else 0.0
        count += 1
        if count <= n:
            ag += gain / n
            al += loss / n
            if count < n:
                out.append(None)
                continue
        else:
            ag = (ag * (n - 1) + gain) / n
            al = (al * (n - 1) + loss) / n
        out.append(100.0 if al == 0.0 else 100.0 - 100.0 / (1.0 + ag / al))
    return out


@pytest.mark.parametrize("period", [1, 2, 14, 30])
def test_rsi_is_the_peer_benchmarks_rsi_exactly(period: int) -> None:
    prices = walk(3000, period)
    rsi = Rsi(period)
    assert [rsi.update(p) for p in prices] == peer_rsi(prices, period)


def test_rsi_is_the_rsi_strategys_rsi_exactly() -> None:
    """The ``rsi`` strategy will switch to this class: the numbers must not move when it does."""
    from engine.events import TradeReceived
    from engine.identifiers import InstrumentId
    from strategies.rsi import RsiConfig, RsiStrategy

    btc = InstrumentId("BTCUSDT.SPOT")
    strat = RsiStrategy(RsiConfig(period=14, lower=0.0, upper=100.0))  # thresholds never cross: no orders
    rsi = Rsi(14)
    for i, p in enumerate(walk(2000, 5)):
        strat.on_trade(TradeReceived(i + 1, i, i, btc, p, E8, i, False))
        assert rsi.update(p) == strat.rsi_of(btc)


def test_rsi_warms_up_for_period_changes_and_is_100_without_losses() -> None:
    rsi = Rsi(3)
    assert [rsi.update(p) for p in (10 * E8, 11 * E8, 12 * E8)] == [None, None, None]
    assert rsi.update(13 * E8) == 100.0
    assert rsi.value == 100.0


# --------------------------------------------------------------------------- Bollinger


@pytest.mark.parametrize("window", [1, 2, 20, 64])
def test_bollinger_matches_population_mean_and_std(window: int) -> None:
    prices = walk(12 * window + 50, window, step=E8 // 10)
    boll = Bollinger(window, 2.0)
    for i, p in enumerate(prices):
        pct_b = boll.update(p)
        if i + 1 < window:
            assert pct_b is None
            continue
        win = np.array(prices[i + 1 - window : i + 1], dtype=np.float64) / E8
        mean, std = float(win.mean()), float(win.std())
        assert boll.mid == pytest.approx(mean, rel=1e-12)
        assert boll.upper is not None and boll.lower is not None and pct_b is not None
        assert boll.upper - boll.lower == pytest.approx(4 * std, rel=1e-6, abs=1e-9)
        if std > 1e-9:
            assert pct_b == pytest.approx((p / E8 - (mean - 2 * std)) / (4 * std), rel=1e-6, abs=1e-9)
        else:
            assert pct_b == 0.5


def test_bollinger_zero_width_bands_give_half() -> None:
    boll = Bollinger(5, 2.0)
    values = [boll.update(42 * E8) for _ in range(20)]
    assert values[:4] == [None] * 4
    assert values[4:] == [0.5] * 16
    assert boll.upper == boll.lower == boll.mid == 42.0


def test_bollinger_has_no_drift_after_a_regime_change() -> None:
    """Huge moves, then a flat market: the rolling sums must come back to exactly flat."""
    boll = Bollinger(10, 2.0)
    for p in walk(5000, 9, step=50 * E8):
        boll.update(p)
    for _ in range(30):
        boll.update(70_000 * E8)
    assert boll.upper == boll.lower == 70_000.0
    assert boll.value == 0.5


# --------------------------------------------------------------------------- realised volatility


@pytest.mark.parametrize("window", [2, 20, 50])
def test_realized_volatility_is_the_sample_stdev_of_log_returns(window: int) -> None:
    prices = walk(10 * window + 30, window)
    vol = RealizedVolatility(window)
    rets = [math.log(b / a) for a, b in zip(prices, prices[1:], strict=False)]
    for i, p in enumerate(prices):
        v = vol.update(p)
        if i < window:
            assert v is None
        else:
            assert v == pytest.approx(statistics.stdev(rets[i - window : i]), rel=1e-7, abs=1e-15)


def test_realized_volatility_of_a_flat_market_is_exactly_zero() -> None:
    vol = RealizedVolatility(4)
    for p in walk(500, 3):
        vol.update(p)
    assert [vol.update(E8) for _ in range(12)][-1] == 0.0


# --------------------------------------------------------------------------- beta / correlation


def test_beta_and_correlation_match_numpy() -> None:
    ref = walk(2000, 1, step=10 * E8)
    rng = np.random.default_rng(2)
    asset = [int(30_000 * E8 * (r / ref[0]) ** 1.5 * math.exp(rng.normal(0, 1e-5))) for r in ref]
    beta, corr = RollingBeta(50), RollingCorrelation(50)
    rx = np.diff(np.log(np.array(asset, dtype=np.float64)))
    ry = np.diff(np.log(np.array(ref, dtype=np.float64)))
    for i, (a, r) in enumerate(zip(asset, ref, strict=True)):
        b, c = beta.update(a, r), corr.update(a, r)
        if i < 50:
            assert b is None and c is None
            continue
        x, y = rx[i - 50 : i], ry[i - 50 : i]
        assert b == pytest.approx(np.cov(x, y)[0, 1] / np.var(y, ddof=1), rel=1e-6)
        assert c == pytest.approx(np.corrcoef(x, y)[0, 1], rel=1e-6)
        assert c is not None and -1.0 <= c <= 1.0
    assert beta.value == pytest.approx(1.5, rel=0.05)


def test_beta_is_undefined_while_the_reference_is_flat() -> None:
    beta, corr = RollingBeta(3), RollingCorrelation(3)
    for a in walk(10, 4):
        assert beta.update(a, 50 * E8) is None
        assert corr.update(a, 50 * E8) is None


def test_comoments_reject_non_positive_prices() -> None:
    with pytest.raises(InputError, match="prices must be > 0"):
        RollingBeta(3).update(0, E8)


# --------------------------------------------------------------------------- trade flow / VWAP


def trades(n: int, seed: int) -> list[tuple[int, int, int, bool]]:
    """(ts, price, qty, buyer_maker) with repeated timestamps (Binance T is in ms)."""
    rng = np.random.default_rng(seed)
    ts = 1_723_161_255 * SEC + np.cumsum(rng.integers(0, 3, n)) * 100_000_000
    prices = walk(n, seed)
    return [(int(t), p, int(q), bool(m)) for t, p, q, m in
            zip(ts, prices, rng.integers(1, 5 * E8, n), rng.integers(0, 2, n), strict=True)]  # fmt: skip


def window_of(
    rows: list[tuple[int, int, int, bool]], i: int, window_ns: int | None, count: int | None
) -> list[tuple[int, int, int, bool]]:
    if count is not None:
        return rows[max(0, i + 1 - count) : i + 1]
    assert window_ns is not None
    return [r for r in rows[: i + 1] if r[0] > rows[i][0] - window_ns]


@pytest.mark.parametrize(("window_ns", "count"), [(None, 1), (None, 25), (SEC, None), (5 * SEC, None)])
def test_trade_flow_imbalance_is_the_exact_window_fraction(window_ns: int | None, count: int | None) -> None:
    rows = trades(600, 7)
    tfi = TradeFlowImbalance(window_ns=window_ns, count=count)
    for i, (ts, _p, qty, maker) in enumerate(rows):
        v = tfi.update(ts, qty, maker)
        ready = i + 1 >= count if count else ts - rows[0][0] >= (window_ns or 0)
        if not ready:
            assert v is None
            continue
        win = window_of(rows, i, window_ns, count)
        signed = sum(-q if m else q for _t, _p, q, m in win)
        total = sum(q for _t, _p, q, _m in win)
        assert v == float(Fraction(signed, total)), i  # ints below 2**53: one rounding either way
        assert -1.0 <= v <= 1.0


@pytest.mark.parametrize(("window_ns", "count"), [(None, 1), (None, 40), (2 * SEC, None)])
def test_vwap_deviation_matches_the_window_vwap(window_ns: int | None, count: int | None) -> None:
    rows = trades(800, 8)
    dev = VwapDeviation(window_ns=window_ns, count=count)
    for i, (ts, price, qty, _m) in enumerate(rows):
        v = dev.update(ts, price, qty)
        ready = i + 1 >= count if count else ts - rows[0][0] >= (window_ns or 0)
        if not ready:
            assert v is None
            continue
        win = window_of(rows, i, window_ns, count)
        vwap = Fraction(sum(p * q for _t, p, q, _m in win), sum(q for _t, _p, q, _m in win))
        assert v == pytest.approx(float(Fraction(price) / vwap - 1), rel=1e-9, abs=1e-13)


def test_time_windows_exclude_a_trade_exactly_w_old() -> None:
    tfi = TradeFlowImbalance(window_ns=10)
    assert tfi.update(100, 5, False) is None
    assert tfi.update(110, 5, True) == -1.0  # the buy at 100 is exactly 10 ns old: gone
    assert tfi.update(115, 5, False) == 0.0


def test_a_timestamp_that_goes_back_counts_as_the_latest() -> None:
    forward, backward = TradeFlowImbalance(window_ns=10), TradeFlowImbalance(window_ns=10)
    for a, b in [((100, 5, False), (100, 5, False)), ((120, 3, True), (120, 3, True)),
                 ((120, 7, False), (90, 7, False)), ((131, 1, True), (131, 1, True))]:  # fmt: skip
        assert forward.update(*a) == backward.update(*b)


# --------------------------------------------------------------------------- book / quotes


BIDS = ((100 * E8, 2 * E8), (99 * E8, 3 * E8), (98 * E8, 5 * E8))
ASKS = ((101 * E8, 1 * E8), (102 * E8, 1 * E8))


def test_order_book_imbalance_over_top_levels() -> None:
    assert OrderBookImbalance(1).update(BIDS, ASKS) == 1 / 3
    assert OrderBookImbalance(2).update(BIDS, ASKS) == 3 / 7
    assert OrderBookImbalance(20).update(BIDS, ASKS) == 8 / 12
    assert OrderBookImbalance(5).update((), ASKS) == -1.0
    assert OrderBookImbalance(5).update((), ()) is None
    assert OrderBookImbalance(1).update_top(3, 1) == 0.5


def test_depth_ratio_is_bid_depth_over_ask_depth() -> None:
    assert DepthRatio(20).update(BIDS, ASKS) == 5.0
    assert DepthRatio(1).update(BIDS, ASKS) == 2.0
    assert DepthRatio(20).update(BIDS, ()) is None


def test_microprice_leans_to_the_thin_side() -> None:
    micro = Microprice()
    # much more on the bid: the next trade is likelier to lift the ask, microprice near the ask
    assert micro.update(100 * E8, 9 * E8, 101 * E8, 1 * E8) == pytest.approx(100.9, rel=1e-15)
    assert micro.update(100 * E8, 1 * E8, 101 * E8, 1 * E8) == 100.5
    assert micro.update(100 * E8, 0, 101 * E8, 0) is None
    assert micro.update(0, 1, 101 * E8, 1) is None


def test_spread_abs_and_bps() -> None:
    assert Spread().update(6_183_763_000_000, 6_183_764_000_000) == pytest.approx(0.01, rel=1e-12)
    assert Spread(bps=True).update(100 * E8, 101 * E8) == pytest.approx(1e4 / 100.5, rel=1e-15)
    assert Spread().update(101 * E8, 100 * E8) == -1.0
    assert Spread().update(0, 100 * E8) is None


# --------------------------------------------------------------------------- calendar / futures


@pytest.mark.parametrize(
    ("iso", "hour", "weekday"),
    [("2024-08-08T23:54:13", 23 + 54 / 60 + 13 / 3600, 3), ("2024-08-12T06:00:00", 6.0, 0),
     ("1970-01-01T12:00:00", 12.0, 3), ("1969-12-28T18:30:00", 18.5, 6)],
)  # fmt: skip
def test_time_encoding_matches_the_calendar(iso: str, hour: float, weekday: int) -> None:
    assert datetime.fromisoformat(iso).weekday() == weekday
    enc = TimeEncoding().update(ns(iso))
    assert enc.hour_sin == pytest.approx(math.sin(2 * math.pi * hour / 24), abs=1e-12)
    assert enc.hour_cos == pytest.approx(math.cos(2 * math.pi * hour / 24), abs=1e-12)
    assert enc.dow_sin == pytest.approx(math.sin(2 * math.pi * weekday / 7), abs=1e-12)
    assert enc.dow_cos == pytest.approx(math.cos(2 * math.pi * weekday / 7), abs=1e-12)


def test_funding_rate_and_time_to_next_funding() -> None:
    rate = FundingRate()
    assert rate.value is None
    assert rate.update(13_046) == pytest.approx(0.00013046, rel=1e-15)
    assert rate.update(-2_500) == -0.000025
    ttf = TimeToFunding()
    assert ttf.update(ns("2021-11-18T07:00:00")) == 3600.0
    assert ttf.update(ns("2021-11-18T08:00:00")) == 8 * 3600.0  # at a funding time: the next one
    ttf.set_next(ns("2021-11-18T12:00:00"))  # a symbol on a 4 h schedule, announced by markPrice
    assert ttf.update(ns("2021-11-18T09:00:00")) == 3 * 3600.0
    assert ttf.update(ns("2021-11-18T12:00:00")) == 4 * 3600.0  # announced time passed: schedule
    assert TimeToFunding(3_600 * SEC).update(ns("2021-11-18T09:59:30")) == 30.0


@pytest.mark.parametrize(("window_ns", "count"), [(None, 1), (None, 5), (3 * SEC, None)])
def test_open_interest_change_against_the_value_then(window_ns: int | None, count: int | None) -> None:
    rng = np.random.default_rng(11)
    ts = [int(t) for t in np.cumsum(rng.integers(0, 2 * SEC, 300))]
    oi = [int(v) for v in rng.integers(1_000 * E8, 2_000 * E8, 300)]
    chg = OpenInterestChange(window_ns=window_ns, count=count)
    for i, (t, v) in enumerate(zip(ts, oi, strict=True)):
        got = chg.update(t, v)
        if count is not None:
            then = oi[i - count] if i >= count else None
        else:
            assert window_ns is not None
            before = [o for s, o in zip(ts[:i], oi[:i], strict=True) if s <= t - window_ns]
            then = before[-1] if before else None
        assert got == (None if then is None else float(Fraction(v - then, then)))


def test_liquidation_intensity_sums_notional_in_the_window() -> None:
    rng = np.random.default_rng(12)
    liq = LiquidationIntensity(10 * SEC)
    events: list[tuple[int, int, int]] = []
    t = 0
    for step in range(400):
        t += int(rng.integers(0, 3 * SEC))
        if step % 3:
            p, q = walk(1, step)[0], int(rng.integers(1, 50 * E8))
            events.append((t, p, q))
            got = liq.update(t, p, q)
        else:
            got = liq.value_at(t)
        if t < 10 * SEC:
            assert got is None
            continue
        exact = sum(Fraction(p * q, E8 * E8) for s, p, q in events if s > t - 10 * SEC)
        assert got == pytest.approx(float(exact), rel=1e-12, abs=1e-12)
    assert liq.value_at(t + 10 * SEC) == 0.0  # everything expired: exactly zero, no residue


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize(
    "make",
    [lambda: Rsi(0), lambda: Bollinger(0), lambda: Bollinger(5, -1.0), lambda: Bollinger(5, math.nan),
     lambda: RealizedVolatility(1), lambda: RollingBeta(1), lambda: OrderBookImbalance(0),
     lambda: TradeFlowImbalance(), lambda: TradeFlowImbalance(window_ns=1, count=1),
     lambda: VwapDeviation(count=0), lambda: OpenInterestChange(window_ns=-5), lambda: Rsi(True),
     lambda: LiquidationIntensity(0), lambda: TimeToFunding(0), lambda: DepthRatio(2.5)],  # type: ignore[arg-type]
)  # fmt: skip
def test_bad_parameters_are_config_errors(make: object) -> None:
    with pytest.raises(ConfigError):
        make()  # type: ignore[operator]


def test_bad_prices_are_input_errors() -> None:
    with pytest.raises(InputError, match="RealizedVolatility"):
        RealizedVolatility(2).update(-1)
