"""The aiohttp server around the sans-I/O core: REST, WebSocket streams, market replay, faults.

One port serves everything:

- REST ``/api/v3/...`` -> :class:`~venues.server.protocol.VenueProtocol` at the wall-clock "now";
- WebSocket ``/ws/<stream>``, ``/ws/<listenKey>``, ``/ws`` (then SUBSCRIBE) and
  ``/stream?streams=a/b`` (combined wrapper); live ``SUBSCRIBE``/``UNSUBSCRIBE``/
  ``LIST_SUBSCRIPTIONS`` messages; the server pings every 20 s and answers pings with pongs;
- the WebSocket API ``/ws-api/v3`` (:mod:`venues.server.wsapi`: ``userDataStream.subscribe.signature``
  and friends); user-data events go to listenKey streams and WS-API subscriptions alike;
- ``/_tickloop/faults`` (GET/POST, localhost only) and ``/_tickloop/status`` (GET).

The market task reads the injected event source (a log or the demo market, built by the
composition root), **re-stamps every event to the server's clock** (the replay starts at
server start and is paced by ``speed``; 0 = as fast as possible, each event stamped "now"),
feeds the venue and publishes the stream messages. The server's clock is the wall clock
(``clock``, injectable), so ``/api/v3/time``, signature timestamps and every emitted time agree.

Every command received and every venue event produced goes to the injected ``sink`` (the
server's own event log), flushed after each request that produced some.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiohttp import WSMsgType, web

from engine.errors import TickloopError
from engine.events import (
    BalanceUpdated,
    CommandIssued,
    Event,
    MarkPriceReceived,
    OrderFilled,
    OrderListStatusChanged,
)
from engine.orders import AnyCommand
from venues.server import streams
from venues.server.auth import Credentials
from venues.server.errors import ApiError
from venues.server.faults import Faults
from venues.server.limits import LimitsConfig
from venues.server.market import MarketState
from venues.server.protocol import Request, VenueProtocol
from venues.server.streams import Json
from venues.server.wsapi import PATH as WS_API_PATH
from venues.server.wsapi import WsApi, WsApiSession
from venues.sim.venue import SimVenue

PING_INTERVAL_S = 20.0
LOCALHOST = frozenset({"127.0.0.1", "::1"})
YIELD_EVERY = 64
"""At speed 0 the market task lets requests in after this many events."""
FAULT_RETRY_AFTER_S = 1
"""Retry-After of an injected 429; the limiter holds the IP to it like a real one."""


class EventSink(Protocol):
    """Where the server writes its own log (``catalogs.log.LogWriter`` fits)."""

    def append(self, event: Event) -> int: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ServerSetup:
    """Everything a :class:`VenueServer` runs on, built by the composition root."""

    venue: SimVenue
    exchange_symbols: dict[Any, dict[str, Any]]
    credentials: Credentials
    market_source: Callable[[], Iterable[Event]] | None = None
    sink: EventSink | None = None
    speed: float = 1.0
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    faults: Faults = field(default_factory=Faults)
    clock: Callable[[], int] = time.time_ns
    wait_for_client: bool = False
    """Hold the market replay until the first WebSocket market subscription (a client's startup then
    does not eat into a short, fast replay)."""
    strategy_name: str = "serve-venue"
    """The ``strategy`` field of the ``CommandIssued`` envelopes in the server's log."""


def canonical_stream(name: str) -> str:
    """Binance's aliases folded to the names the server publishes (``btcusdt@depth`` -> ``btcusdt@depth@100ms``)."""
    sym, _, kind = name.partition("@")
    kind_l = kind
    if kind in ("depth", "depth@1000ms", "depth@0ms", "depth@500ms", "depth@250ms"):
        kind_l = "depth@100ms"
    elif kind.startswith("depth") and kind[5:7].rstrip("@").isdigit():
        kind_l = kind.split("@")[0] + "@100ms"
    elif kind in ("markPrice", "markPrice@3s"):
        kind_l = "markPrice@1s"
    return f"{sym.lower()}@{kind_l}"


class _Client:
    """One WebSocket connection: its subscriptions (canonical -> name as subscribed) and send queue."""

    def __init__(self, ws: web.WebSocketResponse, combined: bool) -> None:
        self.ws = ws
        self.combined = combined
        self.names: dict[str, str] = {}
        self.queue: asyncio.Queue[str | None] = asyncio.Queue()

    def push(self, canonical: str, data: Json) -> None:
        name = self.names.get(canonical)
        if name is None:
            return
        msg = streams.combined(name, data) if self.combined else data
        self.queue.put_nowait(json.dumps(msg, separators=(",", ":")))


