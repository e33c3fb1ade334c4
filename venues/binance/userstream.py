"""The user data stream: WebSocket API subscription (default) or legacy listenKey; reports out as events.

Two ways to receive one's executionReports (facts and sources: ``docs/live-adapter.md``):

- ``ws_api`` (the default; Binance's current way since 2025-04-07): connect to the WebSocket API
  (``wss://ws-api.binance.com:443/ws-api/v3``), send one signed
  ``userDataStream.subscribe.signature`` (params ``apiKey``, ``recvWindow``, ``timestamp``,
  ``signature``; signed by :meth:`~venues.binance.signing.Signer.sign_ws_api`), and read events
  wrapped as ``{"subscriptionId": N, "event": {...}}``. No keepalive: there is no listenKey to
  expire, the subscription lives exactly as long as the connection. An error reply raises what
  the REST client would: ``-1022``/``-2014``/``-2015`` -> :class:`CredentialsRejected`;
  ``-1021`` re-measures the server-time offset and re-signs once, then :class:`ClockRejected`.
  Those end :meth:`UserStream.run` (a configuration fault is not retried; :meth:`wait_connected`
  raises it). ``eventStreamTerminated`` for our subscription ends the connection (we reconnect).
- ``listen_key`` (deprecated on spot; USD-M futures still use it, so any non-spot market is kept
  on it): ``POST /api/v3/userDataStream`` (API key, no signature) returns a key valid for 60
  minutes; ``PUT`` extends it (every 30 minutes); the stream is ``<ws>/ws/<listenKey>``. A key
  that expired comes back as ``-1125`` on ``PUT`` (or a ``listenKeyExpired`` event): a new key,
  a new connection. A server answering the WS-API upgrade with HTTP 404 (a Binance-compatible
  server without the WebSocket API) before any WS-API connection succeeded gets this mode too,
  said in the ``connected`` status.

Both: Binance closes a connection at 24 h, so it is replaced after ``rotate_after_s`` (23.5 h,
as the market stream does); reconnects use the shared :class:`Backoff`; after every reconnect
(rotation included) ``on_reconnect`` runs -- the venue reconciles its open orders there: reports
sent while we were away are lost, the REST state is not.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

from engine.clock import Clock, LiveClock
from engine.errors import ConfigError, VenueError, VenueMisbehaved
from engine.events import Event, FeedStatusChanged
from engine.identifiers import InstrumentId, Market
from venues.binance.protocol import UserParser
from venues.binance.requests import api_error
from venues.binance.rest import ClockRejected, CredentialsRejected, RestClient
from venues.binance.streams import ROTATE_AFTER_S, Backoff, receive_frames

if TYPE_CHECKING:
    import aiohttp

KEEPALIVE_S = 30 * 60
STREAM = "user"
WS_API, LISTEN_KEY = "ws_api", "listen_key"
MODES = (WS_API, LISTEN_KEY)
WS_API_PATH = "/ws-api/v3"
BINANCE_WS_API = "wss://ws-api.binance.com:443/ws-api/v3"
_WS_API_OF_HOST = {
    "stream.binance.com": BINANCE_WS_API,
    "data-stream.binance.vision": BINANCE_WS_API,
    "stream.testnet.binance.vision": "wss://ws-api.testnet.binance.vision/ws-api/v3",
}
SUBSCRIBE = "userDataStream.subscribe.signature"
_TERMINATED = frozenset({"eventStreamTerminated", "listenKeyExpired"})


def ws_api_url_for(ws_url: str) -> str:
    """The WebSocket API next to a market-stream base URL: Binance's own hosts map to theirs,
    anything else (the local server, which serves both on one port) gets ``<ws_url>/ws-api/v3``."""
    host = urlsplit(ws_url).hostname or ""
    return _WS_API_OF_HOST.get(host, ws_url.rstrip("/") + WS_API_PATH)


class _Refused(VenueError):
    """The subscription was refused for now (429/418 or a server error): retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class UserStream:
    """Keeps one user data stream open and feeds its events to ``on_events`` (see module doc)."""

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
        mode: str = WS_API,
        ws_api_url: str | None = None,
        rotate_after_s: float = ROTATE_AFTER_S,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"user stream mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.rest = rest
        self.ws_url = ws_url.rstrip("/")
        self.ws_api_url = ws_api_url or ws_api_url_for(self.ws_url)
        self.on_events = on_events
        self.parser = UserParser(market=market)
        self.mode = mode if market is Market.SPOT else LISTEN_KEY  # USD-M futures: listenKeys only
        self.fell_back = False
        self.clock = clock or LiveClock()
        self.backoff = backoff or Backoff()
        self.keepalive_s = keepalive_s
        self.heartbeat_s = heartbeat_s
        self.rotate_after_s = rotate_after_s
        self.on_reconnect = on_reconnect
        self.listen_key: str | None = None
        self.subscription_id: int | None = None
        self.error: VenueError | None = None
        self.connects = 0
        self.keepalives = 0
        self.connected = asyncio.Event()
        self._failed = asyncio.Event()
        self._stop = asyncio.Event()
        self._terminated = ""
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)
        self._decode = msgspec.json.Decoder().decode

    def _status(self, status: str, detail: str = "") -> None:
        now = self.clock.now_ns()
        self.on_events([FeedStatusChanged(0, now, now, InstrumentId(""), STREAM, status, detail)])

    # ----------------------------------------------------------------- listenKey (legacy)

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

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Connect (and subscribe or create a key), read, reconnect with backoff until :meth:`stop`."""
        import aiohttp

        async with aiohttp.ClientSession() as session:
            first = True
            while not self._stop.is_set():
                floor_s, rotated = 0.0, False
                try:
                    if self.mode == LISTEN_KEY:
                        await self.create_key()
                    rotated = await self._connection(session, first)
                    first = False
                except (CredentialsRejected, ClockRejected) as exc:
                    self._fail(exc)
                    return
                except aiohttp.WSServerHandshakeError as exc:
                    if self._fall_back(exc):
                        continue
                    self._status("disconnected", f"{type(exc).__name__}: {exc}")
                except _Refused as exc:
                    floor_s = exc.retry_after_s
                    self._status("disconnected", str(exc))
                except (TimeoutError, aiohttp.ClientError, OSError, VenueError) as exc:
                    self._status("disconnected", f"{type(exc).__name__}: {exc}")
                if self._stop.is_set():
                    break
                if rotated:
                    continue
                delay = max(self.backoff.next(), floor_s)
                self._status("reconnecting", f"in {delay:.3f} s")
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)

    async def wait_connected(self, timeout_s: float) -> None:
        """Until the first connection is up; raises the fatal error that ended :meth:`run`, or TimeoutError."""
        waits = [asyncio.ensure_future(self.connected.wait()), asyncio.ensure_future(self._failed.wait())]
        _, pending = await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if self.error is not None:
            raise self.error
        if not self.connected.is_set():
            raise TimeoutError(f"user data stream not connected after {timeout_s:g} s ({self.mode})")

    async def stop(self) -> None:
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the connection as if the network dropped it."""
        if self._ws is not None:
            await self._ws.close()

    def _fail(self, exc: VenueError) -> None:
        self.error = exc
        self._failed.set()
        self._status("disconnected", f"user data stream stopped: {type(exc).__name__}: {exc}")

    def _fall_back(self, exc: aiohttp.WSServerHandshakeError) -> bool:
        """A server without the WebSocket API (404 before any WS-API success): use its listenKey flow."""
        if self.mode != WS_API or exc.status != 404 or self.connects:
            return False
        self.mode, self.fell_back = LISTEN_KEY, True
        return True

    # ----------------------------------------------------------------- one connection

    async def _connection(self, session: aiohttp.ClientSession, first: bool) -> bool:
        """One connection's life; True when it ended by rotation (reconnect at once)."""
        ws_api = self.mode == WS_API
        url = self.ws_api_url if ws_api else f"{self.ws_url}/ws/{self.listen_key}"
        async with session.ws_connect(url, heartbeat=self.heartbeat_s, autoping=True) as ws:
            self._ws = ws
            try:
                if ws_api:
                    await self._subscribe(ws)
                self.connects += 1
                self.backoff.reset()
                self._status("connected", self._where())
                self.connected.set()
                if not first and self.on_reconnect is not None:
                    await self.on_reconnect()
                keeper = None if ws_api else asyncio.get_running_loop().create_task(self._keep(ws))
                try:
                    rotated = await self._read(ws)
                finally:
                    if keeper is not None:
                        keeper.cancel()
            finally:
                self._ws = None
                self.subscription_id = None
                self.connected.clear()
        if not rotated:
            why = f"{self._terminated} received" if self._terminated else f"closed (code {ws.close_code})"
            self._status("disconnected", "stopped" if self._stop.is_set() else why)
        self._terminated = ""
        return rotated

    def _where(self) -> str:
        if self.mode == WS_API:
            return f"{self.ws_api_url} (subscriptionId {self.subscription_id})"
        note = f" (no WebSocket API at {self.ws_api_url}: legacy listenKey flow)" if self.fell_back else ""
        return f"{self.ws_url}/ws/<listenKey>{note}"

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> bool:
        """Frames until the connection ends (False) or is due for rotation (True)."""
        async for data in receive_frames(ws, self.rotate_after_s):
            if data is None:
                self._status("rotated", f"replacing the connection after {self.rotate_after_s:g} s")
                return True
            self.handle_frame(data, self.clock.now_ns())
            if self._terminated:
                await ws.close()
                return False
        return False

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        """Send ``userDataStream.subscribe.signature`` and check the answer (see module doc)."""
        await self.rest.ensure_time()
        resynced = False
        while True:
            rid = f"user-{next(self._ids)}"
            params, ts_ms = self.rest.builder.signer.sign_ws_api({}, self.clock.now_ns())
            await ws.send_str(json.dumps({"id": rid, "method": SUBSCRIBE, "params": params}, separators=(",", ":")))
            reply = await self._reply(ws, rid)
            if reply.get("status") == 200 and isinstance(reply.get("result"), dict):
                self.subscription_id = int(reply["result"]["subscriptionId"])
                return
            code, msg = _error_of(reply)
            if code == -1021 and not resynced:
                resynced = True
                self.rest.server_time.invalidate()
                self._status("resync_started", "-1021 on subscribe: re-measuring server time")
                await self.rest.sync_time()
                continue
            raise _subscribe_error(reply, code, msg, ts_ms, self.rest)

    async def _reply(self, ws: aiohttp.ClientWebSocketResponse, rid: str) -> dict[str, Any]:
        """The answer to request ``rid`` (other frames before it are handled as usual)."""
        import aiohttp

        async with asyncio.timeout(self.rest.timeout_s):
            while True:
                msg = await ws.receive()
                if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
                    try:
                        doc = self._decode(msg.data)
                    except msgspec.DecodeError:
                        doc = None
                    if isinstance(doc, dict) and doc.get("id") == rid:
                        return doc
                    self.handle_frame(msg.data, self.clock.now_ns())
                elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                                  aiohttp.WSMsgType.ERROR):
                    raise VenueError(f"{self.ws_api_url}: connection closed before answering {SUBSCRIBE}")

    # ----------------------------------------------------------------- frames (sans-I/O)

    def handle_frame(self, frame: bytes | str, ts_recv: int) -> None:
        """One user-stream frame -> events: raw (``/ws/<listenKey>``), combined, or WS-API-wrapped.

        WS-API replies (``id`` + ``status``) carry no events; events of another subscription are
        ignored; ``eventStreamTerminated``/``listenKeyExpired`` mark the connection for replacement.
        A malformed frame is reported (``gap``), not fatal.
        """
        try:
            doc = self._decode(frame)
        except msgspec.DecodeError as exc:
            self._status("gap", f"unparseable user frame skipped: user stream frame is not JSON: {exc}")
            return
        if isinstance(doc, dict) and isinstance(doc.get("data"), dict):
            doc = doc["data"]
        if not isinstance(doc, dict):
            return
        event = doc.get("event")
        if isinstance(event, dict):
            sid = doc.get("subscriptionId")
            if sid is not None and self.subscription_id is not None and sid != self.subscription_id:
                return
            doc = event
        elif "status" in doc and "id" in doc:
            return
        etype = doc.get("e")
        if etype in _TERMINATED:
            self._terminated = str(etype)
            return
        try:
            events = self.parser.events(doc, ts_recv)
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


