"""The user data stream over the WebSocket API (``/ws-api/v3``), server and adapter, on localhost.

Raw protocol against the venue server (subscribe with good and bad signatures, a stale timestamp,
an unknown method, ``session.subscriptions``, unsubscribe -> ``eventStreamTerminated``), then the
adapter: in ``ws_api`` mode it receives the executionReports of an order it places and fills,
exactly the events the legacy listenKey mode yields for the same order (both run side by side),
reconnects after the server drops every connection (calling ``on_reconnect``), and maps refused
subscriptions to the REST client's exceptions.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import msgspec
import pytest
from websockets.sync.client import ClientConnection, connect

from engine.events import BalanceUpdated, Event, FeedStatusChanged, OrderAccepted, OrderFilled
from engine.identifiers import InstrumentId
from engine.orders import OrderSide, OrderType, SubmitOrder
from replay.serve import ServerConfig, ServerInfo, serve_in_thread
from tests.integration.live_helpers import until as _until
from venues.binance.requests import RequestBuilder
from venues.binance.rest import ClockRejected, CredentialsRejected, RestClient
from venues.binance.signing import Credentials, ServerTime, Signer
from venues.binance.streams import Backoff
from venues.binance.userstream import LISTEN_KEY, WS_API, UserStream
from venues.binance.venue import LiveConfig, LiveVenue

pytestmark = pytest.mark.edge

BTC = InstrumentId("BTCUSDT.SPOT")
TIMEOUT_S = 60.0
SUBSCRIBE = "userDataStream.subscribe.signature"


@contextmanager
def _server(**kw: Any) -> Iterator[ServerInfo]:
    with serve_in_thread(ServerConfig(demo=True, seed=7, **kw)) as info:
        info.control.wait_events(50)
        yield info


def _ms() -> int:
    return time.time_ns() // 1_000_000


def _ws_sign(secret: str, params: dict[str, Any]) -> str:
    payload = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()


def _subscribe_params(info: ServerInfo, *, ts_ms: int | None = None, secret: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"apiKey": info.api_key, "timestamp": _ms() if ts_ms is None else ts_ms}
    params["signature"] = _ws_sign(secret or info.api_secret, params)
    return params


def _call(ws: ClientConnection, rid: object, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
    """Send one request; its reply (frames before it are events, kept by the caller via ``_events``)."""
    msg: dict[str, Any] = {"id": rid, "method": method}
    if params is not None:
        msg["params"] = params
    ws.send(json.dumps(msg))
    while True:
        doc: dict[str, Any] = json.loads(ws.recv(timeout=10))
        if doc.get("id") == rid:
            return doc


def _events(ws: ClientConnection, until: Callable[[list[dict[str, Any]]], bool], limit_s: float = 10.0
            ) -> list[dict[str, Any]]:
    """Frames until ``until(frames)`` holds (a condition, not a timing assertion)."""
    out: list[dict[str, Any]] = []
    end = time.monotonic() + limit_s
    while not until(out):
        left = end - time.monotonic()
        if left <= 0:
            raise AssertionError(f"condition never held; got {out[-5:]}")
        out.append(json.loads(ws.recv(timeout=left)))
    return out


def _rest_order(info: ServerInfo, http: httpx.Client, **params: Any) -> dict[str, Any]:
    params["timestamp"] = _ms()
    q = "&".join(f"{k}={v}" for k, v in params.items())
    q += "&signature=" + hmac.new(info.api_secret.encode(), q.encode(), hashlib.sha256).hexdigest()
    r = http.post(f"/api/v3/order?{q}", headers={"X-MBX-APIKEY": info.api_key})
    doc: dict[str, Any] = r.json()
    return doc


# --------------------------------------------------------------------------- raw protocol


def test_raw_ws_api_subscribe_events_and_unsubscribe() -> None:
    with _server(speed=1.0) as info, httpx.Client(base_url=info.base_url, timeout=10) as http:
        assert info.ws_api_url == info.ws_url + "/ws-api/v3"
        with connect(info.ws_api_url) as ws:
            ping = _call(ws, 1, "ping")
            assert (ping["status"], ping["result"]) == (200, {}) and ping["rateLimits"][0]["count"] >= 3
            assert abs(_call(ws, 2, "time")["result"]["serverTime"] - _ms()) < 5000
            bad = _call(ws, "bad-sig", SUBSCRIBE, _subscribe_params(info, secret="wrong-secret"))
            assert (bad["status"], bad["error"]["code"]) == (400, -1022)
            stale = _call(ws, "stale", SUBSCRIBE, _subscribe_params(info, ts_ms=_ms() - 60_000))
            assert (stale["status"], stale["error"]["code"]) == (400, -1021)
            unknown = _call(ws, "what", "userDataStream.subscribe.magic", {})
            assert (unknown["status"], unknown["error"]["code"]) == (400, -1020)
            assert _call(ws, 3, "session.subscriptions")["result"] == []
            good = _call(ws, "sub", SUBSCRIBE, _subscribe_params(info))
            assert good["status"] == 200 and good["result"] == {"subscriptionId": 0}
            assert _call(ws, 4, "session.subscriptions")["result"] == [{"subscriptionId": 0}]

            taken = _rest_order(info, http, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                                newClientOrderId="raw-mkt-1")
            assert taken["status"] == "FILLED"
            frames = _events(ws, lambda fs: any(f.get("event", {}).get("e") == "outboundAccountPosition" for f in fs))
            assert all(set(f) == {"subscriptionId", "event"} and f["subscriptionId"] == 0 for f in frames)
            reports = [(f["event"]["c"], f["event"]["x"]) for f in frames if f["event"]["e"] == "executionReport"]
            assert ("raw-mkt-1", "NEW") in reports and ("raw-mkt-1", "TRADE") in reports

            ws.send(json.dumps({"id": "unsub", "method": "userDataStream.unsubscribe", "params": {"subscriptionId": 0}}))
            reply, ended = json.loads(ws.recv(timeout=10)), json.loads(ws.recv(timeout=10))
            assert reply["id"] == "unsub" and (reply["status"], reply["result"]) == (200, {})
            assert ended["subscriptionId"] == 0 and ended["event"]["e"] == "eventStreamTerminated"
            assert _call(ws, 5, "session.subscriptions")["result"] == []
            _rest_order(info, http, symbol="BTCUSDT", side="BUY", type="MARKET", quantity="0.001",
                        newClientOrderId="raw-mkt-2")
            after = _call(ws, 6, "ping")  # any event for the ended subscription would have come first
            assert after["status"] == 200


# --------------------------------------------------------------------------- the adapter


def _rest(info: ServerInfo, secret: str | None = None) -> RestClient:
    signer = Signer(Credentials(info.api_key, (secret or info.api_secret).encode()), ServerTime())
    return RestClient(info.base_url, RequestBuilder(signer), timeout_s=10.0)




def _kernel_facing(events: list[Event]) -> list[Event]:
    """The events the kernel would see (statuses dropped), receive time zeroed."""
    return [msgspec.structs.replace(e, ts_recv=0) for e in events if not isinstance(e, FeedStatusChanged)]


def _tap(user: UserStream, into: list[Event]) -> None:
    """Copy what the user stream hands the venue into ``into`` (and still hand it on)."""
    forward = user.on_events

    def both(events: list[Event]) -> None:
        into.extend(events)
        forward(events)

    user.on_events = both


def _venue(info: ServerInfo, got: list[Event], **kw: Any) -> LiveVenue:
    cfg = LiveConfig(info.api_key, kw.pop("secret", info.api_secret), rest_url=info.base_url, ws_url=info.ws_url, **kw)
    return LiveVenue(cfg, got.extend)


def test_ws_api_mode_reports_the_same_events_as_the_listen_key_mode() -> None:
    with _server(speed=1.0) as info:
        async def main() -> None:
            got: list[Event] = []
            venue = _venue(info, got)
            await venue.start()
            user = venue.user
            assert user is not None and user.mode == WS_API and not user.fell_back and user.subscription_id == 0
            via_ws_api: list[Event] = []
            _tap(user, via_ws_api)
            legacy_rest = _rest(info)
            via_listen_key: list[Event] = []
            legacy = UserStream(legacy_rest, info.ws_url, via_listen_key.extend, mode=LISTEN_KEY)
            legacy_task = asyncio.get_running_loop().create_task(legacy.run())
            await legacy.wait_connected(10.0)

            cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.MARKET, quantity=100_000, client_order_id="ws-mkt-1")
            venue.set_market_recv_ns(venue.clock.now_ns())
            venue.handle(cmd, 0)

            def complete(evs: list[Event]) -> bool:
                fills = [e for e in evs if isinstance(e, OrderFilled) and e.client_order_id == "ws-mkt-1"]
                return bool(fills) and fills[-1].cum_qty == 100_000 and any(isinstance(e, BalanceUpdated) for e in evs)

            await _until(lambda: complete(via_ws_api) and complete(via_listen_key), "both streams saw the fill")
            await asyncio.sleep(0.3)  # anything still in flight on either connection
            await legacy.stop()
            await legacy_task
            await legacy_rest.close()
            await venue.close()

            assert legacy.listen_key is not None and legacy.mode == LISTEN_KEY
            ws_events, lk_events = _kernel_facing(via_ws_api), _kernel_facing(via_listen_key)
            assert ws_events == lk_events
            assert [type(e) for e in ws_events if getattr(e, "client_order_id", "") == "ws-mkt-1"][:2] == [
                OrderAccepted, OrderFilled]
            fills = [e for e in got if isinstance(e, OrderFilled) and e.client_order_id == "ws-mkt-1"]
            assert len(fills) == len({e.trade_id for e in fills}) > 0  # REST answer and stream deduplicated

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_ws_api_stream_reconnects_after_the_server_drops_it() -> None:
    with _server(speed=2.0) as info:
        async def main() -> None:
            got: list[Event] = []
            venue = _venue(info, got)
            await venue.start()
            user = venue.user
            assert user is not None and user.mode == WS_API
            user.backoff = Backoff(0.01, 0.05, random.Random(4))
            reconnects: list[int] = []
            after_reconnect = user.on_reconnect
            assert after_reconnect is not None

            async def counted() -> None:
                reconnects.append(user.connects)
                await after_reconnect()

            user.on_reconnect = counted
            info.control.set_faults(disconnect_streams=True)
            await _until(lambda: user.connects >= 2 and user.connected.is_set() and bool(reconnects),
                         "reconnected")
            assert user.subscription_id == 0  # a new connection, a new subscription
            cmd = SubmitOrder(BTC, OrderSide.BUY, OrderType.MARKET, quantity=100_000, client_order_id="after-drop")
            user_events: list[Event] = []
            _tap(user, user_events)
            venue.set_market_recv_ns(venue.clock.now_ns())
            venue.handle(cmd, 0)
            await _until(lambda: any(isinstance(e, OrderFilled) and e.client_order_id == "after-drop"
                                     for e in user_events), "the new subscription reports the fill")
            await venue.close()
            statuses = [e.status for e in got if isinstance(e, FeedStatusChanged) and e.stream == "user"]
            assert statuses[:1] == ["connected"] and "disconnected" in statuses and "reconnecting" in statuses
            assert statuses.count("connected") >= 2 and reconnects[0] >= 2
            listen_keys = info.control.call(lambda: len(info.control.server.protocol.listen_keys))
            assert listen_keys == 0  # no legacy flow was touched

        asyncio.run(asyncio.wait_for(main(), TIMEOUT_S))


def test_refused_subscriptions_raise_what_the_rest_client_raises() -> None:
    with _server(speed=1.0) as info:
        async def bad_secret() -> CredentialsRejected:
            venue = _venue(info, [], secret="wrong-secret-123")
            with pytest.raises(CredentialsRejected) as raised:
                await venue.start()
            await venue.close()
            return raised.value

        err = asyncio.run(asyncio.wait_for(bad_secret(), TIMEOUT_S))
        assert err.code == -1022 and SUBSCRIBE in err.msg

        class SkewedRest(RestClient):
            """Measures the server clock one minute wrong, every time (a broken clock sync)."""

            async def sync_time(self) -> int:
                self.server_time.offset_ms = -60_000
                self.server_time.measured_at_ns = self.clock.now_ns()
                return self.server_time.offset_ms

        async def skewed() -> tuple[ClockRejected, list[str]]:
            got: list[Event] = []
            signer = Signer(Credentials(info.api_key, info.api_secret.encode()), ServerTime())
            rest = SkewedRest(info.base_url, RequestBuilder(signer), timeout_s=10.0)
            user = UserStream(rest, info.ws_url, got.extend)
            task = asyncio.get_running_loop().create_task(user.run())
            with pytest.raises(ClockRejected) as raised:
                await user.wait_connected(10.0)
            await task  # run() ended by itself: a clock fault is not retried
            await rest.close()
            return raised.value, [e.status for e in got if isinstance(e, FeedStatusChanged)]

        clock_err, statuses = asyncio.run(asyncio.wait_for(skewed(), TIMEOUT_S))
        assert clock_err.code == -1021 and "recvWindow" in clock_err.msg
        assert statuses == ["resync_started", "disconnected"]  # re-measured once, then gave up
