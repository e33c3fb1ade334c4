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
    CancelOrder,
    ContingencyType,
    ExpiryReason,
    ListOrderStatus,
    ListStatusType,
    OrderSide,
    OrderSnapshot,
    OrderStatus,
    OrderType,
    SelfTradePreventionMode,
    SubmitOrder,
    TimeInForce,
)
from venues.binance.protocol import terminal_events, trade_fill_events
from venues.binance.requests import RequestBuilder, SignedRequest
from venues.binance.rest import RestResponse
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.venue import LiveConfig, LiveVenue, OrderTracker, is_end

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
        answer = self.routes.get(f"{req.method} {req.path}", self.routes.get(req.path))
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


def _venue(routes: dict[str, Any], **cfg: Any) -> tuple[LiveVenue, list[Event], _ScriptedRest]:
    got: list[Event] = []
    rest = _ScriptedRest(routes)
    venue = LiveVenue(LiveConfig("k", "s", user_stream=False, **cfg), got.extend, rest=cast(Any, rest))
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


# --------------------------------------------------------------------------- an order's end never before its fills


def _kinds(events: list[Event], oid: int = 1) -> list[tuple[str, int]]:
    """(kind, trade id or cum_qty) of order ``oid``'s fills and ends, in delivery order."""
    out = []
    for e in events:
        if isinstance(e, OrderFilled) and e.order_id == oid:
            out.append(("F", e.trade_id))
        elif isinstance(e, OrderCanceled | OrderExpired) and e.order_id == oid:
            out.append(("C" if isinstance(e, OrderCanceled) else "E", e.cum_qty))
    return out


def test_gate_holds_an_end_ahead_of_its_fills_and_releases_it_behind_the_last() -> None:
    tr = OrderTracker()
    assert tr.admit(_accepted(1, qty=1000)) == [_accepted(1, qty=1000)]
    assert tr.admit(_fill(1, 10, 300, 300)) == [_fill(1, 10, 300, 300)]
    assert tr.admit(_canceled(1, 700)) == []  # 700 executed, 300 reported: held
    assert tr.admit(_canceled(1, 700)) == []  # a second copy is held as one
    t = tr.get(1)
    assert t is not None and t.terminal and not t.settled and len(t.held) == 1
    assert [x.order_id for x in tr.to_query({})] == [1]  # still owed: the next reconcile asks
    assert tr.admit(_fill(1, 11, 200, 500)) == [_fill(1, 11, 200, 500)]  # not there yet
    assert tr.admit(_fill(1, 12, 200, 700)) == [_fill(1, 12, 200, 700), _canceled(1, 700)]
    tr.sweep()
    assert tr.get(1) is None


def test_gate_passes_ends_of_unknown_orders_and_ends_already_covered() -> None:
    tr = OrderTracker()
    assert tr.admit(_canceled(5, 700)) == [_canceled(5, 700)]  # never ours: nothing to wait for
    tr.admit(_accepted(1, qty=1000))
    tr.admit(_fill(1, 10, 300, 300))
    assert tr.admit(_canceled(1, 300)) == [_canceled(1, 300)]
    tr.sweep()
    assert tr.get(1) is None


def test_a_list_end_waits_for_its_held_legs() -> None:
    tr = OrderTracker()
    executing = OrderListStatusChanged(0, 1, 1, BTC, 9, "l", ContingencyType.OCO, ListStatusType.EXEC_STARTED,
                                       ListOrderStatus.EXECUTING, (1, 2), ("a", "b"))
    done = msgspec.structs.replace(executing, list_status_type=ListStatusType.ALL_DONE,
                                   list_order_status=ListOrderStatus.ALL_DONE)
    for ev in (executing, _accepted(1, "a", 1000, 9), _accepted(2, "b", 1000, 9)):
        tr.admit(ev)
    leg_end = msgspec.structs.replace(_canceled(1, 400), client_order_id="a", order_list_id=9)
    assert tr.admit(leg_end) == []
    assert tr.admit(done) == []  # leg 1's fills are not in yet
    fill = msgspec.structs.replace(_fill(1, 10, 400, 400, cid="a"), order_list_id=9)
    assert tr.admit(fill) == [fill, leg_end, done]
    assert tr.held_lists == {}


def test_ends_ahead_counts_the_fills_of_the_same_answer() -> None:
    tr = OrderTracker()
    tr.observe([_accepted(1, qty=1000), _fill(1, 10, 300, 300)])
    batch: list[Event] = [_fill(1, 11, 200, 500), _canceled(1, 500), _canceled(7, 900)]
    assert tr.ends_ahead(batch) == []  # order 1 is covered by its answer's fill; 7 is not ours
    (owed,) = tr.ends_ahead([_fill(1, 11, 200, 500), _canceled(1, 800)])
    assert owed.end == _canceled(1, 800) and owed.reported == {10, 11} and owed.baseline == 0
    new_and_ended = [_accepted(3, qty=1000), msgspec.structs.replace(_canceled(3, 100), order_id=3)]
    assert [o.end.order_id for o in tr.ends_ahead(new_and_ended)] == [3]  # accepted in the same answer


