"""Scenario tests of the simulated spot venue: order types, fill rules, triggers, cancels, idempotency, responses.

Expected numbers are worked out in each test from the inputs (e8 ints), following
``shared/reference/binance-spot-semantics.md``; the worked examples of Binance's FAQs
(market orders) are reproduced where our L2 data allows.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from engine.events import (
    BalanceUpdated,
    BookSnapshotReceived,
    CancelRejected,
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderRejected,
    OrderStatusReported,
    OrderTriggered,
    QuoteReceived,
    TradeReceived,
)
from engine.fixed import SCALE
from engine.identifiers import InstrumentId
from engine.orders import (
    CancelAllOrders,
    CancelOrder,
    ExpiryReason,
    NewOrderRespType,
    OrderSide,
    OrderStatus,
    OrderType,
    QueryOrder,
    RejectReason,
    SelfTradePreventionMode,
    SubmitOrder,
    TimeInForce,
)
from venues.sim.filters import symbol_rules
from venues.sim.venue import FlatFee, SimConfig, SimVenue, SymbolSpec, render_order, render_query

pytestmark = pytest.mark.edge

E8 = SCALE
I = InstrumentId("BTCUSDT.SPOT")
BUY, SELL = OrderSide.BUY, OrderSide.SELL
GTC, IOC, FOK = TimeInForce.GTC, TimeInForce.IOC, TimeInForce.FOK


def make(fee: FlatFee | None = None, config: SimConfig | None = None, **spec: Any) -> SimVenue:
    return SimVenue(
        [SymbolSpec(I, "BTCUSDT", "BTC", "USDT", **spec)],
        {"BTC": 10 * E8, "USDT": 100_000 * E8},
        fee_model=fee or FlatFee(0, 0),
        config=config,
    )


def book(v: SimVenue, bids: list[tuple[int, int]], asks: list[tuple[int, int]], ts: int = 1) -> list[Event]:
    return v.on_market(BookSnapshotReceived(0, ts, ts, I, 1, tuple(bids), tuple(asks)))


def trade(v: SimVenue, price: int, qty: int, buyer_maker: bool, ts: int = 5) -> list[Event]:
    return v.on_market(TradeReceived(0, ts, ts, I, price, qty, 1, buyer_maker))


def limit(side: OrderSide, qty: int, price: int, tif: TimeInForce = GTC, **kw: Any) -> SubmitOrder:
    return SubmitOrder(I, side, OrderType.LIMIT, quantity=qty, price=price, time_in_force=tif, **kw)


def names(events: list[Event]) -> list[str]:
    return [type(e).__name__ for e in events]


def only(events: list[Event], cls: type[Any]) -> list[Any]:
    return [e for e in events if isinstance(e, cls)]


def rejected(events: list[Event]) -> tuple[int, str]:
    (r,) = only(events, OrderRejected)
    return r.code, r.msg


def assert_conserved(v: SimVenue) -> None:
    for asset in v.account.assets():
        assert v.account.conservation_gap(asset) == 0, asset
    assert {a: n for a, n in v.reserved().items() if n} == {
        a: v.account.locked_of(a) for a in v.account.assets() if v.account.locked_of(a)
    }


# --------------------------------------------------------------------------- MARKET


def test_market_order_runs_out_of_liquidity_like_the_faq() -> None:
    """market_orders_faq: BUY 6, only 4 available -> NEW, TRADE(PF), TRADE(PF), EXPIRED, account update."""
    v = make(fee=FlatFee(100_000, 100_000))
    book(v, [(99 * E8, E8)], [(100 * E8, 2 * E8), (101 * E8, 2 * E8)])
    ev = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=6 * E8), ts=10)
    assert names(ev) == ["OrderAccepted", "OrderFilled", "OrderFilled", "OrderExpired", "BalanceUpdated"]
    f1, f2 = only(ev, OrderFilled)
    assert (f1.qty, f1.cum_qty, f1.status) == (2 * E8, 2 * E8, OrderStatus.PARTIALLY_FILLED)
    assert (f2.qty, f2.cum_qty, f2.status) == (2 * E8, 4 * E8, OrderStatus.PARTIALLY_FILLED)
    assert not f1.maker and f1.commission_asset == "BTC" and f1.commission == 2 * E8 // 1000
    (x,) = only(ev, OrderExpired)
    assert (x.status, x.expiry_reason, x.cum_qty) == (OrderStatus.EXPIRED, ExpiryReason.INSUFFICIENT_LIQUIDITY, 4 * E8)
    assert all(e.ts_event == 10 for e in ev)
    ids = [e.exec_id for e in ev if hasattr(e, "exec_id")]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    cost = 200 * E8 + 202 * E8
    assert v.balances()["USDT"] == (100_000 * E8 - cost, 0)
    assert v.balances()["BTC"] == (10 * E8 + 4 * E8 - 2 * (2 * E8 // 1000), 0)
    assert_conserved(v)
    snap = v.order(f1.order_id)
    assert snap is not None and snap.status is OrderStatus.EXPIRED and snap.executed_qty == 4 * E8


def test_market_order_insufficient_balance_is_rejected_up_front() -> None:
    v = make()
    book(v, [], [(60_000 * E8, 5 * E8)])
    ev = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=2 * E8), ts=10)
    assert rejected(ev) == (-2010, "Account has insufficient balance for requested action.")
    assert only(ev, OrderRejected)[0].reject_reason is RejectReason.INSUFFICIENT_BALANCES
    assert v.balances()["USDT"] == (100_000 * E8, 0)


def test_quote_order_qty_buys_whole_steps_within_budget() -> None:
    v = make(market_step=E8 // 1000)
    book(v, [], [(100 * E8, E8), (101 * E8, 2 * E8)])
    ev = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quote_order_qty=250 * E8), ts=10)
    fills = only(ev, OrderFilled)
    # 1 BTC at 100 leaves 150 USDT: 150/101 = 1.48514.. -> 1.485 (whole 0.001 steps)
    assert [(f.price, f.qty) for f in fills] == [(100 * E8, E8), (101 * E8, 1_485 * E8 // 1000)]
    assert fills[-1].status is OrderStatus.FILLED
    spent = 100 * E8 + 101 * 1_485 * E8 // 1000
    assert v.balances()["USDT"] == (100_000 * E8 - spent, 0)
    body = render_order(v.order(fills[0].order_id), NewOrderRespType.RESULT)  # type: ignore[arg-type]
    assert body["origQty"] == "2.48500000" and body["origQuoteOrderQty"] == "250.00000000"
    assert_conserved(v)


# --------------------------------------------------------------------------- LIMIT and timeInForce


def test_ioc_and_fok() -> None:
    v = make()
    book(v, [(99 * E8, E8)], [(100 * E8, 2 * E8), (102 * E8, 5 * E8)])
    ev = v.handle(limit(BUY, 5 * E8, 101 * E8, FOK), ts=10)
    assert names(ev) == ["OrderAccepted", "OrderExpired"]
    assert only(ev, OrderExpired)[0].expiry_reason is ExpiryReason.UNFILLED_FOK_ORDER_EXPIRED
    assert v.balances()["USDT"] == (100_000 * E8, 0)
    ev = v.handle(limit(BUY, 5 * E8, 101 * E8, IOC), ts=11)
    assert names(ev) == ["OrderAccepted", "OrderFilled", "OrderExpired", "BalanceUpdated"]
    (f,) = only(ev, OrderFilled)
    assert (f.price, f.qty) == (100 * E8, 2 * E8)  # price improvement: the ask, not our limit
    assert only(ev, OrderExpired)[0].expiry_reason is ExpiryReason.UNFILLED_IOC_QUANTITY_EXPIRED
    assert v.balances()["USDT"] == (100_000 * E8 - 200 * E8, 0)
    ev = v.handle(limit(BUY, 3 * E8, 102 * E8, FOK), ts=12)  # 3 of the 5 at 102 (the 100 level was consumed)
    assert [f.qty for f in only(ev, OrderFilled)] == [3 * E8]
    assert_conserved(v)


def test_marketable_gtc_limit_takes_then_rests_with_exact_lock() -> None:
    v = make()
    book(v, [(99 * E8, E8)], [(100 * E8, E8)])
    ev = v.handle(limit(BUY, 3 * E8, 100 * E8), ts=10)
    assert names(ev) == ["OrderAccepted", "OrderFilled", "BalanceUpdated"]
    assert only(ev, OrderFilled)[0].status is OrderStatus.PARTIALLY_FILLED
    assert v.balances()["USDT"] == (100_000 * E8 - 300 * E8, 200 * E8)
    assert v.market_book(I).bids.best() == 100 * E8
    assert_conserved(v)


def test_limit_maker_that_would_take_is_rejected() -> None:
    v = make()
    book(v, [(99 * E8, E8)], [(100 * E8, E8)])
    ev = v.handle(SubmitOrder(I, BUY, OrderType.LIMIT_MAKER, quantity=E8, price=100 * E8), ts=10)
    assert rejected(ev) == (-2010, "Order would immediately match and take.")
    assert only(ev, OrderRejected)[0].reject_reason is RejectReason.WOULD_MATCH_IMMEDIATELY
    ev = v.handle(SubmitOrder(I, BUY, OrderType.LIMIT_MAKER, quantity=E8, price=99 * E8), ts=11)
    assert names(ev) == ["OrderAccepted", "BalanceUpdated"]


# --------------------------------------------------------------------------- resting orders and market data


def test_trade_through_fills_bounded_by_trade_size_and_queue_at_touch() -> None:
    v = make(fee=FlatFee(50_000, 100_000))
    book(v, [(100 * E8, 3 * E8)], [(101 * E8, E8)])
    v.handle(limit(BUY, E8, 100 * E8, client_order_id="q"), ts=10)  # 3 BTC displayed ahead of us
    assert trade(v, 100 * E8, 2 * E8, buyer_maker=False) == []  # a buyer lifted asks: bids untouched
    assert trade(v, 100 * E8, 2 * E8, buyer_maker=True) == []  # ate 2 of the 3 ahead
    ev = trade(v, 100 * E8, 2 * E8, buyer_maker=True)  # 1 ahead left, so 1 of this trade reaches us
    (f,) = only(ev, OrderFilled)
    assert (f.qty, f.price, f.maker, f.status) == (E8, 100 * E8, True, OrderStatus.FILLED)
    assert f.commission == E8 * 50_000 // E8  # maker rate on the received BTC
    v.handle(limit(BUY, E8, 100 * E8), ts=20)
    ev = trade(v, 99 * E8, 40_000_000, buyer_maker=True, ts=21)  # through our price: no queue, but bounded
    assert [(e.qty, e.price) for e in only(ev, OrderFilled)] == [(40_000_000, 100 * E8)]
    assert v.last_price(I) == 99 * E8
    assert_conserved(v)


def test_quote_moving_through_a_resting_order_fills_it_at_its_price() -> None:
    v = make()
    book(v, [(99 * E8, E8)], [(102 * E8, E8)])
    v.handle(limit(SELL, E8, 101 * E8), ts=10)
    ev = v.on_market(QuoteReceived(0, 20, 20, I, 2, 101 * E8 + E8 // 2, 30_000_000, 103 * E8, E8))
    (f,) = only(ev, OrderFilled)
    assert (f.price, f.qty, f.maker, f.status) == (101 * E8, 30_000_000, True, OrderStatus.PARTIALLY_FILLED)
    assert v.market_book(I).book.bids.qty(101 * E8 + E8 // 2) == 0  # the crossing size was used up
    assert v.balances()["BTC"] == (9 * E8, 70_000_000)
    assert_conserved(v)


def test_iceberg_fills_its_tip_at_the_touch_and_everything_through() -> None:
    v = make()
    book(v, [(90 * E8, E8)], [])
    ev = v.handle(limit(SELL, 10 * E8, 100 * E8, iceberg_qty=2 * E8), ts=10)
    assert only(ev, OrderAccepted)[0].iceberg_qty == 2 * E8
    ev = trade(v, 100 * E8, 5 * E8, buyer_maker=False, ts=11)
    assert [f.qty for f in only(ev, OrderFilled)] == [2 * E8]  # the visible tip only
    ev = trade(v, 100 * E8, 5 * E8, buyer_maker=False, ts=12)
    assert [f.qty for f in only(ev, OrderFilled)] == [2 * E8]  # refilled tip
    ev = trade(v, 101 * E8, 5 * E8, buyer_maker=False, ts=13)
    assert [f.qty for f in only(ev, OrderFilled)] == [5 * E8]  # the price went through: hidden quantity trades
    ev = v.handle(limit(SELL, 2 * E8, 100 * E8, iceberg_qty=2 * E8), ts=14)
    assert rejected(ev) == (-1013, "IcebergQty exceeds QTY.")


# --------------------------------------------------------------------------- stops


@pytest.mark.parametrize(
    ("order_type", "side", "stop"),
    [
        (OrderType.STOP_LOSS, SELL, 101),
        (OrderType.STOP_LOSS, BUY, 99),
        (OrderType.TAKE_PROFIT, SELL, 99),
        (OrderType.TAKE_PROFIT, BUY, 101),
    ],
)
def test_stop_that_would_trigger_immediately_is_rejected(order_type: OrderType, side: OrderSide, stop: int) -> None:
    v = make()
    trade(v, 100 * E8, E8, True)
    ev = v.handle(SubmitOrder(I, side, order_type, quantity=E8 // 10, stop_price=stop * E8), ts=10)
    assert rejected(ev) == (-2010, "Order would trigger immediately.")
    assert only(ev, OrderRejected)[0].reject_reason is RejectReason.STOP_PRICE_WOULD_TRIGGER_IMMEDIATELY


def test_stop_limit_triggers_on_last_price_and_then_works() -> None:
    v = make()
    book(v, [(99 * E8, 5 * E8), (98 * E8, 5 * E8)], [(101 * E8, E8)])
    trade(v, 100 * E8, E8, True, ts=2)
    ev = v.handle(SubmitOrder(I, SELL, OrderType.STOP_LOSS_LIMIT, quantity=2 * E8, price=98 * E8 + E8 // 2,
                              stop_price=99 * E8, time_in_force=GTC), ts=10)
    acc = only(ev, OrderAccepted)[0]
    assert acc.working_time == -1 and acc.stop_price == 99 * E8
    assert trade(v, 99 * E8 + 1, E8, True, ts=11) == []
    ev = trade(v, 99 * E8, E8 // 10, True, ts=12)
    assert names(ev)[:2] == ["OrderTriggered", "OrderFilled"]
    assert only(ev, OrderTriggered)[0].trigger_price == 99 * E8
    assert [(f.price, f.qty) for f in only(ev, OrderFilled)] == [(99 * E8, 2 * E8)]
    snap = v.order(acc.order_id)
    assert snap is not None and snap.working_time == 12 and snap.status is OrderStatus.FILLED
    assert_conserved(v)


def test_trailing_stop_follows_the_faq_scenario_e() -> None:
    """STOP_LOSS SELL, trailingDelta 700 from 40,000: 42,000, 39,500 (no), 45,500, then 42,315 = 45,500 x 0.93."""
    v = make()
    book(v, [(30_000 * E8, 5 * E8)], [])
    trade(v, 40_000 * E8, E8, True, ts=1)
    ev = v.handle(SubmitOrder(I, SELL, OrderType.STOP_LOSS, quantity=E8, trailing_delta=700), ts=2)
    oid = only(ev, OrderAccepted)[0].order_id
    for ts, px in ((3, 42_000), (4, 39_500), (5, 45_500), (6, 42_316)):
        assert only(trade(v, px * E8, E8, True, ts=ts), OrderTriggered) == []
    ev = trade(v, 42_315 * E8, E8, True, ts=7)
    assert [e.order_id for e in only(ev, OrderTriggered)] == [oid]
    snap = v.order(oid)
    assert snap is not None and snap.trailing_time == 2 and snap.status is OrderStatus.FILLED


# --------------------------------------------------------------------------- cancel, query, idempotency


def test_cancel_by_id_and_by_client_id_and_restrictions() -> None:
    v = make()
    a = only(v.handle(limit(BUY, E8, 90 * E8, client_order_id="a"), ts=1), OrderAccepted)[0]
    v.handle(limit(BUY, E8, 91 * E8, client_order_id="b"), ts=2)
    ev = v.handle(CancelOrder(I, order_id=a.order_id, cancel_restrictions="ONLY_PARTIALLY_FILLED"), ts=3)
    assert only(ev, CancelRejected)[0].msg == "Order was not canceled due to cancel restrictions."
    ev = v.handle(CancelOrder(I, order_id=a.order_id, cancel_restrictions="BOGUS"), ts=3)
    assert only(ev, CancelRejected)[0].code == -1145
    ev = v.handle(CancelOrder(I, order_id=a.order_id, orig_client_order_id="b"), ts=3)
    assert (only(ev, CancelRejected)[0].code, only(ev, CancelRejected)[0].msg) == (-2011, "Unknown order sent.")
    ev = v.handle(CancelOrder(I, order_id=a.order_id, new_client_order_id="c1", cancel_restrictions="ONLY_NEW"), ts=4)
    (c,) = only(ev, OrderCanceled)
    assert (c.client_order_id, c.cancel_client_order_id) == ("a", "c1")
    ev = v.handle(CancelOrder(I, orig_client_order_id="b"), ts=5)
    assert names(ev) == ["OrderCanceled", "BalanceUpdated"]
    assert v.balances()["USDT"] == (100_000 * E8, 0)
    ev = v.handle(CancelOrder(I), ts=6)
    assert only(ev, CancelRejected)[0].code == -1102
    ev = v.handle(CancelAllOrders(I), ts=7)
    assert (only(ev, CancelRejected)[0].code, only(ev, CancelRejected)[0].msg) == (-2011, "Unknown order sent.")


def test_cancel_all_cancels_every_open_order() -> None:
    v = make()
    for i in range(3):
        v.handle(limit(SELL, E8, (110 + i) * E8), ts=i)
    ev = v.handle(CancelAllOrders(I), ts=10)
    assert names(ev) == ["OrderCanceled"] * 3 + ["BalanceUpdated"]
    assert v.open_orders() == [] and v.balances()["BTC"] == (10 * E8, 0)


def test_duplicate_client_id_and_retry_window() -> None:
    v = make(config=SimConfig(dedupe_ttl_ns=1_000))
    cmd = limit(BUY, E8, 90 * E8, client_order_id="same")
    first = only(v.handle(cmd, ts=0), OrderAccepted)[0]
    assert rejected(v.handle(cmd, ts=1)) == (-2010, "Duplicate order sent.")
    v.handle(CancelOrder(I, orig_client_order_id="same"), ts=2)
    # the identical request again (a retry after a timeout): never a second order
    assert rejected(v.handle(cmd, ts=3)) == (-2010, "Duplicate order sent.")
    # reconcile by querying origClientOrderId
    (rep,) = only(v.handle(QueryOrder(I, orig_client_order_id="same"), ts=4), OrderStatusReported)
    assert rep.order is not None and rep.order.order_id == first.order_id and rep.order.status is OrderStatus.CANCELED
    # a different request may reuse the id of a finished order (Binance's rule) ...
    other = limit(BUY, 2 * E8, 90 * E8, client_order_id="same")
    assert names(v.handle(other, ts=5))[0] == "OrderAccepted"
    v.handle(CancelOrder(I, orig_client_order_id="same"), ts=6)
    # ... and after the window even the identical one is a new order
    assert names(v.handle(cmd, ts=2_000))[0] == "OrderAccepted"
    assert len(v.open_orders()) == 1


def test_query_order() -> None:
    v = make()
    a = only(v.handle(limit(BUY, E8, 90 * E8, client_order_id="x"), ts=1_000_000), OrderAccepted)[0]
    (rep,) = only(v.handle(QueryOrder(I, order_id=a.order_id), ts=2), OrderStatusReported)
    assert rep.order is not None
    body = render_query(rep.order)
    assert body["status"] == "NEW" and body["isWorking"] is True and body["time"] == 1
    (rep,) = only(v.handle(QueryOrder(I, order_id=999), ts=2), OrderStatusReported)
    assert (rep.code, rep.msg) == (-2013, "Order does not exist.")
    (rep,) = only(v.handle(QueryOrder(I, order_id=a.order_id, orig_client_order_id="y"), ts=2), OrderStatusReported)
    assert rep.code == -2039


# --------------------------------------------------------------------------- parameters and symbol rules


@pytest.mark.parametrize(
    ("cmd", "code", "msg"),
    [
        (SubmitOrder(I, BUY, OrderType.LIMIT, quantity=E8, price=E8), -1102,
         "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."),
        (SubmitOrder(I, BUY, OrderType.MARKET, quantity=E8, time_in_force=GTC), -1114,
         "TimeInForce parameter sent when not required."),
        (SubmitOrder(I, BUY, OrderType.MARKET), -1102,
         "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
        (SubmitOrder(I, BUY, OrderType.MARKET, quantity=E8, price=E8), -1106,
         "Parameter 'price' sent when not required."),
        (SubmitOrder(I, BUY, OrderType.STOP_LOSS, quantity=E8), -1102,
         "Param 'stopPrice' or 'trailingDelta' must be sent, but both were empty/null!"),
        (SubmitOrder(I, BUY, OrderType.LIMIT, quantity=E8, price=E8, time_in_force=GTC, stop_price=E8), -1106,
         "Parameter 'stopPrice' sent when not required."),
        (SubmitOrder(I, BUY, OrderType.LIMIT, quantity=E8, price=E8, time_in_force=GTC, client_order_id=""), -1118,
         "New client order ID was empty."),
        (SubmitOrder(I, BUY, OrderType.LIMIT, quantity=E8, price=E8, time_in_force=IOC, iceberg_qty=E8 // 2), -1013,
         "Unsupported order combination"),
        (SubmitOrder(InstrumentId("NOPE.SPOT"), BUY, OrderType.MARKET, quantity=E8), -1121, "Invalid symbol."),
    ],
)
def test_parameter_errors(cmd: SubmitOrder, code: int, msg: str) -> None:
    assert rejected(make().handle(cmd, ts=1)) == (code, msg)


def test_symbol_permissions_and_stp_mode() -> None:
    v = make(order_types=frozenset({OrderType.LIMIT, OrderType.MARKET}),
             allowed_stp=frozenset({SelfTradePreventionMode.NONE}))
    ev = v.handle(SubmitOrder(I, SELL, OrderType.STOP_LOSS, quantity=E8, stop_price=E8), ts=1)
    assert rejected(ev) == (-1013, "Stop loss orders are not supported for this symbol.")
    ev = v.handle(limit(BUY, E8, E8, stp_mode=SelfTradePreventionMode.EXPIRE_MAKER), ts=1)
    assert rejected(ev) == (-1013, "This symbol does not allow the specified self-trade prevention mode.")
    closed = make(status="HALT")
    assert rejected(closed.handle(limit(BUY, E8, E8), ts=1)) == (-1013, "Market is closed.")


def test_exchange_info_filters_apply() -> None:
    raw = {
        "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "quoteAsset": "USDT",
        "baseAssetPrecision": 8, "quotePrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0.01", "maxPrice": "1000000", "tickSize": "0.01"},
            {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "100", "stepSize": "0.001"},
        ],
    }
    spec = SymbolSpec.from_rules(symbol_rules(raw), raw)
    assert spec.market_step == E8 // 1000 and OrderType.STOP_LOSS not in spec.order_types
    v = SimVenue([spec], {"USDT": 1_000 * E8}, fee_model=FlatFee(0, 0))
    assert rejected(v.handle(limit(BUY, 15 * E8 // 10_000, 100 * E8), ts=1)) == (-1013, "Filter failure: LOT_SIZE")
    assert rejected(v.handle(limit(BUY, E8 // 100, 100 * E8 + 1), ts=1)) == (-1013, "Filter failure: PRICE_FILTER")
    assert names(v.handle(limit(BUY, E8 // 100, 100 * E8), ts=1))[0] == "OrderAccepted"


# --------------------------------------------------------------------------- responses and determinism


def test_response_shapes() -> None:
    v = make(fee=FlatFee(0, 100_000))
    book(v, [], [(100 * E8, 2 * E8)])
    ev = v.handle(limit(BUY, E8, 100 * E8, client_order_id="r1"), ts=1_700_000_000_123_000_000)
    fills = only(ev, OrderFilled)
    snap = v.order(fills[0].order_id)
    assert snap is not None
    ack = render_order(snap, NewOrderRespType.ACK, fills)
    assert ack == {"symbol": "BTCUSDT", "orderId": snap.order_id, "orderListId": -1, "clientOrderId": "r1",
                   "transactTime": 1_700_000_000_123}
    result = render_order(snap, NewOrderRespType.RESULT, fills)
    assert "fills" not in result and result["status"] == "FILLED" and result["cummulativeQuoteQty"] == "100.00000000"
    full = render_order(snap, None, fills)  # LIMIT defaults to FULL
    assert full["fills"] == [{"price": "100.00000000", "qty": "1.00000000", "commission": "0.00100000",
                              "commissionAsset": "BTC", "tradeId": fills[0].trade_id}]
    assert "stopPrice" not in full and full["workingTime"] == 1_700_000_000_123


def _script(v: SimVenue) -> list[Event]:
    out: list[Event] = []
    out += book(v, [(99 * E8, 3 * E8)], [(101 * E8, 3 * E8)])
    out += v.handle(limit(BUY, 2 * E8, 100 * E8), ts=2)
    out += v.handle(SubmitOrder(I, SELL, OrderType.MARKET, quantity=E8), ts=3)
    out += trade(v, 100 * E8, E8, True, ts=4)
    out += v.handle(SubmitOrder(I, SELL, OrderType.STOP_LOSS, quantity=E8, stop_price=98 * E8), ts=5)
    out += trade(v, 97 * E8, E8, True, ts=6)
    out += v.handle(CancelAllOrders(I), ts=7)
    return out


def test_replay_gives_identical_events() -> None:
    a = [msgspec.json.encode(e) for e in _script(make(fee=FlatFee(10_000, 20_000)))]
    b = [msgspec.json.encode(e) for e in _script(make(fee=FlatFee(10_000, 20_000)))]
    assert a == b and len(a) > 8
    assert any(b'"OrderTriggered"' in x for x in a)


def test_balance_updates_can_be_switched_off() -> None:
    v = make(config=SimConfig(emit_balance_updates=False))
    ev = v.handle(limit(BUY, E8, 90 * E8), ts=1)
    assert only(ev, BalanceUpdated) == [] and v.balances()["USDT"] == (100_000 * E8 - 90 * E8, 90 * E8)


def test_deep_walk_consumes_levels_until_the_book_refreshes() -> None:
    v = make()
    book(v, [(99 * E8, E8)], [((100 + i) * E8, E8) for i in range(12)])
    ev = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=10 * E8), ts=10)
    assert [f.price for f in only(ev, OrderFilled)] == [(100 + i) * E8 for i in range(10)]
    ev = v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=5 * E8), ts=11)
    assert [f.price for f in only(ev, OrderFilled)] == [110 * E8, 111 * E8]  # what we took is gone
    assert only(ev, OrderExpired)[0].cum_qty == 2 * E8
    book(v, [(99 * E8, E8)], [(100 * E8, E8)], ts=12)  # a fresh snapshot restores the displayed book
    assert [f.price for f in only(v.handle(SubmitOrder(I, BUY, OrderType.MARKET, quantity=E8), ts=13), OrderFilled)] == [
        100 * E8]
    assert_conserved(v)


def test_venue_events_round_trip_through_the_log_codec() -> None:
    from catalogs.schema import BatchBuilder, iter_events

    v = make(fee=FlatFee(10_000, 20_000))
    events = _script(v) + v.handle(QueryOrder(I, order_id=1), ts=8)
    assert any(isinstance(e, OrderStatusReported) and e.order is not None for e in events)
    builder = BatchBuilder()
    for i, e in enumerate(events, start=1):
        builder.add(e, i)
    back = list(iter_events(builder.build()))
    assert back == [msgspec.structs.replace(e, seq=i) for i, e in enumerate(events, start=1)]