def _error_of(reply: dict[str, Any]) -> tuple[int, str]:
    err = reply.get("error")
    if not isinstance(err, dict):
        return 0, f"unexpected answer {json.dumps(reply)[:200]}"
    try:
        return int(err.get("code", 0)), str(err.get("msg", ""))
    except (TypeError, ValueError):
        return 0, str(err)[:200]


def _subscribe_error(reply: dict[str, Any], code: int, msg: str, ts_ms: int, rest: RestClient) -> VenueError:
    """The exception a refused subscription raises: REST's for key/clock faults, retryable otherwise."""
    where = f"{SUBSCRIBE}: timestamp {ts_ms} ms, recvWindow {rest.builder.signer.recv_window_ms} ms"
    if code == -1021:
        return ClockRejected(code, f"{msg} ({where}, measured server offset {rest.server_time.offset_ms} ms)")
    if code in (-1022, -2014, -2015):
        return CredentialsRejected(code, f"{msg} ({SUBSCRIBE}: check the API key and secret this process was given)")
    status = reply.get("status")
    data = reply["error"].get("data") if isinstance(reply.get("error"), dict) else None
    wait_s = 0.0
    if isinstance(data, dict) and isinstance(data.get("retryAfter"), int) and isinstance(data.get("serverTime"), int):
        wait_s = max(0.0, (data["retryAfter"] - data["serverTime"]) / 1000)
    return _Refused(f"{SUBSCRIBE} refused: status {status}, {code} {msg}", wait_s)


__all__ = ["BINANCE_WS_API", "LISTEN_KEY", "MODES", "WS_API", "UserStream", "ws_api_url_for"]