class VenueServer:
    """The running server (see module doc). ``start()`` then ``stop()``, inside one event loop."""

    def __init__(self, setup: ServerSetup) -> None:
        self.setup = setup
        self.faults = setup.faults
        instruments = sorted(setup.exchange_symbols)
        self.market = MarketState(list(instruments))
        self.protocol = VenueProtocol(
            setup.venue, self.market, setup.exchange_symbols, setup.credentials,
            limits=setup.limits, on_command=self._log_command, on_events=self._log_events,
        )
        self.wsapi = WsApi(self.protocol.auth, self.protocol.limiter)
        self._ws_api: dict[_Client, WsApiSession] = {}
        self._subs: dict[str, set[_Client]] = {}
        self._clients: set[_Client] = set()
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._dirty = False
        self._last_ts = 0
        self.events_replayed = 0
        self.market_done = asyncio.Event()
        self._stopping = asyncio.Event()
        self._first_client = asyncio.Event()
        self.base_url = ""
        self.ws_url = ""
        self.ws_api_url = ""

    # ----------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/api/v3/{tail:.*}", self._rest)
        app.router.add_get("/ws", self._ws)
        app.router.add_get("/ws/{name}", self._ws)
        app.router.add_get("/stream", self._ws)
        app.router.add_get(WS_API_PATH, self._ws_api_handler)
        app.router.add_route("*", "/_tickloop/faults", self._faults)
        app.router.add_get("/_tickloop/status", self._status)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        if not sockets:
            raise TickloopError(f"venue server did not bind {host}:{port}")
        bound = sockets[0].getsockname()
        self.base_url = f"http://{host}:{bound[1]}"
        self.ws_url = f"ws://{host}:{bound[1]}"
        self.ws_api_url = self.ws_url + WS_API_PATH
        self._tasks.append(asyncio.create_task(self._replay()))
        self._tasks.append(asyncio.create_task(self._disconnector()))

    async def stop(self) -> None:
        self._stopping.set()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for c in list(self._clients):
            c.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await c.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        sink = self.setup.sink
        if sink is not None:
            sink.close()

    def now(self) -> int:
        """The server's time: the wall clock, never behind the last market event handed to the venue."""
        t = self.setup.clock()
        if t < self._last_ts:
            t = self._last_ts
        self._last_ts = t
        return t

    # ----------------------------------------------------------------- log

    def _log_command(self, cmd: AnyCommand, ts: int) -> None:
        sink = self.setup.sink
        if sink is not None:
            sink.append(CommandIssued(0, ts, ts, cmd.instrument, self.setup.strategy_name, cmd))
            self._dirty = True

    def _log_events(self, events: list[Event]) -> None:
        sink = self.setup.sink
        if sink is not None:
            for ev in events:
                sink.append(ev)
            self._dirty = True
        self._count_first_fills(events)
        self._publish_user(events)

    def _count_first_fills(self, events: list[Event]) -> None:
        for ev in events:
            if type(ev) is OrderFilled and ev.cum_qty == ev.qty:
                self.protocol.limiter.order_first_filled(self.now() // 1_000_000)

    def _flush(self) -> None:
        if self._dirty and self.setup.sink is not None:
            self.setup.sink.flush()
            self._dirty = False

    # ----------------------------------------------------------------- market replay

    async def _replay(self) -> None:
        source = self.setup.market_source
        try:
            if source is not None:
                if self.setup.wait_for_client:
                    await self._first_client.wait()
                await self._run_source(source())
        finally:
            self._flush()
            self.market_done.set()

    async def _run_source(self, events: Iterable[Event]) -> None:
        speed = self.setup.speed
        start = self.setup.clock()
        t0: int | None = None
        n = 0
        for ev in events:
            if t0 is None:
                t0 = ev.ts_recv
            if speed > 0:
                target = start + int((ev.ts_recv - t0) / speed)
                delay = target - self.setup.clock()
                if delay > 500_000:
                    await asyncio.sleep(delay / 1e9)
                new_recv = max(target, self._last_ts)
            else:
                new_recv = self.setup.clock()
                n += 1
                if n % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
            new_recv = max(new_recv, self._last_ts)
            self._last_ts = new_recv
            self._on_market(restamp(ev, new_recv))
        self._flush()

    def _on_market(self, ev: Event) -> None:
        messages, _ = self.protocol.on_market(ev, ev.ts_recv, self._wanted)
        self.events_replayed += 1
        for name, data in messages:
            if name.endswith("@depth@100ms") and self.faults.take_skip_depth():
                continue
            for c in self._subs.get(name, ()):
                c.push(name, data)
        if self._dirty:
            self._flush()
        if self.faults.take_disconnect():
            self._disconnect_all()

    def _wanted(self, name: str) -> bool:
        return bool(self._subs.get(name))

    async def _disconnector(self) -> None:
        while True:
            every = self.faults.disconnect_every_s
            await asyncio.sleep(every if every > 0 else 0.2)
            if self.faults.disconnect_every_s > 0 or self.faults.take_disconnect():
                self._disconnect_all()

    def _disconnect_all(self) -> None:
        for c in list(self._clients):
            c.queue.put_nowait(None)

    # ----------------------------------------------------------------- user data stream

    def _publish_user(self, events: list[Event]) -> None:
        targets = self._subs.get("@user") or set()
        sessions = [(c, s) for c, s in self._ws_api.items() if s.subscriptions]
        if not targets and not sessions:
            return
        for data in self.user_messages(events):
            for c in targets:
                c.push("@user", data)
            for c, s in sessions:
                for frame in self.wsapi.event_frames(s, data):
                    c.queue.put_nowait(frame)

    def user_messages(self, events: list[Event]) -> list[Json]:
        """The user-data-stream messages of venue events, in order (``executionReport``, ``listStatus``, ...)."""
        out: list[Json] = []
        venue = self.protocol.venue
        for ev in events:
            sym = self.protocol.symbol_of(ev.instrument)
            if isinstance(ev, BalanceUpdated):
                out.append(streams.account_position(ev))
            elif isinstance(ev, OrderListStatusChanged):
                out.append(streams.list_status(ev, sym))
            else:
                oid = getattr(ev, "order_id", None)
                snap = venue.order(oid) if isinstance(oid, int) and oid >= 0 else None
                rep = streams.execution_report(ev, snap, sym)
                if rep is not None:
                    out.append(rep)
        return out

    # ----------------------------------------------------------------- HTTP

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        status = self.faults.take_error()
        if status is not None:
            if status == 429:
                self.protocol.limiter.block(request.remote or "", self.now() // 1_000_000, FAULT_RETRY_AFTER_S)
            return _fault_response(status)
        body = await request.text() if request.can_read_body else ""
        req = Request(
            request.method, request.path, request.rel_url.raw_query_string, body,
            {k.lower(): v for k, v in request.headers.items()}, request.remote or "",
        )
        resp = self.protocol.handle(req, self.now())
        self._flush()
        if resp.order_taken:
            mode = self.faults.take_drop()
            if mode == "hang":
                await self._stopping.wait()  # never answered; released when the server stops
            if mode is not None:
                if request.transport is not None:
                    request.transport.abort()
                raise asyncio.CancelledError  # aiohttp drops the handler quietly: no answer is written
        delay = self.faults.take_delay_s()
        if delay > 0:
            await asyncio.sleep(delay)
        return web.Response(body=resp.json_bytes(), status=resp.status, headers=dict(resp.headers),
                            content_type="application/json")

    async def _faults(self, request: web.Request) -> web.StreamResponse:
        if request.remote not in LOCALHOST:
            return web.json_response({"code": -2015, "msg": "fault control is only served to localhost"}, status=403)
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise TickloopError("expected a JSON object of fault settings")
                self.faults.update(changes)
            except (json.JSONDecodeError, TickloopError) as exc:
                return web.json_response({"code": -1100, "msg": str(exc)}, status=400)
        elif request.method != "GET":
            return web.json_response({"code": -1000, "msg": "GET or POST"}, status=405)
        return web.json_response(self.faults.to_json())

    async def _status(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({
            "events_replayed": self.events_replayed, "market_done": self.market_done.is_set(),
            "symbols": [self.protocol.symbol_of(i) for i in self.protocol.exchange_symbols],
            "clients": len(self._clients),
        })

    # ----------------------------------------------------------------- WebSocket

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(heartbeat=PING_INTERVAL_S, autoping=True)
        await ws.prepare(request)
        combined = request.path == "/stream"
        client = _Client(ws, combined)
        names = request.query.get("streams", "").split("/") if combined else [request.match_info.get("name", "")]
        for name in names:
            if name:
                self._subscribe(client, name)
        self._clients.add(client)
        writer = asyncio.create_task(self._writer(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self._control(client, msg.data)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._drop(client)
            client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    async def _writer(self, client: _Client) -> None:
        while True:
            text = await client.queue.get()
            if text is None:
                await client.ws.close()
                return
            try:
                await client.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return

    def _subscribe(self, client: _Client, name: str) -> bool:
        if self.protocol.listen_key_valid(name, self.now()):
            client.names["@user"] = name
            self._subs.setdefault("@user", set()).add(client)
            return True
        if "@" not in name:
            return False
        canon = canonical_stream(name)
        client.names[canon] = name
        self._subs.setdefault(canon, set()).add(client)
        self._first_client.set()
        return True

    async def _ws_api_handler(self, request: web.Request) -> web.StreamResponse:
        """``/ws-api/v3``: each text frame through :class:`WsApi`; replies and events share the send queue."""
        try:
            session = self.wsapi.connect(request.remote or "", self.now())
        except ApiError as err:
            headers = {"Retry-After": str(err.retry_after_s)} if err.retry_after_s is not None else None
            return web.json_response(err.body(), status=err.status, headers=headers)
        ws = web.WebSocketResponse(heartbeat=PING_INTERVAL_S, autoping=True)
        await ws.prepare(request)
        client = _Client(ws, combined=False)
        self._clients.add(client)
        self._ws_api[client] = session
        writer = asyncio.create_task(self._writer(client))
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    for frame in self.wsapi.handle(session, msg.data, self.now()):
                        client.queue.put_nowait(frame)
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self._ws_api.pop(client, None)
            self._clients.discard(client)
            client.queue.put_nowait(None)
            with contextlib.suppress(Exception):
                await writer
        return ws

    def _unsubscribe(self, client: _Client, name: str) -> None:
        canon = "@user" if name in self.protocol.listen_keys else canonical_stream(name)
        client.names.pop(canon, None)
        self._subs.get(canon, set()).discard(client)

    def _drop(self, client: _Client) -> None:
        self._clients.discard(client)
        for canon in list(client.names):
            self._subs.get(canon, set()).discard(client)

    async def _control(self, client: _Client, text: str) -> None:
        try:
            msg = json.loads(text)
            method, params, mid = msg["method"], msg.get("params", []), msg.get("id")
        except (json.JSONDecodeError, KeyError, TypeError):
            client.queue.put_nowait(json.dumps({"error": {"code": 3, "msg": "Invalid JSON: expected an object with method"}}))
            return
        if method == "SUBSCRIBE" and isinstance(params, list):
            bad = [p for p in params if not isinstance(p, str) or not self._subscribe(client, p)]
            if bad:
                client.queue.put_nowait(json.dumps({"error": {"code": 2, "msg": f"Invalid request: unknown stream(s) {bad}"},
                                                    "id": mid}))
                return
            reply: dict[str, Any] = {"result": None, "id": mid}
        elif method == "UNSUBSCRIBE" and isinstance(params, list):
            for p in params:
                if isinstance(p, str):
                    self._unsubscribe(client, p)
            reply = {"result": None, "id": mid}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(client.names.values()), "id": mid}
        else:
            reply = {"error": {"code": 2, "msg": f"Invalid request: unknown method {method!r}"}, "id": mid}
        client.queue.put_nowait(json.dumps(reply, separators=(",", ":")))


def restamp(ev: Event, new_recv: int) -> Event:
    """The event moved to the server's clock: ``ts_recv`` = ``new_recv``, ``ts_event`` keeps its lag."""
    shift = new_recv - ev.ts_recv
    if isinstance(ev, MarkPriceReceived):
        return msgspec.structs.replace(ev, ts_recv=new_recv, ts_event=ev.ts_event + shift,
                                       next_funding_time=ev.next_funding_time + shift)
    return msgspec.structs.replace(ev, ts_recv=new_recv, ts_event=ev.ts_event + shift)


def _fault_response(status: int) -> web.Response:
    if status == 429:
        body = {"code": -1003, "msg": "Too many requests (injected fault)."}
        return web.json_response(body, status=429, headers={"Retry-After": str(FAULT_RETRY_AFTER_S)})
    body = {"code": -1000, "msg": "An unknown error occurred while processing the request."}
    return web.json_response(body, status=status)
