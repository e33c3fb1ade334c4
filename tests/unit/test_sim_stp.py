"""Self-trade prevention: Binance's STP FAQ scenarios A-G against our own resting orders (empty market book)."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events import Event, OrderAccepted, OrderExpired, OrderFilled, OrderTradePrevented
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import ExpiryReason, OrderSide, OrderStatus, OrderType, SubmitOrder, TimeInForce
from engine.orders import SelfTradePreventionMode as STP
from venues.sim.venue import FlatFee, SimVenue, SymbolSpec

pytestmark = pytest.mark.edge

E8 = SCALE
I = InstrumentId("BTCUSDT.SPOT")


def make() -> SimVenue:
    return SimVenue([SymbolSpec(I, "BTCUSDT", "BTC", "USDT")], {"BTC": 100 * E8, "USDT": 100 * E8},
                    fee_model=FlatFee(0, 0))


def lim(side: OrderSide, qty_e2: int, price_e2: int, stp: STP = STP.NONE) -> SubmitOrder:
    """Quantities and prices in hundredths, as the FAQ writes them (1.2 -> 120)."""
    return SubmitOrder(I, side, OrderType.LIMIT, quantity=qty_e2 * E8 // 100, price=price_e2 * E8 // 100,
                       time_in_force=TimeInForce.GTC, stp_mode=stp)


def only(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def makers(v: SimVenue, specs: list[tuple[int, int]]) -> list[int]:
    return [only(v.handle(lim(OrderSide.BUY, q, p), ts=i + 1), OrderAccepted)[0].order_id for i, (q, p) in enumerate(specs)]


def check_accounting(v: SimVenue) -> None:
    for a in v.account.assets():
        assert v.account.conservation_gap(a) == 0
        assert v.account.locked_of(a) == v.reserved().get(a, 0)


def test_a_none_lets_the_orders_trade() -> None:
    v = make()
    (m,) = makers(v, [(100, 100)])
    ev = v.handle(lim(OrderSide.SELL, 100, 100, STP.NONE), ts=10)
    fills = only(ev, OrderFilled)
    assert [(f.order_id == m, f.maker, f.status) for f in fills] == [
        (False, False, OrderStatus.FILLED), (True, True, OrderStatus.FILLED)]
    assert fills[0].trade_id == fills[1].trade_id
    assert v.balances() == {"BTC": (100 * E8, 0), "USDT": (100 * E8, 0)}  # bought and sold 1 @ 1 from ourselves
    check_accounting(v)


def test_b_expire_maker_expires_each_maker_and_the_taker_rests() -> None:
    v = make()
    ids = makers(v, [(120, 120), (130, 110), (810, 100)])
    ev = v.handle(lim(OrderSide.SELL, 300, 100, STP.EXPIRE_MAKER), ts=10)
    prevented = only(ev, OrderTradePrevented)
    assert [(p.order_id, p.status, p.prevented_qty, p.prevented_match_id, p.taker) for p in prevented] == [
        (ids[0], OrderStatus.EXPIRED_IN_MATCH, 120 * E8 // 100, 0, False),
        (ids[1], OrderStatus.EXPIRED_IN_MATCH, 130 * E8 // 100, 1, False),
        (ids[2], OrderStatus.EXPIRED_IN_MATCH, 810 * E8 // 100, 2, False),
    ]
    assert only(ev, OrderFilled) == []
    taker = v.order(only(ev, OrderAccepted)[0].order_id)
    assert taker is not None and taker.status is OrderStatus.NEW and taker.is_working
    assert v.balances()["USDT"] == (100 * E8, 0)  # the makers' locks were released
    check_accounting(v)


def test_c_expire_taker_keeps_the_makers() -> None:
    v = make()
    ids = makers(v, [(120, 120), (130, 110), (810, 100)])
    ev = v.handle(lim(OrderSide.SELL, 300, 100, STP.EXPIRE_TAKER), ts=10)
    (p,) = only(ev, OrderTradePrevented)
    assert (p.status, p.prevented_qty, p.prevented_match_id, p.taker, p.counter_order_id) == (
        OrderStatus.EXPIRED_IN_MATCH, 3 * E8, 0, True, ids[0])
    assert all(s.status is OrderStatus.NEW for s in v.open_orders())
    assert len(v.open_orders()) == 3
    check_accounting(v)


def test_d_expire_both() -> None:
    v = make()
    (m,) = makers(v, [(100, 100)])
    ev = v.handle(lim(OrderSide.SELL, 300, 100, STP.EXPIRE_BOTH), ts=10)
    got = {(p.order_id == m, p.status, p.prevented_qty) for p in only(ev, OrderTradePrevented)}
    assert got == {(False, OrderStatus.EXPIRED_IN_MATCH, 3 * E8), (True, OrderStatus.EXPIRED_IN_MATCH, E8)}
    assert v.open_orders() == []
    check_accounting(v)


def test_e_the_taker_mode_decides() -> None:
    v = make()
    v.handle(SubmitOrder(I, OrderSide.BUY, OrderType.LIMIT, quantity=E8, price=E8, time_in_force=TimeInForce.GTC,
                         stp_mode=STP.EXPIRE_MAKER), ts=1)
    ev = v.handle(lim(OrderSide.SELL, 100, 100, STP.EXPIRE_TAKER), ts=2)
    (p,) = only(ev, OrderTradePrevented)
    assert p.taker and p.status is OrderStatus.EXPIRED_IN_MATCH
    assert [s.status for s in v.open_orders()] == [OrderStatus.NEW]


def test_f_market_order_with_expire_maker_expires_for_liquidity() -> None:
    v = make()
    (m,) = makers(v, [(100, 100)])
    ev = v.handle(SubmitOrder(I, OrderSide.SELL, OrderType.MARKET, quantity=E8, stp_mode=STP.EXPIRE_MAKER), ts=10)
    (p,) = only(ev, OrderTradePrevented)
    assert (p.order_id, p.status) == (m, OrderStatus.EXPIRED_IN_MATCH)
    (x,) = only(ev, OrderExpired)
    assert (x.status, x.expiry_reason) == (OrderStatus.EXPIRED, ExpiryReason.INSUFFICIENT_LIQUIDITY)
    check_accounting(v)


@pytest.mark.parametrize("mode", [STP.DECREMENT, STP.TRANSFER])
def test_g_decrement_expires_the_smaller_order(mode: STP) -> None:
    v = make()
    (m,) = makers(v, [(600, 200)])
    ev = v.handle(lim(OrderSide.SELL, 200, 200, mode), ts=10)
    by_id = {p.order_id: p for p in only(ev, OrderTradePrevented)}
    maker, taker = by_id.pop(m), next(iter(by_id.values()))
    assert (maker.status, maker.prevented_qty, maker.last_prevented_qty) == (OrderStatus.NEW, 2 * E8, 2 * E8)
    assert (taker.status, taker.prevented_qty) == (OrderStatus.EXPIRED_IN_MATCH, 2 * E8)
    assert maker.prevented_match_id == taker.prevented_match_id
    snap = v.order(m)
    assert snap is not None and snap.orig_qty - snap.executed_qty - snap.prevented_qty == 4 * E8
    assert v.balances()["USDT"] == (100 * E8 - 8 * E8, 8 * E8)  # the maker now locks 4 x 2 only
    check_accounting(v)
