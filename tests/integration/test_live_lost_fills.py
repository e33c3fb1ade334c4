"""The live adapter recovers fills it never heard about (``myTrades``), exactly once.

Against the project's venue server (``replay.serve.serve_in_thread``, seeded demo market, 127.0.0.1
port 0). The user stream is cut with the server's ``disconnect_streams`` fault; while it is down
(the hook runs synchronously on the client's loop when the adapter reports the user stream
``disconnected``, so the client cannot reconnect before it returns) the test makes the order trade
by handing the server's venue a market trade *through* the order's price, on the server's own loop.
The server publishes the resulting execution reports to nobody: the adapter must find them with
``GET /api/v3/myTrades`` + ``GET /api/v3/order`` after the reconnect. The server's venue is the
judge of what happened (trade ids, prices, quantities, commissions, executed quantity).

Our own cancel while the stream is down answers with the executed quantity: the kernel must
hear the fills the stream missed before it, never after (``LiveVenue.fills_first`` and the
tracker's hold). An order the server does not know is given up after two misses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from engine.events import (
    Event,
    FeedStatusChanged,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderStatusReported,
    TradeReceived,
)
from engine.fixed import parse_e8
from engine.identifiers import InstrumentId
from engine.orders import (
    CancelOrder,
    ListOrderStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from tests.integration.live_helpers import until as _until
from venues.binance.requests import RequestBuilder
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.streams import Backoff
from venues.binance.venue import LiveConfig, LiveVenue

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
TICK = 1_000_000  # 0.01 USDT
TIMEOUT_S = 30.0
_INJECTED_TRADE_IDS = itertools.count(9_000_000_000)


def _serve(**kw: Any) -> Any:
    from replay.serve import ServerConfig, serve_in_thread

    return serve_in_thread(ServerConfig(demo=True, seed=11, speed=1.0, **kw))


class _Session:
    """A LiveVenue on the server, every event it emitted, and hooks run when the user stream drops."""

    def __init__(self, info: Any, **kw: Any) -> None:
        self.info = info
        self.got: list[Event] = []
        self.on_drop: list[Callable[[], None]] = []
        cfg = LiveConfig(info.api_key, info.api_secret, rest_url=info.base_url, ws_url=info.ws_url, **kw)
        self.venue = LiveVenue(cfg, self._events)

    def _events(self, events: list[Event]) -> None:
        self.got.extend(events)
        for ev in events:
            if isinstance(ev, FeedStatusChanged) and ev.stream == "user" and ev.status == "disconnected" \
                    and self.on_drop:
                self.on_drop.pop(0)()  # blocking on purpose: the client cannot reconnect meanwhile

    def of(self, kind: type[Event], order_id: int) -> list[Any]:
        return [e for e in self.got if isinstance(e, kind) and getattr(e, "order_id", None) == order_id]

    async def price(self) -> int:
        resp = await self.venue.rest.send(RequestBuilder.public("/api/v3/ticker/price", [("symbol", "BTCUSDT")]))
        return parse_e8(resp.doc["price"]) // TICK * TICK

    async def place(self, cmd: SubmitOrder | SubmitOrderList) -> None:
        self.venue.handle(cmd, 0)
        cid = cmd.client_order_id if isinstance(cmd, SubmitOrder) else cmd.legs[0].client_order_id
        await _until(lambda: any(isinstance(e, OrderAccepted) and e.client_order_id == cid for e in self.got),
                     f"{cid} accepted")

    def accepted_id(self, cid: str) -> int:
        return next(e.order_id for e in self.got if isinstance(e, OrderAccepted) and e.client_order_id == cid)

    def cut_user_stream(self, while_down: Callable[[], None]) -> None:
        """Drop the user stream with the server's fault; ``while_down`` runs before it can come back."""
        assert self.venue.user is not None and self.venue.user.connected.is_set()
        self.on_drop.append(while_down)
        self.info.control.set_faults(disconnect_streams=True)


def _run(info: Any, body: Callable[[_Session], Coroutine[Any, Any, None]], **kw: Any) -> _Session:
    session = _Session(info, **kw)

    async def main() -> None:
        await session.venue.start()
        try:
            await body(session)
        finally:
            await session.venue.close()

    asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))
    return session