def _cancel_doc(oid: int, executed: int) -> dict[str, Any]:
    return {"symbol": "BTCUSDT", "origClientOrderId": "c", "orderId": oid, "orderListId": -1,
            "clientOrderId": "cx", "transactTime": 9, "price": format_e8(PX), "origQty": format_e8(1000),
            "executedQty": format_e8(executed), "cummulativeQuoteQty": format_e8(PX * executed // SCALE),
            "status": "CANCELED", "timeInForce": "GTC", "type": "LIMIT", "side": "BUY",
            "selfTradePreventionMode": "NONE"}


def test_our_cancel_fetches_the_missed_fills_and_reports_them_first() -> None:
    venue, got, rest = _venue({
        "DELETE /api/v3/order": _cancel_doc(1, 700),
        "/api/v3/myTrades": [_row(10, 1, 300), _row(11, 1, 400)],
    })
    venue._emit([_accepted(1, qty=1000), _fill(1, 10, 300, 300)])  # trade 11 went by while the stream was down
    asyncio.run(venue.execute(CancelOrder(BTC, order_id=1)))
    assert _kinds(got) == [("F", 10), ("F", 11), ("C", 700)]
    fill = cast(OrderFilled, got[-2])
    assert (fill.cum_qty, fill.status) == (700, OrderStatus.PARTIALLY_FILLED)
    cancel = cast(OrderCanceled, got[-1])
    assert cancel.cancel_client_order_id == "cx"  # the answer's own report, not a rebuilt one
    assert [p["orderId"] for path, p in rest.calls if path == "/api/v3/myTrades"] == ["1"]
    assert venue.tracker.get(1) is None and not venue.errors


def test_a_failed_trade_query_holds_the_cancel_until_a_reconcile_brings_the_fills() -> None:
    venue, got, _ = _venue({
        "DELETE /api/v3/order": _cancel_doc(1, 700),
        "/api/v3/myTrades": [(500, {"code": -1000, "msg": "An unknown error occurred"}),
                             (200, [_row(10, 1, 300), _row(11, 1, 400)])],
        "/api/v3/account": {"balances": []},
        "/api/v3/openOrders": [],
        "GET /api/v3/order": _order_doc(1, "CANCELED", 700),
    })
    venue._emit([_accepted(1, qty=1000), _fill(1, 10, 300, 300)])
    asyncio.run(venue.execute(CancelOrder(BTC, order_id=1)))
    assert _kinds(got) == [("F", 10)]  # the cancel waits for trade 11
    assert len(venue.errors) == 1 and "myTrades" in str(venue.errors[0])
    venue.user_events(_user_parser_events(_exec_report(1, 10, 300, 300, "PARTIALLY_FILLED")))  # a stale copy
    assert _kinds(got) == [("F", 10)]
    asyncio.run(venue.resync())
    assert _kinds(got) == [("F", 10), ("F", 11), ("C", 700)]  # the snapshot's own cancel is a duplicate
    assert [e for e in got if isinstance(e, OrderCanceled)][0].cancel_client_order_id == "cx"
    assert venue.tracker.get(1) is None and len(venue.errors) == 1
    asyncio.run(venue.resync())
    assert _kinds(got) == [("F", 10), ("F", 11), ("C", 700)]


def test_a_placement_answer_expired_with_fills_it_does_not_list_fetches_them_first() -> None:
    """``newOrderRespType=RESULT``: an IOC that traded says EXPIRED with executedQty but lists no fills."""
    doc = {**_order_doc(3, "EXPIRED", 400), "timeInForce": "IOC", "transactTime": 9, "clientOrderId": "ioc"}
    venue, got, _ = _venue({"POST /api/v3/order": doc, "/api/v3/myTrades": [_row(20, 3, 400)]})
    cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT, quantity=1000, price=PX, time_in_force=TimeInForce.IOC,
                      client_order_id="ioc")
    asyncio.run(venue.execute(cmd))
    assert [type(e).__name__ for e in got if not type(e).__name__.startswith("Latency")] == [
        "OrderAccepted", "OrderFilled", "OrderExpired"]
    assert _kinds(got, 3) == [("F", 20), ("E", 400)] and venue.tracker.get(3) is None


