"""The venue with square-root impact on: our own resting orders are priced by the dry run exactly as
the book walk fills them (regression: a MARKET BUY matching our own ask after earlier sells raised
``InsufficientBalance`` because the dry run shifted our ask by the negative permanent impact while
the walk filled it at its own price, so the lock was too small)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.events import BookSnapshotReceived, Event, OrderAccepted, OrderFilled, OrderRejected
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderType, SelfTradePreventionMode, SubmitOrder, TimeInForce
from venues.sim.models.impact import FixedStats, SquareRootImpact
from venues.sim.venue import FlatFee, SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

E8 = SCALE
TICK = E8 // 100
I = InstrumentId("BTCUSDT.SPOT")
BUY, SELL = OrderSide.BUY, OrderSide.SELL
NONE = SelfTradePreventionMode.NONE


def make(sigma: float = 0.05, volume: int = 10 * E8, usdt: int = 100_000 * E8) -> SimVenue:
    spec = SymbolSpec(I, "BTCUSDT", "BTC", "USDT", rules=None)
    impact = SquareRootImpact(1.0, FixedStats(sigma, volume), permanent_share=0.5, half_life_ns=60 * 10**9)
    v = SimVenue([spec], {"BTC": 100 * E8, "USDT": usdt}, fee_model=FlatFee(0, 0), impact=impact)
    bids = tuple((100 * E8 - i * TICK * 10, 50 * E8) for i in range(10))
    asks = tuple((101 * E8 + i * TICK * 10, 50 * E8) for i in range(10))
    v.on_market(BookSnapshotReceived(0, 1, 1, I, 1, bids, asks))
    return v


def assert_consistent(v: SimVenue) -> None:
    acct = v.account
    reserved = v.reserved()
    for asset in acct.assets():
        assert acct.conservation_gap(asset) == 0, asset
        assert acct.free_of(asset) >= 0 and acct.locked_of(asset) >= 0, asset
        assert acct.locked_of(asset) == reserved.get(asset, 0), (asset, acct.locked_of(asset), reserved)


def own_fills(events: list[Event], order_id: int) -> list[OrderFilled]:
    return [e for e in events if isinstance(e, OrderFilled) and e.order_id == order_id]


def test_market_buy_hitting_our_own_ask_after_sells_is_funded_and_fills_at_the_ask() -> None:
    v = make()
    sold = v.handle(SubmitOrder(I, SELL, OrderType.MARKET, quantity=10 * E8), ts=10)  # permanent impact: about -2.5%
    assert any(isinstance(e, OrderFilled) for e in sold)
    ask = v.handle(SubmitOrder(I, SELL, OrderType.LIMIT, quantity=E8 // 10, price=100 * E8 + 50 * TICK,
                               time_in_force=TimeInForce.GTC), ts=11)
    ask_id = next(e.order_id for e in ask if isinstance(e, OrderAccepted))
    evs = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=E8 // 10, stp_mode=NONE), ts=12)
    taker_id = next(e.order_id for e in evs if isinstance(e, OrderAccepted))
    # the walk meets our own ask first (below the market's 101) and trades it at its own price
    (maker,) = own_fills(evs, ask_id)
    (taker,) = own_fills(evs, taker_id)
    assert maker.price == taker.price == 100 * E8 + 50 * TICK and taker.qty == E8 // 10
    assert v.order(taker_id).status.value == "FILLED"  # type: ignore[union-attr]
    assert_consistent(v)


def test_only_market_levels_are_shifted_by_impact() -> None:
    """Own orders trade at their own price; the market levels behind them carry the impact shift."""
    v = make()
    v.handle(SubmitOrder(I, SELL, OrderType.MARKET, quantity=10 * E8), ts=10)
    v.handle(SubmitOrder(I, SELL, OrderType.LIMIT, quantity=E8 // 10, price=100 * E8 + 50 * TICK,
                         time_in_force=TimeInForce.GTC), ts=11)
    evs = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=E8, stp_mode=NONE), ts=12)
    taker_id = next(e.order_id for e in evs if isinstance(e, OrderAccepted))
    fills = own_fills(evs, taker_id)
    assert [f.qty for f in fills] == [E8 // 10, E8 - E8 // 10]
    assert fills[0].price == 100 * E8 + 50 * TICK
    assert fills[1].price < 101 * E8  # the market ask 101, moved down by the net (negative) impact
    assert_consistent(v)


@settings(max_examples=150, deadline=None)
@given(
    sells=st.lists(st.integers(1, 200), min_size=0, max_size=3),
    buys=st.lists(st.integers(1, 200), min_size=0, max_size=2),
    ask_ticks=st.lists(st.integers(1, 120), min_size=1, max_size=4),
    ask_qty=st.integers(1, 50),
    taker_qty=st.integers(1, 400),
    sigma=st.sampled_from([0.01, 0.05, 0.2]),
    by_quote=st.booleans(),
    usdt=st.sampled_from([2_000 * E8, 100_000 * E8]),
)
def test_market_buy_never_overdraws_its_lock_with_impact(
    sells: list[int], buys: list[int], ask_ticks: list[int], ask_qty: int, taker_qty: int, sigma: float,
    by_quote: bool, usdt: int,
) -> None:
    """Any mix of earlier sells/buys (either sign of permanent impact), our own asks inside and
    beyond the spread, then a MARKET BUY with STP NONE: no exception, exact balances, and every
    fill of ours against our own ask is at that ask's price."""
    v = make(sigma=sigma, usdt=usdt)
    ts = 10
    for q in sells:
        ts += 1
        v.handle(SubmitOrder(I, SELL, OrderType.MARKET, quantity=q * E8 // 20), ts)
    for q in buys:
        ts += 1
        v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=q * E8 // 20), ts)
    asks: dict[int, int] = {}
    for t in ask_ticks:
        ts += 1
        price = 99 * E8 + t * 2 * TICK
        for e in v.handle(SubmitOrder(I, SELL, OrderType.LIMIT, quantity=ask_qty * E8 // 100, price=price,
                                      time_in_force=TimeInForce.GTC), ts):
            if isinstance(e, OrderAccepted):
                asks[e.order_id] = price
    assert_consistent(v)
    ts += 1
    cmd = (SubmitOrder(I, BUY, OrderType.MARKET, quote_order_qty=taker_qty * E8, stp_mode=NONE) if by_quote
           else SubmitOrder(I, BUY, OrderType.MARKET, quantity=taker_qty * E8 // 100, stp_mode=NONE))
    evs = v.handle(cmd, ts)
    assert_consistent(v)
    if any(isinstance(e, OrderRejected) for e in evs):
        return
    fills = [e for e in evs if isinstance(e, OrderFilled)]
    maker_trades = {e.trade_id: e.price for e in fills if e.maker}
    for e in fills:
        if e.maker:
            assert e.price == asks[e.order_id]
        elif e.trade_id in maker_trades:
            assert e.price == maker_trades[e.trade_id]  # our taker pays exactly our ask's price
