"""Ports: what the kernel needs from the world, as small protocols.

The kernel (``engine.kernel``) knows nothing about files, Arrow or exchanges. It talks to:

- an **event source**: an iterable of :class:`Chunk` s, each a run of market events in log
  order. A chunk exposes a few vectorised summaries so the kernel can consume it without
  building one Python object per row when nobody is interested in its rows (the columnar
  fast path). ``replay.source`` implements it over the log's ``ColumnBatch``; tests use
  :class:`EventListChunk`.
- a **venue** (:class:`Venue`): sans-I/O, ``handle(command, ts) -> events`` and
  ``on_market(event, ts) -> events`` (``venues.sim.venue.SimVenue`` has exactly this shape).
  The venue never calls back into the kernel and knows nothing of latency.
- a **latency model** (:class:`LatencyModel`, same shape as ``venues.sim.models.latency``):
  the kernel schedules a command's arrival at the venue ``order_latency_ns`` after it was
  issued, and each venue event ``response_latency_ns`` after the venue produced it, all on
  its one queue. :class:`ZeroLatency` is the default.
- a **risk gate** (:class:`RiskGate`) between every strategy and the venue;
  :class:`PassThroughRisk` approves everything for now.
- an **output sink** (:class:`OutputSink`): where every output event goes (a log writer in a
  backtest, a list in tests).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Protocol

from engine.events import (
    CancelRejected,
    Event,
    Kind,
    OrderRejected,
    OrderStatusReported,
)
from engine.identifiers import InstrumentId
from engine.orders import (
    AnyCommand,
    CancelAllOrders,
    CancelOrder,
    CancelOrderList,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
)

# --------------------------------------------------------------------------- source


class Chunk(Protocol):
    """A run of market events in log order, as the kernel consumes them.

    ``ts`` below is always ``ts_recv``: market events are processed when a live strategy
    would have received them.
    """

    def __len__(self) -> int:
        """Number of rows (events)."""
        ...

    @property
    def first_ts(self) -> int:
        """``ts_recv`` of the first row."""
        ...

    @property
    def last_ts(self) -> int:
        """``ts_recv`` of the last row."""
        ...

    @property
    def max_ts(self) -> int:
        """Largest ``ts_recv`` in the chunk (equals ``last_ts`` unless the log's receive times regress)."""
        ...

    @property
    def kinds(self) -> frozenset[int]:
        """The ``Kind`` codes present in the chunk."""
        ...

    def events(self) -> Iterator[Event]:
        """The rows as event objects, in order (the per-event path)."""
        ...

    def last_by_instrument(self, kinds: frozenset[int]) -> dict[InstrumentId, Event]:
        """For each instrument, its last row whose kind is in ``kinds`` (vectorised in real chunks)."""
        ...


class EventListChunk:
    """A :class:`Chunk` over a list of events; for tests, live feeds and small sources."""

    __slots__ = ("_events", "_kinds")

    def __init__(self, events: Sequence[Event]) -> None:
        if not events:
            raise ValueError("a chunk holds at least one event")
        self._events = list(events)
        self._kinds = frozenset(int(e.kind) for e in self._events)

    def __len__(self) -> int:
        return len(self._events)

    @property
    def first_ts(self) -> int:
        return self._events[0].ts_recv

    @property
    def last_ts(self) -> int:
        return self._events[-1].ts_recv

    @property
    def max_ts(self) -> int:
        return max(e.ts_recv for e in self._events)

    @property
    def kinds(self) -> frozenset[int]:
        return self._kinds

    def events(self) -> Iterator[Event]:
        return iter(self._events)

    def last_by_instrument(self, kinds: frozenset[int]) -> dict[InstrumentId, Event]:
        out: dict[InstrumentId, Event] = {}
        for ev in self._events:
            if ev.kind in kinds:
                out[ev.instrument] = ev
        return out


def chunked(events: Iterable[Event], size: int) -> Iterator[EventListChunk]:
    """Split an event stream into :class:`EventListChunk` s of at most ``size`` rows."""
    if size < 1:
        raise ValueError(f"chunk size must be >= 1, got {size}")
    buf: list[Event] = []
    for ev in events:
        buf.append(ev)
        if len(buf) == size:
            yield EventListChunk(buf)
            buf = []
    if buf:
        yield EventListChunk(buf)


# --------------------------------------------------------------------------- venue, latency, risk


class Venue(Protocol):
    """Where approved commands go. Sans-I/O: returns what happened, never calls back."""

    @property
    def market_kinds(self) -> frozenset[int]:
        """Market event kinds the venue must see (e.g. trades and book changes for a matcher)."""
        ...

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        """Apply one command at venue time ``ts``; the venue events it caused, in order."""
        ...

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        """See one market event of a kind in ``market_kinds``; the venue events it caused."""
        ...


NO_VENUE_CODE = -1000
NO_VENUE_MSG = "no venue: NoopVenue accepts no orders"


class NoopVenue:
    """No venue at all: every command is refused at once and nothing ever fills.

    New orders and order lists get ``OrderRejected`` (code -1000, Binance's generic
    "unknown" error), cancels ``CancelRejected`` -2011 "Unknown order sent." and queries
    ``OrderStatusReported`` -2013 "Order does not exist." -- what a venue with no orders says.
    """

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        iid = command.instrument
        if isinstance(command, SubmitOrder):
            return [OrderRejected(0, ts, ts, iid, command.client_order_id or "", NO_VENUE_CODE, NO_VENUE_MSG)]
        if isinstance(command, SubmitOrderList):
            coid = command.legs[0].client_order_id if command.legs else None
            return [
                OrderRejected(
                    0,
                    ts,
                    ts,
                    iid,
                    coid or "",
                    NO_VENUE_CODE,
                    NO_VENUE_MSG,
                    list_client_order_id=command.list_client_order_id or "",
                )
            ]
        if isinstance(command, CancelOrder):
            return [
                CancelRejected(
                    0,
                    ts,
                    ts,
                    iid,
                    -2011,
                    "Unknown order sent.",
                    client_order_id=command.orig_client_order_id or "",
                )
            ]
        if isinstance(command, CancelOrderList | CancelAllOrders):
            return [CancelRejected(0, ts, ts, iid, -2011, "Unknown order sent.")]
        if isinstance(command, QueryOrder):
            return [OrderStatusReported(0, ts, ts, iid, None, -2013, "Order does not exist.")]
        raise TypeError(f"NoopVenue cannot handle {type(command).__name__}")

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []


class LatencyModel(Protocol):
    """How long a command takes to reach the venue, and an answer to come back (int ns)."""

    def order_latency_ns(self, ts: int) -> int:
        """Delay of a command issued at ``ts`` until the venue handles it."""
        ...

    def response_latency_ns(self, ts: int) -> int:
        """Delay of a venue event produced at ``ts`` until the strategy receives it."""
        ...


class ZeroLatency:
    """Commands reach the venue, and answers the strategy, at the same replay time."""

    def order_latency_ns(self, ts: int) -> int:
        return 0

    def response_latency_ns(self, ts: int) -> int:
        return 0


class RiskGate(Protocol):
    """Sits between every strategy and the venue: approves a command or refuses it."""

    def check(self, command: AnyCommand, strategy_id: str, now_ns: int) -> Event | None:
        """None to let the command through, or the refusal (e.g. ``OrderRejected``) sent back."""
        ...


class PassThroughRisk:
    """Approves everything; the real risk engine replaces it behind the same port."""

    def check(self, command: AnyCommand, strategy_id: str, now_ns: int) -> Event | None:
        return None


# --------------------------------------------------------------------------- output


class OutputSink(Protocol):
    """Receives every output event of a run, in order, with its final ``seq`` already set."""

    def write(self, event: Event) -> None:
        """Record one output event."""
        ...


class ListSink:
    """An in-memory :class:`OutputSink` (tests, small tools)."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def write(self, event: Event) -> None:
        self.events.append(event)


MARKET_CALLBACK_KINDS: frozenset[int] = frozenset(
    {Kind.TRADE, Kind.AGG_TRADE, Kind.QUOTE, Kind.BOOK_DELTA, Kind.BOOK_SNAPSHOT, Kind.MARK_PRICE, Kind.KLINE}
)
"""Market kinds a strategy can subscribe to (each has an ``on_*`` callback)."""
