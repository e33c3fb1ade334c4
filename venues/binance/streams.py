"""Combined market streams over one WebSocket, with reconnects, rotation and local order books.

I/O lives in :class:`MarketStream` (aiohttp, on the session's one event loop); the decisions
are sans-I/O and tested on their own: :class:`Backoff` (exponential with jitter from a seeded
``random.Random``) and :class:`DepthBook` (Binance's local-book procedure, driven by the same
``engine.booksync.BookSync`` the kernel uses, so both always agree).

Connection life (each change is a ``FeedStatusChanged`` event in the output, so an audit replay
sees outages where the live run did): ``connected`` -> (frames) -> ``disconnected`` ->
``reconnecting`` after the backoff -> ``connected``; ``rotated`` when the connection is replaced
before Binance's 24-hour limit. Pings are answered by aiohttp (``autoping``: a pong echoing the
ping's payload); our own heartbeat pings detect a dead peer.

Local books: every diff and every REST snapshot is emitted in the order it was received, exactly
like a recording (``BookDeltaReceived`` per diff, ``BookSnapshotReceived(partial=False)`` per
``/depth`` answer); the kernel's ``BookSync`` therefore reaches the same state as ours. Ours
decides when to fetch a snapshot: at the first diff of a symbol, and whenever the chain breaks
(``U > last + 1`` on spot, ``pu != last`` on futures, a crossed book, or a snapshot older than the
buffered diffs) -- ``gap``, ``resync_started`` and ``resynced`` statuses mark each repair.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.booksync import BookSync, SyncState
from engine.clock import Clock, LiveClock
from engine.errors import VenueError, VenueMisbehaved
from engine.events import BookDeltaReceived, BookSnapshotReceived, Event, FeedStatusChanged
from engine.identifiers import InstrumentId
from venues.binance.protocol import MarketParser, depth_snapshot_event
from venues.binance.requests import RequestBuilder, api_error
from venues.binance.rest import RestClient

if TYPE_CHECKING:
    import aiohttp

EventsCallback = Callable[[list[Event]], None]
ROTATE_AFTER_S = 23 * 3600 + 30 * 60
"""Replace a connection after 23.5 h: Binance closes it at 24 h."""


@dataclass(slots=True)
class Backoff:
    """Exponential reconnect delays with full jitter in [d/2, d]; ``rng`` is seeded for tests."""

    base_s: float = 0.5
    cap_s: float = 30.0
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    attempt: int = 0

    def next(self) -> float:
        """The delay before the next attempt."""
        delay = min(self.cap_s, self.base_s * float(2**self.attempt))
        self.attempt += 1
        return delay * (0.5 + 0.5 * self.rng.random())

    def reset(self) -> None:
        """A connection succeeded: start again from ``base_s``."""
        self.attempt = 0


class DepthBook:
    """One symbol's local book: wraps ``BookSync`` and says when a REST snapshot is needed."""

    def __init__(self, instrument: InstrumentId) -> None:
        self.instrument = instrument
        self.sync = BookSync.for_instrument(instrument)
        self.fetching = False
        self.resyncs = 0
        self.gaps = 0

    @property
    def needs_snapshot(self) -> bool:
        """True when diffs are being buffered for want of a snapshot and none is being fetched."""
        return not self.fetching and self.sync.state in (SyncState.WAIT_SNAPSHOT, SyncState.RESYNC_NEEDED)

    def feed(self, ev: BookDeltaReceived | BookSnapshotReceived) -> list[Event]:
        """Apply one diff or snapshot; the gap markers it caused (the caller resyncs on any)."""
        gaps = self.sync.on_event(ev)
        self.gaps += len(gaps)
        return gaps


def depth_symbols(streams: Sequence[str]) -> list[str]:
    """Symbols (upper case) that have a diff-depth stream (``x@depth``, ``x@depth@100ms``)."""
    out = []
    for s in streams:
        sym, _, kind = s.partition("@")
        if kind.partition("@")[0] == "depth":
            out.append(sym.upper())
    return out