def _trade_through(info: Any, price: int, qty: int, buyer_maker: bool) -> tuple[list[OrderFilled], list[Any]]:
    """A market trade at ``price`` fed to the server's venue on its loop: our fills, and their stream messages."""
    server = info.control.server

    def feed() -> tuple[list[OrderFilled], list[Any]]:
        now = server.now()
        ev = TradeReceived(0, now, now, BTC, price, qty, next(_INJECTED_TRADE_IDS), buyer_maker)
        _, out = server.protocol.on_market(ev, now)
        return [e for e in out if isinstance(e, OrderFilled)], server.user_messages(out)

    fills, messages = info.control.call(feed)
    assert fills, "the injected trade filled nothing: the test's premise broke"
    return fills, messages


def _server_order(info: Any, order_id: int) -> Any:
    server = info.control.server
    return info.control.call(lambda: server.protocol.venue.order(order_id))


def _cancel_elsewhere(info: Any, order_id: int) -> dict[str, Any]:
    """``DELETE /api/v3/order`` from another client (an operator, another process): blocking on purpose."""
    builder = RequestBuilder(Signer(Credentials(info.api_key, info.api_secret.encode()), ServerTime()))
    req = builder.cancel(CancelOrder(BTC, order_id=order_id), time.time_ns())
    http = urllib.request.Request(info.base_url + req.target, method="DELETE", headers=dict(req.headers))
    with urllib.request.urlopen(http, timeout=10) as resp:
        doc: dict[str, Any] = json.loads(resp.read())
    return doc


def _limit_buy(cid: str, price: int, qty: int) -> SubmitOrder:
    return SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT, quantity=qty, price=price,
                       time_in_force=TimeInForce.GTC, client_order_id=cid)


def _same_fill(ours: OrderFilled, theirs: OrderFilled) -> None:
    assert (ours.trade_id, ours.price, ours.qty, ours.quote_qty, ours.commission, ours.commission_asset,
            ours.maker, ours.side, ours.client_order_id) == (
        theirs.trade_id, theirs.price, theirs.qty, theirs.quote_qty, theirs.commission, theirs.commission_asset,
        theirs.maker, theirs.side, theirs.client_order_id)


# --------------------------------------------------------------------------- tests


def test_fills_while_the_user_stream_is_down_are_recovered_once() -> None:
    with _serve() as info:
        server_fills: list[OrderFilled] = []

        async def body(s: _Session) -> None:
            price = await s.price() * 9 // 10 // TICK * TICK  # 10 % below the market: rests
            await s.place(_limit_buy("lost-1", price, 1_000_000))
            oid = s.accepted_id("lost-1")

            def fill_twice() -> None:
                for qty in (400_000, 600_000):  # two trades through our bid: two fills, the order is done
                    server_fills.extend(_trade_through(info, price - TICK, qty, buyer_maker=True)[0])

            s.cut_user_stream(fill_twice)
            await _until(lambda: any(f.status is OrderStatus.FILLED for f in s.of(OrderFilled, oid)),
                         "the fills recovered after the reconnect")
            assert s.venue.user is not None and s.venue.user.connects >= 2
            ours = s.of(OrderFilled, oid)
            assert [f.trade_id for f in ours] == [f.trade_id for f in server_fills]  # each once, in order
            for mine, theirs in zip(ours, server_fills, strict=True):
                _same_fill(mine, theirs)
            assert [f.status for f in ours] == [OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED]
            assert [f.cum_qty for f in ours] == [400_000, 1_000_000]
            snap = _server_order(info, oid)
            assert snap.status is OrderStatus.FILLED
            assert sum(f.qty for f in ours) == snap.executed_qty
            assert s.venue.tracker.get(oid) is None  # settled: no longer tracked
            assert not s.venue.errors

        _run(info, body)


def test_partial_fill_then_cancel_while_down() -> None:
    with _serve() as info:
        server_fills: list[OrderFilled] = []

        async def body(s: _Session) -> None:
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("lost-2", price, 1_000_000))
            oid = s.accepted_id("lost-2")

            def fill_then_cancel() -> None:
                server_fills.extend(_trade_through(info, price - TICK, 300_000, buyer_maker=True)[0])
                assert _cancel_elsewhere(info, oid)["status"] == "CANCELED"

            s.cut_user_stream(fill_then_cancel)
            await _until(lambda: bool(s.of(OrderCanceled, oid)), "the cancel recovered after the reconnect")
            fills, cancels = s.of(OrderFilled, oid), s.of(OrderCanceled, oid)
            assert len(fills) == 1 and len(cancels) == 1
            _same_fill(fills[0], server_fills[0])
            assert fills[0].status is OrderStatus.PARTIALLY_FILLED and fills[0].cum_qty == 300_000
            assert s.got.index(fills[0]) < s.got.index(cancels[0])  # the lifecycle's order: fill, then cancel
            snap = _server_order(info, oid)
            assert snap.status is OrderStatus.CANCELED
            assert cancels[0].cum_qty == snap.executed_qty == sum(f.qty for f in fills)
            assert cancels[0].cum_quote == snap.cum_quote
            assert not s.venue.errors

        _run(info, body)


