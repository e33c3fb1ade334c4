"""The user data stream: listenKey, keepalive, reconnect; executionReports out as events.

Binance's listenKey flow: ``POST /api/v3/userDataStream`` (API key, no signature) returns a key
valid for 60 minutes; ``PUT`` with the key extends it (we do it every 30 minutes); the stream is
``<ws>/ws/<listenKey>``. A key that expired comes back as ``-1125`` on ``PUT``: we create a new
one and reconnect. After every reconnect ``on_reconnect`` runs (the venue reconciles its open
orders there: reports sent while we were away are lost, the REST state is not).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from engine.clock import Clock, LiveClock
from engine.errors import VenueError, VenueMisbehaved
from engine.events import Event, FeedStatusChanged
from engine.identifiers import InstrumentId, Market
from venues.binance.protocol import UserParser
from venues.binance.requests import api_error
from venues.binance.rest import RestClient
from venues.binance.streams import Backoff

if TYPE_CHECKING:
    import aiohttp

KEEPALIVE_S = 30 * 60
STREAM = "user"


class UserStream:
    """Keeps one user data stream open and feeds its events to ``on_events``."""

    def __init__(
        self,
        rest: RestClient,
        ws_url: str,
        on_events: Callable[[list[Event]], None],
        *,
        market: Market = Market.SPOT,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        keepalive_s: float = KEEPALIVE_S,
        heartbeat_s: float = 20.0,
        on_reconnect: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.rest = rest
        self.ws_url = ws_url.rstrip("/")
        self.on_events = on_events
        self.parser = UserParser(market=market)
        self.clock = clock or LiveClock()
        self.backoff = backoff or Backoff()
        self.keepalive_s = keepalive_s
        self.heartbeat_s = heartbeat_s
        self.on_reconnect = on_reconnect
        self.listen_key: str | None = None
        self.connects = 0
        self.keepalives = 0
        self.connected = asyncio.Event()
        self._stop = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None

    def _status(self, status: str, detail: str = "") -> None:
        now = self.clock.now_ns()
        self.on_events([FeedStatusChanged(0, now, now, InstrumentId(""), STREAM, status, detail)])

    async def create_key(self) -> str:
        """``POST /api/v3/userDataStream`` -> the listenKey."""
        resp = await self.rest.send(self.rest.builder.keyed("POST", "/api/v3/userDataStream"))
        if not isinstance(resp.doc, dict) or "listenKey" not in resp.doc:
            raise VenueError(f"POST /api/v3/userDataStream answered HTTP {resp.status}: {resp.body[:200]!r}")
        self.listen_key = str(resp.doc["listenKey"])
        return self.listen_key

    async def keepalive(self) -> bool:
        """``PUT`` the key; False when the venue no longer knows it (a new one is needed)."""
        if self.listen_key is None:
            return False
        req = self.rest.builder.keyed("PUT", "/api/v3/userDataStream", [("listenKey", self.listen_key)])
        resp = await self.rest.send(req)
        self.keepalives += 1
        return api_error(resp.status, resp.doc) is None

    async def run(self) -> None:
        """Create a key, connect, keep alive, reconnect with backoff until :meth:`stop`."""
        import aiohttp

        async with aiohttp.ClientSession() as session:
            first = True
            while not self._stop.is_set():
                try:
                    await self.create_key()
                    await self._connection(session, first)
                    first = False
                except (TimeoutError, aiohttp.ClientError, OSError, VenueError) as exc:
                    self._status("disconnected", f"{type(exc).__name__}: {exc}")
                if self._stop.is_set():
                    break
                delay = self.backoff.next()
                self._status("reconnecting", f"in {delay:.3f} s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the connection as if the network dropped it."""
        if self._ws is not None:
            await self._ws.close()

    async def _connection(self, session: aiohttp.ClientSession, first: bool) -> None:
        import aiohttp

        url = f"{self.ws_url}/ws/{self.listen_key}"
        async with session.ws_connect(url, heartbeat=self.heartbeat_s, autoping=True) as ws:
            self._ws = ws
            self.connects += 1
            self.backoff.reset()
            self._status("connected", f"{self.ws_url}/ws/<listenKey>")
            self.connected.set()
            if not first and self.on_reconnect is not None:
                await self.on_reconnect()
            keeper = asyncio.get_running_loop().create_task(self._keep(ws))
            try:
                async for msg in ws:
                    if msg.type is aiohttp.WSMsgType.TEXT or msg.type is aiohttp.WSMsgType.BINARY:
                        self.handle_frame(msg.data, self.clock.now_ns())
                    elif msg.type is aiohttp.WSMsgType.ERROR:
                        break
            finally:
                keeper.cancel()
                self._ws = None
                self.connected.clear()
            self._status("disconnected", "stopped" if self._stop.is_set() else f"closed (code {ws.close_code})")

    def handle_frame(self, frame: bytes | str, ts_recv: int) -> None:
        """One user-stream frame -> events (a malformed one is reported, not fatal)."""
        try:
            events = self.parser.parse(frame, ts_recv)
        except VenueMisbehaved as exc:
            self._status("gap", f"unparseable user frame skipped: {exc}")
            return
        if events:
            self.on_events(events)

    async def _keep(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self.keepalive_s)
            try:
                alive = await self.keepalive()
            except VenueError as exc:
                self._status("gap", f"listenKey keepalive failed: {exc}")
                continue
            if not alive:  # the key expired: a new key means a new connection
                self._status("disconnected", "listenKey expired")
                await ws.close()
                return
