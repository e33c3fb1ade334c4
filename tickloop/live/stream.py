"""A minimal combined-stream market data source for sessions: WebSocket frames -> events.

Why here and not only in ``venues/binance``: recording needs nothing but the frames, each
stamped on receipt and parsed by the *same* parser the importer uses for recorded files
(``catalogs.importers.binance_stream``), so a live recording and an imported one give the
same events. It connects to ``<ws_url>/stream?streams=a/b/c``, reconnects with capped
exponential backoff and jitter, and reports every connection change as a
:class:`~engine.events.FeedStatusChanged` input event (so a replay sees outages where the
recording did). With ``depth`` streams it takes one REST depth snapshot per symbol after each
(re)connect, so the diffs of a recording can be turned into a book later.

The session may use the live adapter's market data client instead (``venues.binance``) when
it offers book sync; both satisfy :class:`~tickloop.live.session.EventSource`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.clock import LiveClock
from engine.events import Event, FeedStatusChanged
from engine.identifiers import Market
from engine.strategy import NO_INSTRUMENT

log = logging.getLogger("tickloop.live.stream")

STREAM_SUFFIX = {
    "trade": "@trade",
    "aggTrade": "@aggTrade",
    "depth": "@depth@100ms",
    "depth20": "@depth20@100ms",
    "bookTicker": "@bookTicker",
    "markPrice": "@markPrice@1s",
    "kline_1m": "@kline_1m",
}
"""``--streams`` names -> Binance stream suffixes."""
COMBINED = "combined"
MAX_BACKOFF_S = 10.0


def stream_names(symbols: Sequence[str], streams: Sequence[str]) -> list[str]:
    """``btcusdt@aggTrade``, ... for every symbol and stream (ConfigError on an unknown stream)."""
    from engine.errors import ConfigError

    unknown = [s for s in streams if s not in STREAM_SUFFIX]
    if unknown:
        raise ConfigError(f"--streams: unknown stream(s) {', '.join(unknown)}; known: {', '.join(STREAM_SUFFIX)}")
    return [f"{sym.lower()}{STREAM_SUFFIX[s]}" for sym in symbols for s in streams]


@dataclass(slots=True)
class StreamStats:
    """Counts for ``status()`` and the benchmark."""

    messages: int = 0
    events: int = 0
    bad: int = 0
    connects: int = 0
    resyncs: int = 0


class StreamSource:
    """Combined-stream client producing engine events (see module doc)."""

    def __init__(
        self,
        ws_url: str,
        symbols: Sequence[str],
        streams: Sequence[str],
        *,
        base_url: str | None = None,
        market: Market = Market.SPOT,
        clock: Callable[[], int] | None = None,
        seed: int | None = None,
    ) -> None:
        self.names = stream_names(symbols, streams)
        self.url = f"{ws_url.rstrip('/')}/stream?streams={'/'.join(self.names)}"
        self.symbols = [s.upper() for s in symbols]
        self.snapshots = "depth" in streams and base_url is not None
        self.base_url = base_url
        self._market = market
        self._clock = clock if clock is not None else LiveClock().now_ns
        self._rng = random.Random(seed)  # jitter only: never part of any event
        self._closing = False
        self._ws: Any = None
        self._live: tuple[Any, Callable[[Event], None]] | None = None  # (parser, emit) while running
        self._resyncing: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.stats = StreamStats()

    def _parser(self) -> Any:
        from catalogs.importers.binance_stream import BinanceStreamParser

        return BinanceStreamParser(market=self._market)

    def _status(self, status: str, detail: str = "") -> FeedStatusChanged:
        return FeedStatusChanged(0, 0, 0, NO_INSTRUMENT, COMBINED, status, detail)

    async def run(self, emit: Callable[[Event], None]) -> None:
        """Stream until :meth:`aclose`; every event goes to ``emit`` (unstamped seq, stamped ts_recv)."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import WebSocketException

        backoff = 0.25
        parser = self._parser()
        self._live = (parser, emit)
        while not self._closing:
            try:
                async with connect(self.url, max_size=None, ping_interval=20, ping_timeout=20) as ws:
                    self._ws = ws
                    self.stats.connects += 1
                    emit(self._status("connected", f"{len(self.names)} streams"))
                    backoff = 0.25
                    if self.snapshots:
                        await self._snapshots(parser, emit)
                    await self._pump(ws, parser, emit)
            except (TimeoutError, OSError, WebSocketException) as exc:
                if self._closing:
                    break
                emit(self._status("disconnected", f"{type(exc).__name__}: {exc}"[:200]))
            finally:
                self._ws = None
            if self._closing:
                break
            delay = backoff * (0.5 + self._rng.random())
            emit(self._status("reconnecting", f"in {delay:.2f} s"))
            await asyncio.sleep(delay)
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    async def _pump(self, ws: Any, parser: Any, emit: Callable[[Event], None]) -> None:
        from catalogs.importers.common import BadRecord

        clock = self._clock
        stats = self.stats
        async for message in ws:
            ts = clock()
            raw = message.encode() if isinstance(message, str) else message
            stats.messages += 1
            try:
                events = parser.feed(b"%d %s" % (ts, raw))
            except BadRecord as exc:
                stats.bad += 1
                log.warning("bad stream message #%d: %s", stats.messages, exc)
                continue
            stats.events += len(events)
            for ev in events:
                emit(ev)

    async def _snapshots(self, parser: Any, emit: Callable[[Event], None], symbols: Sequence[str] = ()) -> None:
        """One REST depth snapshot per symbol (after the diffs started buffering in the socket)."""
        import httpx

        assert self.base_url is not None
        async with httpx.AsyncClient(base_url=self.base_url, timeout=10.0) as client:
            for sym in symbols or self.symbols:
                await self._snapshot(client, sym, parser, emit)

    async def _snapshot(self, client: Any, sym: str, parser: Any, emit: Callable[[Event], None]) -> None:
        import httpx

        from catalogs.importers.common import BadRecord

        try:
            resp = await client.get("/api/v3/depth", params={"symbol": sym, "limit": 1000})
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            emit(self._status("resync_started", f"depth snapshot of {sym} failed: {exc}"[:200]))
            return
        body["symbol"] = sym
        try:
            events = parser.feed(b"%d %s" % (self._clock(), json.dumps(body).encode()))
        except BadRecord as exc:
            self.stats.bad += 1
            log.warning("bad depth snapshot of %s: %s", sym, exc)
            return
        for ev in events:
            emit(ev)

    def request_resync(self, symbol: str) -> None:
        """The book of ``symbol`` lost its sequence (the kernel saw a gap): fetch a fresh snapshot.

        Binance's procedure after a gap is the start procedure again: keep the diffs coming
        (the socket keeps buffering them) and apply a new REST snapshot; the kernel's book
        sync drops the diffs the snapshot already covers. One request per symbol at a time.
        """
        sym = symbol.upper()
        if self._live is None or not self.snapshots or sym in self._resyncing or self._closing:
            return
        parser, emit = self._live
        self._resyncing.add(sym)
        self.stats.resyncs += 1
        emit(self._status("resync_started", f"{sym}: book gap"))

        async def resync() -> None:
            try:
                await self._snapshots(parser, emit, [sym])
                emit(self._status("resynced", sym))
            finally:
                self._resyncing.discard(sym)

        task = asyncio.get_running_loop().create_task(resync())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """Stop streaming: closes the socket; :meth:`run` returns."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        ws = self._ws
        if ws is not None:
            await ws.close()


async def fetch_exchange_info(base_url: str, symbols: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``GET /api/v3/exchangeInfo?symbols=[...]``: each symbol's entry, by symbol (public, unsigned)."""
    import httpx

    from engine.errors import VenueMisbehaved

    wanted = [s.upper() for s in symbols]
    async with httpx.AsyncClient(base_url=base_url, timeout=10.0) as client:
        try:
            resp = await client.get("/api/v3/exchangeInfo")  # all symbols: every server has this shape
            resp.raise_for_status()
            body = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise VenueMisbehaved(f"GET {base_url}/api/v3/exchangeInfo failed: {exc}") from None
    found = {
        str(s["symbol"]): s for s in body.get("symbols", ()) if isinstance(s, dict) and isinstance(s.get("symbol"), str)
    }
    missing = [s for s in wanted if s not in found]
    if missing:
        raise VenueMisbehaved(f"{base_url}/api/v3/exchangeInfo has no entry for {', '.join(missing)}")
    return {s: found[s] for s in wanted}
