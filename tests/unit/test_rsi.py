"""The rsi strategy against straightforward reference implementations."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import (
    CommandIssued,
    Event,
    OrderFilled,
    OrderRejected,
    SignalEmitted,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.kernel import Kernel
from engine.orders import OrderSide, OrderType, SubmitOrder
from engine.ports import LatencyModel, ListSink, chunked
from strategies.rsi import RsiConfig, RsiStrategy, rs_bounds
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec

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


def l1_venue(iids: Sequence[InstrumentId], fee: FlatFee | None = None) -> SimVenue:
    """A venue whose book is the last trade (L1 trades-as-book): every MARKET order fills at once."""
    specs = [SymbolSpec(i, i.split(".")[0], i.split(".")[0][:3], "USDT") for i in sorted(set(iids))]
    cfg = SimConfig(use_depth=False, trades_as_book=True)
    balances = {"USDT": 10**12 * SCALE}
    return SimVenue(specs, balances, config=cfg, fee_model=fee or FlatFee(0, 0))


def strategy_run(
    prices_e8: Sequence[int],
    iids: Sequence[InstrumentId],
    cfg: RsiConfig,
    venue: SimVenue | None = None,
    latency: LatencyModel | None = None,
) -> tuple[RsiStrategy, list[SignalEmitted]]:
    strat, out = kernel_run(prices_e8, iids, cfg, venue or l1_venue(iids), latency)
    return strat, [e for e in out if isinstance(e, SignalEmitted)]


def kernel_run(
    prices_e8: Sequence[int],
    iids: Sequence[InstrumentId],
    cfg: RsiConfig,
    venue: SimVenue | None,
    latency: LatencyModel | None = None,
) -> tuple[RsiStrategy, list[Event]]:
    """Trade i (size 1e-8) at ts i through a kernel with ``venue`` (None: no venue at all)."""
    events = [
        TradeReceived(i + 1, i, i, iid, p, 1, i, False)
        for i, (p, iid) in enumerate(zip(prices_e8, iids, strict=True))
    ]
    sink = ListSink()
    kernel = Kernel(sink, venue=venue, latency=latency)
    strat = RsiStrategy(cfg)
    kernel.add_strategy(strat)
    kernel.run(chunked(events, 64))
    return strat, sink.events


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


# --------------------------------------------------------------------------- orders


def zigzag(n: int) -> list[int]:
    """Prices (e8) that fall for 20 trades then rise for 20, repeatedly: RSI swings 0 <-> 100."""
    out, p = [], 5_000_000_000_000
    for i in range(n):
        p += -1_000_000 if (i // 20) % 2 == 0 else 1_000_000
        out.append(p)
    return out


def test_each_decision_is_one_market_order_filled_before_the_next_trade() -> None:
    prices = zigzag(400)
    strat, out = kernel_run(prices, [BTC] * len(prices), RsiConfig(period=5), l1_venue([BTC]))
    cmds = [e.command for e in out if isinstance(e, CommandIssued)]
    signals = [e for e in out if isinstance(e, SignalEmitted)]
    assert len(cmds) == len(signals) == strat.decisions > 4
    assert all(isinstance(c, SubmitOrder) and c.order_type is OrderType.MARKET for c in cmds)
    sides = [c.side for c in cmds if isinstance(c, SubmitOrder)]
    assert sides == [OrderSide.BUY, OrderSide.SELL] * (len(sides) // 2) + [OrderSide.BUY] * (len(sides) % 2)
    assert all(c.quantity == 10**6 for c in cmds if isinstance(c, SubmitOrder))
    fills = [e for e in out if isinstance(e, OrderFilled)]
    bought = sum(f.qty for f in fills if f.side is OrderSide.BUY)
    sold = sum(f.qty for f in fills if f.side is OrderSide.SELL)
    assert strat.position_e8[BTC] == bought - sold == (10**6 if sides[-1] is OrderSide.BUY else 0)
    assert strat.fills == len(fills)


def test_without_a_venue_orders_are_rejected_and_the_strategy_stays_flat() -> None:
    prices = zigzag(200)
    strat, out = kernel_run(prices, [BTC] * len(prices), RsiConfig(period=5), None)
    rejects = [e for e in out if isinstance(e, OrderRejected)]
    cmds = [e for e in out if isinstance(e, CommandIssued)]
    assert len(rejects) == len(cmds) == strat.rejections == strat.decisions > 1
    assert strat.position_e8.get(BTC, 0) == 0
    assert all(e.command.side is OrderSide.BUY for e in cmds if isinstance(e.command, SubmitOrder))
    # rejected at once (no latency): pending is cleared and the next oversold trade buys again
    assert [e.ts_recv for e in cmds] == sorted({e.ts_recv for e in cmds})


class _Late:
    """Orders take 5 ns to reach the venue, answers 5 ns to come back (one trade per ns)."""

    def order_latency_ns(self, ts: int) -> int:
        return 5

    def response_latency_ns(self, ts: int) -> int:
        return 5


def test_no_new_order_while_one_is_in_flight() -> None:
    prices = zigzag(400)
    strat, out = kernel_run(prices, [BTC] * len(prices), RsiConfig(period=5), l1_venue([BTC]), _Late())
    cmds = [e for e in out if isinstance(e, CommandIssued)]
    finals = [e for e in out if isinstance(e, OrderFilled) and e.status.value == "FILLED"]
    assert len(cmds) > 4
    for cmd, nxt in itertools.pairwise(cmds):
        # the next order is only decided after the previous one's final report came back (>= 10 ns later)
        assert any(cmd.ts_recv < f.ts_recv <= nxt.ts_recv for f in finals)
        assert nxt.ts_recv - cmd.ts_recv >= 10


def test_base_asset_commission_reduces_the_holding_and_sells_round_down_to_step() -> None:
    prices = zigzag(400)
    fee = FlatFee(0, 1_000_000)  # 1 % taker, charged in the received asset (BTC on a BUY)
    cfg = RsiConfig(period=5, quantity=Decimal("0.01"), step=Decimal("0.001"))
    strat, out = kernel_run(prices, [BTC] * len(prices), cfg, l1_venue([BTC], fee))
    held, sells, fees = 0, [], 0
    for e in out:  # replay the rule over the log: fills move the holding, a SELL sends it floored
        if isinstance(e, OrderFilled):
            held += e.qty if e.side is OrderSide.BUY else -e.qty
            if e.commission_asset == "BTC":
                held -= e.commission
                fees += e.commission
        elif (
            isinstance(e, CommandIssued)
            and isinstance(e.command, SubmitOrder)
            and e.command.side is OrderSide.SELL
        ):
            assert e.command.quantity == held // 10**5 * 10**5
            sells.append(e.command.quantity)
    assert len(sells) > 2 and fees > 0 and strat.position_e8[BTC] == held
    assert min(sells) < 10**6 - 10**4  # the fee took the first sell below the bought quantity
