"""The rsi strategy against straightforward reference implementations."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import SignalEmitted, TradeReceived
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.ports import ListSink, chunked
from strategies.rsi import RsiConfig, RsiStrategy, rs_bounds

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
ETH = InstrumentId("ETHUSDT.SPOT")


def reference_rsi(prices: Sequence[float], n: int) -> list[float | None]:
    """Wilder RSI as the peer benchmark computes it, written the plain way (one value per price)."""
    out: list[float | None] = [None]
    avg_gain = avg_loss = 0.0
    for i in range(1, len(prices)):
        change = prices[i] - prices[i - 1]
        gain, loss = max(change, 0.0), max(-change, 0.0)
        if i <= n:
            avg_gain += gain / n
            avg_loss += loss / n
            if i < n:
                out.append(None)
                continue
        else:
            avg_gain = (avg_gain * (n - 1) + gain) / n
            avg_loss = (avg_loss * (n - 1) + loss) / n
        out.append(100.0 if avg_loss == 0.0 else 100.0 - 100.0 / (1.0 + avg_gain / avg_loss))
    return out


def textbook_rsi(prices: Sequence[float], n: int) -> list[float | None]:
    """Same definition, different float evaluation order (sums, not running averages)."""
    changes = [b - a for a, b in itertools.pairwise(prices)]
    out: list[float | None] = [None] * min(len(prices), n)
    if len(changes) < n:
        return out[: len(prices)]
    ag = sum(c for c in changes[:n] if c > 0) / n
    al = sum(-c for c in changes[:n] if c < 0) / n
    out.append(100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al))
    for c in changes[n:]:
        ag = (ag * (n - 1) + max(c, 0.0)) / n
        al = (al * (n - 1) + max(-c, 0.0)) / n
        out.append(100.0 if al == 0 else 100.0 - 100.0 / (1.0 + ag / al))
    return out


def reference_decisions(
    prices: Sequence[float], n: int, lower: float, upper: float
) -> list[tuple[int, str, float]]:
    long = False
    out = []
    for i, rsi in enumerate(reference_rsi(prices, n)):
        if rsi is None:
            continue
        if not long and rsi < lower:
            long = True
            out.append((i, "buy", rsi))
        elif long and rsi > upper:
            long = False
            out.append((i, "sell", rsi))
    return out


def strategy_run(
    prices_e8: Sequence[int], iids: Sequence[InstrumentId], cfg: RsiConfig
) -> tuple[RsiStrategy, list[SignalEmitted]]:
    events = [
        TradeReceived(i + 1, i, i, iid, p, 1, i, False)
        for i, (p, iid) in enumerate(zip(prices_e8, iids, strict=True))
    ]
    sink = ListSink()
    kernel = Kernel(sink)
    strat = RsiStrategy(cfg)
    kernel.add_strategy(strat)
    kernel.run(chunked(events, 64))
    return strat, [e for e in sink.events if isinstance(e, SignalEmitted)]


price_paths = st.lists(st.integers(min_value=-300, max_value=300), min_size=1, max_size=300).map(
    lambda steps: [5_000_000 + sum(steps[: i + 1]) for i in range(len(steps))]  # in ticks of 0.01
)


@settings(deadline=None)
@given(price_paths, st.integers(min_value=1, max_value=20))
def test_rsi_value_equals_the_references(ticks: list[int], period: int) -> None:
    prices_e8 = [t * 10**6 for t in ticks]
    floats = [p / 10**8 for p in prices_e8]
    strat = RsiStrategy(RsiConfig(period=period))
    strat.ctx = None  # type: ignore[assignment]  # no decision can happen: thresholds below
    strat._lower, strat._upper = -1.0, 101.0
    strat._rs_no_buy, strat._rs_no_sell = rs_bounds(0.0, 100.0)
    ref = reference_rsi(floats, period)
    book = textbook_rsi(floats, period)
    for i, p in enumerate(prices_e8):
        strat.on_trade(TradeReceived(i + 1, i, i, BTC, p, 1, i, False))
        got = strat.rsi_of(BTC)
        assert got == ref[i]  # bit for bit: same operations in the same order
        other = book[i]
        if got is None:
            assert other is None
        else:
            assert other is not None and math.isclose(got, other, rel_tol=1e-9, abs_tol=1e-9)


@settings(deadline=None)
@given(price_paths, st.integers(2, 16), st.floats(5, 45), st.floats(55, 95))
def test_decisions_equal_the_reference_and_are_one_signal_per_decision(
    ticks: list[int], period: int, lower: float, upper: float
) -> None:
    prices_e8 = [t * 10**6 for t in ticks]
    cfg = RsiConfig(period=period, lower=lower, upper=upper)
    strat, signals = strategy_run(prices_e8, [BTC] * len(ticks), cfg)
    expected = reference_decisions([p / 10**8 for p in prices_e8], period, lower, upper)
    # trade i is received at ts i: a signal's time says which trade decided
    assert [(s.ts_recv, s.name, s.value, s.instrument) for s in signals] == [
        (i, d, v, BTC) for i, d, v in expected
    ]
    assert strat.decisions == len(expected)
    long_now = bool(expected) and expected[-1][1] == "buy"
    assert strat.position_e8.get(BTC, 0) == (10**6 if long_now else 0)  # default quantity 0.01


def test_instruments_are_independent() -> None:
    a = [5_000_000 + (i % 7) * (-1) ** (i // 5) * 3 for i in range(200)]
    b = [6_000_000 + ((i * 13) % 11) - 5 * (i // 40) for i in range(200)]
    interleaved = [x for pair in zip(a, b, strict=True) for x in pair]
    iids = [BTC, ETH] * 200
    cfg = RsiConfig(period=5)
    _, both = strategy_run([t * 10**6 for t in interleaved], iids, cfg)
    _, only_a = strategy_run([t * 10**6 for t in a], [BTC] * 200, cfg)
    _, only_b = strategy_run([t * 10**6 for t in b], [ETH] * 200, cfg)
    assert [(s.name, s.value) for s in both if s.instrument == BTC] == [(s.name, s.value) for s in only_a]
    assert [(s.name, s.value) for s in both if s.instrument == ETH] == [(s.name, s.value) for s in only_b]
    assert only_a and only_b


@settings(deadline=None)
@given(
    st.floats(0, 1e6, allow_nan=False),
    st.floats(1e-12, 1e6, allow_nan=False),
    st.floats(0, 99.9),
    st.floats(0.1, 100),
)
def test_the_rs_precheck_never_skips_a_decision(gain: float, loss: float, lower: float, upper: float) -> None:
    no_buy, no_sell = rs_bounds(lower, upper)
    rs = gain / loss
    rsi = 100.0 - 100.0 / (1.0 + rs)
    if rs >= no_buy:
        assert not rsi < lower
    if rs <= no_sell:
        assert not rsi > upper


def test_rs_bounds_at_the_edges() -> None:
    no_buy, no_sell = rs_bounds(0.0, 100.0)
    assert 0.0 < no_buy < 1e-10 and no_sell > 1e10
    assert rs_bounds(100.0, 100.0)[0] == math.inf and rs_bounds(0.0, 0.0)[1] == -math.inf
    no_buy, no_sell = rs_bounds(30.0, 70.0)
    assert no_buy == pytest.approx(30 / 70) and no_sell == pytest.approx(70 / 30)


@settings(deadline=None)
@given(st.floats(0, 99.99), st.floats(0.01, 100), st.floats(0, 1e-12), st.floats(1e-6, 1e6))
def test_the_rs_precheck_holds_right_at_its_bounds(
    lower: float, upper: float, nudge: float, loss: float
) -> None:
    no_buy, no_sell = rs_bounds(lower, upper)
    if math.isfinite(no_buy):
        gain = no_buy * (1.0 + nudge) * loss
        rs = gain / loss
        if rs >= no_buy:
            assert not 100.0 - 100.0 / (1.0 + rs) < lower
    if math.isfinite(no_sell) and no_sell > 0:
        gain = no_sell * (1.0 - nudge) * loss
        rs = gain / loss
        if rs <= no_sell:
            assert not 100.0 - 100.0 / (1.0 + rs) > upper
