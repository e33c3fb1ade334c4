"""``LiveVenue``: the :class:`~engine.ports.Venue` port over real Binance (or the local server).

The kernel calls :meth:`LiveVenue.handle` synchronously while it processes a market event.
``handle`` builds and signs the request right there -- the moment the bytes are ready ends the
``tick_to_order`` latency, measured from the receive time of the market message being processed
(the session passes it with :meth:`set_market_recv_ns`) -- then schedules the send on the running
event loop and returns ``[]``: a live venue answers later. Every answer (REST response or
user-stream report) becomes events handed to ``on_events``, stamped ``ts_recv`` by the adapter's
clock; the session feeds them back to the kernel, which routes them to the owning strategy.

Duplicates: with ``newOrderRespType=FULL`` the REST answer reports the order and its immediate
fills, and the user data stream reports them again. Each execution is emitted once, keyed by
``(orderId, execution type[, tradeId])``, whichever copy arrives first.

Lost reports: executions the user stream sent while it was down (or that a lost placement
answer carried) never reach the kernel by themselves. :class:`OrderTracker` follows, from the
events this venue emits, the orders the kernel believes are working; :meth:`LiveVenue.reconcile`
(after every user-stream reconnect, and at startup) asks ``GET /api/v3/myTrades`` and
``GET /api/v3/order`` for each tracked order that left ``openOrders`` or executed more than was
reported, and reports the missing fills and the order's end as the stream would have. They go
through the same Deduper (a fill is keyed by its trade id), so a late stream copy is dropped.

An order's end never reaches the kernel before its fills: a cancel or expiry answer stating more
executed than was reported first fetches the missing trades (``myTrades`` by ``orderId``) and
emits them ahead of it; whatever end still outruns the reported fills (that query failed, the
trade list lags, a stream copy raced ahead) is held back in the tracker and released right
behind the fill that completes it. A tracked order ``GET /api/v3/order`` no longer knows
(``-2013``, e.g. archived) is given up after ``LiveConfig.forget_missing_after`` misses in a row.

Exactly-once placement is :mod:`venues.binance.orders`; this class only wires it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import msgspec

from engine.clock import Clock, LiveClock
from engine.errors import RequestRejected, VenueError
from engine.events import (
    BalanceUpdated,
    Event,
    LatencyRecorded,
    OrderAccepted,
    OrderCanceled,
    OrderExpired,
    OrderFilled,
    OrderListStatusChanged,
    OrderStatusReported,
    OrderTradePrevented,
)
from engine.identifiers import InstrumentId, Market, instrument_id
from engine.orders import (
    TERMINAL_STATUSES,
    AnyCommand,
    CancelOrder,
    ListOrderStatus,
    OrderStatus,
    QueryOrder,
    SubmitOrder,
    SubmitOrderList,
)
from venues.binance.orders import OrderExecutor
from venues.binance.protocol import MS, ended_order, terminal_events, trade_fill_events
from venues.binance.requests import (
    MY_TRADES_LIMIT,
    ApiError,
    RequestBuilder,
    SignedRequest,
    answer_events,
    api_error,
    cancel_rejected,
    list_events,
    rejected,
    snapshot_of,
    symbol_of,
)
from venues.binance.rest import RateLimiter, RestClient
from venues.binance.signing import DEFAULT_RECV_WINDOW_MS, Credentials, ServerTime, Signer
from venues.binance.userstream import UserStream

DEDUPE_MEMORY = 200_000
"""Execution keys remembered for deduplication (old ones are forgotten first)."""
NO_INSTRUMENT = InstrumentId("")


@dataclass(frozen=True, slots=True)
class LiveConfig:
    """Where and as whom to trade. URLs default to real Binance spot; point them at the local server in tests."""

    api_key: str
    api_secret: str = field(repr=False)
    rest_url: str = "https://api.binance.com"
    ws_url: str = "wss://stream.binance.com:9443"
    recv_window_ms: int = DEFAULT_RECV_WINDOW_MS
    market: Market = Market.SPOT
    user_stream: bool = True
    user_stream_mode: str = "ws_api"
    """``ws_api`` (Binance's current user data stream) or ``listen_key`` (legacy; non-spot markets always)."""
    ws_api_url: str | None = None
    """The WebSocket API; None: derived from ``ws_url`` (Binance's host -> its ws-api, else ``<ws_url>/ws-api/v3``)."""
    forget_missing_after: int = 2
    """Reconciles in a row whose ``GET /api/v3/order`` says -2013 before a tracked order is given up."""
    held_retry_s: float = 2.0
    """First wait before an end held for missing fills is retried by a reconcile (doubling, capped at 60 s)."""


def dedupe_key(ev: Event) -> tuple[object, ...] | None:
    """The identity of one execution (None: never deduplicated)."""
    t = type(ev)
    if t is OrderFilled:
        return ("T", ev.order_id, ev.trade_id)  # type: ignore[attr-defined]
    if t is OrderAccepted:
        return ("N", ev.order_id)  # type: ignore[attr-defined]
    if t is OrderCanceled:
        return ("C", ev.order_id)  # type: ignore[attr-defined]
    if t is OrderExpired:
        return ("E", ev.order_id)  # type: ignore[attr-defined]
    if t is OrderTradePrevented:
        return ("P", ev.order_id, ev.prevented_match_id)  # type: ignore[attr-defined]
    if t is OrderListStatusChanged:
        return ("L", ev.order_list_id, ev.list_status_type, ev.list_order_status)  # type: ignore[attr-defined]
    return None


class Deduper:
    """Remembers the last ``memory`` execution keys; :meth:`fresh` keeps first copies only."""

    def __init__(self, memory: int = DEDUPE_MEMORY) -> None:
        self.memory = memory
        self._seen: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self.dropped = 0

    def seen(self, ev: Event) -> bool:
        """True (and counted as dropped) if this execution already reached the kernel; marks nothing."""
        key = dedupe_key(ev)
        if key is not None and key in self._seen:
            self.dropped += 1
            return True
        return False

    def take(self, ev: Event) -> bool:
        """Mark ``ev`` as delivered; False if a copy already was (then it is counted as dropped)."""
        return bool(self.fresh([ev]))

    def fresh(self, events: list[Event]) -> list[Event]:
        out = []
        seen = self._seen
        for ev in events:
            key = dedupe_key(ev)
            if key is not None:
                if key in seen:
                    self.dropped += 1
                    continue
                seen[key] = None
                if len(seen) > self.memory:
                    seen.popitem(last=False)
            out.append(ev)
        return out


MAX_TRADE_PAGES = 20
"""``myTrades`` pages (of 1,000) fetched for one order before giving up on it for this round."""

OrderEnd = OrderCanceled | OrderExpired | OrderTradePrevented
"""A report that ends an order (a prevention only when its status is terminal: see :func:`is_end`)."""
NOT_FOUND = -2013
HELD_RETRY_MAX_S = 60.0
"""``GET /api/v3/order``: "Order does not exist." (never placed, or no longer served, e.g. archived)."""


def is_end(ev: Event) -> bool:
    """True if ``ev`` reports an order's end that carries its executed quantity (FILLED is a fill)."""
    t = type(ev)
    if t is OrderCanceled:
        return True
    return (t is OrderExpired or t is OrderTradePrevented) and ev.status in TERMINAL_STATUSES  # type: ignore[attr-defined]


def ends_list(ev: Event) -> bool:
    """True if ``ev`` reports that an order list stopped executing."""
    return type(ev) is OrderListStatusChanged and ev.list_order_status is not ListOrderStatus.EXECUTING


@dataclass(frozen=True, slots=True)
class Owed:
    """An end report that states more executed than the kernel heard: the fills to fetch before it.

    ``reported`` are the trade ids already reported (or in the same answer); ``baseline`` the
    order's quantity executed before this process watched it.
    """

    end: OrderEnd
    reported: frozenset[int]
    baseline: int


@dataclass(slots=True)
class TrackedOrder:
    """What this venue has told the kernel about one order (see :class:`OrderTracker`).

    ``reported_qty`` is ``baseline`` plus the fills emitted; ``venue_qty`` the largest executed
    quantity the venue itself stated (a fill's ``cum_qty``, a cancel's or snapshot's executedQty).
    ``baseline`` is what had executed before this process watched the order (an open order
    adopted from a snapshot): those fills belong to an earlier session and are not re-reported.
    """

    instrument: InstrumentId
    order_id: int
    client_order_id: str
    order_list_id: int = -1
    status: OrderStatus = OrderStatus.NEW
    reported_qty: int = 0
    venue_qty: int = 0
    baseline: int = 0
    trade_ids: set[int] = field(default_factory=set)
    held: dict[tuple[object, ...], Event] = field(default_factory=dict)
    """End reports held back until the fills they state are reported (first copy per dedupe key)."""
    misses: int = 0
    """Reconciles in a row whose order query answered -2013."""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def settled(self) -> bool:
        """Finished, and every fill the venue admitted to has been reported: nothing left to recover."""
        return self.terminal and self.reported_qty >= self.venue_qty and not self.held

    def held_qty(self) -> int:
        """The largest executed quantity a held end states (0: nothing held)."""
        return max((ev.cum_qty for ev in self.held.values()), default=0)  # type: ignore[attr-defined]


@dataclass(slots=True)
class TrackedList:
    """An order list the kernel was told is executing."""

    instrument: InstrumentId
    order_list_id: int
    order_ids: tuple[int, ...]


class OrderTracker:
    """The orders (and order lists) the kernel believes are working, fed by the events the venue emits.

    Sans-I/O: :meth:`observe` the emitted events, then :meth:`to_query` says, given what
    ``GET /api/v3/openOrders`` reports, which orders may have fills or an end the kernel never
    heard of. An order leaves the table once it is settled (terminal and fully reported), so the
    table holds working orders plus the few whose recovery is still owed.
    """

    def __init__(self) -> None:
        self.orders: dict[int, TrackedOrder] = {}
        self.lists: dict[int, TrackedList] = {}
        self.held_lists: dict[int, tuple[Event, set[int]]] = {}
        """A list's end held until its legs' held ends go out: (the report, the legs awaited)."""
        self._by_cid: dict[tuple[InstrumentId, str], int] = {}
        self._touched: set[int] = set()

    def get(self, order_id: int) -> TrackedOrder | None:
        return self.orders.get(order_id)

    def by_client_id(self, instrument: InstrumentId, client_order_id: str) -> TrackedOrder | None:
        oid = self._by_cid.get((instrument, client_order_id))
        return self.orders.get(oid) if oid is not None else None

    def _entry(self, instrument: InstrumentId, order_id: int, cid: str, list_id: int) -> TrackedOrder:
        t = self.orders.get(order_id)
        if t is None:
            t = self.orders[order_id] = TrackedOrder(instrument, order_id, cid, list_id)
            if cid:
                self._by_cid[(instrument, cid)] = order_id
        return t

    def observe(self, events: Iterable[Event]) -> None:
        """Update the table from events that reached the kernel (idempotent for a repeated event)."""
        touched: set[int] = set()
        for ev in events:
            oid = self._observe_one(ev)
            if oid is not None:
                touched.add(oid)
        self._touched |= touched
        self.sweep()

    def admit(self, ev: Event) -> list[Event]:
        """Observe one event on its way to the kernel; return what may go out now, in order.

        An order's end (:func:`is_end`) stating more executed than was reported is held in the
        order's entry; the fill that completes that quantity releases it right behind itself.
        A list's end waits the same way for the held ends of its legs. Everything else passes.
        Call :meth:`sweep` after a batch to forget the orders that settled.
        """
        oid = self._observe_one(ev)
        entry = None
        if oid is not None:
            self._touched.add(oid)
            entry = self.orders.get(oid)
        if entry is not None and is_end(ev) and ev.cum_qty > entry.reported_qty:  # type: ignore[attr-defined]
            entry.held.setdefault(dedupe_key(ev) or (id(ev),), ev)  # a second copy of a held end stays one
            return []
        if ends_list(ev):
            waiting = {o for o in ev.order_ids if (t := self.orders.get(o)) is not None and t.held}  # type: ignore[attr-defined]
            if waiting:
                self.held_lists.setdefault(ev.order_list_id, (ev, waiting))  # type: ignore[attr-defined]
                return []
        if entry is not None and type(ev) is OrderFilled and entry.held and entry.reported_qty >= entry.held_qty():
            return [ev, *self._release(entry)]
        return [ev]

    def _release(self, entry: TrackedOrder) -> list[Event]:
        """The entry's held ends, then the list ends that waited for nothing else."""
        out = list(entry.held.values())
        entry.held.clear()
        for lid, (lev, waiting) in list(self.held_lists.items()):
            waiting.discard(entry.order_id)
            if not waiting:
                del self.held_lists[lid]
                out.append(lev)
        return out

    def holds_any(self) -> bool:
        """Whether an end report (an order's or a list's) is waiting for fills."""
        return bool(self.held_lists) or any(t.held for t in self.orders.values())

    def sweep(self) -> None:
        """Forget the orders touched since the last sweep that are settled."""
        touched, self._touched = self._touched, set()
        for oid in touched:
            t = self.orders.get(oid)
            if t is not None and t.settled:
                self._forget(t)

    def give_up(self, order_id: int) -> list[Event]:
        """Stop tracking an order the venue no longer serves; returns the ends it held (the venue stated them)."""
        entry = self.orders.get(order_id)
        if entry is None:
            return []
        released = self._release(entry)
        self._forget(entry)
        return released

    def snapshots_ahead(self, events: Iterable[Event]) -> list[OrderStatusReported]:
        """Snapshot reports in ``events`` whose executed quantity exceeds every fill heard of that order."""
        heard: dict[int, int] = {}
        out: list[OrderStatusReported] = []
        for ev in events:
            if type(ev) is OrderFilled:
                heard[ev.order_id] = heard.get(ev.order_id, 0) + ev.qty
            elif type(ev) is OrderStatusReported and ev.order is not None:
                snap = ev.order
                entry = self.orders.get(snap.order_id)
                known = (entry.reported_qty if entry is not None else 0) + heard.get(snap.order_id, 0)
                if snap.executed_qty > known:
                    out.append(ev)
        return out

    def baseline_of(self, order_id: int) -> int:
        """What had executed before this process watched ``order_id`` (0 when it is not tracked)."""
        entry = self.orders.get(order_id)
        return entry.baseline if entry is not None else 0

    def reported_ids(self, order_id: int) -> set[int]:
        """Trade ids already reported for ``order_id`` (empty when it is not tracked)."""
        entry = self.orders.get(order_id)
        return set(entry.trade_ids) if entry is not None else set()

    def ends_ahead(self, events: Iterable[Event]) -> list[Owed]:
        """End reports in ``events`` that state more executed than the tracker plus the fills before them."""
        qty: dict[int, int] = {}
        ids: dict[int, set[int]] = {}
        out: list[Owed] = []
        for ev in events:
            t = type(ev)
            oid = getattr(ev, "order_id", None)
            if not isinstance(oid, int) or not (t is OrderAccepted or t is OrderFilled or is_end(ev)):
                continue
            if oid not in qty:
                entry = self.orders.get(oid)
                if entry is None and is_end(ev):
                    continue  # not an order we follow: it is not held either
                qty[oid] = entry.reported_qty if entry is not None else 0
                ids[oid] = set(entry.trade_ids) if entry is not None else set()
            if t is OrderFilled:
                tid: int = ev.trade_id  # type: ignore[attr-defined]
                if tid < 0 or tid not in ids[oid]:
                    ids[oid].add(tid)
                    qty[oid] += ev.qty  # type: ignore[attr-defined]
            elif t is not OrderAccepted and ev.cum_qty > qty[oid]:  # type: ignore[attr-defined]
                entry = self.orders.get(oid)
                out.append(Owed(ev, frozenset(ids[oid]), entry.baseline if entry is not None else 0))  # type: ignore[arg-type]
        return out

    def _observe_one(self, ev: Event) -> int | None:
        t = type(ev)
        if t is OrderAccepted:
            a: OrderAccepted = ev  # type: ignore[assignment]
            entry = self.orders.get(a.order_id)
            if entry is None:
                entry = self._entry(a.instrument, a.order_id, a.client_order_id, a.order_list_id)
                entry.status = a.status
            return a.order_id
        if t is OrderFilled:
            f: OrderFilled = ev  # type: ignore[assignment]
            entry = self._entry(f.instrument, f.order_id, f.client_order_id, f.order_list_id)
            if f.trade_id < 0 or f.trade_id not in entry.trade_ids:
                entry.trade_ids.add(f.trade_id)
                entry.reported_qty += f.qty
            entry.venue_qty = max(entry.venue_qty, f.cum_qty)
            if not entry.terminal:
                entry.status = f.status
            return f.order_id
        if t is OrderCanceled or t is OrderExpired or t is OrderTradePrevented:
            oid: int = ev.order_id  # type: ignore[attr-defined]
            entry_or = self.orders.get(oid)
            if entry_or is None:
                return None  # not an order of ours we know of
            entry_or.venue_qty = max(entry_or.venue_qty, ev.cum_qty)  # type: ignore[attr-defined]
            if t is OrderCanceled:
                entry_or.status = OrderStatus.CANCELED
            elif ev.status in TERMINAL_STATUSES:  # type: ignore[attr-defined]
                entry_or.status = ev.status  # type: ignore[attr-defined]
            return oid
        if t is OrderStatusReported:
            snap = ev.order  # type: ignore[attr-defined]
            if snap is None:
                return None
            return self.adopt(snap.instrument, snap.order_id, snap.client_order_id, snap.order_list_id,
                              snap.status, snap.executed_qty)
        if t is OrderListStatusChanged:
            ls: OrderListStatusChanged = ev  # type: ignore[assignment]
            if ls.list_order_status is ListOrderStatus.EXECUTING:
                self.lists[ls.order_list_id] = TrackedList(ls.instrument, ls.order_list_id, ls.order_ids)
            else:
                self.lists.pop(ls.order_list_id, None)
        return None

    def adopt(self, instrument: InstrumentId, order_id: int, cid: str, list_id: int, status: OrderStatus,
              executed: int) -> int:
        """A snapshot of an order: new to us -> tracked from here on (its past fills are its baseline)."""
        entry = self.orders.get(order_id)
        if entry is None:
            if status in TERMINAL_STATUSES:
                return order_id  # finished before we watched it: nothing owed
            entry = self._entry(instrument, order_id, cid, list_id)
            entry.status = status
            entry.baseline = entry.reported_qty = entry.venue_qty = executed
            return order_id
        entry.venue_qty = max(entry.venue_qty, executed)
        if status in TERMINAL_STATUSES:
            entry.status = status
        return order_id

    def _forget(self, t: TrackedOrder) -> None:
        del self.orders[t.order_id]
        if self._by_cid.get((t.instrument, t.client_order_id)) == t.order_id:
            del self._by_cid[(t.instrument, t.client_order_id)]

    def to_query(self, open_executed: Mapping[int, int]) -> list[TrackedOrder]:
        """Orders whose fills or end may have been missed, given ``openOrders`` (orderId -> executedQty).

        Missing from the open orders (it ended), open but further executed than reported, or
        ended with fills still owed.
        """
        out = []
        for t in self.orders.values():
            executed = open_executed.get(t.order_id)
            if t.terminal or executed is None:
                if not t.settled:
                    out.append(t)
            elif executed > t.reported_qty:
                out.append(t)
        return out

    def lists_to_query(self, open_ids: Iterable[int]) -> list[TrackedList]:
        """Executing lists none of whose orders is open any more: their end was not reported."""
        live = set(open_ids)
        return [lst for lst in self.lists.values() if not any(oid in live for oid in lst.order_ids)]


Dispatch = Callable[[AnyCommand, SignedRequest], None]


class LiveVenue:
    """The live adapter behind the Venue port (see module doc)."""

    def __init__(
        self,
        config: LiveConfig,
        on_events: Callable[[list[Event]], None],
        *,
        clock: Clock | None = None,
        rest: RestClient | None = None,
        limiter: RateLimiter | None = None,
        dispatch: Dispatch | None = None,
        on_error: Callable[[Exception], None] | None = None,
    ) -> None:
        self.config = config
        self.on_events = on_events
        self.clock = clock or LiveClock()
        if rest is None:
            signer = Signer(Credentials(config.api_key, config.api_secret.encode()), ServerTime(),
                            config.recv_window_ms)
            rest = RestClient(config.rest_url, RequestBuilder(signer), clock=self.clock, limiter=limiter,
                              on_status=lambda ev: self._emit([ev]))
        self.rest = rest
        self.builder = rest.builder
        self.executor = OrderExecutor(rest, clock=self.clock)
        self.dedupe = Deduper()
        self.tracker = OrderTracker()
        self.on_error = on_error
        self._dispatch: Dispatch = dispatch or self._schedule
        self._recv_ns: int | None = None
        self._ready_ns: dict[str, int] = {}
        self.tick_to_order_ns: deque[int] = deque(maxlen=100_000)
        self.errors: list[Exception] = []
        self.user: UserStream | None = None
        self._tasks: set[asyncio.Task[object]] = set()
        self._held_retry: asyncio.Task[None] | None = None

    # ----------------------------------------------------------------- Venue port

    @property
    def market_kinds(self) -> frozenset[int]:
        return frozenset()

    def set_market_recv_ns(self, ts_recv: int) -> None:
        """The receive time (this venue's clock) of the market message now being processed."""
        self._recv_ns = ts_recv

    def handle(self, command: AnyCommand, ts: int) -> list[Event]:
        """Sign ``command`` now, record tick-to-order, schedule the send; answers come via ``on_events``."""
        clock = self.clock
        request = self.builder.build(command, clock.now_ns())
        ready = clock.now_ns()
        cid = _client_id(command)
        if self._recv_ns is not None:
            latency = ready - self._recv_ns
            self.tick_to_order_ns.append(latency)
            self._emit_soon(LatencyRecorded(0, ready, ready, command.instrument, "tick_to_order", latency, cid))
        if cid:
            self._ready_ns[cid] = ready
        self._dispatch(command, request)
        return []

    def on_market(self, event: Event, now_ns: int | None = None) -> list[Event]:
        return []

    # ----------------------------------------------------------------- answers

    def _emit(self, events: list[Event]) -> None:
        """Drop duplicate executions, hold ends ahead of their fills, stamp ``ts_recv``, hand the rest on.

        An execution counts as delivered (its dedupe key is taken) only when it goes out: a held
        end is not, so its copies are held as one and it still goes out when released.
        """
        now = self.clock.now_ns()
        out: list[Event] = []
        for ev in events:
            if not self.dedupe.seen(ev):
                out.extend(x for x in self.tracker.admit(ev) if self.dedupe.take(x))
        self.tracker.sweep()
        if out:
            self.on_events([msgspec.structs.replace(ev, ts_recv=now) for ev in out])
        if self.tracker.holds_any():
            self._retry_held()

    def _retry_held(self) -> None:
        """An end held for missing fills must not wait for the next reconnect (a healthy stream may never drop).

        One task at a time reconciles after ``held_retry_s``, doubling up to 60 s, until nothing is held.
        """
        if self._held_retry is not None and not self._held_retry.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (driven synchronously): the next reconcile releases it
        self._held_retry = loop.create_task(self._held_retry_loop())

    async def _held_retry_loop(self) -> None:
        delay = self.config.held_retry_s
        while self.tracker.holds_any():
            await asyncio.sleep(delay)
            await self.resync()
            delay = min(delay * 2, HELD_RETRY_MAX_S)

    def _emit_soon(self, event: Event) -> None:
        """Deliver outside the kernel's call stack (``handle`` runs inside ``kernel.feed``)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a benchmark driving handle directly): the value is in tick_to_order_ns
        loop.call_soon(self.on_events, [event])

    def user_events(self, events: list[Event]) -> None:
        """Events from the user data stream (deduplicated against REST answers)."""
        self._emit(events)

    def _schedule(self, command: AnyCommand, request: SignedRequest) -> None:
        task = asyncio.get_running_loop().create_task(self.execute(command, request))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def execute(self, command: AnyCommand, request: SignedRequest | None = None) -> list[Event]:
        """Send one command (``request``: its pre-signed bytes) and emit what it led to."""
        try:
            events = await self._answer(command, request)
        except VenueError as exc:
            self.errors.append(exc)
            if self.on_error is not None:
                self.on_error(exc)
            events = self._failure(command, exc)
        cid = _client_id(command)
        ready = self._ready_ns.pop(cid, None) if cid else None
        if ready is not None and events:
            now = self.clock.now_ns()
            events = [*events, LatencyRecorded(0, now, now, command.instrument, "order_round_trip", now - ready, cid)]
        events = await self.fills_first(await self.fills_of_reports(events))
        self._emit(events)
        return events

    async def fills_of_reports(self, events: list[Event]) -> list[Event]:
        """``events`` with the fills an order snapshot states but nobody reported, placed before it.

        An order found by query after its placement answer was lost (or a strategy's own query)
        may already have traded; its ``OrderStatusReported`` carries the executed quantity but no
        fills. They are fetched now (``myTrades`` by ``orderId``) so the kernel hears them with the
        snapshot, not at the next reconcile. A failed query lands in ``errors``; the tracker still
        owes the order, so the next reconcile recovers them.
        """
        out = list(events)
        for owed in self.tracker.snapshots_ahead(events):
            snap = owed.order
            assert snap is not None
            try:
                rows = await self._my_trades(snap.instrument, snap.order_id)
            except VenueError as exc:
                self._failed(exc)
                continue
            reported = self.tracker.reported_ids(snap.order_id) | {
                ev.trade_id for ev in out if type(ev) is OrderFilled and ev.order_id == snap.order_id}
            baseline = self.tracker.baseline_of(snap.order_id)
            fills, _ = trade_fill_events(rows, snap, self.clock.now_ns(), reported=reported, baseline=baseline)
            at = next(i for i, ev in enumerate(out) if ev is owed)
            out[at:at] = fills
        return out

    async def fills_first(self, events: list[Event]) -> list[Event]:
        """``events`` with the fills each end report outruns fetched and placed before it.

        A cancel answer (or an expiry in a placement answer) states the order's executed quantity;
        fills the user stream missed before it are asked of ``GET /api/v3/myTrades`` by ``orderId``
        now, so the kernel hears them first. A failed query lands in ``errors`` and the end goes
        to :meth:`_emit` as is, where the tracker holds it until a reconcile brings the fills.
        List ends are moved behind the legs' reports so that they wait for held legs too.
        """
        owed = self.tracker.ends_ahead(events)
        if not owed:
            return events
        out = [ev for ev in events if not ends_list(ev)] + [ev for ev in events if ends_list(ev)]
        for item in owed:
            end = item.end
            try:
                rows = await self._my_trades(end.instrument, end.order_id)
            except VenueError as exc:
                self._failed(exc)
                continue
            fills, _ = trade_fill_events(rows, ended_order(end), self.clock.now_ns(), reported=item.reported,
                                         baseline=item.baseline)
            at = next(i for i, ev in enumerate(out) if ev is end)
            out[at:at] = fills
        return out

    async def _answer(self, command: AnyCommand, request: SignedRequest | None) -> list[Event]:
        if isinstance(command, SubmitOrder | SubmitOrderList):
            return await self.executor.submit(command, request)
        pending = [request] if request is not None else []

        def build(ns: int) -> SignedRequest:
            return pending.pop() if pending else self.builder.build(command, ns)

        resp = await self.rest.send(build)
        return answer_events(command, resp.status, resp.doc, resp.received_ns)

    def _failure(self, command: AnyCommand, exc: VenueError) -> list[Event]:
        """What the strategy is told when a command could not be carried out."""
        code, msg = (exc.code, exc.msg) if isinstance(exc, RequestRejected) else (-1006, str(exc))
        now = self.clock.now_ns()
        err = ApiError(code, msg)
        if isinstance(command, SubmitOrder | SubmitOrderList):
            return [rejected(command, err, now)]
        if isinstance(command, QueryOrder):
            return [OrderStatusReported(0, now, now, command.instrument, None, code, msg)]
        return [cancel_rejected(command, err, now)]

    # ----------------------------------------------------------------- lifecycle

    async def start(self) -> None:
        """Measure the server-time offset and open the user data stream."""
        await self.rest.sync_time()
        if self.config.user_stream:
            self.user = UserStream(self.rest, self.config.ws_url, self.user_events, market=self.config.market,
                                   clock=self.clock, on_reconnect=self._after_reconnect,
                                   mode=self.config.user_stream_mode, ws_api_url=self.config.ws_api_url)
            task = asyncio.get_running_loop().create_task(self.user.run())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            await self.user.wait_connected(self.rest.timeout_s)

    async def close(self) -> None:
        """Stop the user stream, let in-flight orders finish, close the HTTP session."""
        if self._held_retry is not None:
            self._held_retry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._held_retry
        if self.user is not None:
            await self.user.stop()
        pending = [t for t in self._tasks if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.rest.timeout_s)
        await self.rest.close()

    async def _after_reconnect(self) -> None:
        """Reports sent while the user stream was down are lost: re-read the account state."""
        await self.resync()

    async def resync(self) -> list[Event]:
        """:meth:`reconcile` and emit what it found (a failure is kept in ``errors``, never raised)."""
        try:
            events = await self.reconcile()
        except VenueError as exc:
            self._failed(exc)
            return []
        self._emit(events)
        return events

    def _failed(self, exc: VenueError) -> None:
        self.errors.append(exc)
        if self.on_error is not None:
            self.on_error(exc)

    async def reconcile(self) -> list[Event]:
        """Balances, open orders, and what the kernel missed of the orders it believes are working.

        Returns ``BalanceUpdated``, an ``OrderStatusReported`` per open order, then the recovered
        events of :meth:`recover_lost_fills`. It emits nothing itself: recovered events count as
        reported once they pass ``_emit`` (:meth:`resync` does both; the session's startup feeds the
        result itself). Raises VenueError when the account or the open orders cannot be read;
        a failing per-order query only lands in ``errors``.
        """
        acct = await self.rest.send(self.builder.account)
        err = api_error(acct.status, acct.doc)
        if err is not None or not isinstance(acct.doc, dict):
            raise VenueError(f"GET /api/v3/account failed: {err}")
        now = self.clock.now_ns()
        doc = acct.doc
        ts = int(doc.get("updateTime") or 0) * MS or now
        bals = tuple(
            (str(b["asset"]), _e8(b.get("free")), _e8(b.get("locked"))) for b in doc.get("balances") or ()
        )
        out: list[Event] = [BalanceUpdated(0, ts, now, NO_INSTRUMENT, bals)]
        opened = await self.rest.send(lambda ns: self.builder.open_orders(ns))
        err = api_error(opened.status, opened.doc)
        if err is not None or not isinstance(opened.doc, list):
            raise VenueError(f"GET /api/v3/openOrders failed: {err}")
        open_executed: dict[int, int] = {}
        reports: list[Event] = []
        for item in opened.doc:
            iid = instrument_id(str(item["symbol"]), self.config.market)
            snap = snapshot_of(item, iid)
            open_executed[snap.order_id] = snap.executed_qty
            reports.append(OrderStatusReported(0, snap.update_time or now, now, iid, snap))
        self.tracker.observe(reports)  # adopt open orders now: the startup caller feeds them without _emit
        out.extend(reports)
        out.extend(await self.recover_lost_fills(open_executed))
        return out

    async def recover_lost_fills(self, open_executed: Mapping[int, int]) -> list[Event]:
        """Fills and ends of tracked orders the kernel never heard of (``open_executed``: openOrders' executedQty).

        Per order in :meth:`OrderTracker.to_query`: ``GET /api/v3/myTrades`` then ``GET /api/v3/order``;
        then ``GET /api/v3/orderList`` for executing lists none of whose orders is open. An order
        whose queries fail yields nothing this round (a VenueError in ``errors``) and stays tracked,
        so the next reconcile asks again; what was already emitted is skipped by trade id here and
        by the Deduper at emission, so a retry never reports a fill twice.
        """
        out: list[Event] = []
        for tracked in self.tracker.to_query(open_executed):
            try:
                out.extend(await self._recover_order(tracked))
            except VenueError as exc:
                self._failed(exc)
        for lst in self.tracker.lists_to_query(open_executed):
            try:
                out.extend(await self._recover_list(lst.instrument, lst.order_list_id))
            except VenueError as exc:
                self._failed(exc)
        return out

    async def _recover_order(self, t: TrackedOrder) -> list[Event]:
        """One order: its trades (all pages), then its state; the events the stream would have sent."""
        rows = await self._my_trades(t.instrument, t.order_id)
        query = QueryOrder(t.instrument, order_id=t.order_id)
        resp = await self.rest.send(lambda ns: self.builder.query(query, ns))
        err = api_error(resp.status, resp.doc)
        if err is not None and err.code == NOT_FOUND:
            return self._not_found(t, err.msg)
        if err is not None or not isinstance(resp.doc, dict):
            raise VenueError(f"GET /api/v3/order orderId={t.order_id} ({t.client_order_id!r}) failed: {err}")
        t.misses = 0
        snap = snapshot_of(resp.doc, t.instrument)
        now = self.clock.now_ns()
        fills, traded = trade_fill_events(rows, snap, now, reported=t.trade_ids, baseline=t.baseline)
        if traded < snap.executed_qty:
            # the trade list lags the order (or it traded between the two queries): report what is
            # known, keep the order tracked; its end is reported once the trades add up
            return fills
        ends = terminal_events(snap, now) if snap.status in TERMINAL_STATUSES else []
        report = [OrderStatusReported(0, snap.update_time or now, now, t.instrument, snap)] if ends or fills else []
        return [*fills, *ends, *report]

    def _not_found(self, t: TrackedOrder, msg: str) -> list[Event]:
        """The venue does not know a tracked order: wait for a second opinion, then give it up.

        One -2013 may be a venue still catching up; ``forget_missing_after`` in a row and the
        order is dropped from the tracker (so it is never asked about again), the kernel gets an
        ``OrderStatusReported`` with no snapshot and code -2013 (the answer the query would have
        given), preceded by any end report held for it, and ``errors`` gets one VenueError.
        """
        t.misses += 1
        if t.misses < self.config.forget_missing_after:
            return []
        now = self.clock.now_ns()
        released = self.tracker.give_up(t.order_id)
        text = (f"order {t.order_id} ({t.client_order_id!r}, {t.instrument}) not found by GET /api/v3/order "
                f"{t.misses} times in a row ({NOT_FOUND} {msg}): no longer tracked; its state is unknown, "
                f"{t.venue_qty - t.reported_qty} executed units were never reported")
        self._failed(VenueError(text))
        return [*released, OrderStatusReported(0, now, now, t.instrument, None, NOT_FOUND, text)]

    async def _my_trades(self, instrument: InstrumentId, order_id: int) -> list[dict[str, Any]]:
        """Every ``myTrades`` row of one order, oldest first (paged forward by ``fromId``)."""
        symbol = symbol_of(instrument)
        rows: list[dict[str, Any]] = []
        from_id = 0
        for _ in range(MAX_TRADE_PAGES):
            resp = await self.rest.send(partial(self.builder.my_trades, symbol, order_id=order_id, from_id=from_id))
            err = api_error(resp.status, resp.doc)
            if err is not None or not isinstance(resp.doc, list):
                raise VenueError(f"GET /api/v3/myTrades symbol={symbol} orderId={order_id} failed: {err}")
            page = [r for r in resp.doc if isinstance(r, dict) and int(r.get("orderId", order_id)) == order_id]
            rows.extend(page)
            if len(resp.doc) < MY_TRADES_LIMIT or not page:
                return rows
            from_id = max(int(r["id"]) for r in page) + 1
        raise VenueError(f"GET /api/v3/myTrades orderId={order_id}: more than {MAX_TRADE_PAGES} pages of trades")

    async def _recover_list(self, instrument: InstrumentId, order_list_id: int) -> list[Event]:
        resp = await self.rest.send(lambda ns: self.builder.query_list_by_id(order_list_id, ns))
        err = api_error(resp.status, resp.doc)
        if err is not None or not isinstance(resp.doc, dict):
            raise VenueError(f"GET /api/v3/orderList orderListId={order_list_id} failed: {err}")
        return list_events(resp.doc, instrument, self.clock.now_ns())


def _e8(value: object) -> int:
    from engine.fixed import parse_e8

    return parse_e8(value) if isinstance(value, str) and value else 0


def _client_id(command: AnyCommand) -> str:
    if isinstance(command, SubmitOrder):
        return command.client_order_id or ""
    if isinstance(command, SubmitOrderList):
        return command.list_client_order_id or ""
    if isinstance(command, CancelOrder):
        return command.new_client_order_id or ""
    return ""


__all__ = ["Deduper", "LiveConfig", "LiveVenue", "OrderTracker", "Owed", "TrackedList", "TrackedOrder", "dedupe_key",
           "ends_list", "is_end"]