@settings(max_examples=150, deadline=None)
@given(qtys=st.lists(st.integers(1, 10**6), min_size=1, max_size=6), data=st.data())
def test_whatever_the_arrival_order_the_end_goes_out_last_and_everything_once(
        qtys: list[int], data: st.DataObject) -> None:
    """Fills and copies of the end arriving in any order and batches: the kernel sees each once, the end last."""
    venue, got, _ = _venue({})
    total = sum(qtys)
    venue._emit([_accepted(1, qty=total + 1)])
    cums = [sum(qtys[: i + 1]) for i in range(len(qtys))]
    arrivals: list[Event] = [_fill(1, 100 + i, q, c) for i, (q, c) in enumerate(zip(qtys, cums, strict=True))]
    arrivals += [_canceled(1, total)] * data.draw(st.integers(1, 3))
    arrivals += [arrivals[i] for i in data.draw(st.lists(st.integers(0, len(qtys) - 1), max_size=3))]  # dup fills
    order = data.draw(st.permutations(arrivals))
    cuts = sorted(data.draw(st.sets(st.integers(1, max(1, len(order) - 1)), max_size=3)))
    for lo, hi in zip([0, *cuts], [*cuts, len(order)], strict=True):
        venue._emit(list(order[lo:hi]))
    kinds = _kinds(got)
    assert kinds[-1] == ("C", total)
    assert sorted(k for k in kinds if k[0] == "F") == [("F", 100 + i) for i in range(len(qtys))]
    assert len(kinds) == len(qtys) + 1 and venue.tracker.get(1) is None


# --------------------------------------------------------------------------- orders the venue no longer serves


_NOT_FOUND = (400, {"code": -2013, "msg": "Order does not exist."})


def test_an_order_not_found_twice_in_a_row_is_given_up_with_one_error() -> None:
    venue, got, rest = _venue({
        "/api/v3/account": {"balances": []}, "/api/v3/openOrders": [], "/api/v3/myTrades": [],
        "GET /api/v3/order": _NOT_FOUND,
    })
    venue._emit([_accepted(1, qty=1000)])

    async def main() -> None:
        await venue.resync()
        assert not venue.errors and venue.tracker.get(1) is not None  # one miss may be the venue catching up
        await venue.resync()
        await venue.resync()  # no longer asked

    asyncio.run(main())
    (err,) = venue.errors
    assert isinstance(err, VenueError) and "order 1" in str(err) and "-2013" in str(err)
    (rep,) = [e for e in got if isinstance(e, OrderStatusReported)]
    assert rep.order is None and rep.code == -2013 and "order 1 ('c'" in rep.msg
    assert venue.tracker.get(1) is None
    assert sum(1 for path, _ in rest.calls if path == "/api/v3/order") == 2


def test_a_found_answer_resets_the_misses_and_the_limit_is_configurable() -> None:
    venue, got, rest = _venue({
        "/api/v3/account": {"balances": []}, "/api/v3/openOrders": [], "/api/v3/myTrades": [],
        "GET /api/v3/order": [_NOT_FOUND, (200, _order_doc(1, "NEW", 0)), _NOT_FOUND, _NOT_FOUND, _NOT_FOUND],
    }, forget_missing_after=3)
    venue._emit([_accepted(1, qty=1000)])

    async def main() -> None:
        for _ in range(4):  # miss, found (reset), miss, miss: still below 3 in a row
            await venue.resync()
        assert venue.tracker.get(1) is not None and not venue.errors
        await venue.resync()

    asyncio.run(main())
    assert venue.tracker.get(1) is None and len(venue.errors) == 1
    assert sum(1 for e in got if isinstance(e, OrderStatusReported) and e.code == -2013) == 1


def test_giving_up_releases_an_end_the_venue_had_stated() -> None:
    venue, got, _ = _venue({
        "DELETE /api/v3/order": _cancel_doc(1, 700), "/api/v3/myTrades": (500, {"code": -1000, "msg": "x"}),
        "/api/v3/account": {"balances": []}, "/api/v3/openOrders": [], "GET /api/v3/order": _NOT_FOUND,
    })
    venue._emit([_accepted(1, qty=1000)])

    async def main() -> None:
        await venue.execute(CancelOrder(BTC, order_id=1))
        assert _kinds(got) == []  # held: its 700 are unheard
        await venue.resync()  # myTrades fails again: no miss counted, nothing out
        venue.rest.routes["/api/v3/myTrades"] = []  # type: ignore[attr-defined]
        await venue.resync()
        await venue.resync()

    asyncio.run(main())
    assert _kinds(got) == [("C", 700)]  # the fills are unknowable now; the end is not withheld for ever
    assert isinstance(got[-1], OrderStatusReported) and got[-1].code == -2013
    assert venue.tracker.get(1) is None and is_end(got[-2])