def test_late_stream_report_of_a_recovered_trade_is_dropped() -> None:
    with _serve() as info:
        late: list[Any] = []

        async def body(s: _Session) -> None:
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("lost-3", price, 1_000_000))
            oid = s.accepted_id("lost-3")
            s.cut_user_stream(lambda: late.extend(_trade_through(info, price - TICK, 1_000_000, True)[1]))
            await _until(lambda: bool(s.of(OrderFilled, oid)), "the fill recovered")
            assert s.venue.user is not None
            reports = [m for m in late if m.get("e") == "executionReport" and m.get("x") == "TRADE"]
            assert reports, "the server produced no execution report for the fill"
            dropped = s.venue.dedupe.dropped
            for msg in late:  # the stream's own copy arrives after all (e.g. replayed by a proxy)
                s.venue.user.handle_frame(json.dumps(msg), s.venue.clock.now_ns())
            fills = s.of(OrderFilled, oid)
            assert len(fills) == 1 and fills[0].trade_id == int(reports[0]["t"])
            assert s.venue.dedupe.dropped >= dropped + len(reports)
            portfolio_qty = sum(f.qty for f in fills)
            assert portfolio_qty == _server_order(info, oid).executed_qty  # no double count

        _run(info, body)


def test_oco_leg_filled_while_down_both_legs_end_right() -> None:
    with _serve() as info:
        server_fills: list[OrderFilled] = []

        async def body(s: _Session) -> None:
            mkt = await s.price()
            above, below = mkt * 11 // 10 // TICK * TICK, mkt * 9 // 10 // TICK * TICK
            cmd = SubmitOrderList.oco(
                BTC, OrderSide.SELL, 1_000_000,
                above={"order_type": OrderType.LIMIT_MAKER, "price": above, "client_order_id": "oco-tp"},
                below={"order_type": OrderType.STOP_LOSS, "stop_price": below, "client_order_id": "oco-sl"},
                list_client_order_id="oco-1",
            )
            await s.place(cmd)
            await _until(lambda: any(isinstance(e, OrderAccepted) and e.client_order_id == "oco-sl" for e in s.got),
                         "both legs accepted")
            tp, sl = s.accepted_id("oco-tp"), s.accepted_id("oco-sl")
            s.cut_user_stream(lambda: server_fills.extend(_trade_through(info, above + TICK, 1_000_000, False)[0]))
            await _until(lambda: bool(s.of(OrderExpired, sl)) and any(f.status is OrderStatus.FILLED
                                                                       for f in s.of(OrderFilled, tp)),
                         "both legs' ends recovered")
            fills = s.of(OrderFilled, tp)
            assert [f.trade_id for f in fills] == [f.trade_id for f in server_fills]
            for mine, theirs in zip(fills, server_fills, strict=True):
                _same_fill(mine, theirs)
            assert fills[-1].status is OrderStatus.FILLED and fills[-1].order_list_id >= 0
            (expired,) = s.of(OrderExpired, sl)
            assert expired.status is OrderStatus.EXPIRED and expired.cum_qty == 0
            assert _server_order(info, tp).status is OrderStatus.FILLED
            assert _server_order(info, sl).status is OrderStatus.EXPIRED
            await _until(lambda: any(isinstance(e, OrderListStatusChanged) and e.list_order_status
                                     is ListOrderStatus.ALL_DONE for e in s.got), "the list's end recovered")
            assert not s.venue.errors and not s.venue.tracker.lists

        _run(info, body)


def test_failed_my_trades_is_an_error_and_a_later_reconcile_recovers_once() -> None:
    with _serve() as info:
        async def body(s: _Session) -> None:
            s.venue.rest.retries = 0  # one injected 500 fails one request
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("lost-5", price, 1_000_000))
            oid = s.accepted_id("lost-5")
            server_fills, _ = _trade_through(info, price - TICK, 1_000_000, buyer_maker=True)  # no stream: unheard
            info.control.set_faults(error_next=1, error_status=500)
            assert await s.venue.recover_lost_fills({}) == []  # nothing open; its myTrades query fails
            assert len(s.venue.errors) == 1 and "myTrades" in str(s.venue.errors[0])
            assert not s.of(OrderFilled, oid) and s.venue.tracker.get(oid) is not None  # still owed
            await s.venue.resync()
            await s.venue.resync()  # nothing left: a second round reports nothing again
            fills = s.of(OrderFilled, oid)
            assert [f.trade_id for f in fills] == [f.trade_id for f in server_fills]
            _same_fill(fills[0], server_fills[0])
            assert fills[-1].status is OrderStatus.FILLED
            assert sum(f.qty for f in fills) == _server_order(info, oid).executed_qty
            assert len(s.venue.errors) == 1 and s.venue.tracker.get(oid) is None

        _run(info, body, user_stream=False)


