"""Order lists: orderList/oco and legacy order/oco placement rules, trigger and fill sequences, cancels, OTO/OTOCO."""

from __future__ import annotations

from typing import Any

import pytest

from engine.events import (
    BookSnapshotReceived,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderTriggered,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    CancelOrder,
    CancelOrderList,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    NewOrderRespType,
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    RejectReason,
    SubmitOrderList,
    TimeInForce,
)
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec, order_list_legs, render_order_list

pytestmark = pytest.mark.edge

E8 = SCALE
I = InstrumentId("BTCUSDT.SPOT")
BUY, SELL = OrderSide.BUY, OrderSide.SELL
LM, SL, SLL = OrderType.LIMIT_MAKER, OrderType.STOP_LOSS, OrderType.STOP_LOSS_LIMIT
TP, TPL = OrderType.TAKE_PROFIT, OrderType.TAKE_PROFIT_LIMIT


def make(config: SimConfig | None = None) -> SimVenue:
    v = SimVenue([SymbolSpec(I, "BTCUSDT", "BTC", "USDT")], {"BTC": 10 * E8, "USDT": 10_000 * E8},
                 fee_model=FlatFee(0, 0), config=config)
    v.on_market(BookSnapshotReceived(0, 1, 1, I, 1, ((99 * E8, 5 * E8), (94 * E8, 5 * E8)),
                                     ((101 * E8, 5 * E8), (106 * E8, 5 * E8))))
    v.on_market(TradeReceived(0, 2, 2, I, 100 * E8, E8, 1, True))  # last price 100
    return v


