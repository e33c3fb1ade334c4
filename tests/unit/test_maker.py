"""``maker``: two-sided LIMIT_MAKER quotes, inventory skew and limits, cancel-before-requote."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.clock import ReplayClock
from engine.errors import ConfigError
from engine.events import OrderCanceled, OrderFilled, OrderRejected, QuoteReceived
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import AnyCommand, CancelOrder, OrderSide, OrderStatus, OrderType, SubmitOrder
from engine.strategy import Context
from strategies.maker import MakerStrategy
from strategies.registry import build_strategy
from tests.unit.test_imbalance import FakeKernel

pytestmark = pytest.mark.edge

E8 = SCALE
BTC = InstrumentId("BTCUSDT.SPOT")
TICK = E8 // 100


def make(**params: Any) -> tuple[MakerStrategy, FakeKernel, ReplayClock]:
    base = {"half_spread_bps": "2", "requote_bps": "1", "skew_bps": "4", "quantity": "0.01",
            "max_inventory": "0.03", "tick": "0.01", "step": "0.00001"}
    strat = build_strategy("maker", {**base, **params})
    assert isinstance(strat, MakerStrategy)
    kernel, clock = FakeKernel(), ReplayClock()
    strat.attach(Context("mk", kernel, clock))
    return strat, kernel, clock


def quote(strat: MakerStrategy, k: FakeKernel, bid: int, ask: int, ts: int = 0) -> QuoteReceived:
    q = QuoteReceived(0, ts, ts, BTC, 1, bid, E8, ask, E8)
    k.quotes[BTC] = q
    strat.on_quote(q)
    return q


def submits(cmds: list[AnyCommand]) -> list[SubmitOrder]:
    return [c for c in cmds if isinstance(c, SubmitOrder)]


def fill(cid: str, side: OrderSide, price: int, qty: int, status: OrderStatus) -> OrderFilled:
    return OrderFilled(0, 0, 0, BTC, 1, cid, side, price, qty, price * qty // E8, qty, 0, status, 0, "USDT",
                       1, True, -1, 1)


def test_flat_it_quotes_only_the_bid_below_the_mid_as_limit_maker() -> None:
    strat, k, _ = make()
    quote(strat, k, 60_000 * E8, 60_000 * E8 + TICK)
    orders = submits(k.commands)
    assert len(orders) == 1  # nothing held: no ask on spot
    bid = orders[0]
    mid2 = 2 * 60_000 * E8 + TICK
    assert (bid.side, bid.order_type, bid.quantity) == (OrderSide.BUY, OrderType.LIMIT_MAKER, E8 // 100)
    assert bid.price == mid2 * (10_000 - 2) // 20_000 // TICK * TICK  # 2 bps under the mid, on the tick grid
    assert bid.price < 60_000 * E8 + TICK


def test_after_a_bid_fill_it_quotes_both_sides_skewed_down_by_inventory() -> None:
    strat, k, _ = make()
    quote(strat, k, 60_000 * E8, 60_000 * E8 + TICK)
    bid = submits(k.commands)[0]
    assert bid.client_order_id
    strat.on_order_event(fill(bid.client_order_id, OrderSide.BUY, bid.price, E8 // 100, OrderStatus.FILLED))
    new = submits(k.commands)[1:]
    assert {o.side for o in new} == {OrderSide.BUY, OrderSide.SELL}
    ask = next(o for o in new if o.side is OrderSide.SELL)
    rebid = next(o for o in new if o.side is OrderSide.BUY)
    flat_bid, flat_ask = make()[0].prices(k.quotes[BTC], 0)
    assert rebid.price < flat_bid and ask.price < flat_ask  # long: both quotes lean lower
    assert ask.quantity == E8 // 100 and ask.order_type is OrderType.LIMIT_MAKER
    assert ask.price > 60_000 * E8  # never crosses the best bid


def test_requote_cancels_the_old_order_first_and_never_has_two_per_side() -> None:
    strat, k, _ = make()
    quote(strat, k, 60_000 * E8, 60_000 * E8 + TICK)
    first = submits(k.commands)[0]
    quote(strat, k, 60_003 * E8, 60_003 * E8 + TICK)  # 0.5 bps: below the threshold
    assert len(k.commands) == 1
    quote(strat, k, 60_020 * E8, 60_020 * E8 + TICK)  # ~3.3 bps: requote
    assert len(k.commands) == 2
    cancel = k.commands[1]
    assert isinstance(cancel, CancelOrder) and cancel.orig_client_order_id == first.client_order_id
    quote(strat, k, 60_040 * E8, 60_040 * E8 + TICK)
    assert len(k.commands) == 2  # the cancel is in flight: no second bid, no second cancel
    assert first.client_order_id
    strat.on_order_event(OrderCanceled(0, 0, 0, BTC, 1, first.client_order_id, "", 0, 0, -1, 2))
    replacement = k.commands[2]
    assert isinstance(replacement, SubmitOrder) and replacement.side is OrderSide.BUY
    assert replacement.price > first.price and replacement.client_order_id != first.client_order_id


def test_a_rejection_frees_the_side_but_waits_for_the_next_quote() -> None:
    strat, k, _ = make()
    quote(strat, k, 60_000 * E8, 60_000 * E8 + TICK)
    bid = submits(k.commands)[0]
    assert bid.client_order_id
    strat.on_order_event(OrderRejected(0, 0, 0, BTC, bid.client_order_id, -2010,
                                       "Order would immediately match and take."))
    assert len(k.commands) == 1 and strat.rejections == 1
    quote(strat, k, 60_000 * E8, 60_000 * E8 + TICK)
    assert len(submits(k.commands)) == 2


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(-40, 40), st.integers(1, 3), st.booleans()), min_size=1, max_size=60)
)
def test_inventory_never_exceeds_max_and_never_goes_below_min(steps: list[tuple[int, int, bool]]) -> None:
    """Random walks of the mid; every live order may fill (fully or half) at any step."""
    strat, k, _ = make(max_inventory="0.03", quantity="0.01")
    mid = 60_000 * E8
    for n, (move, which, full) in enumerate(steps):
        mid += move * TICK
        quote(strat, k, mid, mid + TICK, ts=n)
        q = strat.books[BTC]
        side = q.bid if which == 1 else q.ask
        if which != 3 and side.coid:
            order = next(o for o in submits(k.commands) if o.client_order_id == side.coid)
            qty = order.quantity if full else order.quantity // 2
            status = OrderStatus.FILLED if full else OrderStatus.PARTIALLY_FILLED
            strat.on_order_event(fill(side.coid, order.side, order.price, qty, status))
            if not full:  # the rest is cancelled by a later requote, or fills later
                strat.on_order_event(fill(side.coid, order.side, order.price, order.quantity - qty,
                                          OrderStatus.FILLED))
        assert 0 <= strat.books[BTC].inventory <= 3 * E8 // 100
        live = [o for o in submits(k.commands) if o.client_order_id in (q.bid.coid, q.ask.coid)]
        assert len({o.side for o in live}) == len(live) <= 2  # at most one live order per side
        assert all(o.order_type is OrderType.LIMIT_MAKER for o in live)


def test_bad_params_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="max_inventory"):
        build_strategy("maker", ["quantity=1", "max_inventory=0.5"])
    with pytest.raises(ConfigError, match="requote_bps"):
        build_strategy("maker", ["requote_bps=0"])