def test_lost_placement_answer_and_unheard_fills_are_recovered() -> None:
    with _serve() as info:
        async def body(s: _Session) -> None:
            price = await s.price() * 21 // 20 // TICK * TICK  # 5 % above: takes at once
            info.control.set_faults(drop_order_responses=1, drop_mode="close")
            s.venue.handle(_limit_buy("lost-6", price, 1_000_000), 0)
            await _until(lambda: any(isinstance(e, OrderAccepted) and e.client_order_id == "lost-6" for e in s.got),
                         "found by query")
            oid = s.accepted_id("lost-6")
            # the snapshot found by query states what had executed: those fills are fetched with it and
            # reach the kernel before the snapshot (the answer carrying them was lost, no stream either)
            mine = [e for e in s.got if getattr(e, "order_id", None) == oid
                    or isinstance(e, OrderStatusReported) and e.order is not None and e.order.order_id == oid]
            report = next(i for i, e in enumerate(mine) if isinstance(e, OrderStatusReported))
            found = mine[report]
            assert isinstance(found, OrderStatusReported) and found.order is not None
            stated = found.order.executed_qty
            assert stated > 0  # 5 % above the market: it took the book at once
            assert sum(e.qty for e in mine[:report] if isinstance(e, OrderFilled)) == stated
            assert not any(isinstance(e, OrderFilled) for e in mine[report:])
            # any rest fills on the next market trades: wait for the end, then a reconcile recovers those
            await _until(lambda: _server_order(info, oid).status is OrderStatus.FILLED, "the order filled")
            await s.venue.resync()
            fills = s.of(OrderFilled, oid)
            snap = _server_order(info, oid)
            assert fills and fills[-1].status is OrderStatus.FILLED
            assert sum(f.qty for f in fills) == snap.executed_qty == 1_000_000
            assert len({f.trade_id for f in fills}) == len(fills)

        _run(info, body, user_stream=False)


def _order_events(s: _Session, oid: int) -> list[tuple[str, int]]:
    """The kernel-facing fills (by trade id) and ends (by executed qty) of one order, in delivery order."""
    out = []
    for e in s.got:
        if isinstance(e, OrderFilled) and e.order_id == oid:
            out.append(("F", e.trade_id))
        elif isinstance(e, OrderCanceled | OrderExpired) and e.order_id == oid:
            out.append(("C" if isinstance(e, OrderCanceled) else "E", e.cum_qty))
    return out


def test_our_cancel_while_the_stream_is_down_reports_the_missed_fills_first() -> None:
    with _serve() as info:
        server_fills: list[OrderFilled] = []

        async def body(s: _Session) -> None:
            assert s.venue.user is not None
            s.venue.user.backoff = Backoff(base_s=4.0)  # the stream stays down (>= 2 s) while our cancel is answered
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("own-cancel-1", price, 1_000_000))
            oid = s.accepted_id("own-cancel-1")

            def fill_then_cancel() -> None:
                for qty in (300_000, 200_000):
                    server_fills.extend(_trade_through(info, price - TICK, qty, buyer_maker=True)[0])
                s.venue.handle(CancelOrder(BTC, order_id=oid), 0)  # sent once this hook returns

            s.cut_user_stream(fill_then_cancel)
            await _until(lambda: bool(s.of(OrderCanceled, oid)), "our cancel answered")
            assert s.venue.user.connects == 1  # the fills came with the cancel, not from a reconcile
            snap = _server_order(info, oid)
            assert snap.status is OrderStatus.CANCELED and snap.executed_qty == 500_000
            expected = [("F", f.trade_id) for f in server_fills] + [("C", snap.executed_qty)]
            assert _order_events(s, oid) == expected
            for mine, theirs in zip(s.of(OrderFilled, oid), server_fills, strict=True):
                _same_fill(mine, theirs)
            assert [f.cum_qty for f in s.of(OrderFilled, oid)] == [300_000, 500_000]
            await _until(lambda: s.venue.user is not None and s.venue.user.connects >= 2, "the stream back")
            await s.venue.resync()  # the reconcile after the reconnect finds nothing more
            assert _order_events(s, oid) == expected
            assert s.venue.tracker.get(oid) is None and not s.venue.errors

        _run(info, body)


