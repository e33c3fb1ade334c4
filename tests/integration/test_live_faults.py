"""Fault tests of the live adapter against a Binance-speaking server on 127.0.0.1.

The project's local venue server (``venues.server``) is being built alongside; until it exposes
``replay.serve.serve_in_thread`` these tests run against :class:`StubVenue` below: a
small aiohttp app that speaks exactly the parts of Binance's protocol the faults need (HMAC
signatures, timestamp/recvWindow, newClientOrderId duplicates, 429 with Retry-After, diff-depth
streams with update ids, a listenKey user stream) and can inject the faults. It runs on the
test's own event loop, bound to port 0.

Faults covered (issue 5): a dropped order response never yields a duplicate order; a skipped
depth update id triggers a resync after which the book equals the server's; a stream disconnect
loses no message the server sent after the reconnect; a 429 makes the client back off; a bad
signature / stale timestamp gets -1022 / -1021 and a clear error.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import WSMsgType, web

from engine.events import (
    BalanceUpdated,
    BookDeltaReceived,
    BookSnapshotReceived,
    Event,
    FeedStatusChanged,
    OrderAccepted,
    OrderFilled,
    OrderListStatusChanged,
    OrderRejected,
    OrderStatusReported,
    TradeReceived,
)
from engine.fixed import format_e8
from engine.identifiers import InstrumentId
from engine.orders import (
    OrderLeg,
    OrderSide,
    OrderStatus,
    OrderType,
    SubmitOrder,
    SubmitOrderList,
    TimeInForce,
)
from tests.integration.live_helpers import until as _until
from venues.binance.orders import OrderExecutor
from venues.binance.requests import RequestBuilder
from venues.binance.rest import ClockRejected, CredentialsRejected, RestClient
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.streams import Backoff, MarketStream
from venues.binance.userstream import UserStream
from venues.binance.venue import LiveConfig, LiveVenue

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
KEY, SECRET = "stub-key", "stub-secret-0123456789"
TIMEOUT_S = 30.0


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _err(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"code": code, "msg": msg}, status=status, headers=headers)


class StubVenue:
    """Just enough Binance (see module doc). Faults are plain attributes the test flips."""

    def __init__(self, seed: int = 1) -> None:
        self.rng = random.Random(seed)
        self.orders: dict[str, dict[str, Any]] = {}  # clientOrderId -> order
        self.order_posts = 0
        self.lists: dict[str, dict[str, Any]] = {}  # listClientOrderId -> list
        self.keepalives = 0
        self.ids = itertools.count(1)
        self.trade_ids = itertools.count(100)
        self.request_log: list[tuple[str, str]] = []
        self.time_skew_ms = 0  # what /api/v3/time lies by
        # faults
        self.drop_order_response = 0  # take the order, then drop the connection (n times)
        self.drop_order_request = 0  # drop the connection before taking the order (n times)
        self.answer_429 = 0
        self.skip_update_ids = 0
        self.disconnect_streams = False
        # market
        self.update_id = 1000
        self.book: dict[str, dict[int, int]] = {"bids": {}, "asks": {}}
        for i in range(1, 21):
            self.book["bids"][6_000_000_000_000 - i * 1_000_000] = 10**8
            self.book["asks"][6_000_000_000_000 + i * 1_000_000] = 10**8
        self.sent: list[list[bytes]] = []  # per market connection: every frame sent
        self.market_ws: list[web.WebSocketResponse] = []
        self.user_ws: list[web.WebSocketResponse] = []
        self.app = web.Application()
        self.app.add_routes([
            web.get("/api/v3/time", self.time),
            web.post("/api/v3/order", self.new_order),
            web.get("/api/v3/order", self.query_order),
            web.get("/api/v3/depth", self.depth),
            web.get("/api/v3/account", self.account),
            web.get("/api/v3/openOrders", self.open_orders),
            web.post("/api/v3/orderList/oco", self.new_oco),
            web.get("/api/v3/orderList", self.query_list),
            web.post("/api/v3/userDataStream", self.listen_key),
            web.put("/api/v3/userDataStream", self.listen_key),
            web.get("/stream", self.market_stream),
            web.get("/ws/{key}", self.user_stream),
        ])
        self.runner: web.AppRunner | None = None
        self.base_url = ""
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> StubVenue:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = self.runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
        for ws in [*self.market_ws, *self.user_ws]:
            await ws.close()
        assert self.runner is not None
        await self.runner.cleanup()

    # ------------------------------------------------------------- auth

    async def _signed(self, request: web.Request) -> dict[str, str] | web.Response:
        self.request_log.append((request.method, request.path))
        if self.answer_429:
            self.answer_429 -= 1
            return _err(-1003, "Too many requests; current limit is 6000 request weight per 1 MINUTE.", 429,
                        {"Retry-After": "1"})
        if request.headers.get("X-MBX-APIKEY") != KEY:
            return _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        query = request.rel_url.raw_query_string.encode()
        body = await request.read()
        total = query + body
        payload, _, sig = total.rpartition(b"&signature=")
        if hmac.new(SECRET.encode(), payload, hashlib.sha256).hexdigest().encode() != sig:
            return _err(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload.decode()))
        now = _ms()
        ts, window = int(params["timestamp"]), int(params.get("recvWindow", "5000"))
        if ts >= now + 1000:
            return _err(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if now - ts > window:
            return _err(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # ------------------------------------------------------------- REST

    async def time(self, request: web.Request) -> web.Response:
        return web.json_response({"serverTime": _ms() + self.time_skew_ms},
                                 headers={"X-MBX-USED-WEIGHT-1M": str(len(self.request_log))})

    async def new_order(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        if self.drop_order_request:
            self.drop_order_request -= 1
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        self.order_posts += 1
        cid = params["newClientOrderId"]
        if cid in self.orders and self.orders[cid]["status"] == "NEW":
            return _err(-2010, "Duplicate order sent.")
        order = {
            "symbol": params["symbol"], "orderId": next(self.ids), "orderListId": -1, "clientOrderId": cid,
            "transactTime": _ms(), "price": params.get("price", "0"), "origQty": params["quantity"],
            "executedQty": "0", "origQuoteOrderQty": "0", "cummulativeQuoteQty": "0", "status": "NEW",
            "timeInForce": params.get("timeInForce", "GTC"), "type": params["type"], "side": params["side"],
            "workingTime": _ms(), "selfTradePreventionMode": "NONE", "fills": [],
        }
        self.orders[cid] = order
        await self._report(order, "NEW")
        if self.drop_order_response:
            self.drop_order_response -= 1
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        return web.json_response(order, headers={"X-MBX-ORDER-COUNT-10S": str(self.order_posts)})

    async def query_order(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        order = self.orders.get(params.get("origClientOrderId", ""))
        if order is None:
            return _err(-2013, "Order does not exist.")
        snap = {k: v for k, v in order.items() if k not in ("fills", "transactTime")}
        snap.update(time=order["transactTime"], updateTime=order["transactTime"], isWorking=True, stopPrice="0",
                    icebergQty="0")
        return web.json_response(snap)

    async def depth(self, request: web.Request) -> web.Response:
        self.request_log.append((request.method, request.path))
        bids = sorted(self.book["bids"].items(), reverse=True)
        asks = sorted(self.book["asks"].items())
        return web.json_response({
            "lastUpdateId": self.update_id,
            "bids": [[format_e8(p), format_e8(q)] for p, q in bids],
            "asks": [[format_e8(p), format_e8(q)] for p, q in asks],
        })

    async def account(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        return web.json_response({"updateTime": _ms(), "balances": [
            {"asset": "BTC", "free": "1.50000000", "locked": "0.00000000"},
            {"asset": "USDT", "free": "1000.00000000", "locked": "59.00000000"}]})

    async def open_orders(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        out = []
        for order in self.orders.values():
            if order["status"] == "NEW":
                snap = {k: v for k, v in order.items() if k not in ("fills", "transactTime")}
                snap.update(time=order["transactTime"], updateTime=order["transactTime"], isWorking=True)
                out.append(snap)
        return web.json_response(out)

    async def new_oco(self, request: web.Request) -> web.StreamResponse:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        self.order_posts += 1
        lid = params["listClientOrderId"]
        if lid in self.lists:
            return _err(-2010, "Duplicate order sent.")
        legs = [{"symbol": params["symbol"], "orderId": next(self.ids), "clientOrderId": params[f"{p}ClientOrderId"]}
                for p in ("above", "below")]
        self.lists[lid] = {"orderListId": next(self.ids), "contingencyType": "OCO", "listStatusType": "EXEC_STARTED",
                           "listOrderStatus": "EXECUTING", "listClientOrderId": lid, "transactionTime": _ms(),
                           "symbol": params["symbol"], "orders": legs}
        if self.drop_order_response:
            self.drop_order_response -= 1
            assert request.transport is not None
            request.transport.close()
            raise asyncio.CancelledError
        return web.json_response(self.lists[lid])

    async def query_list(self, request: web.Request) -> web.Response:
        params = await self._signed(request)
        if isinstance(params, web.Response):
            return params
        found = self.lists.get(params.get("origClientOrderId", ""))
        return web.json_response(found) if found else _err(-2011, "Order list does not exist.")

    async def listen_key(self, request: web.Request) -> web.Response:
        if request.headers.get("X-MBX-APIKEY") != KEY:
            return _err(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if request.method == "PUT":
            self.keepalives += 1
        return web.json_response({"listenKey": "lk-1"} if request.method == "POST" else {})

    # ------------------------------------------------------------- streams

    async def user_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.user_ws.append(ws)
        async for _ in ws:
            pass
        return ws

    async def _report(self, order: dict[str, Any], x: str) -> None:
        rep = {"e": "executionReport", "E": _ms(), "s": order["symbol"], "c": order["clientOrderId"],
               "S": order["side"], "o": order["type"], "f": order["timeInForce"], "q": order["origQty"],
               "p": order["price"], "P": "0", "F": "0", "g": -1, "C": "", "x": x, "X": order["status"], "r": "NONE",
               "i": order["orderId"], "l": "0", "z": "0", "L": "0", "n": "0", "N": None, "T": _ms(), "t": -1,
               "I": next(self.trade_ids), "w": True, "m": False, "M": False, "O": _ms(), "Z": "0", "Y": "0",
               "Q": "0", "W": order["workingTime"], "V": "NONE"}
        for ws in self.user_ws:
            if not ws.closed:
                await ws.send_str(json.dumps(rep))

    async def market_stream(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        self.market_ws.append(ws)
        self.sent.append([])
        if self._pump is None:
            self._pump = asyncio.get_running_loop().create_task(self._pump_diffs())
        async for msg in ws:
            if msg.type is WSMsgType.ERROR:
                break
        return ws

    def _change(self) -> tuple[list[list[str]], list[list[str]]]:
        out: dict[str, list[list[str]]] = {"bids": [], "asks": []}
        for _ in range(3):
            side = self.rng.choice(("bids", "asks"))
            step = self.rng.randrange(1, 25) * 1_000_000
            price = 6_000_000_000_000 - step if side == "bids" else 6_000_000_000_000 + step
            qty = self.rng.choice((0, self.rng.randrange(1, 500) * 1_000_000))
            if qty:
                self.book[side][price] = qty
            else:
                self.book[side].pop(price, None)
            out[side].append([format_e8(price), format_e8(qty)])
        return out["bids"], out["asks"]

    async def _pump_diffs(self) -> None:
        """A diff every 5 ms (and a trade every other one) to every open market connection."""
        n = 0
        while True:
            await asyncio.sleep(0.005)
            live = [(ws, log) for ws, log in zip(self.market_ws, self.sent, strict=True) if not ws.closed]
            if not live:
                continue
            if self.disconnect_streams:
                self.disconnect_streams = False
                for ws, _ in live:
                    await ws.close()
                continue
            first = self.update_id + 1
            bids, asks = self._change()
            self.update_id += 1
            if self.skip_update_ids:  # the venue "loses" this diff: applied to its book, never sent
                self.skip_update_ids -= 1
                continue
            n += 1
            frames = [json.dumps({"stream": "btcusdt@depth@100ms", "data": {
                "e": "depthUpdate", "E": _ms(), "s": "BTCUSDT", "U": first, "u": self.update_id, "b": bids,
                "a": asks}}).encode()]
            if n % 2 == 0:
                frames.append(json.dumps({"stream": "btcusdt@trade", "data": {
                    "e": "trade", "E": _ms(), "s": "BTCUSDT", "t": n, "p": "60000.01", "q": "0.001", "T": _ms(),
                    "m": True, "M": True}}).encode())
            for ws, log in live:
                for frame in frames:
                    log.append(frame)
                    await ws.send_bytes(frame)


# --------------------------------------------------------------------------- helpers


def _rest(base_url: str, *, secret: str = SECRET, recv_window_ms: int = 5000,
          sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> RestClient:
    signer = Signer(Credentials(KEY, secret.encode()), ServerTime(), recv_window_ms)
    return RestClient(base_url, RequestBuilder(signer), timeout_s=5.0, sleep=sleep, rng=random.Random(3))


def _order(cid: str) -> SubmitOrder:
    return SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT, quantity=100_000, price=5_900_000_000_000,
                       time_in_force=TimeInForce.GTC, client_order_id=cid)


def _run(body: Callable[[StubVenue], Awaitable[None]]) -> None:
    async def main() -> None:
        stub = await StubVenue().start()
        try:
            await asyncio.wait_for(body(stub), TIMEOUT_S)
        finally:
            await stub.stop()

    asyncio.run(main())




# --------------------------------------------------------------------------- orders


def test_dropped_order_response_never_yields_a_duplicate_order() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        cfg = LiveConfig(KEY, SECRET, rest_url=stub.base_url, ws_url=stub.base_url.replace("http", "ws"))
        venue = LiveVenue(cfg, got.extend)
        await venue.start()
        stub.drop_order_response = 1
        venue.set_market_recv_ns(venue.clock.now_ns())
        assert venue.handle(_order("drop-1"), 0) == []
        await _until(lambda: any(isinstance(e, OrderAccepted) for e in got), "the order is reported accepted")
        await _until(lambda: sum(isinstance(e, OrderAccepted) for e in got) == 1 and venue.executor.reconciliations > 0,
                     "reconciled")
        await asyncio.sleep(0.1)  # let the user stream's copy arrive: it must be deduplicated
        await venue.close()
        assert stub.order_posts == 1 and len(stub.orders) == 1
        assert [e.client_order_id for e in got if isinstance(e, OrderAccepted)] == ["drop-1"]
        assert venue.executor.resends == 0
        assert any(getattr(e, "metric", "") == "tick_to_order" for e in got)

    _run(body)


def test_lost_request_is_resent_once_with_the_same_id() -> None:
    async def body(stub: StubVenue) -> None:
        rest = _rest(stub.base_url, recv_window_ms=300)
        ex = OrderExecutor(rest)
        stub.drop_order_request = 1  # the first POST never reaches the matching engine
        events = await ex.submit(_order("lost-1"))
        stub.drop_order_response = 1  # the resend lands but its answer is lost too
        again = await ex.submit(_order("lost-2"))
        await rest.close()
        assert [type(e) for e in events] == [OrderAccepted]
        assert ex.resends == 1 and stub.order_posts == 2
        assert sorted(stub.orders) == ["lost-1", "lost-2"]
        assert any(isinstance(e, OrderAccepted) and e.client_order_id == "lost-2" for e in again)

    _run(body)


def test_duplicate_answer_is_reconciled_not_reported_as_rejection() -> None:
    async def body(stub: StubVenue) -> None:
        rest = _rest(stub.base_url)
        ex = OrderExecutor(rest)
        first = await ex.submit(_order("dup-1"))
        second = await ex.submit(_order("dup-1"))  # e.g. a retry by an upper layer
        await rest.close()
        assert stub.order_posts == 2 and len(stub.orders) == 1
        assert isinstance(first[0], OrderAccepted) and isinstance(second[0], OrderAccepted)
        assert first[0].order_id == second[0].order_id
        assert not any(isinstance(e, OrderRejected) for e in second)

    _run(body)


def test_dropped_order_list_response_never_yields_a_second_list() -> None:
    async def body(stub: StubVenue) -> None:
        rest = _rest(stub.base_url)
        ex = OrderExecutor(rest)
        oco = SubmitOrderList.oco(
            BTC, OrderSide.SELL, 100_000,
            OrderLeg(OrderSide.SELL, OrderType.LIMIT_MAKER, 100_000, price=7_000_000_000_000, client_order_id="a"),
            OrderLeg(OrderSide.SELL, OrderType.STOP_LOSS, 100_000, stop_price=5_000_000_000_000, client_order_id="b"),
            list_client_order_id="list-1",
        )
        stub.drop_order_response = 1
        events = await ex.submit(oco)
        await rest.close()
        assert stub.order_posts == 1 and list(stub.lists) == ["list-1"] and ex.resends == 0
        [status] = events
        assert isinstance(status, OrderListStatusChanged)
        assert status.client_order_ids == ("a", "b") and status.list_client_order_id == "list-1"

    _run(body)


def test_startup_reconciliation_reports_balances_and_open_orders() -> None:
    async def body(stub: StubVenue) -> None:
        cfg = LiveConfig(KEY, SECRET, rest_url=stub.base_url, user_stream=False)
        venue = LiveVenue(cfg, lambda evs: None)
        await venue.start()
        await venue.executor.submit(_order("open-1"))
        events = await venue.reconcile()
        await venue.close()
        bal, report = events
        assert isinstance(bal, BalanceUpdated)
        assert bal.balances == (("BTC", 150_000_000, 0), ("USDT", 100_000_000_000, 5_900_000_000))
        assert isinstance(report, OrderStatusReported) and report.order is not None
        assert (report.order.client_order_id, report.order.status, report.order.orig_qty) == (
            "open-1", OrderStatus.NEW, 100_000)

    _run(body)


def test_user_stream_keeps_its_listen_key_alive() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        rest = _rest(stub.base_url)
        user = UserStream(rest, stub.base_url.replace("http", "ws"), got.extend, keepalive_s=0.05)
        task = asyncio.get_running_loop().create_task(user.run())
        await _until(lambda: stub.keepalives >= 2 and user.keepalives >= 2, "two keepalives")
        await user.stop()
        await task
        await rest.close()
        assert user.listen_key == "lk-1" and user.keepalives >= 2
        assert [e.status for e in got if isinstance(e, FeedStatusChanged)][:1] == ["connected"]

    _run(body)


# --------------------------------------------------------------------------- auth and time


def test_bad_signature_is_a_clear_error() -> None:
    async def body(stub: StubVenue) -> None:
        rest = _rest(stub.base_url, secret="not-the-secret")
        with pytest.raises(CredentialsRejected) as info:
            await rest.send(lambda ns: rest.builder.new_order(_order("sig-1"), ns))
        await rest.close()
        assert info.value.code == -1022
        assert "Signature for this request is not valid." in str(info.value)
        assert "check the API key and secret" in str(info.value)
        assert stub.order_posts == 0

    _run(body)


def test_bad_signature_reaches_the_strategy_as_a_rejection() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        errors: list[Exception] = []
        cfg = LiveConfig(KEY, "wrong-secret", rest_url=stub.base_url, user_stream=False)
        venue = LiveVenue(cfg, got.extend, on_error=errors.append)
        await venue.start()
        events = await venue.execute(_order("sig-2"))
        await venue.close()
        assert isinstance(events[0], OrderRejected) and events[0].code == -1022
        assert isinstance(errors[0], CredentialsRejected)

    _run(body)


def test_stale_timestamp_resyncs_once_then_fails_clearly() -> None:
    async def body(stub: StubVenue) -> None:
        rest = _rest(stub.base_url, recv_window_ms=1000)
        statuses: list[FeedStatusChanged] = []
        rest.on_status = statuses.append
        await rest.sync_time()
        rest.server_time.offset_ms -= 10_000  # our idea of server time drifted 10 s behind
        resp = await rest.send(lambda ns: rest.builder.new_order(_order("ts-1"), ns))
        assert resp.status == 200 and stub.order_posts == 1  # -1021, re-measured, re-signed, accepted
        assert [s.status for s in statuses] == ["resync_started"]
        stub.time_skew_ms = -10_000  # now the venue's /time itself disagrees with its checks
        rest.server_time.invalidate()
        with pytest.raises(ClockRejected) as info:
            await rest.send(lambda ns: rest.builder.new_order(_order("ts-2"), ns))
        await rest.close()
        assert info.value.code == -1021 and "recvWindow 1000 ms" in str(info.value)
        assert "outside of the recvWindow" in str(info.value)

    _run(body)


# --------------------------------------------------------------------------- rate limits


def test_429_makes_the_client_back_off_for_retry_after() -> None:
    async def body(stub: StubVenue) -> None:
        slept: list[float] = []

        async def fake_sleep(s: float) -> None:
            slept.append(s)
            await asyncio.sleep(0)

        rest = _rest(stub.base_url, sleep=fake_sleep)
        statuses: list[FeedStatusChanged] = []
        rest.on_status = statuses.append
        await rest.sync_time()
        stub.answer_429 = 1
        before = len(stub.request_log)
        resp = await rest.send(lambda ns: rest.builder.new_order(_order("rl-1"), ns))
        await rest.close()
        assert resp.status == 200 and stub.order_posts == 1
        assert len(stub.request_log) - before == 2  # refused once, then sent again after the pause
        assert len(slept) == 1 and 0.9 < slept[0] <= 1.0  # held back until Retry-After (1 s) had passed
        assert [s.status for s in statuses] == ["throttled"]

    _run(body)


# --------------------------------------------------------------------------- streams


def _market(stub: StubVenue, got: list[Event], frames: list[bytes]) -> tuple[MarketStream, RestClient]:
    rest = _rest(stub.base_url)
    stream = MarketStream(stub.base_url.replace("http", "ws"), ["btcusdt@depth@100ms", "btcusdt@trade"], got.extend,
                          rest=rest, backoff=Backoff(0.01, 0.05, random.Random(5)),
                          on_frame=lambda f, _ts: frames.append(f))
    return stream, rest


def _server_book(stub: StubVenue) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    return (tuple(sorted(stub.book["bids"].items(), reverse=True)), tuple(sorted(stub.book["asks"].items())))


def test_skipped_depth_update_triggers_resync_and_the_book_matches() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        stream, rest = _market(stub, got, [])
        task = asyncio.get_running_loop().create_task(stream.run())
        book = stream.books[BTC]
        await _until(lambda: book.sync.synced and book.sync.last_update_id is not None, "first sync")
        stub.skip_update_ids = 1
        await _until(lambda: book.resyncs >= 2 and book.sync.synced, "resync after the gap")
        await _until(lambda: book.sync.last_update_id == stub.update_id, "caught up")
        stub_top = _server_book(stub)
        ours = (tuple(book.sync.book.bids), tuple(book.sync.book.asks))
        await stream.stop()
        await task
        await rest.close()
        assert book.gaps >= 1
        assert ours == stub_top
        statuses = [e.status for e in got if isinstance(e, FeedStatusChanged)]
        assert "gap" in statuses and statuses.count("resynced") >= 2
        snaps = [e for e in got if isinstance(e, BookSnapshotReceived)]
        assert len(snaps) >= 2 and not any(s.partial for s in snaps)
        # the kernel's own BookSync, fed the emitted events, agrees with the adapter's book
        from engine.booksync import BookSync

        mirror = BookSync.for_instrument(BTC)
        for ev in got:
            if isinstance(ev, BookDeltaReceived | BookSnapshotReceived):
                mirror.on_event(ev)
        assert mirror.synced and mirror.last_update_id == book.sync.last_update_id
        assert mirror.book == book.sync.book

    _run(body)


def test_connection_is_rotated_before_its_age_limit() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        frames: list[bytes] = []
        stream, rest = _market(stub, got, frames)
        stream.rotate_after_s = 0.2
        task = asyncio.get_running_loop().create_task(stream.run())
        await _until(lambda: stream.connects >= 2, "a rotation")
        await stream.stop()
        await task
        await rest.close()
        statuses = [e.status for e in got if isinstance(e, FeedStatusChanged)]
        assert "rotated" in statuses and "reconnecting" not in statuses[: statuses.index("rotated") + 2]

    _run(body)


def test_stream_disconnect_loses_nothing_sent_after_reconnect() -> None:
    async def body(stub: StubVenue) -> None:
        got: list[Event] = []
        frames: list[bytes] = []
        stream, rest = _market(stub, got, frames)
        task = asyncio.get_running_loop().create_task(stream.run())
        await _until(lambda: len(frames) > 20, "first frames")
        stub.disconnect_streams = True
        await _until(lambda: stream.connects == 2 and len(stub.sent) == 2 and len(stub.sent[1]) > 40,
                     "reconnected and streaming")
        await stream.stop()
        await task
        await rest.close()
        after = stub.sent[1]
        received = set(frames)
        missing = [f for f in after[:-5] if f not in received]  # the last few may be in flight at stop
        assert not missing
        statuses = [e.status for e in got if isinstance(e, FeedStatusChanged)]
        assert statuses.count("connected") == 2 and "disconnected" in statuses and "reconnecting" in statuses
        assert not any(isinstance(e, OrderFilled) for e in got)  # market data only on this connection

    _run(body)


# =========================================================================== the project's venue server
# The same faults against ``venues.server`` (the local Binance-speaking server replaying the seeded
# demo market in a background thread), injected with its own fault controls.


def _serve(**kw: Any) -> Any:
    from replay.serve import ServerConfig, serve_in_thread

    return serve_in_thread(ServerConfig(demo=True, seed=7, **kw))


def _client(info: Any, got: list[Event], **kw: Any) -> LiveVenue:
    cfg = LiveConfig(info.api_key, info.api_secret, rest_url=info.base_url, ws_url=info.ws_url, **kw)
    return LiveVenue(cfg, got.extend)


async def _price(venue: LiveVenue) -> int:
    from engine.fixed import parse_e8

    resp = await venue.rest.send(RequestBuilder.public("/api/v3/ticker/price", [("symbol", "BTCUSDT")]))
    return parse_e8(resp.doc["price"])


def test_server_dropped_order_response_never_yields_a_duplicate_order() -> None:
    with _serve(speed=1.0) as info:
        async def main() -> None:
            got: list[Event] = []
            venue = _client(info, got)
            await venue.start()
            price = await _price(venue) * 9 // 10 // 1_000_000 * 1_000_000  # 10 % below: rests, never fills
            info.control.set_faults(drop_order_responses=1, drop_mode="close")
            cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.LIMIT, quantity=100_000, price=price,
                              time_in_force=TimeInForce.GTC, client_order_id="srv-drop-1")
            venue.set_market_recv_ns(venue.clock.now_ns())
            venue.handle(cmd, 0)
            await _until(lambda: venue.executor.reconciliations > 0 and any(
                isinstance(e, OrderAccepted) for e in got), "reconciled and reported")
            await asyncio.sleep(0.2)  # the user stream's copy of the NEW report must be deduplicated
            opened = await venue.reconcile()
            await venue.close()
            reports = [e for e in opened if isinstance(e, OrderStatusReported) and e.order is not None
                       and e.order.client_order_id == "srv-drop-1"]
            assert len(reports) == 1  # the server holds exactly one such order
            assert [e.client_order_id for e in got if isinstance(e, OrderAccepted)] == ["srv-drop-1"]
            assert venue.executor.resends == 0

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_server_skipped_depth_update_triggers_resync_and_book_matches() -> None:
    with _serve(speed=10.0, demo_duration_s=60.0) as info:
        server_market = info.control.server.market

        async def main() -> None:
            got: list[Event] = []
            rest = RestClient(info.base_url, RequestBuilder(Signer(Credentials(info.api_key, info.api_secret.encode()),
                                                                   ServerTime())))
            stream = MarketStream(info.ws_url, ["btcusdt@depth@100ms", "btcusdt@trade"], got.extend, rest=rest,
                                  backoff=Backoff(0.01, 0.05, random.Random(5)))
            task = asyncio.get_running_loop().create_task(stream.run())
            book = stream.books[BTC]
            await _until(lambda: book.sync.synced and book.sync.last_update_id is not None, "first sync")
            info.control.set_faults(skip_depth_updates=1)
            await _until(lambda: book.gaps >= 1 and book.resyncs >= 2 and book.sync.synced, "resync after the gap")
            await asyncio.get_running_loop().run_in_executor(None, info.control.wait_market_done, 30.0)

            def server_book() -> tuple[int | None, Any]:
                sync = server_market.symbols[BTC].sync
                return sync.last_update_id, sync.book.copy()

            last, theirs = info.control.call(server_book)
            await _until(lambda: book.sync.last_update_id == last, "caught up with the server's last update")
            ours = book.sync.book.copy()
            await stream.stop()
            await task
            await rest.close()
            assert ours == theirs
            assert "resynced" in [e.status for e in got if isinstance(e, FeedStatusChanged)]

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_server_stream_disconnect_loses_nothing_sent_after_reconnect() -> None:
    with _serve(speed=10.0, demo_duration_s=60.0) as info:
        server_market = info.control.server.market

        async def main() -> None:
            got: list[Event] = []
            rest = RestClient(info.base_url, RequestBuilder(Signer(Credentials(info.api_key, info.api_secret.encode()),
                                                                   ServerTime())))
            stream = MarketStream(info.ws_url, ["btcusdt@trade"], got.extend, rest=rest,
                                  backoff=Backoff(0.01, 0.05, random.Random(5)))
            task = asyncio.get_running_loop().create_task(stream.run())
            await _until(lambda: sum(isinstance(e, TradeReceived) for e in got) > 10, "first trades")
            info.control.set_faults(disconnect_streams=True)
            await _until(lambda: stream.connects >= 2, "reconnected")
            mark = len(got)
            await asyncio.get_running_loop().run_in_executor(None, info.control.wait_market_done, 30.0)
            await asyncio.sleep(0.3)  # the last frames in flight
            await stream.stop()
            await task
            await rest.close()
            after = [e.trade_id for e in got[mark:] if isinstance(e, TradeReceived)]
            assert after, "no trades after the reconnect"
            served = info.control.call(lambda: [t.trade_id for t in server_market.symbols[BTC].trades])
            start = max(after[0], served[0])  # the server keeps its last 1,000 trades
            sent_after = [t for t in served if t >= start]
            assert sent_after  # the window compared is not empty
            assert sent_after == [t for t in after if t >= start]  # every trade sent after the reconnect, once

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_server_429_makes_the_client_back_off() -> None:
    with _serve(speed=1.0) as info:
        async def main() -> None:
            # real sleeps: the server is the judge of whether the client waited out Retry-After
            signer = Signer(Credentials(info.api_key, info.api_secret.encode()), ServerTime())
            rest = RestClient(info.base_url, RequestBuilder(signer))
            statuses: list[FeedStatusChanged] = []
            rest.on_status = statuses.append
            await rest.sync_time()
            info.control.set_faults(error_next=1, error_status=429)
            t0 = time.monotonic()
            resp = await rest.send(lambda ns: rest.builder.account(ns))
            waited = time.monotonic() - t0
            await rest.close()
            limiter = info.control.server.protocol.limiter
            early = info.control.call(lambda: limiter.early_requests("127.0.0.1"))
            assert resp.status == 200 and isinstance(resp.doc, dict) and "balances" in resp.doc
            assert early == 0, f"{early} request(s) reached the server before the 429's Retry-After ran out"
            assert waited >= 0.9, waited  # a lower bound only: a slow machine waits longer, never shorter
            assert statuses and statuses[0].status == "throttled", statuses
            # a slow machine (qemu) may also re-measure the server clock on the retry; nothing else is expected
            assert {s.status for s in statuses[1:]} <= {"resync_started"}, statuses

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_injected_429_binds_a_client_that_ignores_retry_after() -> None:
    import aiohttp

    with _serve(speed=1.0) as info:
        async def main() -> None:
            info.control.set_faults(error_next=1, error_status=429)
            codes: list[int] = []
            async with aiohttp.ClientSession() as http:
                for _ in range(4):  # straight through the Retry-After, as a careless client would
                    async with http.get(info.base_url + "/api/v3/time") as r:
                        codes.append(r.status)
            limiter = info.control.server.protocol.limiter
            early = info.control.call(lambda: limiter.early_requests("127.0.0.1"))
            # the fault's 429, two more 429s for requests inside its Retry-After, then the third strike bans the IP
            assert codes == [429, 429, 429, 418], codes
            assert early == 3, early

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_server_bad_signature_and_stale_timestamp() -> None:
    with _serve(speed=1.0) as info:
        async def main() -> None:
            bad = RestClient(info.base_url, RequestBuilder(Signer(Credentials(info.api_key, b"wrong"), ServerTime())))
            with pytest.raises(CredentialsRejected) as sig:
                await bad.send(lambda ns: bad.builder.account(ns))
            await bad.close()
            assert sig.value.code == -1022 and "check the API key and secret" in str(sig.value)
            rest = RestClient(info.base_url, RequestBuilder(Signer(Credentials(info.api_key, info.api_secret.encode()),
                                                                   ServerTime(), 1000)))
            statuses: list[FeedStatusChanged] = []
            rest.on_status = statuses.append
            await rest.sync_time()
            rest.server_time.offset_ms -= 30_000  # 30 s stale: -1021, re-measure, re-sign, accepted
            resp = await rest.send(lambda ns: rest.builder.account(ns))
            stale = rest.builder.account(rest.clock.now_ns() - 30_000_000_000)  # signed 30 s ago, sent as is
            try:
                with pytest.raises(ClockRejected) as clock:
                    await rest.send(stale)  # pre-signed bytes cannot be re-signed: a clear error instead
            finally:
                await rest.close()
            assert resp.status == 200 and [s.status for s in statuses] == ["resync_started"]
            assert clock.value.code == -1021 and "recvWindow 1000 ms" in str(clock.value)

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))