def only(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def names(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def trade(v: SimVenue, price: int, qty: int, buyer_maker: bool, ts: int) -> list[Event]:
    return v.on_market(TradeReceived(0, ts, ts, I, price, qty, 2, buyer_maker))


def sell_oco(qty: int = E8, **kw: Any) -> SubmitOrderList:
    return SubmitOrderList.oco(
        I, SELL, qty,
        above={"order_type": LM, "price": 110 * E8},
        below={"order_type": SLL, "stop_price": 95 * E8, "price": 94 * E8, "time_in_force": TimeInForce.GTC},
        **kw,
    )


def check_accounting(v: SimVenue) -> None:
    for a in v.account.assets():
        assert v.account.conservation_gap(a) == 0
        assert v.account.locked_of(a) == v.reserved().get(a, 0), a


def test_oco_placement_reports_and_shared_lock() -> None:
    v = make()
    ev = v.handle(sell_oco(list_client_order_id="L1"), ts=10)
    assert names(ev) == ["OrderAccepted", "OrderAccepted", "OrderListStatusChanged", "BalanceUpdated"]
    stop, maker = only(ev, OrderAccepted)
    assert (stop.order_type, stop.working_time, stop.order_id) == (SLL, -1, maker.order_id - 1)
    assert (maker.order_type, maker.working_time) == (LM, 10)
    (ls,) = only(ev, OrderListStatusChanged)
    assert (ls.list_status_type, ls.list_order_status, ls.list_client_order_id) == (
        ListStatusType.EXEC_STARTED, ListOrderStatus.EXECUTING, "L1")
    assert ls.order_ids == (stop.order_id, maker.order_id)
    assert v.balances()["BTC"] == (9 * E8, E8)  # one quantity locked for both legs
    body = render_order_list(ls, order_list_legs(v, ls.order_list_id), NewOrderRespType.RESULT)
    assert body["contingencyType"] == "OCO" and [r["workingTime"] for r in body["orderReports"]] == [-1, 0]
    assert body["orderReports"][0]["stopPrice"] == "95.00000000"
    check_accounting(v)


def test_limit_leg_fills_first_then_the_stop_leg_expires() -> None:
    v = make()
    ev = v.handle(sell_oco(), ts=10)
    stop, maker = only(ev, OrderAccepted)
    ev = trade(v, 111 * E8, 2 * E8, buyer_maker=False, ts=20)
    assert names(ev) == ["OrderFilled", "OrderExpired", "OrderListStatusChanged", "BalanceUpdated"]
    assert only(ev, OrderFilled)[0].order_id == maker.order_id
    (x,) = only(ev, OrderExpired)
    assert (x.order_id, x.expiry_reason, x.status) == (stop.order_id, ExpiryReason.OCO_TRIGGER, OrderStatus.EXPIRED)
    assert only(ev, OrderListStatusChanged)[0].list_order_status is ListOrderStatus.ALL_DONE
    assert v.balances() == {"BTC": (9 * E8, 0), "USDT": (10_000 * E8 + 110 * E8, 0)}
    assert trade(v, 90 * E8, E8, True, ts=30) == []  # the stop leg is gone: at most one leg executes
    check_accounting(v)


def test_stop_leg_triggers_and_the_limit_leg_expires_before_it_executes() -> None:
    v = make()
    stop, maker = only(v.handle(sell_oco(), ts=10), OrderAccepted)
    ev = trade(v, 95 * E8, E8, buyer_maker=True, ts=20)
    assert names(ev) == ["OrderTriggered", "OrderExpired", "OrderFilled", "OrderListStatusChanged", "BalanceUpdated"]
    assert only(ev, OrderExpired)[0].order_id == maker.order_id
    (f,) = only(ev, OrderFilled)
    assert (f.order_id, f.price, f.qty) == (stop.order_id, 99 * E8, E8)  # sells into the 99 bid (limit 94)
    check_accounting(v)


@pytest.mark.parametrize("done_on_trigger", [True, False])
def test_partial_fill_of_the_limit_leg(done_on_trigger: bool) -> None:
    v = make(SimConfig(oco_done_on_trigger=done_on_trigger))
    stop, maker = only(v.handle(sell_oco(qty=E8), ts=10), OrderAccepted)
    ev = trade(v, 110 * E8, 40_000_000, buyer_maker=False, ts=20)  # nothing displayed at 110: 0.4 reaches us
    (f,) = only(ev, OrderFilled)
    assert (f.order_id, f.qty, f.status) == (maker.order_id, 40_000_000, OrderStatus.PARTIALLY_FILLED)
    assert only(ev, OrderExpired)[0].order_id == stop.order_id
    assert len(only(ev, OrderListStatusChanged)) == (1 if done_on_trigger else 0)
    assert v.balances()["BTC"] == (9 * E8, 60_000_000)  # the remaining 0.6 stays locked by the limit leg
    ev = trade(v, 111 * E8, E8, buyer_maker=False, ts=21)
    assert only(ev, OrderFilled)[0].status is OrderStatus.FILLED
    assert len(only(ev, OrderListStatusChanged)) == (0 if done_on_trigger else 1)
    check_accounting(v)


@pytest.mark.parametrize("which", [0, 1])
def test_cancelling_either_leg_cancels_the_list(which: int) -> None:
    v = make()
    legs = only(v.handle(sell_oco(), ts=10), OrderAccepted)
    ev = v.handle(CancelOrder(I, order_id=legs[which].order_id), ts=11)
    assert names(ev) == ["OrderCanceled", "OrderCanceled", "OrderListStatusChanged", "BalanceUpdated"]
    assert only(ev, OrderCanceled)[0].order_id == legs[which].order_id
    assert only(ev, OrderListStatusChanged)[0].list_status_type is ListStatusType.ALL_DONE
    assert v.balances()["BTC"] == (10 * E8, 0)
    check_accounting(v)


def test_cancel_order_list_and_duplicate_list_client_id() -> None:
    v = make()
    ev = v.handle(sell_oco(list_client_order_id="dup"), ts=10)
    list_id = only(ev, OrderListStatusChanged)[0].order_list_id
    ev = v.handle(sell_oco(list_client_order_id="dup"), ts=11)
    assert (only(ev, OrderRejected)[0].code, only(ev, OrderRejected)[0].msg) == (-2010, "Duplicate order sent.")
    ev = v.handle(CancelOrderList(I, list_client_order_id="dup"), ts=12)
    assert len(only(ev, OrderCanceled)) == 2
    ev = v.handle(CancelOrderList(I, order_list_id=list_id), ts=13)
    assert only(ev, CancelRejected)[0].code == -2011
    # the identical list request within the retry window stays a duplicate even though the list is done
    ev = v.handle(sell_oco(list_client_order_id="dup"), ts=14)
    assert only(ev, OrderRejected)[0].msg == "Duplicate order sent."


@pytest.mark.parametrize(
    ("side", "above", "below", "code", "msg"),
    [
        (SELL, {"order_type": LM, "price": 99 * E8}, {"order_type": SL, "stop_price": 95 * E8}, -1166,
         "A limit order in a sell OCO must be above."),
        (SELL, {"order_type": LM, "price": 110 * E8}, {"order_type": SL, "stop_price": 100 * E8}, -1197,
         "A stop loss order in a sell OCO must be below."),
        (SELL, {"order_type": TP, "stop_price": 100 * E8}, {"order_type": SL, "stop_price": 95 * E8}, -1199,
         "A take profit order in a sell OCO must be above."),
        (BUY, {"order_type": SL, "stop_price": 99 * E8}, {"order_type": LM, "price": 90 * E8}, -1196,
         "A stop loss order in a buy OCO must be above."),
        (BUY, {"order_type": SL, "stop_price": 105 * E8}, {"order_type": LM, "price": 100 * E8}, -1165,
         "A limit order in a buy OCO must be below."),
        (BUY, {"order_type": SL, "stop_price": 105 * E8}, {"order_type": TP, "stop_price": 101 * E8}, -1198,
         "A take profit order in a buy OCO must be below."),
        (SELL, {"order_type": LM, "price": 110 * E8}, {"order_type": LM, "price": 105 * E8}, -1168,
         "At least one OCO order must be contingent."),
        (SELL, {"order_type": OrderType.LIMIT, "price": 110 * E8, "time_in_force": TimeInForce.GTC},
         {"order_type": SL, "stop_price": 95 * E8}, -1158, "Order type not supported in OCO."),
        (SELL, {"order_type": SL, "stop_price": 95 * E8}, {"order_type": LM, "price": 110 * E8}, -2010,
         "The relationship of the prices for the orders is not correct."),  # legs in the wrong positions
        (SELL, {"order_type": LM, "price": 110 * E8},
         {"order_type": SLL, "stop_price": 95 * E8, "price": 94 * E8, "time_in_force": TimeInForce.IOC,
          "iceberg_qty": E8 // 10}, -1160,
         "Parameter 'belowIcebergQty' is not supported if aboveTimeInForce/belowTimeInForce is not GTC."),
        (SELL, {"order_type": LM, "price": 110 * E8}, {"order_type": SLL, "stop_price": 95 * E8, "price": 94 * E8},
         -1102, "Mandatory parameter 'belowTimeInForce' was not sent, was empty/null, or malformed."),
    ],
)
def test_oco_placement_errors(side: OrderSide, above: dict[str, Any], below: dict[str, Any], code: int, msg: str) -> None:
    v = make()
    ev = v.handle(SubmitOrderList.oco(I, side, E8, above=above, below=below), ts=10)
    (r,) = only(ev, OrderRejected)
    assert (r.code, r.msg) == (code, msg)
    assert v.open_orders() == [] and v.balances()["BTC"] == (10 * E8, 0)


def test_legacy_oco() -> None:
    v = make()
    bad = SubmitOrderList.legacy_oco(I, SELL, E8, price=99 * E8, stop_price=95 * E8)
    (r,) = only(v.handle(bad, ts=10), OrderRejected)
    assert (r.code, r.msg, r.reject_reason) == (
        -2010, "The relationship of the prices for the orders is not correct.", RejectReason.OCO_BAD_PRICES)
    ok = SubmitOrderList.legacy_oco(I, SELL, E8, price=110 * E8, stop_price=95 * E8, stop_limit_price=94 * E8,
                                    stop_limit_time_in_force=TimeInForce.GTC, limit_client_order_id="lim",
                                    stop_client_order_id="stp")
    ev = v.handle(ok, ts=11)
    stop, maker = only(ev, OrderAccepted)
    assert (stop.client_order_id, stop.order_type, maker.client_order_id, maker.order_type) == ("stp", SLL, "lim", LM)
    ev = trade(v, 95 * E8, E8, True, ts=12)
    assert [e.order_id for e in only(ev, OrderExpired)] == [maker.order_id]
    check_accounting(v)


def test_oto_places_the_pending_order_when_the_working_order_fills() -> None:
    v = make()
    cmd = SubmitOrderList.oto(
        I,
        OrderLeg(BUY, OrderType.LIMIT, E8, price=98 * E8, time_in_force=TimeInForce.GTC),
        OrderLeg(SELL, LM, E8, price=108 * E8),
    )
    ev = v.handle(cmd, ts=10)
    working, pending = only(ev, OrderAccepted)
    assert (working.status, pending.status, pending.working_time) == (OrderStatus.NEW, OrderStatus.PENDING_NEW, -1)
    assert v.balances()["BTC"] == (10 * E8, 0)  # a pending leg locks nothing yet
    ev = trade(v, 97 * E8, 2 * E8, buyer_maker=True, ts=20)
    assert names(ev) == ["OrderFilled", "OrderAccepted", "BalanceUpdated"]
    act = only(ev, OrderAccepted)[0]
    assert (act.order_id, act.status, act.working_time) == (pending.order_id, OrderStatus.NEW, 20)
    assert v.balances()["BTC"] == (10 * E8, E8)
    ev = trade(v, 109 * E8, 2 * E8, buyer_maker=False, ts=30)
    assert names(ev)[:2] == ["OrderFilled", "OrderListStatusChanged"]
    assert only(ev, OrderListStatusChanged)[0].list_order_status is ListOrderStatus.ALL_DONE
    check_accounting(v)


def test_otoco_and_cancel_of_the_working_order() -> None:
    v = make()
    working = OrderLeg(BUY, OrderType.LIMIT, E8, price=98 * E8, time_in_force=TimeInForce.GTC)
    above = OrderLeg(SELL, LM, E8, price=110 * E8)
    below = OrderLeg(SELL, SL, E8, stop_price=90 * E8)
    ev = v.handle(SubmitOrderList.otoco(I, working, above, below), ts=10)
    w, b, a = only(ev, OrderAccepted)  # working, then the stop leg, then the limit maker
    assert (b.order_type, a.order_type) == (SL, LM)
    ev = trade(v, 97 * E8, 2 * E8, buyer_maker=True, ts=20)
    assert [e.order_id for e in only(ev, OrderAccepted)] == [b.order_id, a.order_id]
    assert v.balances()["BTC"] == (10 * E8, E8)  # the pair shares one lock
    ev = trade(v, 90 * E8, E8, buyer_maker=True, ts=21)
    assert [type(e).__name__ for e in ev][:2] == ["OrderTriggered", "OrderExpired"]
    check_accounting(v)
    v2 = make()
    ev = v2.handle(SubmitOrderList.otoco(I, working, above, below), ts=10)
    w2 = only(ev, OrderAccepted)[0]
    ev = v2.handle(CancelOrder(I, order_id=w2.order_id), ts=11)
    assert names(ev) == ["OrderCanceled"] * 3 + ["OrderListStatusChanged", "BalanceUpdated"]
    check_accounting(v2)


def test_oto_working_ioc_expiry_expires_the_pending_leg() -> None:
    v = make()
    cmd = SubmitOrderList.oto(
        I,
        OrderLeg(BUY, OrderType.LIMIT, E8, price=98 * E8, time_in_force=TimeInForce.IOC),
        OrderLeg(SELL, LM, E8, price=108 * E8),
    )
    ev = v.handle(cmd, ts=10)
    reasons = [e.expiry_reason for e in only(ev, OrderExpired)]
    assert reasons == [ExpiryReason.UNFILLED_IOC_QUANTITY_EXPIRED, ExpiryReason.OTO_PHASE_ONE_EXPIRED]
    assert only(ev, OrderListStatusChanged)[-1].list_order_status is ListOrderStatus.ALL_DONE
    check_accounting(v)


def test_otoco_working_order_filled_on_arrival_places_the_pair_once() -> None:
    v = make()
    working = OrderLeg(SELL, OrderType.LIMIT, E8, price=99 * E8, time_in_force=TimeInForce.GTC)  # takes the 99 bid
    above = OrderLeg(BUY, SL, E8, stop_price=105 * E8)
    below = OrderLeg(BUY, LM, E8, price=90 * E8)
    ev = v.handle(SubmitOrderList.otoco(I, working, above, below), ts=10)
    assert [e.status for e in only(ev, OrderAccepted)] == [
        OrderStatus.NEW, OrderStatus.PENDING_NEW, OrderStatus.PENDING_NEW, OrderStatus.NEW, OrderStatus.NEW]
    assert only(ev, OrderFilled)[0].status is OrderStatus.FILLED
    assert len(v.market_book(I).triggers) == 1
    ev = trade(v, 105 * E8, E8, buyer_maker=False, ts=20)
    assert len(only(ev, OrderTriggered)) == 1 and only(ev, OrderExpired)[0].expiry_reason is ExpiryReason.OCO_TRIGGER
    check_accounting(v)