def _fail_next_my_trades(s: _Session, info: Any) -> None:
    """The venue's next myTrades query meets an injected 500 (armed only when it is sent)."""
    fetch = s.venue._my_trades
    armed: list[bool] = []

    async def fails_once(instrument: InstrumentId, order_id: int) -> list[dict[str, Any]]:
        if not armed:
            armed.append(True)
            info.control.set_faults(error_next=1, error_status=500)
        return await fetch(instrument, order_id)

    s.venue._my_trades = fails_once  # type: ignore[method-assign]


def test_our_cancel_with_the_trade_query_failing_waits_for_the_next_reconcile() -> None:
    with _serve() as info:
        async def body(s: _Session) -> None:
            s.venue.rest.retries = 0  # one injected 500 fails one request
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("own-cancel-2", price, 1_000_000))
            oid = s.accepted_id("own-cancel-2")
            server_fills, _ = _trade_through(info, price - TICK, 400_000, buyer_maker=True)  # no stream: unheard
            _fail_next_my_trades(s, info)  # the cancel goes through; its myTrades query fails
            await s.venue.execute(CancelOrder(BTC, order_id=oid))
            assert _server_order(info, oid).status is OrderStatus.CANCELED
            assert _order_events(s, oid) == []  # the cancel is held: the fills it states are unheard
            assert len(s.venue.errors) == 1 and "myTrades" in str(s.venue.errors[0])
            tracked = s.venue.tracker.get(oid)
            assert tracked is not None and tracked.held
            await s.venue.resync()
            snap = _server_order(info, oid)
            expected = [("F", f.trade_id) for f in server_fills] + [("C", snap.executed_qty)]
            assert _order_events(s, oid) == expected and snap.executed_qty == 400_000
            _same_fill(s.of(OrderFilled, oid)[0], server_fills[0])
            (cancel,) = s.of(OrderCanceled, oid)
            assert cancel.cum_quote == snap.cum_quote
            await s.venue.resync()
            assert _order_events(s, oid) == expected  # each once
            assert len(s.venue.errors) == 1 and s.venue.tracker.get(oid) is None

        _run(info, body, user_stream=False, held_retry_s=3600.0)  # only the resyncs above release it


def test_a_held_cancel_is_released_by_the_venue_itself_without_a_reconnect() -> None:
    with _serve() as info:
        async def body(s: _Session) -> None:
            s.venue.rest.retries = 0
            price = await s.price() * 9 // 10 // TICK * TICK
            await s.place(_limit_buy("own-cancel-3", price, 1_000_000))
            oid = s.accepted_id("own-cancel-3")
            server_fills, _ = _trade_through(info, price - TICK, 300_000, buyer_maker=True)
            _fail_next_my_trades(s, info)
            await s.venue.execute(CancelOrder(BTC, order_id=oid))
            assert s.venue.tracker.holds_any() and _order_events(s, oid) == []
            # no reconnect, no manual resync: the venue's own retry reconciles and releases the end
            expected = [("F", f.trade_id) for f in server_fills] + [("C", 300_000)]
            await _until(lambda: _order_events(s, oid) == expected, "the held cancel released after its fills")
            assert not s.venue.tracker.holds_any() and len(s.venue.errors) == 1

        _run(info, body, user_stream=False, held_retry_s=0.05)


def test_an_order_the_server_does_not_know_is_given_up_after_two_misses() -> None:
    with _serve() as info:
        async def body(s: _Session) -> None:
            ghost = 987_654_321
            assert _server_order(info, ghost) is None  # the server never had it
            s.venue.tracker.adopt(BTC, ghost, "ghost-1", -1, OrderStatus.NEW, 0)  # e.g. archived since
            await s.venue.resync()
            assert s.venue.tracker.get(ghost) is not None and not s.venue.errors  # one miss: asked again
            await s.venue.resync()
            assert s.venue.tracker.get(ghost) is None
            await s.venue.resync()  # no longer asked, nothing more logged
            (err,) = s.venue.errors
            assert str(ghost) in str(err) and "-2013" in str(err)
            reports = [e for e in s.got if isinstance(e, OrderStatusReported) and e.code == -2013]
            assert len(reports) == 1 and reports[0].order is None and str(ghost) in reports[0].msg

        _run(info, body, user_stream=False)