async def receive_frames(ws: aiohttp.ClientWebSocketResponse, rotate_after_s: float) -> AsyncIterator[bytes | None]:
    """Each data frame as bytes until the peer closes; ``None`` once when the connection is due.

    Why one loop for every stream: Binance cuts a connection at 24 h, so each of ours is replaced
    before that (``rotate_after_s``); waiting on ``receive`` with the time left keeps a quiet
    stream from sleeping past its rotation.
    """
    import aiohttp

    loop = asyncio.get_running_loop()
    deadline = loop.time() + rotate_after_s
    while True:
        left = deadline - loop.time()
        if left <= 0:
            yield None
            return
        try:
            msg = await asyncio.wait_for(ws.receive(), left)
        except TimeoutError:
            continue
        if msg.type in (aiohttp.WSMsgType.TEXT, aiohttp.WSMsgType.BINARY):
            yield msg.data.encode() if isinstance(msg.data, str) else msg.data
        elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING,
                          aiohttp.WSMsgType.ERROR):
            return


class MarketStream:
    """One combined-stream connection (``/stream?streams=a/b/c``) feeding ``on_events``.

    ``rest`` fetches depth snapshots (``/api/v3/depth``, or ``/fapi/v1/depth`` when
    ``futures``). ``on_frame(bytes, ts_recv)`` sees every raw frame first (a recorder).
    """

    def __init__(
        self,
        ws_url: str,
        streams: Sequence[str],
        on_events: EventsCallback,
        *,
        rest: RestClient | None = None,
        futures: bool = False,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        heartbeat_s: float = 20.0,
        rotate_after_s: float = ROTATE_AFTER_S,
        depth_limit: int = 1000,
        name: str = "market",
        on_frame: Callable[[bytes, int], None] | None = None,
    ) -> None:
        if not streams:
            raise VenueError("a market stream needs at least one stream name")
        self.url = f"{ws_url.rstrip('/')}/stream?streams={'/'.join(streams)}"
        self.streams = list(streams)
        self.on_events = on_events
        self.rest = rest
        self.parser = MarketParser(futures=futures)
        self.futures = futures
        self.clock = clock or LiveClock()
        self.backoff = backoff or Backoff()
        self.heartbeat_s = heartbeat_s
        self.rotate_after_s = rotate_after_s
        self.depth_limit = depth_limit
        self.name = name
        self.on_frame = on_frame
        self.books: dict[InstrumentId, DepthBook] = {
            iid: DepthBook(iid) for iid in (self.parser.instrument(s) for s in depth_symbols(streams))
        }
        if self.books and rest is None:
            raise VenueError(f"diff-depth streams for {sorted(self.books)} need a REST client for snapshots")
        self.frames = 0
        self.connects = 0
        self.bad_frames = 0
        self._stop = asyncio.Event()
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ----------------------------------------------------------------- status

    def _status(self, status: str, detail: str = "", instrument: str = "") -> FeedStatusChanged:
        now = self.clock.now_ns()
        return FeedStatusChanged(0, now, now, InstrumentId(instrument), self.name, status, detail)

    def _emit(self, events: list[Event]) -> None:
        if events:
            self.on_events(events)

    # ----------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Connect, read, reconnect with backoff until :meth:`stop`."""
        import aiohttp

        async with aiohttp.ClientSession() as session:
            while not self._stop.is_set():
                try:
                    rotated = await self._connection(session)
                except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                    self._emit([self._status("disconnected", f"{type(exc).__name__}: {exc}")])
                    rotated = False
                if self._stop.is_set():
                    break
                if not rotated:
                    delay = self.backoff.next()
                    self._emit([self._status("reconnecting", f"in {delay:.3f} s")])
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._stop.wait(), delay)
        for task in list(self._tasks):
            task.cancel()

    async def stop(self) -> None:
        """Close the connection and end :meth:`run`."""
        self._stop.set()
        if self._ws is not None:
            await self._ws.close()

    async def drop(self) -> None:
        """Close the current connection as if the network dropped it (run reconnects)."""
        if self._ws is not None:
            await self._ws.close()

    async def _connection(self, session: aiohttp.ClientSession) -> bool:
        """One connection's life; True when it ended by rotation (reconnect at once)."""

        async with session.ws_connect(self.url, heartbeat=self.heartbeat_s, autoping=True, max_msg_size=0) as ws:
            self._ws = ws
            self.connects += 1
            self.backoff.reset()
            self._emit([self._status("connected", self.url.partition("?")[0])])
            async for data in receive_frames(ws, self.rotate_after_s):
                if data is None:
                    self._emit([self._status("rotated", f"replacing the connection after {self.rotate_after_s:g} s")])
                    return True
                self.handle_frame(data, self.clock.now_ns())
            detail = f"closed by peer (code {ws.close_code})" if not self._stop.is_set() else "stopped"
            self._emit([self._status("disconnected", detail)])
            self._ws = None
            return False

    # ----------------------------------------------------------------- frames (sans-I/O core)

    def handle_frame(self, frame: bytes, ts_recv: int) -> None:
        """Parse one frame, keep the books, emit its events (and any resync statuses)."""
        self.frames += 1
        if self.on_frame is not None:
            self.on_frame(frame, ts_recv)
        try:
            events = self.parser.parse(frame, ts_recv)
        except VenueMisbehaved as exc:
            self.bad_frames += 1
            self._emit([self._status("gap", f"unparseable frame skipped: {exc}")])
            return
        out: list[Event] = []
        for ev in events:
            out.append(ev)
            if type(ev) is BookDeltaReceived:
                book = self.books.get(ev.instrument)
                if book is not None:
                    self._book_input(book, ev, out)
        self._emit(out)

    def _book_input(self, book: DepthBook, ev: BookDeltaReceived | BookSnapshotReceived, out: list[Event]) -> None:
        for gap in book.feed(ev):
            reason = getattr(gap, "reason", "")
            out.append(self._status("gap", str(reason), book.instrument))
        if book.needs_snapshot:
            self._fetch(book, out)

    def _fetch(self, book: DepthBook, out: list[Event]) -> None:
        book.fetching = True
        book.resyncs += 1
        out.append(self._status("resync_started", "fetching a depth snapshot", book.instrument))
        task = asyncio.get_running_loop().create_task(self._snapshot(book))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _snapshot(self, book: DepthBook) -> None:
        """Fetch ``/depth`` and feed it in receive order; retried until the book bridges."""
        assert self.rest is not None
        path = "/fapi/v1/depth" if self.futures else "/api/v3/depth"
        symbol = book.instrument.rpartition(".")[0]
        params = [("symbol", symbol), ("limit", str(self.depth_limit))]
        weight = 5 if self.depth_limit <= 100 else 25 if self.depth_limit <= 500 else 50
        req = RequestBuilder.public(path, params, weight)
        try:
            resp = await self.rest.send(req)
        except VenueError as exc:
            book.fetching = False
            self._emit([self._status("gap", f"depth snapshot failed: {exc}", book.instrument)])
            await asyncio.sleep(self.backoff.base_s)
            self._retry(book)
            return
        book.fetching = False
        err = api_error(resp.status, resp.doc)
        if err is not None or not isinstance(resp.doc, dict):
            self._emit([self._status("gap", f"depth snapshot refused: {err}", book.instrument)])
            self._retry(book)
            return
        snap = depth_snapshot_event(resp.doc, book.instrument, self.clock.now_ns())
        out: list[Event] = [snap]
        self._book_input(book, snap, out)
        if book.sync.synced:
            out.append(self._status("resynced", f"book at update id {book.sync.last_update_id}", book.instrument))
        self._emit(out)

    def _retry(self, book: DepthBook) -> None:
        if not self._stop.is_set() and book.needs_snapshot:
            out: list[Event] = []
            self._fetch(book, out)
            self._emit(out)


class MarketSource:
    """A live session's event source (``run(emit)`` / ``aclose()``) over one :class:`MarketStream`.

    Every event the stream produces (market data, book snapshots, feed statuses) goes to ``emit``
    in receive order. ``kwargs`` are :class:`MarketStream` 's keyword arguments.
    """

    def __init__(self, ws_url: str, streams: Sequence[str], **kwargs: object) -> None:
        self.ws_url = ws_url
        self.streams = list(streams)
        self.kwargs = kwargs
        self.stream: MarketStream | None = None

    async def run(self, emit: Callable[[Event], None]) -> None:
        def forward(events: list[Event]) -> None:
            for ev in events:
                emit(ev)

        self.stream = MarketStream(self.ws_url, self.streams, forward, **self.kwargs)  # type: ignore[arg-type]
        await self.stream.run()

    async def aclose(self) -> None:
        if self.stream is not None:
            await self.stream.stop()
