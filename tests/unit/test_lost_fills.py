"""Recovering fills the live adapter never heard about: the tracking table, which orders need a
query, ``myTrades`` rows -> fill events, and the recovery's retry/dedupe rules over a scripted REST."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any, cast
from urllib.parse import parse_qsl

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import VenueError
from engine.events import (
    Event,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderStatusReported,
)
from engine.fixed import SCALE, format_e8
from engine.identifiers import InstrumentId
from engine.orders import (
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    SelfTradePreventionMode,
    TimeInForce,
)
from venues.binance.protocol import terminal_events, trade_fill_events
from venues.binance.requests import RequestBuilder, SignedRequest
from venues.binance.rest import RestResponse
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.venue import LiveConfig, LiveVenue, OrderTracker

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
PX = 60_000 * SCALE
MS = 1_000_000


def _accepted(oid: int, cid: str = "c", qty: int = 10 * SCALE // 100, list_id: int = -1) -> OrderAccepted:
    return OrderAccepted(0, 1, 1, BTC, oid, cid, OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, qty, PX, 0, 0, 0,
                         list_id, OrderStatus.NEW, 1, SelfTradePreventionMode.NONE, -1)


def _fill(oid: int, tid: int, qty: int, cum: int, status: OrderStatus = OrderStatus.PARTIALLY_FILLED,
          cid: str = "c") -> OrderFilled:
    return OrderFilled(0, 2, 2, BTC, oid, cid, OrderSide.BUY, PX, qty, PX * qty // SCALE, cum, PX * cum // SCALE,
                       status, 0, "BTC", tid, True, -1, -1)


def _canceled(oid: int, cum: int) -> OrderCanceled:
    return OrderCanceled(0, 3, 3, BTC, oid, "c", "", cum, PX * cum // SCALE, -1, -1)


def _snap(oid: int, status: OrderStatus, executed: int, qty: int = 1000, list_id: int = -1,
          cid: str = "c") -> OrderSnapshot:
    return OrderSnapshot(BTC, "BTCUSDT", oid, list_id, cid, OrderSide.BUY, OrderType.LIMIT, TimeInForce.GTC, PX, qty,
                         executed, PX * executed // SCALE, 0, status, 0, 0, 1, 5 * MS, 1, True,
                         SelfTradePreventionMode.NONE)


def _report(snap: OrderSnapshot) -> OrderStatusReported:
    return OrderStatusReported(0, 1, 1, BTC, snap)


def _row(tid: int, oid: int, qty: int, px: int = PX, maker: bool = True, fee: int = 7, t_ms: int = 1000) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "id": tid, "orderId": oid, "orderListId": -1, "price": format_e8(px),
            "qty": format_e8(qty), "quoteQty": format_e8(px * qty // SCALE), "commission": format_e8(fee),
            "commissionAsset": "BTC", "time": t_ms, "isBuyer": True, "isMaker": maker, "isBestMatch": True}


# --------------------------------------------------------------------------- the tracking table


def test_tracker_follows_an_order_to_its_end_and_forgets_it() -> None:
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000)])
    assert tr.get(1) is not None and tr.by_client_id(BTC, "c") is tr.get(1)
    assert tr.to_query({1: 0}) == []  # open, nothing executed: nothing to ask
    tr.observe([_fill(1, 10, 400, 400)])
    assert tr.to_query({1: 400}) == []
    assert [t.order_id for t in tr.to_query({1: 700})] == [1]  # the venue executed more than we reported
    assert [t.order_id for t in tr.to_query({})] == [1]  # no longer open: it ended unheard
    tr.observe([_fill(1, 11, 600, 1000, OrderStatus.FILLED)])
    assert tr.get(1) is None and tr.by_client_id(BTC, "c") is None  # settled


def test_tracker_repeated_fill_counts_once() -> None:
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000), _fill(1, 10, 400, 400)])
    tr.observe([_fill(1, 10, 400, 400)])
    t = tr.get(1)
    assert t is not None and t.reported_qty == 400 and t.trade_ids == {10}


def test_cancel_with_unreported_fills_stays_owed() -> None:
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000), _canceled(1, 300)])  # the cancel's answer says 300 executed
    t = tr.get(1)
    assert t is not None and t.terminal and not t.settled
    assert [x.order_id for x in tr.to_query({})] == [1]
    tr.observe([_fill(1, 10, 300, 300)])
    assert tr.get(1) is None


def test_cancel_with_everything_reported_is_settled() -> None:
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000), _fill(1, 10, 300, 300), _canceled(1, 300)])
    assert tr.get(1) is None and tr.to_query({}) == []


def test_snapshot_of_a_found_order_that_filled_unheard_is_owed() -> None:
    """Lost placement answer: the executor reports OrderAccepted + the snapshot; the fills are owed."""
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000), _report(_snap(1, OrderStatus.FILLED, 1000))])
    t = tr.get(1)
    assert t is not None and t.status is OrderStatus.FILLED and t.venue_qty == 1000 and t.reported_qty == 0
    assert [x.order_id for x in tr.to_query({})] == [1]


def test_unknown_open_order_is_adopted_with_its_past_as_baseline() -> None:
    tr = OrderTracker()
    tr.observe([_report(_snap(5, OrderStatus.PARTIALLY_FILLED, 200)),
                _report(_snap(6, OrderStatus.FILLED, 1000))])  # finished before we watched: nothing owed
    t = tr.get(5)
    assert t is not None and t.baseline == t.reported_qty == 200 and tr.get(6) is None
    assert tr.to_query({5: 200}) == []
    assert [x.order_id for x in tr.to_query({5: 250})] == [5]


def test_expired_leg_and_list_tracking() -> None:
    tr = OrderTracker()
    executing = OrderListStatusChanged(0, 1, 1, BTC, 9, "l", ContingencyType.OCO, ListStatusType.EXEC_STARTED,
                                       ListOrderStatus.EXECUTING, (1, 2), ("a", "b"))
    tr.observe([executing, _accepted(1, "a", 1000, 9), _accepted(2, "b", 1000, 9)])
    assert [lst.order_list_id for lst in tr.lists_to_query({1: 0})] == []  # a leg is still open
    assert [lst.order_list_id for lst in tr.lists_to_query({})] == [9]
    expired = OrderExpired(0, 2, 2, BTC, 2, "b", OrderStatus.EXPIRED, ExpiryReason.NONE, 0, 0, 9, -1)
    tr.observe([expired])
    assert tr.get(2) is None  # expired with nothing executed: settled
    tr.observe([msgspec.structs.replace(executing, list_status_type=ListStatusType.ALL_DONE,
                                        list_order_status=ListOrderStatus.ALL_DONE)])
    assert tr.lists == {}


# --------------------------------------------------------------------------- rows -> events


def test_rows_become_the_streams_fill_events() -> None:
    rows = [_row(12, 1, 600, px=PX + SCALE, maker=False, fee=9, t_ms=2000), _row(11, 1, 400)]  # out of order
    fills, traded = trade_fill_events(rows, _snap(1, OrderStatus.FILLED, 1000), 77)
    assert traded == 1000
    a, b = cast(list[OrderFilled], fills)
    assert (a.trade_id, a.qty, a.cum_qty, a.status, a.maker, a.commission, a.ts_event, a.ts_recv) == (
        11, 400, 400, OrderStatus.PARTIALLY_FILLED, True, 7, 1000 * MS, 77)
    assert (b.trade_id, b.price, b.qty, b.cum_qty, b.status, b.maker, b.commission_asset) == (
        12, PX + SCALE, 600, 1000, OrderStatus.FILLED, False, "BTC")
    assert b.cum_quote == a.quote_qty + b.quote_qty and b.exec_id == -1 and b.client_order_id == "c"


def test_rows_already_reported_or_before_the_baseline_are_skipped() -> None:
    rows = [_row(11, 1, 400), _row(12, 1, 300), _row(13, 1, 300)]
    fills, _ = trade_fill_events(rows, _snap(1, OrderStatus.FILLED, 1000), 0, reported={12})
    assert [(f.trade_id, f.cum_qty) for f in cast(list[OrderFilled], fills)] == [(11, 400), (13, 1000)]
    fills, _ = trade_fill_events(rows, _snap(1, OrderStatus.FILLED, 1000), 0, baseline=400)
    assert [f.trade_id for f in cast(list[OrderFilled], fills)] == [12, 13]


def test_an_open_or_canceled_order_never_gets_a_filled_fill() -> None:
    rows = [_row(11, 1, 400)]
    for status in (OrderStatus.PARTIALLY_FILLED, OrderStatus.CANCELED, OrderStatus.EXPIRED):
        (f,) = cast(list[OrderFilled], trade_fill_events(rows, _snap(1, status, 400), 0)[0])
        assert f.status is OrderStatus.PARTIALLY_FILLED


def test_terminal_events_by_status() -> None:
    (c,) = terminal_events(_snap(1, OrderStatus.CANCELED, 300), 5)
    assert isinstance(c, OrderCanceled) and c.cum_qty == 300 and c.ts_event == 5 * MS
    (e,) = terminal_events(_snap(1, OrderStatus.EXPIRED, 0, list_id=9), 5)
    assert isinstance(e, OrderExpired) and e.status is OrderStatus.EXPIRED and e.order_list_id == 9
    assert terminal_events(_snap(1, OrderStatus.FILLED, 1000), 5) == []  # the last fill says FILLED


@settings(max_examples=150, deadline=None)
@given(qtys=st.lists(st.integers(1, 10**8), min_size=1, max_size=12), data=st.data())
def test_emitted_plus_reported_is_every_trade_once(qtys: list[int], data: st.DataObject) -> None:
    rows = [_row(100 + i, 1, q) for i, q in enumerate(qtys)]
    reported = set(data.draw(st.sets(st.sampled_from([r["id"] for r in rows]))))
    total = sum(qtys)
    fills, traded = trade_fill_events(rows, _snap(1, OrderStatus.FILLED, total, qty=total), 0, reported=reported)
    ids = [f.trade_id for f in cast(list[OrderFilled], fills)]
    assert traded == total
    assert sorted(ids) == ids and set(ids) | reported == {r["id"] for r in rows} and not set(ids) & reported
    if 100 + len(qtys) - 1 not in reported:  # the completing trade is ours to report: it says FILLED
        assert cast(OrderFilled, fills[-1]).status is OrderStatus.FILLED
        assert cast(OrderFilled, fills[-1]).cum_qty == total
    assert sum(1 for f in cast(list[OrderFilled], fills) if f.status is OrderStatus.FILLED) <= 1


def test_my_trades_request_weight_and_params() -> None:
    b = RequestBuilder(Signer(Credentials("k", b"s"), ServerTime()))
    by_order = b.my_trades("BTCUSDT", 10**18, order_id=7, from_id=0)
    assert (by_order.method, by_order.path, by_order.weight, by_order.idempotent) == ("GET", "/api/v3/myTrades", 5, True)
    params = dict(parse_qsl(by_order.query.decode()))
    assert (params["symbol"], params["orderId"], params["fromId"], params["limit"]) == ("BTCUSDT", "7", "0", "1000")
    assert b.my_trades("BTCUSDT", 10**18).weight == 20
    lst = b.query_list_by_id(9, 10**18)
    assert lst.weight == 4 and dict(parse_qsl(lst.query.decode()))["orderListId"] == "9"


# --------------------------------------------------------------------------- recovery over a scripted REST


class _ScriptedRest:
    """Answers by path from ``routes``; a route may be a list of answers (one per call, last repeats)."""

    def __init__(self, routes: dict[str, Any]) -> None:
        self.builder = RequestBuilder(Signer(Credentials("k", b"s"), ServerTime()))
        self.timeout_s = 1.0
        self.routes = routes
        self.calls: list[tuple[str, dict[str, str]]] = []

    async def send(self, request: SignedRequest | Callable[[int], SignedRequest]) -> RestResponse:
        req = request(10**18) if callable(request) else request
        params = dict(parse_qsl(req.query.decode()))
        self.calls.append((req.path, params))
        answer = self.routes[req.path]
        if isinstance(answer, list) and answer and isinstance(answer[0], tuple):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        status, doc = answer if isinstance(answer, tuple) else (200, answer)
        return RestResponse(status, {}, json.dumps(doc).encode(), doc, 0, 0)

    async def close(self) -> None:
        return None


def _order_doc(oid: int, status: str, executed: int, qty: int = 1000) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "orderId": oid, "orderListId": -1, "clientOrderId": "c", "price": format_e8(PX),
            "origQty": format_e8(qty), "executedQty": format_e8(executed),
            "cummulativeQuoteQty": format_e8(PX * executed // SCALE), "status": status, "timeInForce": "GTC",
            "type": "LIMIT", "side": "BUY", "stopPrice": "0", "icebergQty": "0", "time": 1, "updateTime": 5,
            "isWorking": True, "workingTime": 1, "origQuoteOrderQty": "0", "selfTradePreventionMode": "NONE"}


def _venue(routes: dict[str, Any]) -> tuple[LiveVenue, list[Event], _ScriptedRest]:
    got: list[Event] = []
    rest = _ScriptedRest(routes)
    venue = LiveVenue(LiveConfig("k", "s", user_stream=False), got.extend, rest=cast(Any, rest))
    return venue, got, rest


def _exec_report(oid: int, tid: int, qty: int, cum: int, status: str) -> str:
    return json.dumps({"e": "executionReport", "E": 3, "s": "BTCUSDT", "c": "c", "S": "BUY", "o": "LIMIT",
                       "f": "GTC", "q": format_e8(1000), "p": format_e8(PX), "x": "TRADE", "X": status, "i": oid,
                       "l": format_e8(qty), "z": format_e8(cum), "L": format_e8(PX), "n": "0.00000007",
                       "N": "BTC", "T": 3, "t": tid, "I": 99, "m": True, "Y": format_e8(PX * qty // SCALE),
                       "Z": format_e8(PX * cum // SCALE)})


def test_failed_order_query_reports_nothing_and_the_retry_reports_once() -> None:
    venue, got, rest = _venue({
        "/api/v3/account": {"balances": []},
        "/api/v3/openOrders": [],
        "/api/v3/myTrades": [_row(11, 1, 400), _row(12, 1, 600)],
        "/api/v3/order": [(500, {"code": -1000, "msg": "An unknown error occurred"}),
                          (200, _order_doc(1, "FILLED", 1000))],
    })
    venue._emit([_accepted(1, qty=1000), _fill(1, 11, 400, 400)])  # the first fill was heard, the second not

    async def main() -> None:
        await venue.resync()  # myTrades answered, the order query failed: nothing half-reported
        assert len(venue.errors) == 1 and isinstance(venue.errors[0], VenueError)
        assert "GET /api/v3/order" in str(venue.errors[0])
        assert [f.trade_id for f in got if isinstance(f, OrderFilled)] == [11]
        await venue.resync()
        await venue.resync()

    asyncio.run(main())
    fills = [f for f in got if isinstance(f, OrderFilled)]
    assert [(f.trade_id, f.cum_qty, f.status) for f in fills] == [
        (11, 400, OrderStatus.PARTIALLY_FILLED), (12, 1000, OrderStatus.FILLED)]
    assert venue.tracker.get(1) is None and len(venue.errors) == 1
    assert sum(1 for path, _ in rest.calls if path == "/api/v3/myTrades") == 2  # settled: not asked a third time
    assert all(p["orderId"] == "1" for path, p in rest.calls if path == "/api/v3/myTrades")
    # the stream's copy of the recovered trade, arriving late, is dropped
    venue.user_events(_user_parser_events(_exec_report(1, 12, 600, 1000, "FILLED")))
    assert [f.trade_id for f in got if isinstance(f, OrderFilled)] == [11, 12]


def test_trades_lagging_the_order_report_fills_but_not_the_end() -> None:
    venue, got, _ = _venue({
        "/api/v3/account": {"balances": []},
        "/api/v3/openOrders": [],
        "/api/v3/myTrades": [_row(11, 1, 400)],  # the trade list has not caught up with the order yet
        "/api/v3/order": _order_doc(1, "CANCELED", 700),
    })
    venue._emit([_accepted(1, qty=1000)])
    asyncio.run(venue.resync())
    assert [f.trade_id for f in got if isinstance(f, OrderFilled)] == [11]
    assert not [e for e in got if isinstance(e, OrderCanceled)]  # its end waits until the trades add up
    t = venue.tracker.get(1)
    assert t is not None and not t.terminal
    venue.rest.routes["/api/v3/myTrades"] = [_row(11, 1, 400), _row(12, 1, 300)]  # type: ignore[attr-defined]
    asyncio.run(venue.resync())
    assert [f.trade_id for f in got if isinstance(f, OrderFilled)] == [11, 12]
    (c,) = [e for e in got if isinstance(e, OrderCanceled)]
    assert c.cum_qty == 700 and venue.tracker.get(1) is None


def test_an_order_still_open_and_further_executed_is_topped_up() -> None:
    venue, got, rest = _venue({
        "/api/v3/account": {"balances": []},
        "/api/v3/openOrders": [_order_doc(1, "PARTIALLY_FILLED", 400)],
        "/api/v3/myTrades": [_row(11, 1, 400)],
        "/api/v3/order": _order_doc(1, "PARTIALLY_FILLED", 400),
    })
    venue._emit([_accepted(1, qty=1000), _accepted(2, qty=1000, cid="d")])
    venue.rest.routes["/api/v3/openOrders"].append(_order_doc(2, "NEW", 0))  # type: ignore[attr-defined]
    asyncio.run(venue.resync())
    (f,) = [e for e in got if isinstance(e, OrderFilled)]
    assert (f.trade_id, f.status) == (11, OrderStatus.PARTIALLY_FILLED)
    assert [p["orderId"] for path, p in rest.calls if path == "/api/v3/myTrades"] == ["1"]  # order 2: nothing new
    assert venue.tracker.get(1) is not None and venue.tracker.get(2) is not None


def _user_parser_events(frame: str) -> list[Event]:
    from venues.binance.protocol import UserParser

    return UserParser().parse(frame, 9)
